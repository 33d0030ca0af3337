//! Retries: only idempotent requests, to a different backend, within the retry
//! budget; an upstream timeout is 504 and a backend's 5xx passes through.
use crate::common::*;
use http::StatusCode;
use std::time::{Duration, Instant};

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
    until_refused(b[1].addr()).await;
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
    let retries = metric(s.admin_addr(), "ringleader_retries_total ").await;
    // Per request 0, 1 or 2 retries, each with probability 1/3: 30 requests make
    // 30 +- 4.5 retries; fewer than 12 is a 4-sigma event (20 failed ~1% of runs).
    assert!(
        retries >= 12,
        "random picks hit a failing backend first most of the time: {retries}"
    );
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
    let admin = s.admin_addr();
    let retries = metric(admin, "ringleader_retries_total ").await;
    assert!((100..=104).contains(&retries), "retries {retries}");
    assert_eq!(failed, 150 - retries);
    assert_eq!(
        metric(admin, "ringleader_retries_budget_exhausted_total ").await,
        failed
    );
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
