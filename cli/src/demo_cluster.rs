//! `ringleader demo --cluster`: a fleet on one machine: a throw-away etcd, demo backends
//! registered in it, and two proxies that take their members from it.
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringleader_cluster::{BackendSpec, Cluster, ClusterConfig};
use ringleader_proxy::{Config, DemoBackend};

use crate::serve::DemoArgs;
use crate::CliError;

/// The upstream the demo's proxies serve, fed from etcd.
pub const UPSTREAM: &str = "app";

/// How long etcd gets to answer its first request.
const ETCD_START: Duration = Duration::from_secs(30);

/// The etcd binary: `ETCD_BIN` if set (a missing file there counts as none), else `etcd`
/// on `PATH`.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("ETCD_BIN") {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|p| p.join("etcd"))
        .find(|p| p.is_file())
}

/// What to tell a user without etcd.
pub const INSTALL_ETCD: &str = "`ringleader demo --cluster` runs etcd, and there is no `etcd` \
on PATH: install it (Debian/Ubuntu: apt-get install etcd-server; Fedora: dnf install etcd; \
macOS: brew install etcd) or point ETCD_BIN at the binary";

/// A throw-away single-member etcd on free loopback ports with a temporary data dir;
/// killed by pid (and the data dir removed) on drop.
#[derive(Debug)]
pub struct EtcdProcess {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdProcess {
    /// Start `bin` and wait (bounded) until it answers.
    pub async fn start(bin: &Path) -> Result<EtcdProcess, CliError> {
        // A free port can be taken between the probe and etcd's bind: retry with others.
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("ringleader-demo-etcd-")
                .tempdir()?;
            let (client, peer) = (free_port()?, free_port()?);
            if client == peer {
                continue;
            }
            let url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log_path = dir.path().join("etcd.log");
            let log = std::fs::File::create(&log_path)?;
            let child = Command::new(bin)
                .arg("--name=demo")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={url}"))
                .arg(format!("--advertise-client-urls={url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=demo={peer_url}"))
                .arg("--logger=zap")
                .arg("--log-level=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
            let mut etcd = EtcdProcess { child, url, dir };
            if etcd.wait_ready().await {
                return Ok(etcd);
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            tracing::debug!(url = %etcd.url, "etcd did not come up; trying other ports");
        }
        Err(format!("etcd did not start on loopback; its last log:\n{last_log}").into())
    }

    async fn wait_ready(&mut self) -> bool {
        let config = ClusterConfig {
            request_timeout: Duration::from_millis(500),
            ..ClusterConfig::new([self.url.as_str()])
        };
        let deadline = Instant::now() + ETCD_START;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if Cluster::connect(&config).await.is_ok() {
                return true;
            }
            // Each attempt waits up to 500 ms itself; this only paces refused connects.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Its client URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its data directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config of one of the demo's proxies: upstream `app`, consistent hashing on the
/// `x-user-id` header, members from etcd at `etcd_url`.
pub fn cluster_demo_config(
    listen: SocketAddr,
    admin: SocketAddr,
    etcd_url: &str,
) -> Result<Config, ringleader_proxy::Error> {
    let text = format!(
        r#"[server]
listen = "{listen}"
admin = "{admin}"
shutdown_grace = "2s"
access_log = true

[cluster]
endpoints = ["{etcd_url}"]
namespace = "default"
lease_ttl = "10s"

[upstream.{UPSTREAM}]
strategy = "consistent_hash"
hash_key = "header:x-user-id"
connect_timeout = "250ms"
backends_from = "cluster"

[upstream.{UPSTREAM}.health]
path = "/healthz"
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2

[upstream.{UPSTREAM}.retry]
attempts = 2
on = ["connect_error", "timeout", "5xx"]
"#
    );
    Config::from_toml_str(&text, "<demo --cluster>")
}

/// The next port for the second proxy's listener (0 stays 0: any free port).
fn next_port(mut addr: SocketAddr) -> SocketAddr {
    if addr.port() != 0 {
        addr.set_port(addr.port().wrapping_add(1).max(1));
    }
    addr
}

/// Run `ringleader demo --cluster`.
pub fn run(args: DemoArgs) -> Result<(), CliError> {
    let bin = etcd_binary().ok_or(INSTALL_ETCD)?;
    let rt = crate::serve::runtime(0)?;
    rt.block_on(async move {
        let stop = crate::cluster::stop_signal()?;
        tokio::pin!(stop);
        let etcd = EtcdProcess::start(&bin).await?;
        tracing::info!(url = etcd.url(), pid = etcd.pid(), "etcd started");
        let cluster = Cluster::connect(&ClusterConfig::new([etcd.url()]))
            .await
            .map_err(|e| crate::cluster::chain(&e))?;
        let mut backends = Vec::new();
        for (name, delay) in [
            ("alpha", Duration::ZERO),
            ("bravo", Duration::ZERO),
            ("charlie", Duration::ZERO),
            ("delta", Duration::ZERO),
        ] {
            backends.push((name, DemoBackend::start(name, delay).await?));
        }
        let mut registrations = Vec::new();
        for (name, b) in &backends[..3] {
            let spec = BackendSpec {
                addr: b.addr().to_string(),
                weight: 1,
            };
            let r = cluster
                .register_backend(UPSTREAM, name, &spec)
                .await
                .map_err(|e| crate::cluster::chain(&e))?;
            registrations.push(r);
        }
        let one = crate::serve::bind_demo(cluster_demo_config(args.listen, args.admin, etcd.url())?).await?;
        let two = crate::serve::bind_demo(cluster_demo_config(
            next_port(args.listen),
            next_port(args.admin),
            etcd.url(),
        )?)
        .await?;
        let proxies = [
            (one.proxy_addr(), one.admin_addr()),
            (two.proxy_addr(), two.admin_addr()),
        ];
        let members: Vec<(&str, SocketAddr)> =
            backends.iter().map(|(n, b)| (*n, b.addr())).collect();
        let text = banner(&etcd, proxies, &members);
        match crate::out::stdout(|out| Ok(out.write_all(text.as_bytes())?)) {
            Err(e) if crate::out::is_stdout_closed(&*e) => {
                tracing::info!("standard output is closed: the demo's banner is not shown");
            }
            other => other?,
        }
        tracing::info!(etcd = etcd.url(), proxy1 = %proxies[0].0, proxy2 = %proxies[1].0, "demo --cluster ready; Ctrl-C stops it");
        (&mut stop).await;
        tracing::info!("shutting down: proxies drain, backends deregister, etcd stops");
        tokio::join!(one.shutdown(), two.shutdown());
        for r in registrations {
            let _ = r.deregister().await;
        }
        drop(cluster);
        drop(etcd);
        Ok(())
    })
}

/// The banner of `demo --cluster`: where everything is and what to try.
pub fn banner(
    etcd: &EtcdProcess,
    [(p1, a1), (p2, a2)]: [(SocketAddr, SocketAddr); 2],
    backends: &[(&str, SocketAddr)],
) -> String {
    let url = etcd.url();
    let registered: Vec<String> = backends[..3]
        .iter()
        .map(|(n, a)| format!("{n} http://{a}"))
        .collect();
    let (spare, spare_addr) = backends[3];
    format!(
        r#"ringleader demo --cluster
  etcd     {url} (pid {pid}, log and data in {dir}; stopped with the demo)
  proxy 1  http://{p1}/   admin http://{a1}/status
  proxy 2  http://{p2}/   admin http://{a2}/status
  upstream {UPSTREAM}: consistent_hash on the x-user-id header, members from etcd (namespace default)
  members  {registered} (registered in etcd)
  spare    {spare} http://{spare_addr} (running, not registered)

Try:
  # the same key goes to the same backend through both proxies:
  for u in alice bob carol dave; do for p in {p1} {p2}; do printf '%s via %s: ' $u $p; curl -s -H "x-user-id: $u" http://$p/; done; done
  # members, and the worker-id leases (one per proxy, for its X-Request-Id):
  ringleader cluster ls --etcd {url}
  # add {spare} to both proxies (Ctrl-C there removes it again):
  ringleader cluster register --etcd {url} --upstream {UPSTREAM} --addr {spare_addr} --id {spare}
  # what proxy 1 sees: cluster.connected, the members:
  curl -s http://{a1}/status
Ctrl-C stops the demo (and etcd).
"#,
        pid = etcd.pid(),
        dir = etcd.dir().display(),
        registered = registered.join("  "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_feeds_a_consistent_hash_upstream_from_the_cluster() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let c = cluster_demo_config(any, any, "http://127.0.0.1:2379").unwrap();
        let d = c.describe();
        assert!(d.contains("backends_from = \"cluster\""), "{d}");
        assert!(d.contains("consistent_hash"), "{d}");
        assert!(c.cluster.is_some());
    }

    #[test]
    fn the_second_proxy_takes_the_next_ports() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(next_port(a).port(), 8081);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(next_port(any).port(), 0);
    }
}
