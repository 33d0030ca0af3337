//! The `ringleader` binary end to end: `check` (and its default config file), and `serve` with
//! SIGHUP reloads and SIGTERM drain, and with `--listen`/`--admin` overriding the file's.
mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringleader-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn check_prints_the_resolved_config_or_a_located_error() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ringleader.toml");
    let out = Command::new(BIN)
        .args(["check", "-c", example])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("# resolved config"), "{stdout}");
    assert!(
        stdout.contains("upstream app: least_response_time over 3 backend(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("idle keep-alive 30s"), "{stdout}");

    let dir = temp_dir("check");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:1\" }]\nstrategy = \"fastest\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:3:12: unknown strategy \"fastest\""),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_reads_an_h2_upstreams_tls_ca_and_names_a_bad_one() {
    let dir = temp_dir("check-ca");
    let cfg = dir.join("h2.toml");
    std::fs::write(
        &cfg,
        "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:1\" }]\nprotocol = \"h2\"\ntls_ca = \"ca.pem\"\n",
    )
    .unwrap();
    let ca = dir.join("ca.pem");
    for (content, why) in [
        (None, "cannot read"),
        (
            Some("not a certificate\n"),
            "holds no CERTIFICATE PEM block",
        ),
    ] {
        match content {
            Some(c) => std::fs::write(&ca, c).unwrap(),
            None => {
                let _ = std::fs::remove_file(&ca);
            }
        }
        let out = Command::new(BIN)
            .args(["check", "-c"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("h2.toml:4:10: upstream \"app\": tls_ca: "),
            "{stderr}"
        );
        assert!(stderr.contains(&ca.display().to_string()), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ringleader ARGS` run in `dir`: exit success and stderr.
fn run_in(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_c_check_and_serve_read_ringleader_toml_and_say_so_when_it_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let abs = dir.path().canonicalize().unwrap();
    let looked_for = abs.join("ringleader.toml");
    let dir = abs.as_path();
    for sub in ["check", "serve"] {
        let (ok, _, stderr) = run_in(dir, &[sub]);
        assert!(!ok, "{sub} without a config succeeded");
        assert!(
            stderr.contains(&format!("no config file at {}", looked_for.display())),
            "{sub}: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "without -c, `ringleader {sub}` reads ./ringleader.toml"
            )),
            "{sub}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("`ringleader {sub} -c examples/ringleader.toml`")),
            "{sub}: {stderr}"
        );
    }
    // A file named with -c that is missing: the path looked for, and as given.
    let (ok, _, stderr) = run_in(dir, &["check", "-c", "nope.toml"]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "no config file at {} (-c nope.toml)",
            abs.join("nope.toml").display()
        )),
        "{stderr}"
    );

    // From a directory holding examples/ringleader.toml (the repository's root) the hint
    // is a command to paste.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ringleader.toml");
    std::fs::create_dir(dir.join("examples")).unwrap();
    std::fs::copy(example, dir.join("examples/ringleader.toml")).unwrap();
    let (ok, _, stderr) = run_in(dir, &["check"]);
    assert!(!ok);
    assert!(
        stderr.contains("; try `ringleader check -c examples/ringleader.toml`"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run_in(dir, &["check", "-c", "examples/ringleader.toml"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("examples/ringleader.toml: OK"),
        "{stdout}"
    );

    // With ./ringleader.toml present, check finds it without -c.
    std::fs::copy(example, dir.join("ringleader.toml")).unwrap();
    let (ok, stdout, stderr) = run_in(dir, &["check"]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("ringleader.toml: OK"), "{stdout}");
}

/// The first captured log line containing `needle`, waiting up to 10 s.
async fn wait_for_log(lines: &Arc<Mutex<Vec<String>>>, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line with {needle:?}: {:?}",
            lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn serve_config(backend: SocketAddr) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\nshutdown_grace = \"5s\"\naccess_log = true\n\
         [upstream.app]\nbackends = [{{ addr = \"{backend}\" }}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reloads_on_sighup_and_drains_on_sigterm() {
    let b = backends(2).await;
    let dir = temp_dir("serve");
    let cfg = dir.join("ringleader.toml");
    std::fs::write(&cfg, serve_config(b[0].addr())).unwrap();
    let (mut child, lines, pid, addr) = serve(&cfg).await;
    let c = client();
    assert_eq!(get(&c, addr, "/").await.backend.as_deref(), Some("b0"));
    // One access log line per request: method, path, status, upstream, backend, latency, id.
    let access = wait_for_log(&lines, "ringleader::access").await;
    for field in [
        "method=GET",
        "path=/",
        "status=200",
        "upstream=app",
        "latency_us=",
        "request_id=",
    ] {
        assert!(access.contains(field), "{field} missing in {access}");
    }
    assert!(access.contains(&b[0].addr().to_string()), "{access}");

    // SIGHUP with a new backend: new requests go there.
    std::fs::write(&cfg, serve_config(b[1].addr())).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_until(Duration::from_secs(5), "reload applied", || {
        let c = c.clone();
        async move { get(&c, addr, "/").await.backend.as_deref() == Some("b1") }
    })
    .await;

    // SIGHUP with a broken file: logged, old config keeps serving.
    std::fs::write(&cfg, "[upstream.app]\nbackends = []\nnope = 1\n").unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for_log(&lines, "reload rejected").await;
    assert_eq!(get(&c, addr, "/").await.backend.as_deref(), Some("b1"));

    // SIGTERM: a request in flight finishes, then the process exits cleanly.
    let slow = tokio::spawn(async move { get(&client(), addr, "/slow?ms=400").await });
    wait_until(
        Duration::from_secs(5),
        "slow request reached the backend",
        || async { b[1].requests() >= 3 },
    )
    .await;
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(slow.await.unwrap().status, 200);
    let mut child = child.0.take().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// GET /status from the admin listener, as JSON.
async fn status_json(admin: SocketAddr) -> serde_json::Value {
    use http_body_util::BodyExt as _;
    let req = http::Request::get(format!("http://{admin}/status"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .expect("/status timed out")
        .expect("/status failed");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// `serve -c cfg` at `--log info`, once it says it is serving: the child, its
/// captured log lines, its pid and the address it listens on.
async fn serve(cfg: &std::path::Path) -> (KillOnDrop, Arc<Mutex<Vec<String>>>, String, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["--log", "info", "serve", "-c"])
        .arg(cfg)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = child.stderr.take().unwrap();
    let pid = child.id().to_string();
    let child = KillOnDrop(Some(child));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(strip_ansi(&line));
        }
    });
    let line = wait_for_log(&lines, "ringleader is serving").await;
    let addr: SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .unwrap()
        .parse()
        .unwrap();
    (child, lines, pid, addr)
}

/// A child process killed (and reaped) if a failing test drops it still running.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A loopback port free a moment ago (bound to port 0, then dropped).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `serve --listen --admin` on ports picked free (others again if one was taken in between):
/// the child, its captured log lines and the two addresses.
async fn serve_with_overrides(
    cfg: &std::path::Path,
) -> (KillOnDrop, Arc<Mutex<Vec<String>>>, SocketAddr, SocketAddr) {
    for _ in 0..5 {
        let (p, a) = (free_port(), free_port());
        if p == a {
            continue;
        }
        let listen: SocketAddr = format!("127.0.0.1:{p}").parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{a}").parse().unwrap();
        let mut child = KillOnDrop(Some(
            Command::new(BIN)
                .args(["--log", "info", "serve", "-c"])
                .arg(cfg)
                .args([
                    "--listen",
                    &listen.to_string(),
                    "--admin",
                    &admin.to_string(),
                ])
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ));
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let stderr = child.0.as_mut().unwrap().stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(strip_ansi(&line));
            }
            let _ = done_tx.send(());
        });
        // Serving, or exited (a port taken between the probe and the bind: try others).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("ringleader is serving"))
            {
                return (child, lines, listen, admin);
            }
            if done_rx.try_recv().is_ok() {
                drop(child);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not start: {:?}",
                lines.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("could not start serve on free loopback ports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_listen_and_admin_overrides_hold_across_sighup() {
    let b = backends(2).await;
    let dir = temp_dir("serve-overrides");
    let cfg = dir.join("shared.toml");
    // The file's listeners (port 0) are never used: the command line's are.
    std::fs::write(&cfg, serve_config(b[0].addr())).unwrap();
    let (mut child, lines, listen, admin) = serve_with_overrides(&cfg).await;
    let pid = child.0.as_ref().unwrap().id().to_string();
    let serving = lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("ringleader is serving"))
        .cloned()
        .unwrap();
    assert!(serving.contains(&format!("listen={listen}")), "{serving}");
    assert!(serving.contains(&format!("admin={admin}")), "{serving}");
    let c = client();
    assert_eq!(get(&c, listen, "/").await.backend.as_deref(), Some("b0"));

    // SIGHUP with another backend: applied, and the listeners are not "changed" by it.
    std::fs::write(&cfg, serve_config(b[1].addr())).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_until(Duration::from_secs(5), "reload applied", || {
        let c = c.clone();
        async move { get(&c, listen, "/").await.backend.as_deref() == Some("b1") }
    })
    .await;
    let status = status_json(admin).await;
    assert_eq!(
        status["restart_required"],
        serde_json::json!([]),
        "{status}"
    );

    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut child = child.0.take().unwrap();
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second signal during the drain ends it at once: with `shutdown_grace = "30s"` and a
/// request stuck on a backend that never answers, SIGTERM starts the drain, SIGINT ends it,
/// and the process exits with status 1 and a WARN, long before the grace is out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_cuts_the_drain_short() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The backend reads a request head and never answers it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = silent.local_addr().unwrap();
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = silent.accept().await {
            let tx = got_tx.clone();
            held.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(());
                // Hold the connection open, silent, until the proxy drops it.
                let _ = s.read(&mut buf).await;
            }));
        }
    });
    let dir = temp_dir("serve-second-signal");
    let cfg = dir.join("ringleader.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\nshutdown_grace = \"30s\"\n\
             [upstream.app]\nbackends = [{{ addr = \"{backend}\" }}]\n"
        ),
    )
    .unwrap();
    let (mut child, lines, pid, addr) = serve(&cfg).await;
    // A request in flight: it reached the backend, which will never answer it.
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(format!("GET /stuck HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), got_rx.recv())
        .await
        .expect("the request did not reach the backend")
        .unwrap();

    let kill = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    let started = std::time::Instant::now();
    kill("-TERM");
    // The drain has begun (signals sent before it could be taken for one).
    wait_for_log(&lines, "shutting down").await;
    assert!(
        child.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "serve exited on the first signal with a request in flight: {:?}",
        lines.lock().unwrap()
    );
    kill("-INT");
    // Well before the 30 s grace: 10 s at most.
    let mut status = None;
    wait_until(
        Duration::from_secs(10),
        "serve to exit on the second signal",
        || {
            status = child.0.as_mut().unwrap().try_wait().unwrap();
            std::future::ready(status.is_some())
        },
    )
    .await;
    let status = status.unwrap();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "exit status {status}");
    let warn = wait_for_log(&lines, "second signal during the drain").await;
    assert!(warn.contains("WARN"), "{warn}");
    assert!(warn.contains("SIGINT"), "{warn}");
    child.0.take();
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
}
