//! A real etcd for the binary's tests (a small copy of ringleader-cluster's test harness):
//! started from `ETCD_BIN` or `etcd` on PATH (as `demo --cluster` finds it) on free loopback ports with a
//! temporary data dir, killed by pid on drop. Without etcd the tests print a loud notice
//! straight to stderr and pass, except under `CI=true`, where they fail.
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
    pub bin: PathBuf,
    _dir: tempfile::TempDir,
}

/// The etcd binary, found as `ringleader demo --cluster` finds it: `ETCD_BIN` if set (a
/// missing file there counts as "not installed"), else `etcd` on PATH.
pub use ringleader_cli::demo_cluster::etcd_binary;

/// `None` after a loud notice when etcd is not installed (a failure under `CI=true`).
pub fn etcd_or_skip() -> Option<PathBuf> {
    let bin = etcd_binary();
    if bin.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("etcd is not installed, and CI=true: install it (Debian: apt-get install etcd-server)");
        }
        // Straight to the process's stderr: libtest captures eprintln! of passing tests.
        use std::io::Write;
        let _ = std::io::stderr().write_all(
            b"\n!!!!!!!! etcd tests of the ringleader binary SKIPPED: install etcd (Debian: apt-get install etcd-server) !!!!!!!!\n\n",
        );
    }
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Start etcd, or `None` (after a loud notice) when it is not installed and CI is unset.
pub fn etcd() -> Option<Etcd> {
    let bin = etcd_or_skip()?;
    // Free ports can be taken between the probe and etcd's bind: retry with new ones.
    for _attempt in 0..5 {
        let dir = tempfile::Builder::new()
            .prefix("ringleader-cli-etcd-")
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
                bin,
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

/// Wait (bounded) until etcd answers a request, or exits.
fn wait_ready(child: &mut Child, url: &str) -> bool {
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

    pub fn config(&self, namespace: &str) -> ClusterConfig {
        ClusterConfig::new([self.url.as_str()]).with_namespace(namespace)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send `sig` (`-TERM`, `-STOP`, ...) to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// A child process killed (by pid) on drop, so a failing test leaves none behind.
pub struct Reaped(pub Option<Child>);

impl Reaped {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("child").id()
    }

    /// Wait (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child().try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process {} did not exit within {within:?}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Poll `cond` every 50 ms until it holds; panic with `what` after `within`.
pub fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
