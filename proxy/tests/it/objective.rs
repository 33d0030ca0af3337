//! Objective down across three proxies on a real etcd (skipped loudly without one): a
//! backend one proxy alone sees down stays in every ring (that proxy fails its keys over,
//! the others keep routing to it); a killed backend leaves all three rings at once and
//! its keys, and only its, move to the same new owners everywhere; with etcd gone, each
//! proxy falls back to its own verdicts and says so.
use crate::common::*;
use ringleader_proxy::{Config, Server};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A backend answering every request 200 with `x-backend: NAME`, except GETs of the
/// paths made sick (503); `kill` closes its listener and every connection.
struct Backend {
    addr: SocketAddr,
    sick: Arc<parking_lot::Mutex<HashSet<String>>>,
    tasks: Arc<parking_lot::Mutex<Vec<tokio::task::AbortHandle>>>,
    killed: Arc<AtomicBool>,
}

impl Backend {
    async fn start(name: &str) -> Backend {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let sick = Arc::new(parking_lot::Mutex::new(HashSet::new()));
        let tasks = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (s, t, n) = (sick.clone(), tasks.clone(), name.to_string());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = l.accept().await else {
                    continue;
                };
                let (s, n) = (s.clone(), n.clone());
                let task = tokio::spawn(serve(conn, n, s));
                t.lock().push(task.abort_handle());
            }
        });
        tasks.lock().push(accept.abort_handle());
        Backend {
            addr,
            sick,
            tasks,
            killed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn set_sick(&self, path: &str) {
        self.sick.lock().insert(path.to_string());
    }

    fn heal(&self) {
        self.sick.lock().clear();
    }

    fn kill(&self) {
        self.killed.store(true, Relaxed);
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// HTTP/1.1 keep-alive, GET only: read a head, answer, repeat.
async fn serve(
    mut conn: tokio::net::TcpStream,
    name: String,
    sick: Arc<parking_lot::Mutex<HashSet<String>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let status = if sick.lock().contains(&path) {
            "503 Service Unavailable"
        } else {
            "200 OK"
        };
        let answer =
            format!("HTTP/1.1 {status}\r\nx-backend: {name}\r\ncontent-length: 2\r\n\r\nok");
        if conn.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Proxy `i`'s config: the backends in one consistent-hash upstream on `x-user-id`,
/// checked every 50 ms on `/healthz/p<i>` (so a backend can fail one proxy's checks
/// only), `health_extra` added to `[upstream.app.health]`, and a `[cluster]` on etcd.
fn proxy_config(
    etcd: &Etcd,
    ns: &str,
    i: usize,
    backends: &[Backend],
    health_extra: &str,
) -> Config {
    let entries: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ addr = \"{}\" }}", b.addr))
        .collect();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [cluster]\nendpoints = [\"{}\"]\nnamespace = \"{ns}\"\nlease_ttl = \"5s\"\n\
         [upstream.app]\nstrategy = \"consistent_hash\"\nhash_key = \"header:x-user-id\"\n\
         backends = [{}]\n\
         [upstream.app.passive]\nconsecutive_failures = 0\n\
         [upstream.app.health]\npath = \"/healthz/p{i}\"\ninterval = \"50ms\"\ntimeout = \"200ms\"\n\
         rise = 2\nfall = 2\n{health_extra}\n",
        etcd.url,
        entries.join(", ")
    );
    Config::from_toml_str(&text, "objective.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// etcd, three backends b0..b2 and three proxies p0..p2 on them.
async fn fleet(ns: &str, health_extra: &str) -> Option<(Etcd, Vec<Backend>, Vec<Server>)> {
    let etcd = Etcd::start().await?;
    let mut backends = Vec::new();
    for i in 0..3 {
        backends.push(Backend::start(&format!("b{i}")).await);
    }
    let mut servers = Vec::new();
    for i in 0..3 {
        servers.push(start(proxy_config(&etcd, ns, i, &backends, health_extra)).await);
    }
    Some((etcd, backends, servers))
}

/// Wait (10 s at most) until every proxy's verdicts satisfy `cond`.
async fn until_all(servers: &[Server], what: &str, cond: impl Fn(&serde_json::Value) -> bool) {
    for s in servers {
        let admin = s.admin_addr();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = status(admin).await;
            if cond(&v) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not reached by {admin} within 10 s; /status: {}",
                v["upstreams"]["app"]["verdicts"]
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The backend's entry in a /status's verdicts.
fn backend<'a>(status: &'a serde_json::Value, b: &Backend) -> &'a serde_json::Value {
    &status["upstreams"]["app"]["verdicts"]["backends"][b.addr.to_string()]
}

/// Who served each of `keys` keys through proxy `s` (`x-backend`).
async fn owners(s: &Server, keys: usize) -> Vec<String> {
    let cl = client();
    let mut out = Vec::with_capacity(keys);
    for k in 0..keys {
        let key = format!("user-{k}");
        let a = send(&cl, s.proxy_addr(), "GET", "/", &[("x-user-id", &key)], "").await;
        assert_eq!(a.status, 200, "{key} through {}: {a:?}", s.proxy_addr());
        out.push(a.backend.unwrap());
    }
    out
}

/// Every proxy's owners of `keys` keys, asserting that all proxies agree on each.
async fn agreed_owners(servers: &[Server], keys: usize) -> Vec<String> {
    let mut all = Vec::new();
    for s in servers {
        all.push(owners(s, keys).await);
    }
    let agree = (0..keys)
        .filter(|&k| all.iter().all(|o| o[k] == all[0][k]))
        .count();
    assert_eq!(agree, keys, "keys placed alike through every proxy");
    all.swap_remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_down_for_one_proxy_only_is_subjectively_down_and_stays_in_every_ring() {
    let Some((_etcd, b, servers)) = fleet("subjective", "").await else {
        return;
    };
    // Every proxy sees three live proxies and everything up.
    until_all(&servers, "three live proxies, all up", |v| {
        let ups = &v["upstreams"]["app"]["verdicts"];
        ups["source"] == "fleet"
            && ups["live_proxies"] == 3
            && ups["quorum"] == 2
            && b.iter().all(|x| backend(v, x)["objective"] == "up")
    })
    .await;
    let before = agreed_owners(&servers, 300).await;
    assert!(before.iter().any(|o| o == "b1"), "b1 owns keys");

    // b1 fails p2's checks only.
    b[1].set_sick("/healthz/p2");
    until_all(&servers[2..], "p2 holds b1 down", |v| {
        backend(v, &b[1])["subjective"] == "down"
    })
    .await;
    // Every proxy sees p2's down verdict among three, and b1 stays objectively up.
    until_all(&servers, "p2's verdict published", |v| {
        let e = backend(v, &b[1]);
        e["proxies"]
            .as_object()
            .is_some_and(|m| m.len() == 3 && m.values().filter(|d| *d == "down").count() == 1)
    })
    .await;
    for s in &servers {
        let v = status(s.admin_addr()).await;
        let e = backend(&v, &b[1]);
        assert_eq!(e["objective"], "up", "{e}");
        assert_eq!(e["in_ring"], true, "{e}");
    }
    for s in &servers[..2] {
        let v = status(s.admin_addr()).await;
        assert_eq!(backend(&v, &b[1])["subjective"], "up");
    }

    // p0 and p1 keep routing b1's keys to b1; p2 fails them over, every other key where
    // it was (the ring did not change).
    let (p0, p1, p2) = (
        owners(&servers[0], 300).await,
        owners(&servers[1], 300).await,
        owners(&servers[2], 300).await,
    );
    assert_eq!(p0, before, "p0 routes every key as before");
    assert_eq!(p1, before, "p1 routes every key as before");
    let mut failed_over = 0;
    for k in 0..300 {
        if before[k] == "b1" {
            assert_ne!(p2[k], "b1", "key {k}: p2 holds b1 down");
            failed_over += 1;
        } else {
            assert_eq!(p2[k], before[k], "key {k}: p2's ring is unchanged");
        }
    }
    assert!(failed_over > 0);
    // Still objectively up after all that traffic.
    let v = status(servers[0].admin_addr()).await;
    assert_eq!(backend(&v, &b[1])["objective"], "up");
    println!("b1 down for p2 only: {failed_over} of 300 keys failed over through p2, none moved through p0 and p1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_is_objectively_down_and_every_proxy_moves_exactly_its_keys() {
    // Accrual: suspicion after about interval + 6 x min_std_dev of silence, then two
    // probes 50 ms apart.
    let accrual = "detector = \"accrual\"\nmin_std_dev = \"50ms\"\nconfirm = 2\nconfirm_interval = \"50ms\"\n";
    let Some((_etcd, b, servers)) = fleet("killed", accrual).await else {
        return;
    };
    until_all(&servers, "three live proxies, all up", |v| {
        let ups = &v["upstreams"]["app"]["verdicts"];
        ups["live_proxies"] == 3 && b.iter().all(|x| backend(v, x)["objective"] == "up")
    })
    .await;
    let before = agreed_owners(&servers, 1000).await;
    let on_b1 = before.iter().filter(|o| *o == "b1").count();
    assert!(on_b1 > 0, "b1 owns keys");

    let t0 = Instant::now();
    b[1].kill();
    until_all(&servers, "b1 objectively down and out of every ring", |v| {
        let e = backend(v, &b[1]);
        e["objective"] == "down" && e["in_ring"] == false
    })
    .await;
    let took = t0.elapsed();
    // Silence before suspicion (interval + ~6 standard deviations at the 50 ms floor:
    // 0.4 s), the probes (2 x (50 ms + 250 ms probe timeout)), the checks' interval
    // and timeout, and propagation through etcd to three proxies: 3 s is generous.
    assert!(took < Duration::from_secs(3), "took {took:?}");

    let after = agreed_owners(&servers, 1000).await;
    let mut moved = 0;
    for k in 0..1000 {
        if before[k] == "b1" {
            assert_ne!(after[k], "b1");
            moved += 1;
        } else {
            assert_eq!(after[k], before[k], "key {k} stays where it was");
        }
    }
    assert_eq!(moved, on_b1, "exactly b1's keys moved");
    println!(
        "b1 killed: objectively down on all three proxies after {took:?}; \
         {moved} of 1000 keys moved, to the same owners through every proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_takes_a_backend_out_of_every_ring_and_it_comes_back_with_its_keys() {
    let Some((_etcd, b, servers)) = fleet("majority", "").await else {
        return;
    };
    until_all(&servers, "three live proxies, all up", |v| {
        let ups = &v["upstreams"]["app"]["verdicts"];
        ups["live_proxies"] == 3 && b.iter().all(|x| backend(v, x)["objective"] == "up")
    })
    .await;
    let before = agreed_owners(&servers, 300).await;
    // b0 fails p0's and p1's checks: two of three, objectively down. p2 still sees it
    // up, and takes it out of its ring all the same (placement follows the fleet).
    b[0].set_sick("/healthz/p0");
    b[0].set_sick("/healthz/p1");
    until_all(&servers, "b0 objectively down everywhere", |v| {
        let e = backend(v, &b[0]);
        e["objective"] == "down" && e["in_ring"] == false
    })
    .await;
    let v = status(servers[2].admin_addr()).await;
    assert_eq!(
        backend(&v, &b[0])["subjective"],
        "up",
        "p2 alone sees it up"
    );
    let during = agreed_owners(&servers, 300).await;
    for k in 0..300 {
        if before[k] == "b0" {
            assert_ne!(during[k], "b0");
        } else {
            assert_eq!(during[k], before[k], "key {k} stays where it was");
        }
    }
    // Healed: up again after `rise` passes, back in every ring, its keys back.
    b[0].heal();
    until_all(&servers, "b0 back in every ring", |v| {
        let e = backend(v, &b[0]);
        e["objective"] == "up" && e["in_ring"] == true && e["subjective"] == "up"
    })
    .await;
    let after = agreed_owners(&servers, 300).await;
    assert_eq!(after, before, "every key back with its owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_gone_proxies_fall_back_to_their_own_verdicts_and_say_so() {
    let Some((etcd, b, servers)) = fleet("local", "").await else {
        return;
    };
    until_all(&servers, "three live proxies", |v| {
        v["cluster"]["verdicts"] == "fleet"
            && v["upstreams"]["app"]["verdicts"]["live_proxies"] == 3
    })
    .await;
    etcd.signal("-KILL");
    until_all(&servers, "verdicts are local", |v| {
        v["cluster"]["verdicts"] == "local"
            && v["upstreams"]["app"]["verdicts"]["source"] == "local"
    })
    .await;
    // Each proxy now decides alone: a backend killed meanwhile leaves its ring.
    b[2].kill();
    until_all(&servers, "b2 down by each proxy's own verdict", |v| {
        let e = backend(v, &b[2]);
        e["subjective"] == "down" && e["objective"] == "down" && e["in_ring"] == false
    })
    .await;
    let after = agreed_owners(&servers, 200).await;
    assert!(!after.iter().any(|o| o == "b2"));
    let m = get(&client(), servers[0].admin_addr(), "/metrics")
        .await
        .body;
    assert!(m.contains("ringleader_health_verdicts_local 1"), "{m}");
}
