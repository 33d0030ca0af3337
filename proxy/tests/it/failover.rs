//! Failover on health: a backend killed under load leaves rotation without a failed
//! request and comes back; refused connections and consecutive 5xx eject a backend.
use crate::common::*;
use http::StatusCode;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_under_load_fails_no_request_and_it_comes_back() {
    let b = backends(3).await;
    let tail = format!("{FAST_HEALTH}[upstream.app.passive]\nejection_time = \"300ms\"\nmax_ejection_time = \"1s\"\n");
    let s = start(equal_three(&b, "strategy = \"round_robin\"", &tail)).await;
    let addr = s.proxy_addr();
    let load = Load::start(addr, 8);
    load.more(200, "200 requests before the kill").await;
    b[1].kill();
    load.more(600, "600 requests after the kill").await;
    let admin = s.admin_addr();
    let dead = b[1].addr();
    wait_until(
        Duration::from_secs(5),
        "killed backend shown down in /status",
        || async move { health_of(admin, dead).await.as_deref() == Some("down") },
    )
    .await;
    let (_, failures) = load.finish().await;
    assert_eq!(failures, 0, "failed responses during failover");

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
    until_refused(b[0].addr()).await;
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
async fn a_timed_out_attempt_counts_its_whole_cost_in_the_latency_estimate() {
    // least_response_time must see a backend that only times out as slow: the
    // failure is a latency sample of at least the time it cost (request_timeout).
    let b = backends(1).await;
    let s = start(config(
        "request_timeout = \"150ms\"",
        &[(&b[0], 1)],
        "strategy = \"least_response_time\"",
        "[upstream.app.retry]\non = []\n",
    ))
    .await;
    let answer = get(&client(), s.proxy_addr(), "/slow?ms=2000").await;
    assert_eq!(answer.status, 504, "{answer:?}");
    let st = backend_status(s.admin_addr(), b[0].addr())
        .await
        .expect("backend in /status");
    let ewma_ms = st["ewma_ms"].as_f64().expect("ewma_ms");
    assert!(
        ewma_ms >= 150.0,
        "ewma after a 150 ms timeout: {ewma_ms} ms"
    );
}
