//! A real etcd for the cluster tests (the approach of cluster/tests/common, kept small):
//! `ETCD_BIN`, `/usr/bin/etcd` or `etcd` on PATH, on free loopback ports with a temporary data dir,
//! killed by pid on drop. Without etcd a test prints a loud notice and passes, except
//! under `CI=true`, where it fails.
use ringleader_cluster::{Cluster, ClusterConfig};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd; killed and its data dir removed on drop.
pub struct Etcd {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// `ETCD_BIN` if set (a missing file there counts as not installed), else
/// `/usr/bin/etcd`, else `etcd` on PATH (as the cluster crate's tests pick it).
fn etcd_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("ETCD_BIN") {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    let default = PathBuf::from("/usr/bin/etcd");
    if default.is_file() {
        return Some(default);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|p| p.join("etcd"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

impl Etcd {
    /// Start etcd and wait (30 s at most) until it answers; `None` after a loud
    /// notice when it is not installed and CI is not `true`.
    pub async fn start() -> Option<Etcd> {
        let Some(bin) = etcd_binary() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "etcd is not installed, and CI=true: install it (Debian: apt-get install etcd-server)"
            );
            // Straight to stderr: libtest captures eprintln! of a passing test.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!! etcd tests SKIPPED: install etcd (Debian: apt-get install etcd-server) !!!!!!!!\n"
            );
            return None;
        };
        // A free port can be taken between the probe and etcd's bind: retry with others.
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("ringleader-proxy-etcd-")
                .tempdir()
                .expect("temp dir");
            let (client, peer) = (free_port(), free_port());
            if client == peer {
                continue;
            }
            let url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log file");
            let child = Command::new(&bin)
                .arg("--name=test")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={url}"))
                .arg(format!("--advertise-client-urls={url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=test={peer_url}"))
                .arg("--log-level=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn etcd");
            let mut etcd = Etcd {
                child,
                url,
                _dir: dir,
            };
            if etcd.ready().await {
                return Some(etcd);
            }
            eprintln!(
                "etcd did not come up on {}; retrying on other ports",
                etcd.url
            );
        }
        panic!("could not start etcd on free loopback ports");
    }

    /// Whether etcd answers within 30 s (false if it exits first).
    async fn ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let config = ClusterConfig {
            request_timeout: Duration::from_millis(500),
            ..ClusterConfig::new([self.url.as_str()])
        };
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // Each attempt waits up to 500 ms itself.
            if Cluster::connect(&config).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// A client of namespace `ns`.
    pub async fn client(&self, ns: &str) -> Cluster {
        Cluster::connect(&ClusterConfig::new([self.url.as_str()]).with_namespace(ns))
            .await
            .expect("connect to the test etcd")
    }

    /// Freeze (SIGSTOP) or resume (SIGCONT) etcd: connections stay open, unanswered.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {}", self.child.id());
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
