//! The binary's fleet commands against a real etcd, as real processes: `id --etcd` leases a
//! worker id per run, `cluster register` is a sidecar that SIGTERM deregisters, `cluster ls`
//! lists members and leases, and `demo --cluster` runs two proxies that agree on placement.
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ringleader_cluster::Cluster;
use ringleader_idgen::Layout;

#[path = "common/etcd.rs"]
mod etcd;

use etcd::{etcd, eventually, signal, Reaped};

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");

fn ringleader(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RINGLEADER_WORKER_ID")
        .env_remove("RINGLEADER_ETCD")
        .env_remove("RUST_LOG");
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `cluster ls --format json` in `namespace`.
fn ls_json(url: &str, namespace: &str) -> serde_json::Value {
    let out = ringleader(&[
        "cluster",
        "ls",
        "--etcd",
        url,
        "--namespace",
        namespace,
        "--format",
        "json",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "cluster ls: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("cluster ls --format json prints JSON")
}

/// The JS-safe preset has 5 worker bits (32 ids), and none has 3: the test holds 24 of them
/// itself, so exactly 8 are left, as on a 3-bit layout.
#[test]
fn eight_id_processes_lease_eight_distinct_workers_and_a_ninth_is_told_all_are_taken() {
    let Some(etcd) = etcd() else { return };
    let ns = "ids8";
    let layout = Layout::JS_SAFE;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let held = rt.block_on(async {
        let cluster = Cluster::connect(&etcd.config(ns)).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..24 {
            held.push(cluster.lease_generator(layout, None).await.unwrap());
        }
        held
    });
    let taken: HashSet<u32> = held.iter().map(|g| g.worker()).collect();
    assert_eq!(taken.len(), 24);

    // Each prints far more than a pipe holds, so it stalls on its unread stdout while it
    // holds its lease: once all eight have printed a line, all eight hold one at once.
    const COUNT: usize = 20_000;
    let mut children: Vec<Reaped> = (0..8)
        .map(|_| {
            let count = COUNT.to_string();
            Reaped(Some(
                ringleader(&[
                    "id",
                    "--etcd",
                    &etcd.url,
                    "--namespace",
                    ns,
                    "--layout",
                    "js-safe",
                    "--count",
                    &count,
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            ))
        })
        .collect();
    let mut readers: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.child().stdout.take().unwrap()))
        .collect();
    let mut firsts = Vec::new();
    for (i, r) in readers.iter_mut().enumerate() {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim().to_owned();
        if line.is_empty() {
            let mut err = String::new();
            let _ = children[i]
                .child()
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err);
            panic!("process {i} printed no ID: {err}");
        }
        firsts.push(line.parse::<u64>().unwrap());
    }

    // All 32 ids are held now: the ninth is refused, prints nothing, and says why.
    let ninth = ringleader(&[
        "id",
        "--etcd",
        &etcd.url,
        "--namespace",
        ns,
        "--layout",
        "js-safe",
    ])
    .output()
    .unwrap();
    assert!(!ninth.status.success());
    assert!(ninth.stdout.is_empty(), "the ninth printed IDs");
    let err = stderr(&ninth);
    assert!(err.contains("all 32 worker ids of layout"), "{err}");
    assert!(err.contains("are taken in namespace \"ids8\""), "{err}");

    // `cluster ls` shows the 32 leases, eight of them held by the eight processes.
    let listing = ls_json(&etcd.url, ns);
    let workers = listing["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 32, "{listing:#}");
    let pids: Vec<String> = children.iter().map(|c| format!(":{}", c.pid())).collect();
    let by_children = workers
        .iter()
        .filter(|w| {
            let holder = w["holder"].as_str().unwrap_or_default();
            pids.iter().any(|p| holder.ends_with(p.as_str()))
        })
        .count();
    assert_eq!(by_children, 8, "{listing:#}");
    assert!(workers
        .iter()
        .all(|w| w["ttl_left_secs"].as_u64().is_some()));
    assert!(workers.iter().all(|w| w["high_water_time"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z'))));

    // Drain them: every run prints its count, and no ID is printed twice.
    let drains: Vec<_> = readers
        .into_iter()
        .map(|r| std::thread::spawn(move || r.lines().map(|l| l.unwrap()).collect::<Vec<_>>()))
        .collect();
    let mut all = HashSet::new();
    let mut workers_seen = HashSet::new();
    for ((drain, child), first) in drains.into_iter().zip(&mut children).zip(firsts) {
        let rest = drain.join().unwrap();
        let status = child.wait_exit(Duration::from_secs(60));
        let mut err = String::new();
        let _ = child
            .child()
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err);
        assert!(status.success(), "{err}");
        assert_eq!(rest.len() + 1, COUNT, "{err}");
        let mut worker = None;
        for id in std::iter::once(first).chain(rest.iter().map(|l| l.parse().unwrap())) {
            assert!(all.insert(id), "ID {id} printed twice");
            let w = layout
                .decode(ringleader_idgen::Id::try_from(id).unwrap())
                .unwrap()
                .worker;
            assert_eq!(*worker.get_or_insert(w), w, "one worker id per run");
        }
        let w = worker.unwrap();
        assert!(!taken.contains(&w), "worker {w} was held by the test");
        workers_seen.insert(w);
    }
    assert_eq!(all.len(), 8 * COUNT);
    assert_eq!(workers_seen.len(), 8, "{workers_seen:?}");

    // Each run released its id at the end: only the test's 24 are left.
    let listing = ls_json(&etcd.url, ns);
    assert_eq!(listing["workers"].as_array().unwrap().len(), 24);
    rt.block_on(async {
        for g in held {
            g.release().await.unwrap();
        }
    });
}

#[test]
fn a_registered_backend_is_listed_until_sigterm_removes_it() {
    let Some(etcd) = etcd() else { return };
    let ns = "reg";
    let mut sidecar = Reaped(Some(
        ringleader(&[
            "cluster",
            "register",
            "--etcd",
            &etcd.url,
            "--namespace",
            ns,
            "--upstream",
            "app",
            "--addr",
            "127.0.0.1:9101",
            "--weight",
            "2",
            "--id",
            "web1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    ));
    let member = serde_json::json!({
        "upstream": "app", "id": "web1", "addr": "127.0.0.1:9101", "weight": 2,
    });
    eventually("web1 to be listed", Duration::from_secs(20), || {
        ls_json(&etcd.url, ns)["members"]
            .as_array()
            .is_some_and(|m| m.contains(&member))
    });
    // Another namespace does not see it.
    assert_eq!(
        ls_json(&etcd.url, "other")["members"],
        serde_json::json!([])
    );
    // The table names it too.
    let table = ringleader(&["cluster", "ls", "--etcd", &etcd.url, "--namespace", ns])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["app", "web1", "127.0.0.1:9101", "2"]),
        "{text}"
    );

    // RINGLEADER_ETCD stands in for --etcd.
    let out = ringleader(&["cluster", "ls", "--namespace", ns, "--format", "json"])
        .env("RINGLEADER_ETCD", &etcd.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let via_env: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(via_env["members"], serde_json::json!([member]));
    let out = ringleader(&["id", "--namespace", ns, "--count", "3"])
        .env("RINGLEADER_ETCD", &etcd.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);

    signal(sidecar.pid(), "-TERM");
    let status = sidecar.wait_exit(Duration::from_secs(20));
    let mut err = String::new();
    let _ = sidecar
        .child()
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err);
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("backend deregistered"), "{err}");
    // Removed before it exited, not when its lease expires.
    assert_eq!(ls_json(&etcd.url, ns)["members"], serde_json::json!([]));
}

/// Kills a process by pid when dropped during a panic.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(self.0.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// One GET through a proxy with an `x-user-id` key; the answering backend's name.
fn backend_for(proxy: &str, key: &str) -> String {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {proxy}\r\nx-user-id: {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    resp.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-backend")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no x-backend in {resp}"))
}

/// The first `http://host:port` on the banner line that starts with `prefix`.
fn url_on(banner: &str, prefix: &str) -> String {
    let line = banner
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {banner}"));
    let at = line.find("http://").unwrap() + "http://".len();
    line[at..]
        .split(|c: char| c == '/' || c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn demo_cluster_runs_two_proxies_that_agree_and_stops_cleanly_on_sigterm() {
    let Some(bin) = etcd::etcd_or_skip() else {
        return;
    };
    let mut demo = Reaped(Some(
        ringleader(&[
            "demo",
            "--cluster",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .env("ETCD_BIN", &bin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    ));
    // The banner ends with the Ctrl-C line; it comes once etcd and both proxies are up.
    let mut out = BufReader::new(demo.child().stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("Ctrl-C stops the demo") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            let _ = demo.child().stderr.take().unwrap().read_to_string(&mut err);
            panic!("demo --cluster ended before its banner: {banner}\n{err}");
        }
        banner.push_str(&line);
    }
    // Log lines must not fill the unread stderr pipe and stall the demo.
    let stderr = demo.child().stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    let (p1, p2) = (url_on(&banner, "proxy 1"), url_on(&banner, "proxy 2"));
    let etcd_url = format!("http://{}", url_on(&banner, "etcd"));
    let etcd_pid: u32 = banner
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no etcd pid in {banner}"));
    // If the test fails, the demo is killed (SIGKILL) and cannot stop its etcd: this does.
    let _etcd_guard = KillOnPanic(etcd_pid);
    assert!(
        banner.contains(&format!("ringleader cluster ls --etcd {etcd_url}")),
        "{banner}"
    );
    assert!(
        banner.contains(&format!(
            "ringleader cluster register --etcd {etcd_url} --upstream app --addr "
        )),
        "{banner}"
    );

    // The demo's backends are members in etcd.
    let listing = ls_json(&etcd_url, "default");
    let mut ids: Vec<&str> = listing["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["alpha", "bravo", "charlie"], "{listing:#}");

    // The same key goes to the same backend through both proxies, and keys spread.
    let mut used = HashSet::new();
    for i in 0..60 {
        let key = format!("user-{i}");
        let one = backend_for(&p1, &key);
        let two = backend_for(&p2, &key);
        assert_eq!(one, two, "key {key}: proxy 1 chose {one}, proxy 2 {two}");
        assert_eq!(backend_for(&p1, &key), one, "key {key} moved");
        used.insert(one);
    }
    assert!(used.len() >= 2, "60 keys all on {used:?}");

    // The banner's `cluster register` line adds the spare backend to both proxies.
    let register: Vec<&str> = banner
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ringleader cluster register"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect();
    let mut sidecar = Reaped(Some(
        ringleader(&register)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let keys: Vec<String> = (0..60).map(|i| format!("user-{i}")).collect();
    eventually(
        "delta to get keys through both proxies",
        Duration::from_secs(20),
        || {
            keys.iter()
                .any(|k| backend_for(&p1, k) == "delta" && backend_for(&p2, k) == "delta")
        },
    );
    for key in &keys {
        assert_eq!(backend_for(&p1, key), backend_for(&p2, key), "key {key}");
    }
    signal(sidecar.pid(), "-TERM");
    assert!(sidecar.wait_exit(Duration::from_secs(20)).success());

    signal(demo.pid(), "-TERM");
    let status = demo.wait_exit(Duration::from_secs(30));
    let logs = logs.join().unwrap();
    assert!(status.success(), "exit {status:?}: {logs}");
    // etcd was stopped with it (and reaped: no zombie left either).
    assert!(
        !std::path::Path::new(&format!("/proc/{etcd_pid}")).exists(),
        "etcd (pid {etcd_pid}) still runs after the demo stopped"
    );
}

#[test]
fn demo_cluster_without_etcd_says_how_to_install_it() {
    let out = ringleader(&["demo", "--cluster"])
        .env("ETCD_BIN", "/nonexistent/etcd")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("apt-get install etcd-server"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn id_with_both_worker_and_etcd_is_refused() {
    let out = ringleader(&["id", "--worker", "3", "--etcd", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

/// Read `reader`'s lines on a thread of their own, sending each one on.
fn lines_of(reader: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Wait (bounded) for a line containing `needle`; every line read is kept in `seen`.
fn wait_line(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    within: Duration,
    seen: &mut String,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(needle) {
                    return;
                }
            }
            Err(_) => panic!("no line with {needle:?} within {within:?}; got:\n{seen}"),
        }
    }
}

#[test]
fn register_rides_out_an_unreachable_etcd_with_a_warning() {
    let Some(etcd) = etcd() else { return };
    let ns = "outage";
    let mut sidecar = Reaped(Some(
        ringleader(&[
            "cluster",
            "register",
            "--etcd",
            &etcd.url,
            "--namespace",
            ns,
            "--upstream",
            "app",
            "--addr",
            "127.0.0.1:9102",
            "--id",
            "web2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    ));
    let logs = lines_of(sidecar.child().stderr.take().unwrap());
    let mut seen = String::new();
    wait_line(
        &logs,
        "backend registered",
        Duration::from_secs(20),
        &mut seen,
    );
    // etcd frozen: connections stay open, nothing answers; the sidecar warns and waits.
    signal(etcd.pid(), "-STOP");
    let thawed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_line(
            &logs,
            "lost the connection to etcd",
            Duration::from_secs(30),
            &mut seen,
        );
        assert!(
            sidecar.child().try_wait().unwrap().is_none(),
            "exited during the outage:\n{seen}"
        );
    }));
    signal(etcd.pid(), "-CONT");
    if let Err(panic) = thawed {
        std::panic::resume_unwind(panic);
    }
    wait_line(
        &logs,
        "etcd answers again",
        Duration::from_secs(30),
        &mut seen,
    );
    let listed = |listing: serde_json::Value| {
        listing["members"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["id"] == "web2"))
    };
    eventually(
        "web2 to be listed after the outage",
        Duration::from_secs(20),
        || listed(ls_json(&etcd.url, ns)),
    );
    signal(sidecar.pid(), "-TERM");
    let status = sidecar.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}\n{seen}");
    assert!(!listed(ls_json(&etcd.url, ns)));
}

#[test]
fn id_stops_with_a_clear_error_when_its_lease_cannot_be_confirmed() {
    let Some(etcd) = etcd() else { return };
    let mut run = Reaped(Some(
        ringleader(&[
            "id",
            "--etcd",
            &etcd.url,
            "--namespace",
            "fenced",
            "--count",
            "100000000000",
            "--wait",
            "1s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    ));
    let ids = lines_of(run.child().stdout.take().unwrap());
    let first = ids
        .recv_timeout(Duration::from_secs(20))
        .expect("a first ID");
    signal(etcd.pid(), "-STOP");
    // IDs stop before the lease could expire (TTL 10 s); the run then waits 1 s for a
    // renewal and gives up, non-zero. The frozen etcd is thawed whatever happens.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut last: u64 = first.parse().unwrap();
        let mut count = 1u64;
        loop {
            match ids.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let id: u64 = line.parse().unwrap();
                    assert!(id > last, "{id} after {last}");
                    last = id;
                    count += 1;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("still printing after 60 s of frozen etcd: {e}"),
            }
        }
        let status = run.wait_exit(Duration::from_secs(60));
        (status, count)
    }));
    signal(etcd.pid(), "-CONT");
    let (status, count) = outcome.unwrap_or_else(|p| std::panic::resume_unwind(p));
    let mut err = String::new();
    let _ = run.child().stderr.take().unwrap().read_to_string(&mut err);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("no IDs for 1s: the worker-id lease is"),
        "{err}"
    );
    assert!(
        err.contains(&format!("printed {count} of 100000000000 IDs")),
        "{err}"
    );
}

#[test]
fn register_waits_for_an_etcd_that_does_not_answer_yet_and_stops_on_sigterm() {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("127.0.0.1:{port}");
    let mut sidecar = Reaped(Some(
        ringleader(&[
            "cluster",
            "register",
            "--etcd",
            &url,
            "--upstream",
            "app",
            "--addr",
            "127.0.0.1:9103",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    ));
    let logs = lines_of(sidecar.child().stderr.take().unwrap());
    let mut seen = String::new();
    wait_line(
        &logs,
        "cannot register the backend in etcd; retrying",
        Duration::from_secs(30),
        &mut seen,
    );
    assert!(seen.contains(&format!("http://{url}")), "{seen}");
    assert!(sidecar.child().try_wait().unwrap().is_none(), "{seen}");
    signal(sidecar.pid(), "-TERM");
    let status = sidecar.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}\n{seen}");
}

#[test]
fn an_interrupted_id_run_releases_its_worker_id_before_it_exits() {
    let Some(etcd) = etcd() else { return };
    let ns = "interrupted";
    let mut run = Reaped(Some(
        ringleader(&[
            "id",
            "--etcd",
            &etcd.url,
            "--namespace",
            ns,
            "--count",
            "100000000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    ));
    let ids = lines_of(run.child().stdout.take().unwrap());
    ids.recv_timeout(Duration::from_secs(20))
        .expect("a first ID");
    assert_eq!(
        ls_json(&etcd.url, ns)["workers"].as_array().unwrap().len(),
        1,
        "the run holds a worker id"
    );
    signal(run.pid(), "-INT");
    // Keep reading, so the run is never stuck on a full pipe.
    let drain = std::thread::spawn(move || ids.iter().count());
    let status = run.wait_exit(Duration::from_secs(20));
    drain.join().unwrap();
    let mut err = String::new();
    let _ = run.child().stderr.take().unwrap().read_to_string(&mut err);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("interrupted: printed "), "{err}");
    // Released before it exited, not when its lease expires.
    assert_eq!(
        ls_json(&etcd.url, ns)["workers"],
        serde_json::json!([]),
        "{err}"
    );
}
