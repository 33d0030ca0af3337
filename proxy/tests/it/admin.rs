//! Admin endpoints and lifecycle: /status and /metrics contents, graceful shutdown.
use crate::common::*;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

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
        "ringleader_backend_requests_total{{upstream=\"app\",backend=\"{0}\",addr=\"{0}\"}} 3",
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
