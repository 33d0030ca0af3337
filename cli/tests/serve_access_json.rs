//! `ringleader serve` with `access_log = "json"`: the access lines on stderr are bare
//! JSON objects under `--log-format text` and `json` alike, and /metrics dates the
//! process's start (`process_start_time_seconds`) before the proxy served anything.
#[allow(dead_code)] // helpers the other binary tests use
mod common;

use common::{backends, client, get};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");

/// Kills the child when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ringleader <global> serve -c cfg` without colours: the child and the stderr
/// lines it writes, gathered as they come.
fn serve(global: &[&str], cfg: &std::path::Path) -> (KillOnDrop, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(BIN)
        .args(global)
        .args(["serve", "-c"])
        .arg(cfg)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (KillOnDrop(child), lines)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The first stderr line satisfying `f`, within 10 s.
async fn wait_line(lines: &Mutex<Vec<String>>, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = lines.lock().unwrap().iter().find(|l| f(l)) {
            return l.clone();
        }
        assert!(Instant::now() < deadline, "{:?}", lines.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A listener address from the "ringleader is serving" line, in either log format.
fn addr_in(line: &str, key: &str) -> SocketAddr {
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["fields"][key].as_str().unwrap().parse().unwrap()
    } else {
        let prefix = format!("{key}=");
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(prefix.as_str()))
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// A config in `dir` with free listeners, one worker, `access_log = "json"` and
/// one backend named alpha at `addr`; its path.
fn json_access_config(dir: &std::path::Path, addr: std::net::SocketAddr) -> std::path::PathBuf {
    let cfg = dir.join("ringleader.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\n\
             access_log = \"json\"\n[upstream.app]\nbackends = [{{ addr = \"{addr}\", name = \"alpha\" }}]\n"
        ),
    )
    .unwrap();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_lines_are_bare_in_both_log_formats() {
    let b = backends(1).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = json_access_config(dir.path(), b[0].addr());
    for format in ["text", "json"] {
        let spawned = now();
        let (_child, lines) = serve(&["--log", "info", "--log-format", format], &cfg);
        let serving = wait_line(&lines, |l| l.contains("ringleader is serving")).await;
        let ready = now();
        let (proxy, admin) = (addr_in(&serving, "listen"), addr_in(&serving, "admin"));

        assert_eq!(get(&client(), proxy, "/").await.status, 200);
        let line = wait_line(&lines, |l| l.contains("\"request_id\"")).await;
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("--log-format {format}: not one JSON object ({e}): {line}"));
        assert_eq!(v["status"], 200, "{line}");
        assert_eq!(
            (v["method"].as_str(), v["path"].as_str()),
            (Some("GET"), Some("/"))
        );
        assert_eq!(
            (v["upstream"].as_str(), v["backend"].as_str()),
            (Some("app"), Some("alpha"))
        );
        assert!(
            v.get("fields").is_none() && v.get("level").is_none(),
            "bare: {line}"
        );
        // The other lines keep their format.
        assert_eq!(serving.starts_with('{'), format == "json", "{serving}");

        // The process started between its spawn and its first log line (procfs counts
        // from a boot time in whole seconds: up to 1 s early).
        let text = get_text(admin).await;
        let started: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .unwrap_or_else(|| panic!("{text}"))
            .parse()
            .unwrap();
        assert!(
            started > spawned - 1.0 && started <= ready,
            "started {started}, spawned {spawned}, serving at {ready}"
        );
    }
}

/// GET /metrics from `admin`, as text.
async fn get_text(admin: SocketAddr) -> String {
    use http_body_util::BodyExt;
    let req = http::Request::get(format!("http://{admin}/metrics"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The loopback TCP ports process `pid` listens on (its socket inodes in
/// `/proc/<pid>/fd`, found in LISTEN state, `0A`, in `/proc/net/tcp`).
#[cfg(target_os = "linux")]
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            if *state != "0A" || !inodes.iter().any(|i| i == inode) {
                return None;
            }
            u16::from_str_radix(local.split_once(':')?.1, 16).ok()
        })
        .collect()
}

/// `--log warn` quiets the proxy's own INFO lines, not the access log: that is the
/// config's (`access_log`), as nginx's `access_log` is apart from its error log level.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_is_written_under_log_warn() {
    let b = backends(1).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = json_access_config(dir.path(), b[0].addr());
    let (child, lines) = serve(&["--log", "warn"], &cfg);
    let pid = child.0.id();
    // No "serving" line at warn: the listeners are found in /proc. The proxy's answers
    // `/` from the backend (`x-backend`), the admin's with its status page.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ports = loop {
        let p = listening_ports(pid);
        if p.len() >= 2 {
            break p;
        }
        assert!(Instant::now() < deadline, "listeners of {pid}: {p:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut relayed = 0;
    for port in ports {
        let a = get(&client(), ([127, 0, 0, 1], port).into(), "/").await;
        if a.backend.is_some() {
            assert_eq!(a.status, 200);
            relayed += 1;
        }
    }
    assert_eq!(relayed, 1, "one request through the proxy");
    let line = wait_line(&lines, |l| l.contains("\"request_id\"")).await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], 200, "{line}");
    assert_eq!(v["backend"], "alpha", "{line}");
    // One access line, and nothing else at INFO.
    let all = lines.lock().unwrap().clone();
    let access = all.iter().filter(|l| l.contains("\"request_id\"")).count();
    assert_eq!(access, 1, "{all:?}");
    assert!(all.iter().all(|l| !l.contains(" INFO ")), "{all:?}");
}
