//! Active health checks against a backend with no health endpoint (a plain file server):
//! what the logs say when it fails them, and that the default check path keeps it up.
use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn a_failing_check_logs_backend_path_status_and_counts() {
    let (logs, _guard) = Logs::capture();
    let fs = FileServer::start().await;
    let addr = fs.addr().to_string();
    let s = start(config_of(
        "",
        &[format!("{{ addr = \"{addr}\", name = \"alpha\" }}")],
        "",
        FAST_HEALTH, // path = "/healthz", fall = 2
    ))
    .await;
    wait_until(Duration::from_secs(5), "the backend goes down", || async {
        health_of(s.admin_addr(), fs.addr()).await.as_deref() == Some("down")
    })
    .await;
    let down = logs.lines_with(&[" WARN ", "down:"]);
    assert_eq!(down.len(), 1, "{}", logs.text());
    let want = format!(
        "backend alpha ({addr}) down: 2 consecutive failed checks (fall = 2), last: GET /healthz -> 404 Not Found"
    );
    assert!(down[0].contains(&want), "{}\nwanted: {want}", down[0]);
    for field in ["upstream=app", "backend=alpha", &format!("addr={addr}")] {
        assert!(down[0].contains(field), "{field} in {}", down[0]);
    }
    // Each failed check, at DEBUG, with the streak so far.
    let first = format!(
        "active check of alpha ({addr}) failed (1 in a row, fall = 2): GET /healthz -> 404 Not Found"
    );
    let checks = logs.lines_with(&["DEBUG ", &first]);
    assert_eq!(checks.len(), 1, "{}", logs.text());
}

#[tokio::test]
async fn a_refused_check_says_so() {
    let (logs, _guard) = Logs::capture();
    let gone = closed_addr();
    let s = start(config_over("", &[gone], "", FAST_HEALTH)).await;
    wait_until(Duration::from_secs(5), "the backend goes down", || async {
        health_of(s.admin_addr(), gone).await.as_deref() == Some("down")
    })
    .await;
    let want = format!("backend {gone} down: 2 consecutive failed checks (fall = 2), last: GET /healthz -> connection refused");
    assert_eq!(
        logs.lines_with(&[" WARN ", &want]).len(),
        1,
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn default_check_path_keeps_a_plain_file_server_up() {
    let (logs, _guard) = Logs::capture();
    let fs = FileServer::start().await;
    // A health table that names no path.
    let s = start(config_over(
        "",
        &[fs.addr()],
        "",
        "[upstream.app.health]\ninterval = \"50ms\"\ntimeout = \"200ms\"\nrise = 2\nfall = 2\n",
    ))
    .await;
    // Four checks: twice `fall`.
    wait_until(Duration::from_secs(5), "four checks", || async {
        fs.paths().len() >= 4
    })
    .await;
    assert!(fs.paths().iter().all(|p| p == "/"), "{:?}", fs.paths());
    assert_eq!(
        health_of(s.admin_addr(), fs.addr()).await.as_deref(),
        Some("up")
    );
    assert!(logs.lines_with(&["down:"]).is_empty(), "{}", logs.text());
}

/// `ringleader_backend_checks_total` of the one backend, from /metrics.
async fn checks_run(admin: std::net::SocketAddr) -> u64 {
    let text = get(&client(), admin, "/metrics").await.body;
    text.lines()
        .find(|l| l.starts_with("ringleader_backend_checks_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ringleader_backend_checks_total in\n{text}"))
}

#[tokio::test]
async fn accrual_keeps_a_backend_answering_5xx_up_without_probing_it() {
    let (logs, _guard) = Logs::capture();
    let b = backends(1).await;
    // Every proxied request answers 500; /healthz answers 200.
    b[0].set_failing(Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    let s = start(config(
        "",
        &[(&b[0], 1)],
        "",
        "[upstream.app.health]\npath = \"/healthz\"\ndetector = \"accrual\"\ninterval = \"500ms\"\n\
         confirm = 2\nconfirm_interval = \"50ms\"\n",
    ))
    .await;
    wait_until(Duration::from_secs(5), "a first check", || async {
        checks_run(s.admin_addr()).await >= 1
    })
    .await;
    let before = checks_run(s.admin_addr()).await;
    let started = std::time::Instant::now();
    // A 500 is an answer: the backend is alive. Under traffic for 5 regular intervals
    // (and at least 1000 requests), it stays up and is checked at the regular pace,
    // not probed after each failed request.
    let load = Load::start(s.proxy_addr(), 4);
    load.more(1000, "1000 requests").await;
    wait_until(Duration::from_secs(10), "5 more regular checks", || async {
        checks_run(s.admin_addr()).await >= before + 5
    })
    .await;
    let (done, failed) = load.finish().await;
    let checks = checks_run(s.admin_addr()).await - before;
    let regular = started.elapsed().as_millis() as u64 / 500;
    assert!(
        failed > 0,
        "the requests failed with 500 ({failed} of {done})"
    );
    assert!(
        checks <= regular + 2,
        "{checks} checks in {:?} at a 500 ms interval: probes were started by 5xx answers",
        started.elapsed()
    );
    assert_ne!(
        health_of(s.admin_addr(), b[0].addr()).await.as_deref(),
        Some("down")
    );
    assert!(logs.lines_with(&["down:"]).is_empty(), "{}", logs.text());
}
