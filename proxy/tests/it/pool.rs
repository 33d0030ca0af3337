//! The proxy's keep-alive pool of backend connections: reused while fresh, replaced once idle past `idle_timeout`.
use crate::common::*;
use std::time::{Duration, Instant};

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
    const IDLE: Duration = Duration::from_millis(100);
    let b = backends(1).await;
    let idle_timeout = format!("idle_timeout = \"{}ms\"", IDLE.as_millis());
    let s = start(config("", &[(&b[0], 1)], &idle_timeout, "")).await;
    let c = client();
    assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 200);
    assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 200);
    assert_eq!(b[0].connections(), 1, "reused while fresh");
    // Once /status shows the connection back in the pool, its idle time has started.
    let (admin, backend) = (s.admin_addr(), b[0].addr());
    wait_until(
        Duration::from_secs(5),
        "the connection back in the pool",
        || async move {
            backend_status(admin, backend).await.expect("listed")["idle_connections"] == 1
        },
    )
    .await;
    let pooled = Instant::now();
    // The scenario itself: the pool's clock is real time (std's Instant), so the
    // connection must really sit idle for longer than `idle_timeout`.
    tokio::time::sleep_until((pooled + IDLE + Duration::from_millis(1)).into()).await;
    assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 200);
    assert_eq!(b[0].connections(), 2, "stale connection replaced");
}
