//! A real etcd for the tests: started from `/usr/bin/etcd` (or `etcd` on PATH) on free
//! loopback ports with a temporary data dir, stopped by pid on drop. Without etcd the
//! tests print a loud notice and pass, except under `CI=true`, where they fail.
//! `ETCD_BIN=/path/to/etcd` picks another binary.
#![allow(dead_code)] // each test file uses its own subset

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringleader_cluster::{Cluster, ClusterConfig};

/// A running etcd, killed (by pid) and its data dir removed on drop.
pub struct Etcd {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// `ETCD_BIN` if set (a missing file there counts as "not installed"), else
/// `/usr/bin/etcd`, else `etcd` on PATH.
fn etcd_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("ETCD_BIN") {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    let default = PathBuf::from("/usr/bin/etcd");
    if default.is_file() {
        return Some(default);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("etcd"))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Start etcd, or `None` (after a loud notice) when it is not installed and CI is unset.
pub fn etcd() -> Option<Etcd> {
    let Some(bin) = etcd_binary() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("etcd is not installed, and CI=true: install it (Debian: apt-get install etcd-server)");
        }
        // Straight to the process's stderr: libtest captures eprintln! of passing tests.
        use std::io::Write;
        let _ = std::io::stderr().write_all(
            b"\n!!!!!!!! etcd tests SKIPPED: install etcd (Debian: apt-get install etcd-server) !!!!!!!!\n\n",
        );
        return None;
    };
    // Free ports can be taken between the probe and etcd's bind: retry with new ones.
    for _attempt in 0..5 {
        let dir = tempfile::Builder::new()
            .prefix("ringleader-etcd-")
            .tempdir()
            .expect("temp dir");
        let (client, peer) = (free_port(), free_port());
        if client == peer {
            continue;
        }
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log file");
        let mut child = Command::new(&bin)
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        if wait_ready(&mut child, &url) {
            return Some(Etcd {
                child,
                url,
                _dir: dir,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default();
        eprintln!("etcd did not come up on {url}, retrying with other ports; its log:\n{log}");
    }
    panic!("could not start etcd on free loopback ports");
}

/// Wait (bounded) until etcd answers a request, or exits. (On a thread of its own: the
/// caller may be inside a tokio runtime.)
fn wait_ready(child: &mut Child, url: &str) -> bool {
    std::thread::scope(|s| s.spawn(|| wait_ready_on_thread(child, url)).join().unwrap())
}

fn wait_ready_on_thread(child: &mut Child, url: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deadline = Instant::now() + Duration::from_secs(30);
    let config = ClusterConfig {
        request_timeout: Duration::from_millis(500),
        ..ClusterConfig::new([url])
    };
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if rt.block_on(Cluster::connect(&config)).is_ok() {
            return true;
        }
        // Not a fixed sleep for a condition: the connect attempt itself waits up to 500 ms.
        std::thread::yield_now();
    }
    false
}

impl Etcd {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freeze etcd (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Resume a frozen etcd (SIGCONT).
    pub fn thaw(&self) {
        signal(self.pid(), "-CONT");
    }

    pub fn config(&self, namespace: &str, ttl: Duration) -> ClusterConfig {
        ClusterConfig {
            request_timeout: Duration::from_secs(2),
            ..ClusterConfig::new([self.url.as_str()])
                .with_namespace(namespace)
                .with_lease_ttl(ttl)
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.thaw_quietly();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    fn thaw_quietly(&self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.pid().to_string())
            .stderr(Stdio::null())
            .status();
    }
}

/// Poll `cond` (async) until it holds; panics with `what` after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Log to the test's output when `RUST_LOG` is set (debugging a failure).
pub fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
