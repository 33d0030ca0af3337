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

/// The field `name` of a raw answer's head, if present.
fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// RFC 9110 §9.1: HEAD is answered as GET without the body (same Content-Length);
/// §15.5.6: a 405 says which methods are allowed. /ring's 405 is JSON like its errors.
#[tokio::test]
async fn admin_answers_head_and_its_405_names_the_allowed_methods() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let a = s.admin_addr();
    let req =
        |m: &str, p: &str| format!("{m} {p} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");

    let head = raw(a, req("HEAD", "/metrics").as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (h, body) = head.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, "", "no body for HEAD: {head}");
    assert!(
        field(h, "content-type").unwrap().starts_with("text/plain"),
        "{h}"
    );
    let len: usize = field(h, "content-length").expect(h).parse().unwrap();
    assert!(len > 0, "{h}");

    // The status page does not change between two requests: the same length.
    let get = raw(a, req("GET", "/").as_bytes()).await;
    let head = raw(a, req("HEAD", "/").as_bytes()).await;
    let (gh, gbody) = get.split_once("\r\n\r\n").unwrap();
    let (hh, hbody) = head.split_once("\r\n\r\n").unwrap();
    assert!(hh.starts_with("HTTP/1.1 200"), "{hh}");
    assert_eq!(hbody, "");
    assert_eq!(field(hh, "content-length"), field(gh, "content-length"));
    assert_eq!(
        field(gh, "content-length").unwrap(),
        gbody.len().to_string()
    );

    let post = raw(a, req("POST", "/status").as_bytes()).await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert_eq!(field(&post, "allow"), Some("GET, HEAD"), "{post}");

    let post = raw(a, req("DELETE", "/ring").as_bytes()).await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert_eq!(field(&post, "allow"), Some("GET, HEAD"), "{post}");
    assert_eq!(
        field(&post, "content-type"),
        Some("application/json"),
        "{post}"
    );
    let body = post.split_once("\r\n\r\n").unwrap().1;
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(v["error"].is_string(), "{v}");
}

/// /status and /metrics are live values: never cached, never sniffed (as the page).
#[tokio::test]
async fn admin_answers_are_not_cached_or_sniffed() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    for path in ["/status", "/metrics"] {
        let a = get(&client(), s.admin_addr(), path).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["cache-control"], "no-store", "{path}");
        assert_eq!(a.headers["x-content-type-options"], "nosniff", "{path}");
    }
}
