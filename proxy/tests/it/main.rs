//! End-to-end tests: real hyper backends and the proxy on 127.0.0.1:0.
mod backend_http;
mod common;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::BodyExt;
use ringleader_proxy::Config;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FAST_HEALTH: &str =
    "[upstream.app.health]\npath = \"/healthz\"\ninterval = \"50ms\"\ntimeout = \"200ms\"\nrise = 2\nfall = 2\n";

async fn sequential(
    n: usize,
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
) -> HashMap<String, usize> {
    let c = client();
    let mut seen = HashMap::new();
    for _ in 0..n {
        let a = send(&c, addr, "GET", "/", headers, "").await;
        assert_eq!(a.status, 200, "{a:?}");
        *seen.entry(a.backend.unwrap()).or_default() += 1;
    }
    seen
}

/// `workers` concurrent clients sending `per_worker` GETs each; returns statuses seen.
async fn concurrent(
    workers: usize,
    per_worker: usize,
    addr: std::net::SocketAddr,
) -> Vec<StatusCode> {
    let mut tasks = Vec::new();
    for _ in 0..workers {
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut v = Vec::new();
            for _ in 0..per_worker {
                v.push(get(&c, addr, "/").await.status);
            }
            v
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

// ---------- distribution per strategy ----------

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let b = backends(3).await;
    let s = start(equal_three(&b, "strategy = \"round_robin\"", "")).await;
    let seen = sequential(30, s.proxy_addr(), &[]).await;
    assert_eq!(
        seen.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{seen:?}"
    );
}

#[tokio::test]
async fn weighted_round_robin_follows_weights() {
    let b = backends(3).await;
    let s = start(config(
        "",
        &[(&b[0], 1), (&b[1], 2), (&b[2], 3)],
        "strategy = \"weighted_round_robin\"",
        "",
    ))
    .await;
    let seen = sequential(60, s.proxy_addr(), &[]).await;
    assert_eq!(
        (seen["b0"], seen["b1"], seen["b2"]),
        (10, 20, 30),
        "{seen:?}"
    );
}

#[tokio::test]
async fn random_reaches_every_backend() {
    let b = backends(3).await;
    let s = start(equal_three(&b, "strategy = \"random\"", "")).await;
    let seen = sequential(90, s.proxy_addr(), &[]).await;
    // Binomial(90, 1/3): fewer than 10 or more than 55 is a >4 sigma event.
    for name in ["b0", "b1", "b2"] {
        let n = seen.get(name).copied().unwrap_or(0);
        assert!((10..=55).contains(&n), "{seen:?}");
    }
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_backend() {
    let b = backends(3).await;
    let s = start(equal_three(
        &b,
        "strategy = \"consistent_hash\"\nhash_key = \"header:x-user-id\"",
        "",
    ))
    .await;
    let c = client();
    let mut owners = HashMap::new();
    for round in 0..3 {
        for user in 0..20 {
            let id = format!("user-{user}");
            let a = send(&c, s.proxy_addr(), "GET", "/", &[("x-user-id", &id)], "").await;
            let backend = a.backend.unwrap();
            let owner = owners.entry(id.clone()).or_insert_with(|| backend.clone());
            assert_eq!(*owner, backend, "{id} moved in round {round}");
        }
    }
    let distinct: std::collections::HashSet<_> = owners.values().collect();
    assert!(
        distinct.len() >= 2,
        "20 keys all on one backend: {owners:?}"
    );
}

/// Load-aware strategies send less to a backend that is 60 ms slower.
async fn slow_backend_gets_less(strategy: &str, concurrency: usize) {
    let b = backends(3).await;
    b[0].set_delay(Duration::from_millis(60));
    let s = start(equal_three(&b, &format!("strategy = \"{strategy}\""), "")).await;
    let statuses = concurrent(concurrency, 30, s.proxy_addr()).await;
    assert!(statuses.iter().all(|s| *s == 200));
    let total = (concurrency * 30) as u64;
    let slow = b[0].requests();
    assert_eq!(slow + b[1].requests() + b[2].requests(), total);
    assert!(
        slow * 6 < total,
        "{strategy}: slow backend got {slow} of {total}"
    );
}

#[tokio::test]
async fn least_response_time_tries_every_backend() {
    let b = backends(3).await;
    let s = start(equal_three(&b, "strategy = \"least_response_time\"", "")).await;
    let seen = sequential(30, s.proxy_addr(), &[]).await;
    assert_eq!(
        seen.len(),
        3,
        "an unmeasured backend must get traffic: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_the_slow_backend() {
    slow_backend_gets_less("least_connections", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_response_time_avoids_the_slow_backend() {
    slow_backend_gets_less("least_response_time", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_of_two_avoids_the_slow_backend() {
    slow_backend_gets_less("power_of_two", 4).await;
}

// ---------- failover, health, retries ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_under_load_fails_no_request_and_it_comes_back() {
    let b = backends(3).await;
    let tail = format!("{FAST_HEALTH}[upstream.app.passive]\nejection_time = \"300ms\"\nmax_ejection_time = \"1s\"\n");
    let s = start(equal_three(&b, "strategy = \"round_robin\"", &tail)).await;
    let addr = s.proxy_addr();
    let done = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (done, failures, stop) = (done.clone(), failures.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Relaxed) {
                let a = get(&c, addr, "/").await;
                if a.status != 200 {
                    failures.fetch_add(1, Relaxed);
                }
                done.fetch_add(1, Relaxed);
            }
        }));
    }
    wait_until(
        Duration::from_secs(10),
        "200 requests before the kill",
        || {
            let d = done.load(Relaxed);
            async move { d >= 200 }
        },
    )
    .await;
    b[1].kill();
    let at_kill = done.load(Relaxed);
    wait_until(
        Duration::from_secs(10),
        "600 requests after the kill",
        || {
            let d = done.load(Relaxed);
            async move { d >= at_kill + 600 }
        },
    )
    .await;
    let admin = s.admin_addr();
    let dead = b[1].addr();
    wait_until(
        Duration::from_secs(5),
        "killed backend shown down in /status",
        || async move { health_of(admin, dead).await.as_deref() == Some("down") },
    )
    .await;
    stop.store(true, Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        failures.load(Relaxed),
        0,
        "failed responses during failover"
    );

    b[1].revive().await.unwrap();
    wait_until(
        Duration::from_secs(5),
        "revived backend shown up in /status",
        || async move { health_of(admin, dead).await.as_deref() == Some("up") },
    )
    .await;
    let before = b[1].requests();
    sequential(30, addr, &[]).await;
    assert!(
        b[1].requests() >= before + 5,
        "revived backend gets traffic again"
    );
}

#[tokio::test]
async fn refused_connections_eject_at_once_then_no_healthy_backend_is_503() {
    let b = backends(1).await;
    let s = start(config(
        "",
        &[(&b[0], 1)],
        "",
        // Without panic mode: with every backend ejected, answer 503 rather than try it.
        "[upstream.app.passive]\nmax_ejection_percent = 100\npanic_mode = false\n",
    ))
    .await;
    b[0].kill();
    tokio::task::yield_now().await;
    let c = client();
    // Wait for the listener to be gone, then: one refused connect (502) ejects it.
    wait_until(
        Duration::from_secs(5),
        "backend refuses connections",
        || async { TcpStream::connect(b[0].addr()).await.is_err() },
    )
    .await;
    let first = get(&c, s.proxy_addr(), "/").await;
    assert_eq!(first.status, 502, "{first:?}");
    assert_eq!(
        health_of(s.admin_addr(), b[0].addr()).await.as_deref(),
        Some("ejected")
    );
    let second = get(&c, s.proxy_addr(), "/").await;
    assert_eq!(second.status, 503, "{second:?}");
    assert!(second.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn post_to_a_dead_backend_is_not_retried_but_get_is() {
    let b = backends(2).await;
    // No ejection, no health checks: the dead backend stays in rotation.
    let s = start(config(
        "",
        &[(&b[0], 1), (&b[1], 1)],
        "strategy = \"round_robin\"",
        "[upstream.app.passive]\nmax_ejection_percent = 0\n",
    ))
    .await;
    b[1].kill();
    wait_until(
        Duration::from_secs(5),
        "backend refuses connections",
        || async { TcpStream::connect(b[1].addr()).await.is_err() },
    )
    .await;
    let c = client();
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(
            send(&c, s.proxy_addr(), "POST", "/", &[], "payload")
                .await
                .status
                .as_u16(),
        );
    }
    codes.sort_unstable();
    assert_eq!(codes, vec![200, 200, 502, 502]);
    assert_eq!(
        b[0].posts(),
        2,
        "POSTs that hit the dead backend were not resent"
    );
    for _ in 0..4 {
        assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 200);
    }
    // With an Idempotency-Key a POST is retried too.
    for _ in 0..2 {
        let a = send(
            &c,
            s.proxy_addr(),
            "POST",
            "/",
            &[("idempotency-key", "k1")],
            "payload",
        )
        .await;
        assert_eq!(a.status, 200);
    }
}

#[tokio::test]
async fn retries_go_to_a_different_backend() {
    let b = backends(3).await;
    b[0].set_failing(Some(StatusCode::INTERNAL_SERVER_ERROR));
    b[1].set_failing(Some(StatusCode::SERVICE_UNAVAILABLE));
    let s = start(equal_three(&b, "strategy = \"random\"", "[upstream.app.passive]\nmax_ejection_percent = 0\n[upstream.app.retry]\nattempts = 2\non = [\"5xx\"]\n"))
    .await;
    let c = client();
    for i in 0..30 {
        let before = [b[0].requests(), b[1].requests(), b[2].requests()];
        let a = get(&c, s.proxy_addr(), "/").await;
        assert_eq!(a.status, 200, "request {i}: {a:?}");
        assert_eq!(a.backend.as_deref(), Some("b2"));
        for (k, be) in b.iter().enumerate() {
            assert!(
                be.requests() - before[k] <= 1,
                "request {i} tried backend {k} twice"
            );
        }
    }
    let m = get(&c, s.admin_addr(), "/metrics").await.body;
    let retries: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("ringleader_retries_total "))
        .unwrap()
        .parse()
        .unwrap();
    // Per request 0, 1 or 2 retries, each with probability 1/3: 30 requests make
    // 30 +- 4.5 retries; fewer than 12 is a 4-sigma event (20 failed ~1% of runs).
    assert!(
        retries >= 12,
        "random picks hit a failing backend first most of the time: {retries}"
    );
}

#[tokio::test]
async fn consecutive_5xx_eject_a_backend_for_a_while() {
    let b = backends(2).await;
    b[0].set_failing(Some(StatusCode::INTERNAL_SERVER_ERROR));
    let s = start(config(
        "",
        &[(&b[0], 1), (&b[1], 1)],
        "strategy = \"round_robin\"",
        "[upstream.app.passive]\nconsecutive_failures = 3\nejection_time = \"200ms\"\n\
         [upstream.app.retry]\non = []\n",
    ))
    .await;
    let c = client();
    let mut codes = Vec::new();
    for _ in 0..10 {
        codes.push(get(&c, s.proxy_addr(), "/").await.status.as_u16());
    }
    // Round robin: the failing backend answers 3 times, then it is ejected.
    assert_eq!(codes.iter().filter(|c| **c == 500).count(), 3, "{codes:?}");
    assert_eq!(b[0].requests(), 3);
    assert_eq!(
        health_of(s.admin_addr(), b[0].addr()).await.as_deref(),
        Some("ejected")
    );
    // After the ejection time it gets traffic again.
    b[0].set_failing(None);
    let (admin, addr0) = (s.admin_addr(), b[0].addr());
    wait_until(Duration::from_secs(3), "ejection over", || async move {
        health_of(admin, addr0).await.as_deref() == Some("up")
    })
    .await;
    sequential(4, s.proxy_addr(), &[]).await;
    assert!(b[0].requests() >= 4);
}

#[tokio::test]
async fn retry_budget_caps_retries() {
    let b = backends(2).await;
    b[0].set_failing(Some(StatusCode::INTERNAL_SERVER_ERROR));
    let s = start(config(
        "",
        &[(&b[0], 1), (&b[1], 1)],
        "strategy = \"round_robin\"",
        "[upstream.app.passive]\nconsecutive_failures = 0\nmax_ejection_percent = 0\n\
         [upstream.app.retry]\nattempts = 1\nbudget_percent = 1\non = [\"5xx\"]\n",
    ))
    .await;
    let c = client();
    let mut failed = 0;
    for _ in 0..300 {
        if get(&c, s.proxy_addr(), "/").await.status != 200 {
            failed += 1;
        }
    }
    // 150 requests hit the failing backend first: the reserve of 100 retries
    // plus 1% of 300 requests rescue about 103 of them; the rest fail.
    let m = get(&c, s.admin_addr(), "/metrics").await.body;
    let metric = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let retries = metric("ringleader_retries_total ");
    assert!((100..=104).contains(&retries), "retries {retries}");
    assert_eq!(failed, 150 - retries);
    assert_eq!(metric("ringleader_retries_budget_exhausted_total "), failed);
}

#[tokio::test]
async fn upstream_timeout_is_504_and_5xx_passes_through_without_retry_config() {
    let b = backends(1).await;
    let s = start(config(
        "request_timeout = \"150ms\"",
        &[(&b[0], 1)],
        "",
        "[upstream.app.retry]\non = []\n",
    ))
    .await;
    let c = client();
    let started = Instant::now();
    let a = get(&c, s.proxy_addr(), "/slow?ms=2000").await;
    assert_eq!(a.status, 504);
    assert!(started.elapsed() < Duration::from_secs(2));
    b[0].set_failing(Some(StatusCode::BAD_GATEWAY));
    let a = get(&c, s.proxy_addr(), "/").await;
    assert_eq!(a.status, 502);
    assert!(
        a.body.contains("failing on purpose"),
        "the backend's own 5xx body: {a:?}"
    );
}

#[tokio::test]
async fn backend_connections_are_kept_alive_and_reused() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let c = client();
    for _ in 0..20 {
        assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 200);
        // A streamed body returns its connection to the pool once read to the end.
        assert_eq!(
            get(&c, s.proxy_addr(), "/bytes?n=300000").await.body.len(),
            300_000
        );
    }
    assert_eq!(b[0].requests(), 40);
    assert_eq!(
        b[0].connections(),
        1,
        "one pooled connection served every request"
    );
    let st = status(s.admin_addr()).await;
    assert_eq!(st["upstreams"]["app"]["backends"][0]["idle_connections"], 1);
}

#[tokio::test]
async fn pooled_connections_idle_past_idle_timeout_are_not_reused() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "idle_timeout = \"100ms\"", "")).await;
    let c = client();
    assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 200);
    assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 200);
    assert_eq!(b[0].connections(), 1, "reused while fresh");
    tokio::time::sleep(Duration::from_millis(250)).await; // idle well past 100 ms
    assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 200);
    assert_eq!(b[0].connections(), 2, "stale connection replaced");
}

// ---------- limits and bad input ----------

async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_client_is_cut_off_by_the_header_timeout() {
    let b = backends(1).await;
    let s = start(config(
        "header_read_timeout = \"200ms\"",
        &[(&b[0], 1)],
        "",
        "",
    ))
    .await;
    let mut conn = TcpStream::connect(s.proxy_addr()).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap(); // head never finished
    let started = Instant::now();
    let mut buf = Vec::new();
    let res = tokio::time::timeout(Duration::from_secs(3), conn.read_to_end(&mut buf)).await;
    assert!(res.is_ok(), "connection still open after 3 s");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(150),
        "closed before the timeout: {took:?}"
    );
    assert_eq!(b[0].requests(), 0);
}

#[tokio::test]
async fn max_connections_holds_further_clients_in_the_backlog() {
    let b = backends(1).await;
    let s = start(config("max_connections = 1", &[(&b[0], 1)], "", "")).await;
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = TcpStream::connect(s.proxy_addr()).await.unwrap();
    first.write_all(req).await.unwrap();
    let mut buf = [0u8; 512];
    let n = first.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // `first` stays open (keep-alive): a second client is not served yet.
    let mut second = TcpStream::connect(s.proxy_addr()).await.unwrap();
    second.write_all(req).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), second.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "second connection was served beyond max_connections"
    );
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(3), second.read(&mut buf))
        .await
        .expect("second client served once the first left")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn oversize_headers_get_431_and_garbage_gets_400() {
    let b = backends(1).await;
    let s = start(config("max_header_bytes = 4096", &[(&b[0], 1)], "", "")).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    assert!(raw(s.proxy_addr(), big.as_bytes())
        .await
        .starts_with("HTTP/1.1 431"));
    // Just under the limit passes.
    let ok = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(3_000)
    );
    assert!(raw(s.proxy_addr(), ok.as_bytes())
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(raw(s.proxy_addr(), b"GARBAGE\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 400"));
    let no_host = raw(
        s.proxy_addr(),
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(no_host.starts_with("HTTP/1.1 400"), "{no_host}");
    assert_eq!(b[0].requests(), 1);
}

/// Send `bytes` (not more than the proxy reads, or a reset could lose its answer)
/// and return the status line of the answer.
async fn status_line(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let out = raw(addr, bytes).await;
    out.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_request_line_too_long_is_414_and_a_head_too_large_431() {
    let b = backends(1).await;
    let s = start(config("max_header_bytes = 4096", &[(&b[0], 1)], "", "")).await;
    let p = s.proxy_addr();
    // RFC 9112 §3: a request-target longer than the server wants to parse is 414.
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5_000));
    assert_eq!(
        status_line(p, long_line.as_bytes()).await,
        "HTTP/1.1 414 URI Too Long"
    );
    let absolute = format!(
        "GET http://x/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(5_000)
    );
    assert_eq!(
        status_line(p, absolute.as_bytes()).await,
        "HTTP/1.1 414 URI Too Long"
    );
    // A request line within the limit in a head over it: 431.
    let long_head = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(3_000),
        "b".repeat(3_000)
    );
    assert_eq!(
        status_line(p, long_head.as_bytes()).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(b[0].requests(), 0);
    // The limit is on the head as the client sent it: 4096 bytes pass, 4097 do not.
    let exactly = |n: usize| {
        let mut h = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ".to_string();
        let pad = n - h.len() - 4;
        h.push_str(&"p".repeat(pad));
        h.push_str("\r\n\r\n");
        assert_eq!(h.len(), n);
        h
    };
    assert_eq!(
        status_line(p, exactly(4096).as_bytes()).await,
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        status_line(p, exactly(4097).as_bytes()).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(b[0].requests(), 1);

    // A head that does not even fit the read buffer (64 KiB here; exactly that much
    // is sent, so that the proxy reads all of it): hyper gives up on it.
    let s = start(config("max_header_bytes = 65536", &[(&b[0], 1)], "", "")).await;
    let p = s.proxy_addr();
    let mut unended = b"GET /".to_vec();
    unended.resize(65_536, b'a');
    assert_eq!(status_line(p, &unended).await, "HTTP/1.1 414 URI Too Long");
    let mut many_lines = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    while many_lines.len() < 65_536 - 100 {
        many_lines.extend_from_slice(
            format!("X-F{}: {}\r\n", many_lines.len(), "v".repeat(60)).as_bytes(),
        );
    }
    many_lines.resize(65_536, b'v');
    assert_eq!(
        status_line(p, &many_lines).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(b[0].requests(), 1);
}

#[tokio::test]
async fn transfer_codings_other_than_one_chunked_are_refused() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let p = s.proxy_addr();
    for (te, status) in [
        (
            "Transfer-Encoding: chunked, chunked",
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "Transfer-Encoding: gzip, chunked",
            "HTTP/1.1 501 Not Implemented",
        ),
    ] {
        let req = format!("POST / HTTP/1.1\r\nHost: x\r\n{te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(status_line(p, req.as_bytes()).await, status, "{te}");
    }
    assert_eq!(b[0].requests(), 0);
    let ok = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(status_line(p, ok.as_bytes()).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn absolute_form_for_an_unserved_host_is_never_forwarded() {
    let b = backends(1).await;
    let s = start(config(
        "",
        &[(&b[0], 1)],
        "",
        "[[route]]\nhost = \"api.test\"\nupstream = \"app\"\n",
    ))
    .await;
    let open_proxy = raw(
        s.proxy_addr(),
        b"GET http://evil.example/ HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(open_proxy.starts_with("HTTP/1.1 404"), "{open_proxy}");
    let other_host = raw(
        s.proxy_addr(),
        b"GET / HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(other_host.starts_with("HTTP/1.1 404"), "{other_host}");
    assert_eq!(b[0].requests(), 0);
    let served = raw(
        s.proxy_addr(),
        b"GET http://API.test:80/x HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert_eq!(b[0].requests(), 1);
}

// ---------- headers ----------

/// The JSON body of a raw `/echo-headers` answer (the headers the backend got).
fn echoed(out: &str) -> serde_json::Value {
    assert!(
        out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"),
        "{out}"
    );
    let body = &out[out.find("\r\n\r\n").expect("a complete head") + 4..];
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test]
async fn duplicate_or_invalid_host_and_userinfo_are_400_and_never_forwarded() {
    let b = backends(1).await;
    let s = start(config(
        "",
        &[(&b[0], 1)],
        "",
        "[[route]]\nhost = \"a.test\"\nupstream = \"app\"\n",
    ))
    .await;
    // RFC 9112 §3.2 (Host), RFC 9110 §4.2.4 (userinfo).
    for head in [
        "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test",
        "GET / HTTP/1.1\r\nHost: a.test\r\nHost: a.test",
        "GET / HTTP/1.0\r\nHost: a.test\r\nHost: b.test",
        "GET / HTTP/1.1\r\nHost: a.test b.test",
        "GET / HTTP/1.1\r\nHost: a.test/x",
        "GET / HTTP/1.1\r\nHost: evil@a.test",
        "GET / HTTP/1.1\r\nHost: a.test:x",
        "GET / HTTP/1.1\r\nHost: a.test, b.test",
        "GET http://evil@a.test/ HTTP/1.1\r\nHost: a.test",
        "GET http://evil:pw@a.test/ HTTP/1.1\r\nHost: a.test",
        "GET http://a.test/ HTTP/1.1",
    ] {
        let out = raw(
            s.proxy_addr(),
            format!("{head}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(
            out.starts_with("HTTP/1.") && out.get(8..13) == Some(" 400 "),
            "{head:?}: {out}"
        );
    }
    assert_eq!(b[0].requests(), 0, "none was forwarded");
    // A valid absolute-form authority replaces Host (RFC 9112 §3.2.2).
    let out = raw(
        s.proxy_addr(),
        b"GET http://a.test:80/echo-headers HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let seen = echoed(&out);
    assert_eq!(seen["host"], "a.test:80");
    assert_eq!(seen["x-forwarded-host"], "a.test:80");
}

#[tokio::test]
async fn a_clients_connection_list_never_removes_what_the_proxy_sets() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let out = raw(
        s.proxy_addr(),
        b"GET /echo-headers HTTP/1.1\r\nHost: a.test\r\n\
          Connection: close, host, x-forwarded-for, x-forwarded-host, x-forwarded-proto, x-request-id, x-gone\r\n\
          X-Forwarded-For: 203.0.113.7\r\nX-Request-Id: abc-1\r\nX-Gone: 1\r\n\r\n",
    )
    .await;
    let seen = echoed(&out);
    assert_eq!(seen["host"], "a.test", "{seen}");
    assert_eq!(seen["x-forwarded-host"], "a.test", "{seen}");
    assert_eq!(seen["x-forwarded-proto"], "http", "{seen}");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1", "{seen}");
    assert_eq!(seen["x-request-id"], "abc-1", "{seen}");
    assert!(seen.get("x-gone").is_none(), "{seen}");
}

#[tokio::test]
async fn forwarded_host_and_proto_are_always_the_proxys_own() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let spoof = "X-Forwarded-Host: spoofed.test\r\nX-Forwarded-Proto: https\r\n";
    let out = raw(
        s.proxy_addr(),
        format!("GET /echo-headers HTTP/1.1\r\nHost: a.test\r\n{spoof}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let seen = echoed(&out);
    assert_eq!(
        (&seen["x-forwarded-host"], &seen["x-forwarded-proto"]),
        (&"a.test".into(), &"http".into())
    );
    // HTTP/1.0 without Host: there is no original host to tell, and the client's is not one.
    let out = raw(
        s.proxy_addr(),
        format!("GET /echo-headers HTTP/1.0\r\n{spoof}\r\n").as_bytes(),
    )
    .await;
    let seen = echoed(&out);
    assert!(seen.get("x-forwarded-host").is_none(), "{seen}");
    assert_eq!(seen["x-forwarded-proto"], "http", "{seen}");
    assert_eq!(
        seen["host"],
        b[0].addr().to_string(),
        "the backend is named as Host"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways_and_xff_appended() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let c = client();
    let a = send(
        &c,
        s.proxy_addr(),
        "GET",
        "/echo-headers",
        &[
            ("connection", "x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("te", "trailers"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-kept", "yes"),
        ],
        "",
    )
    .await;
    assert_eq!(a.status, 200);
    let seen: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert!(seen.get(gone).is_none(), "{gone} was forwarded: {seen}");
    }
    assert_eq!(seen["x-kept"], "yes");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], s.proxy_addr().to_string());
    assert_eq!(seen["host"], s.proxy_addr().to_string(), "Host is kept");
    let id = seen["x-request-id"].as_str().unwrap();
    assert!(id.parse::<u64>().unwrap() > 0);
    assert_eq!(
        a.headers["x-request-id"], id,
        "the client sees the same request id"
    );

    let a = get(&c, s.proxy_addr(), "/hop").await;
    assert_eq!(a.status, 200);
    for gone in ["x-hop-secret", "keep-alive", "proxy-authenticate"] {
        assert!(
            !a.headers.contains_key(gone),
            "{gone} came back: {:?}",
            a.headers
        );
    }
    // A client's own request id is kept.
    let a = send(
        &c,
        s.proxy_addr(),
        "GET",
        "/echo-headers",
        &[("x-request-id", "abc-1")],
        "",
    )
    .await;
    let seen: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(seen["x-request-id"], "abc-1");
}

// ---------- streaming ----------

/// A request body fed chunk by chunk from a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// Send `chunks` x 256 KiB to /echo and read each chunk back before sending
/// the next: impossible unless both directions stream.
async fn lockstep_echo(proxy: std::net::SocketAddr, method: &str, chunks: usize) {
    const CHUNK: usize = 256 * 1024;
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let req = http::Request::builder()
        .method(method)
        .uri("/echo")
        .header("host", "test")
        .header("content-length", (CHUNK * chunks).to_string())
        .body(ChannelBody(rx))
        .unwrap();
    let chunk = Bytes::from(vec![7u8; CHUNK]);
    tx.send(chunk.clone()).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("no response head while the body is still being sent")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut received = 0usize;
    for sent in 1..=chunks {
        while received < sent * CHUNK {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .expect("echo stalled: the proxy is buffering")
                .expect("body ended early")
                .unwrap();
            if let Ok(d) = frame.into_data() {
                received += d.len();
            }
        }
        if sent < chunks {
            tx.send(chunk.clone()).await.unwrap();
        }
    }
    drop(tx);
    assert_eq!(received, CHUNK * chunks);
}

#[tokio::test]
async fn status_shows_the_request_id_worker_and_whether_it_was_defaulted() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let st = status(s.admin_addr()).await;
    // The test binary's environment decides what the proxy read at start.
    match std::env::var(ringleader_idgen::WORKER_ID_ENV) {
        Ok(w) => {
            assert_eq!(st["worker_id"].as_u64(), w.trim().parse::<u64>().ok());
            assert_eq!(st["worker_id_defaulted"], false);
        }
        Err(_) => {
            assert_eq!(st["worker_id"], 0);
            assert_eq!(st["worker_id_defaulted"], true);
        }
    }
}

/// `in_flight` of backend `addr` in upstream `app` according to /status.
async fn in_flight_of(admin: std::net::SocketAddr, addr: std::net::SocketAddr) -> u64 {
    let s = status(admin).await;
    s["upstreams"]["app"]["backends"]
        .as_array()
        .and_then(|bs| bs.iter().find(|b| b["addr"] == addr.to_string()))
        .and_then(|b| b["in_flight"].as_u64())
        .expect("backend in /status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_response_counts_in_flight_until_its_body_ends() {
    // least_connections must see a backend that is still streaming a response
    // as busy: the request stays in flight after the response head, until the
    // last byte of the body.
    let b = backends(1).await;
    let s = start(config(
        "",
        &[(&b[0], 1)],
        "strategy = \"least_connections\"",
        "",
    ))
    .await;
    let stream = TcpStream::connect(s.proxy_addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let req = http::Request::builder()
        .method("POST")
        .uri("/echo")
        .header("host", "test")
        .header("content-length", "8")
        .body(ChannelBody(rx))
        .unwrap();
    tx.send(Bytes::from_static(b"1234")).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("response head")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk")
        .expect("body ended early")
        .unwrap();
    assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"1234"));
    // Head and a chunk are through, the body is not finished: still in flight.
    assert_eq!(in_flight_of(s.admin_addr(), b[0].addr()).await, 1);

    tx.send(Bytes::from_static(b"5678")).await.unwrap();
    drop(tx);
    let mut rest = Vec::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("rest of the body")
    {
        if let Ok(d) = frame.unwrap().into_data() {
            rest.extend_from_slice(&d);
        }
    }
    assert_eq!(rest, b"5678");
    let admin = s.admin_addr();
    let backend = b[0].addr();
    wait_until(
        Duration::from_secs(5),
        "in_flight back to 0",
        || async move { in_flight_of(admin, backend).await == 0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_without_whole_buffering() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    // 16 MiB POST (never retried: plain streaming) and PUT (retryable, larger
    // than retry.max_body_bytes: streamed with the tap).
    lockstep_echo(s.proxy_addr(), "POST", 64).await;
    lockstep_echo(s.proxy_addr(), "PUT", 64).await;
    // A 32 MiB download streams too.
    let c = client();
    let a = get(&c, s.proxy_addr(), "/bytes?n=33554432").await;
    assert_eq!(a.body.len(), 32 << 20);
}

/// POST /upload with the body fed from a channel; returns the sender and the response future.
async fn upload(
    proxy: std::net::SocketAddr,
) -> (
    tokio::sync::mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<(StatusCode, String)>,
) {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let req = http::Request::builder()
        .method("POST")
        .uri("/upload")
        .header("host", "test")
        .body(ChannelBody(rx))
        .unwrap();
    let resp = tokio::spawn(async move {
        let r = sender.send_request(req).await.unwrap();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    (tx, resp)
}

#[tokio::test]
async fn slow_uploads_are_not_cut_by_request_timeout_but_stalled_ones_are() {
    let b = backends(1).await;
    let s = start(config("request_timeout = \"300ms\"", &[(&b[0], 1)], "", "")).await;
    // 8 chunks, 100 ms apart: 800 ms in all, each gap well inside the timeout.
    let (tx, resp) = upload(s.proxy_addr()).await;
    for _ in 0..8 {
        tx.send(Bytes::from(vec![1u8; 1000])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tx);
    let (code, body) = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (code.as_u16(), body.as_str()),
        (200, "received 8000 bytes\n")
    );

    // One chunk, then silence: 408, and the backend is not blamed.
    let (tx, resp) = upload(s.proxy_addr()).await;
    tx.send(Bytes::from_static(b"partial")).await.unwrap();
    let started = Instant::now();
    let (code, _) = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 408);
    assert!(started.elapsed() >= Duration::from_millis(250));
    let st = status(s.admin_addr()).await;
    assert_eq!(st["upstreams"]["app"]["backends"][0]["failures"], 0);
    drop(tx);
}

// ---------- reload ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_backends_keeps_in_flight_and_stats() {
    let b = backends(3).await;
    let s = start(config(
        "",
        &[(&b[0], 1), (&b[1], 1)],
        "strategy = \"round_robin\"",
        "",
    ))
    .await;
    let addr = s.proxy_addr();
    sequential(10, addr, &[]).await;
    assert_eq!((b[0].requests(), b[1].requests()), (5, 5));

    // Two slow requests in flight, one on each old backend.
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(&client(), addr, "/slow?ms=500").await }))
        .collect();
    wait_until(
        Duration::from_secs(5),
        "slow requests in flight",
        || async { b[0].requests() + b[1].requests() == 12 },
    )
    .await;
    s.proxy()
        .reload(config(
            "",
            &[(&b[1], 1), (&b[2], 1)],
            "strategy = \"round_robin\"",
            "",
        ))
        .unwrap();
    for t in slow {
        assert_eq!(
            t.await.unwrap().status,
            200,
            "in-flight request survived the reload"
        );
    }
    let st = status(s.admin_addr()).await;
    let list = st["upstreams"]["app"]["backends"].as_array().unwrap();
    let addrs: Vec<_> = list
        .iter()
        .map(|x| x["addr"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        addrs,
        vec![b[1].addr().to_string(), b[2].addr().to_string()]
    );
    assert_eq!(list[0]["requests"], 6, "kept backend keeps its stats");
    assert_eq!(list[1]["requests"], 0);

    let a_before = b[0].requests();
    let seen = sequential(10, addr, &[]).await;
    assert_eq!(b[0].requests(), a_before, "removed backend gets nothing");
    assert_eq!((seen["b1"], seen["b2"]), (5, 5));
}

#[tokio::test]
async fn invalid_reload_keeps_the_old_config() {
    let b = backends(2).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let dir = std::env::temp_dir().join(format!("ringleader-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        format!(
            "[upstream.app]\nbackends = [{{ addr = \"{}\" }}]\nbogus = 1\n",
            b[1].addr()
        ),
    )
    .unwrap();
    let err = s.proxy().reload_file(&path).unwrap_err().to_string();
    assert!(err.contains("bad.toml:3:1"), "{err}");
    let c = client();
    for _ in 0..4 {
        let a = get(&c, s.proxy_addr(), "/").await;
        assert_eq!(a.backend.as_deref(), Some("b0"));
    }
    // And a valid file applies.
    std::fs::write(
        &path,
        format!("[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[upstream.app]\nbackends = [{{ addr = \"{}\" }}]\n", b[1].addr()),
    )
    .unwrap();
    s.proxy().reload_file(&path).unwrap();
    assert_eq!(
        get(&c, s.proxy_addr(), "/").await.backend.as_deref(),
        Some("b1")
    );
    let m = get(&c, s.admin_addr(), "/metrics").await.body;
    assert!(m.contains("ringleader_reload_failures_total 1"), "{m}");
    assert!(m.contains("ringleader_reloads_total 1"), "{m}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------- admin, shutdown ----------

#[tokio::test]
async fn metrics_expose_counters_and_backend_state() {
    let b = backends(2).await;
    let s = start(config("", &[(&b[0], 1), (&b[1], 1)], "", "")).await;
    sequential(6, s.proxy_addr(), &[]).await;
    let m = get(&client(), s.admin_addr(), "/metrics").await;
    assert_eq!(m.status, 200);
    let text = m.body;
    assert!(text.contains("ringleader_requests_total 6"), "{text}");
    assert!(
        text.contains("ringleader_responses_total{class=\"2xx\"} 6"),
        "{text}"
    );
    assert!(
        text.contains("ringleader_request_duration_seconds_count 6"),
        "{text}"
    );
    let line = format!(
        "ringleader_backend_requests_total{{upstream=\"app\",backend=\"{}\"}} 3",
        b[0].addr()
    );
    assert!(text.contains(&line), "{text}");
    assert!(text.contains("ringleader_backend_up{"), "{text}");
    assert_eq!(get(&client(), s.admin_addr(), "/nope").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_and_stops_accepting() {
    let b = backends(1).await;
    let s = start(config("shutdown_grace = \"5s\"", &[(&b[0], 1)], "", "")).await;
    let addr = s.proxy_addr();
    let slow = tokio::spawn(async move { get(&client(), addr, "/slow?ms=400").await });
    wait_until(Duration::from_secs(5), "slow request in flight", || async {
        b[0].requests() == 1
    })
    .await;
    let started = Instant::now();
    s.shutdown().await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "shutdown waited for the request"
    );
    assert_eq!(slow.await.unwrap().status, 200);
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[test]
fn example_config_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ringleader.toml");
    let c = Config::load(std::path::Path::new(path)).unwrap();
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.upstreams.len(), 2);
}
