//! Proxies fed from a real etcd (skipped loudly without one): three proxies on one upstream
//! agree on every consistent-hash key, follow backends put and deleted in etcd (the time
//! from the write to /status is measured), and keep serving, with unique request IDs,
//! while etcd is frozen.
use crate::common::*;
use ringleader_cluster::{BackendSpec, Registration};
use ringleader_proxy::{Config, Server};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A proxy config on `etcd` in namespace `ns` whose upstream `app` takes its backends
/// from the cluster, hashing on `x-user-id`.
fn fleet_config(etcd: &Etcd, ns: &str, lease_ttl: &str) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [cluster]\nendpoints = [\"{}\"]\nnamespace = \"{ns}\"\nlease_ttl = \"{lease_ttl}\"\n\
         [upstream.app]\nstrategy = \"consistent_hash\"\nhash_key = \"header:x-user-id\"\n\
         backends_from = \"cluster\"\n",
        etcd.url
    );
    Config::from_toml_str(&text, "fleet.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Register the backend at `addr` as member `id` of upstream `app`.
async fn register(c: &ringleader_cluster::Cluster, id: &str, addr: SocketAddr) -> Registration {
    let spec = BackendSpec {
        addr: addr.to_string(),
        weight: 1,
    };
    c.register_backend("app", id, &spec).await.unwrap()
}

/// The backend addresses of upstream `app` in a proxy's /status.
async fn members(admin: SocketAddr) -> Vec<String> {
    status(admin).await["upstreams"]["app"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["addr"].as_str().unwrap().to_string())
        .collect()
}

/// Poll each proxy's /status (every 2 ms, 10 s at most) until `addr` is listed
/// (`present`) or not; the time each took from `since`.
async fn visible(servers: &[Server], addr: &str, present: bool, since: Instant) -> Vec<Duration> {
    let waits = servers.iter().map(|s| {
        let admin = s.admin_addr();
        let addr = addr.to_string();
        async move {
            let deadline = since + Duration::from_secs(10);
            loop {
                if members(admin).await.contains(&addr) == present {
                    return since.elapsed();
                }
                assert!(
                    Instant::now() < deadline,
                    "{addr} present={present} not visible in {admin} within 10 s"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    futures_join_all(waits).await
}

/// Await all futures (the few this file needs), in order.
async fn futures_join_all<F>(fs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_proxies_agree_on_keys_and_follow_etcd() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let ns = "agree";
    let c = etcd.client(ns).await;
    let b = backends(3).await;
    let mut regs = Vec::new();
    for x in &b {
        regs.push(register(&c, x.name(), x.addr()).await);
    }
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(start(fleet_config(&etcd, ns, "10s")).await);
    }
    // Server::bind waited for the first membership: all three members, at once.
    for s in &servers {
        let mut m = members(s.admin_addr()).await;
        m.sort();
        let mut want: Vec<String> = b.iter().map(|x| x.addr().to_string()).collect();
        want.sort();
        assert_eq!(m, want);
    }

    // 1,000 keys: the same backend through every proxy.
    let addrs: Vec<SocketAddr> = servers.iter().map(Server::proxy_addr).collect();
    let picks = futures_join_all(addrs.into_iter().map(|addr| async move {
        let cl = client();
        let mut picks = Vec::with_capacity(1000);
        for k in 0..1000 {
            let key = format!("user-{k}");
            let a = send(&cl, addr, "GET", "/", &[("x-user-id", key.as_str())], "").await;
            assert_eq!(a.status, 200, "{a:?}");
            picks.push(a.backend.unwrap());
        }
        picks
    }))
    .await;
    let agree = (0..1000)
        .filter(|&k| picks[0][k] == picks[1][k] && picks[1][k] == picks[2][k])
        .count();
    assert_eq!(agree, 1000, "keys placed alike through all three proxies");
    let used: HashSet<&String> = picks[0].iter().collect();
    assert_eq!(used.len(), 3, "every backend gets keys");

    // 50 changes (25 puts, 25 deletes): each reaches every proxy; time write -> /status.
    // From the start of the write: its own round trips (lease grant + put, or revoke,
    // each committed by etcd) are part of the time, and `wrote` shows their share.
    let (mut took, mut wrote) = (Vec::new(), Vec::new());
    for i in 0..25 {
        let extra = closed_addr().to_string();
        let t0 = Instant::now();
        let reg = c
            .register_backend(
                "app",
                &format!("extra-{i}"),
                &BackendSpec {
                    addr: extra.clone(),
                    weight: 1,
                },
            )
            .await
            .unwrap();
        wrote.push(t0.elapsed());
        took.extend(visible(&servers, &extra, true, t0).await);
        let t0 = Instant::now();
        reg.deregister().await.unwrap();
        wrote.push(t0.elapsed());
        took.extend(visible(&servers, &extra, false, t0).await);
    }
    let pct = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        v[((v.len() as f64 * q).ceil() as usize).saturating_sub(1)]
    };
    println!(
        "membership change, etcd write -> visible in /status, {} samples (50 changes x 3 proxies): \
         p50 {:?}, p99 {:?}, max {:?} (goal p99 < 200 ms); the write call alone: p50 {:?}, p99 {:?}",
        took.len(),
        pct(&mut took, 0.5),
        pct(&mut took, 0.99),
        pct(&mut took, 1.0),
        pct(&mut wrote, 0.5),
        pct(&mut wrote, 0.99),
    );
    for s in &servers {
        let st = status(s.admin_addr()).await;
        assert_eq!(st["cluster"]["connected"], true, "{st}");
        assert_eq!(
            st["upstreams"]["app"]["backends_from"]["cluster"]["members"], 3,
            "{st}"
        );
    }
    drop(regs);
    for s in servers {
        s.shutdown().await;
    }
}

/// Poll (30 s at most) until a batch of 5 requests through `addr` all get Snowflake IDs
/// (decimal u64s) while `admin`'s fallback counter stays put; the IDs of that batch.
async fn snowflake_ids_again(addr: SocketAddr, admin: SocketAddr) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let cl = client();
    loop {
        let before = metric(admin, "ringleader_request_id_fallbacks_total ").await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            let a = send(&cl, addr, "GET", "/", &[("x-user-id", "after")], "").await;
            assert_eq!(a.status, 200, "{a:?}");
            ids.push(a.headers["x-request-id"].to_str().unwrap().to_string());
        }
        let after = metric(admin, "ringleader_request_id_fallbacks_total ").await;
        if before == after && ids.iter().all(|id| id.parse::<u64>().is_ok()) {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: still not Snowflake IDs after 30 s: {ids:?}, fallbacks {before} -> {after}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Current-thread: the proxies' tasks log to this test's capture.
#[tokio::test]
async fn proxies_keep_serving_with_unique_request_ids_while_etcd_is_frozen() {
    let (logs, _guard) = Logs::capture();
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let ns = "frozen";
    let c = etcd.client(ns).await;
    let b = backends(2).await;
    let _regs = [
        register(&c, "b0", b[0].addr()).await,
        register(&c, "b1", b[1].addr()).await,
    ];
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(start(fleet_config(&etcd, ns, "2s")).await);
    }
    // Each proxy leases a worker id of its own.
    let mut workers = HashSet::new();
    for s in &servers {
        let admin = s.admin_addr();
        wait_until(Duration::from_secs(10), "worker id leased", || async move {
            status(admin).await["request_ids"]["lease"] == "held"
        })
        .await;
        let st = status(admin).await;
        assert_eq!(st["request_ids"]["worker_source"], "cluster");
        workers.insert(st["worker_id"].as_u64().unwrap());
    }
    assert_eq!(workers.len(), 3, "distinct leased worker ids");

    // Clients on every proxy, collecting the request IDs they are given.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loads: Vec<_> = servers
        .iter()
        .map(|s| {
            let (addr, stop) = (s.proxy_addr(), stop.clone());
            tokio::spawn(async move {
                let cl = client();
                let (mut ok, mut failed, mut ids) = (0u64, 0u64, Vec::new());
                let mut k = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    k += 1;
                    let key = format!("u{k}");
                    let a = send(&cl, addr, "GET", "/", &[("x-user-id", key.as_str())], "").await;
                    if a.status == 200 {
                        ok += 1
                    } else {
                        failed += 1
                    }
                    ids.push(a.headers["x-request-id"].to_str().unwrap().to_string());
                }
                (ok, failed, ids)
            })
        })
        .collect();

    etcd.signal("-STOP");
    // The leases cannot be confirmed: request IDs turn to UUIDs (2 s TTL) ...
    for s in &servers {
        let admin = s.admin_addr();
        wait_until(
            Duration::from_secs(15),
            "request IDs fall back",
            || async move { status(admin).await["request_ids"]["fallback_uuid"] == true },
        )
        .await;
    }
    // ... and the proxies notice the watch is gone, serving the last members.
    for s in &servers {
        let admin = s.admin_addr();
        wait_until(
            Duration::from_secs(30),
            "/status says etcd is unreachable",
            || async move { status(admin).await["cluster"]["connected"] == false },
        )
        .await;
        assert_eq!(members(admin).await.len(), 2);
    }
    etcd.signal("-CONT");
    for s in &servers {
        let admin = s.admin_addr();
        wait_until(
            Duration::from_secs(30),
            "back to Snowflake IDs and connected",
            || async move {
                let st = status(admin).await;
                st["request_ids"]["fallback_uuid"] == false && st["cluster"]["connected"] == true
            },
        )
        .await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = HashMap::new();
    let (mut ok, mut uuids) = (0, 0);
    for l in loads {
        let (o, failed, ids) = l.await.unwrap();
        assert_eq!(failed, 0, "no failed request while etcd was frozen");
        ok += o;
        for id in ids {
            uuids += usize::from(id.len() == 36);
            *all.entry(id).or_insert(0) += 1;
        }
    }
    // Recovered, as a client and an operator see it: every proxy issues Snowflake IDs
    // (decimal u64s, not UUIDs) again and stops counting fallbacks. (Checked on behaviour,
    // not on the "Snowflake ID again" log line.)
    let mut fallbacks = 0;
    for s in &servers {
        let (addr, admin) = (s.proxy_addr(), s.admin_addr());
        let counted = metric(admin, "ringleader_request_id_fallbacks_total ").await;
        assert!(
            counted > 0,
            "{admin}: UUIDs issued while fenced are counted"
        );
        fallbacks += counted;
        let ids = snowflake_ids_again(addr, admin).await;
        for id in ids {
            *all.entry(id).or_insert(0) += 1;
        }
    }
    assert!(
        fallbacks >= uuids as u64,
        "every UUID a client got is counted: {fallbacks} counted, {uuids} seen"
    );
    // One line each way per proxy for the whole outage, not one per retry.
    for (what, needles) in [
        (
            "outage",
            &[
                "WARN",
                "etcd unreachable: serving the last known 2 member(s)",
            ][..],
        ),
        (
            "return",
            &["INFO", "etcd answers again: membership is current"][..],
        ),
    ] {
        let lines = logs.lines_with(needles);
        assert_eq!(lines.len(), 3, "{what}: {lines:#?}");
    }
    // The switch to UUIDs is logged once each way, not per request.
    let fallback = logs.lines_with(&["WARN", "no Snowflake request ID can be issued"]);
    assert!(fallback.len() <= 3, "{fallback:#?}");
    let dups: Vec<_> = all.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicate request ids: {dups:?}");
    assert!(uuids > 0, "some IDs were issued while fenced");
    println!("{ok} requests while etcd was frozen and thawed, 0 failed, {uuids} UUID request ids, no duplicate");
    for s in servers {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_starts_and_stops_feeding_an_upstream_from_etcd() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let ns = "reload";
    let c = etcd.client(ns).await;
    let b = backends(2).await;
    let _reg = register(&c, "b1", b[1].addr()).await;
    let file_fed = |namespace: &str| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [cluster]\nendpoints = [\"{}\"]\nnamespace = \"{namespace}\"\n\
             [upstream.app]\nbackends = [{{ addr = \"{}\" }}]\n",
            etcd.url,
            b[0].addr()
        );
        Config::from_toml_str(&text, "file.toml").unwrap()
    };
    let s = start(file_fed(ns)).await;
    let admin = s.admin_addr();
    assert_eq!(members(admin).await, [b[0].addr().to_string()]);

    // Now from the cluster: the watcher starts and b1 replaces b0.
    s.proxy().reload(fleet_config(&etcd, ns, "10s")).unwrap();
    let want = b[1].addr().to_string();
    wait_until(Duration::from_secs(10), "members from etcd", || {
        let want = want.clone();
        async move { members(admin).await == [want] }
    })
    .await;
    assert_eq!(sequential(2, s.proxy_addr(), &[]).await["b1"], 2);

    // Back to the file; a changed [cluster] waits for a restart.
    s.proxy().reload(file_fed("elsewhere")).unwrap();
    let st = status(admin).await;
    assert_eq!(members(admin).await, [b[0].addr().to_string()]);
    assert_eq!(st["upstreams"]["app"]["backends_from"], "file", "{st}");
    let pending = &st["restart_required"][0];
    assert_eq!(pending["setting"], "cluster", "{st}");
    assert!(
        pending["configured"]
            .as_str()
            .unwrap()
            .contains("namespace elsewhere"),
        "{st}"
    );
    s.shutdown().await;
}
