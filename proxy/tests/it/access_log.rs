//! `access_log = "json"`: one JSON object per request on `ringleader::access`, the
//! event's whole message, with every field and the right values; the text form beside it.
use crate::common::*;
use ringleader_proxy::{Config, Server};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The JSON objects logged on `ringleader::access` so far (each the whole message:
/// nothing follows it on its line).
fn access_objects(logs: &Logs) -> Vec<serde_json::Value> {
    logs.lines_with(&["ringleader::access: "])
        .iter()
        .map(|l| {
            let json = l.split_once("ringleader::access: ").unwrap().1;
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .collect()
}

/// Send `raw` (a whole request, `Connection: close`) from a socket of our own; the
/// client's address and the answer's head and body.
async fn exchange(proxy: SocketAddr, raw: &str) -> (SocketAddr, String, String) {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    let me = tcp.local_addr().unwrap();
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let got = String::from_utf8(got).unwrap();
    let (head, body) = got.split_once("\r\n\r\n").unwrap();
    (me, head.to_string(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

async fn proxy(access_log: &str, backend: SocketAddr) -> Server {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\naccess_log = {access_log}\n\
         [[route]]\nhost = \"app.test\"\nupstream = \"app\"\n\
         [upstream.app]\nbackends = [{{ addr = \"{backend}\", name = \"alpha\" }}]\n"
    );
    Server::bind(Config::from_toml_str(&text, "log.toml").unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn json_lines_carry_every_field_with_its_value() {
    let (logs, _guard) = Logs::capture();
    let b = backends(1).await;
    let s = proxy("\"json\"", b[0].addr()).await;
    let before = SystemTime::now();
    let (me, head, body) = exchange(
        s.proxy_addr(),
        "PUT /echo-headers?secret=1 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\
         Connection: close\r\n\r\nhello",
    )
    .await;
    let took = before.elapsed().unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let id = header(&head, "x-request-id");

    let all = access_objects(&logs);
    assert_eq!(all.len(), 1, "{}", logs.text());
    let v = &all[0];
    let fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = [
        "time",
        "request_id",
        "method",
        "path",
        "host",
        "status",
        "upstream",
        "backend",
        "addr",
        "attempts",
        "bytes_in",
        "bytes_out",
        "duration_us",
        "client",
    ];
    want.sort_unstable();
    assert_eq!(fields, want, "{v}");
    // RFC 3339 in UTC, within the exchange.
    let time = v["time"].as_str().unwrap();
    assert!(time.ends_with('Z'), "{time}");
    let at = humantime::parse_rfc3339(time).unwrap();
    let slack = Duration::from_millis(1);
    assert!(
        at + slack >= before && at <= before + took + slack,
        "{time}"
    );
    assert_eq!(v["request_id"], id);
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["path"], "/echo-headers", "the query is left out");
    assert_eq!(v["host"], "app.test");
    assert_eq!(v["status"], 200);
    assert_eq!(v["upstream"], "app");
    assert_eq!(v["backend"], "alpha");
    assert_eq!(v["addr"], b[0].addr().to_string());
    assert_eq!(v["bytes_in"], 5);
    assert_eq!(v["bytes_out"], body.len());
    assert_eq!(
        v["bytes_out"].as_u64(),
        header(&head, "content-length").parse().ok()
    );
    let us = v["duration_us"].as_u64().unwrap();
    assert!(us > 0 && us <= took.as_micros() as u64, "{us}");
    assert_eq!(v["client"], me.to_string());
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_no_route_takes_is_logged_with_nulls() {
    let (logs, _guard) = Logs::capture();
    let b = backends(1).await;
    let s = proxy("\"json\"", b[0].addr()).await;
    let (me, head, _) = exchange(
        s.proxy_addr(),
        "GET /x HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let all = access_objects(&logs);
    assert_eq!(all.len(), 1, "{}", logs.text());
    let v = &all[0];
    assert_eq!(v["status"], 404);
    assert_eq!(v["host"], "other.test");
    assert_eq!(v["bytes_in"], 0);
    for null in ["upstream", "backend", "addr"] {
        assert!(v[null].is_null(), "{null}: {v}");
    }
    assert_eq!(v["attempts"], 0);
    // The proxy's own answer: its length.
    assert_eq!(
        v["bytes_out"].as_u64(),
        header(&head, "content-length").parse().ok()
    );
    assert_eq!(v["client"], me.to_string());
    assert_eq!(v["request_id"], header(&head, "x-request-id"));
    assert_eq!(b[0].requests(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_text_form_stays_key_value_fields() {
    let (logs, _guard) = Logs::capture();
    let b = backends(1).await;
    let s = proxy("\"text\"", b[0].addr()).await;
    let (me, head, _) = exchange(
        s.proxy_addr(),
        "GET /a HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lines = logs.lines_with(&["ringleader::access:"]);
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(!lines[0].contains('{'), "{}", lines[0]);
    for field in [
        "method=GET".to_string(),
        "path=/a".into(),
        "status=200".into(),
        "upstream=app".into(),
        "backend=\"alpha\"".into(),
        format!("client={me}"),
        "latency_us=".into(),
        "request_id=".into(),
    ] {
        assert!(lines[0].contains(&field), "{field} in {}", lines[0]);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn attempts_count_the_retry() {
    let (logs, _guard) = Logs::capture();
    let b = backends(1).await;
    let gone = closed_addr();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\naccess_log = \"json\"\n\
         [upstream.app]\nstrategy = \"round_robin\"\n\
         backends = [{{ addr = \"{gone}\" }}, {{ addr = \"{}\" }}]\n",
        b[0].addr()
    );
    let s = Server::bind(Config::from_toml_str(&text, "log.toml").unwrap())
        .await
        .unwrap();
    for _ in 0..2 {
        let (_, head, _) = exchange(
            s.proxy_addr(),
            "GET / HTTP/1.1\r\nHost: any\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    let mut attempts: Vec<u64> = access_objects(&logs)
        .iter()
        .map(|v| v["attempts"].as_u64().unwrap())
        .collect();
    attempts.sort_unstable();
    // One went straight to the live backend, the other was refused first, then retried.
    assert_eq!(attempts, [1, 2], "{}", logs.text());
}

/// A client that gives up while the backend is still working (closes its connection
/// after a 300 ms read deadline; the backend takes 2 s) is logged once, as nginx logs
/// it, with status 499, and counted as an abort, not as a response.
#[tokio::test(flavor = "current_thread")]
async fn a_client_that_leaves_before_the_answer_is_logged_as_499() {
    let (logs, _guard) = Logs::capture();
    let slow = ringleader_proxy::DemoBackend::start("slow", Duration::from_secs(2))
        .await
        .unwrap();
    let s = proxy("\"json\"", slow.addr()).await;
    let mut tcp = TcpStream::connect(s.proxy_addr()).await.unwrap();
    let me = tcp.local_addr().unwrap();
    tcp.write_all(b"GET /gone HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await;
    assert!(read.is_err(), "an answer before the backend's delay");
    drop(tcp);

    wait_until(Duration::from_secs(5), "an access line for /gone", || {
        let n = access_objects(&logs).len();
        async move { n > 0 }
    })
    .await;
    let all = access_objects(&logs);
    assert_eq!(all.len(), 1, "{}", logs.text());
    let v = &all[0];
    assert_eq!(v["status"], 499, "{v}");
    assert_eq!(v["path"], "/gone", "{v}");
    assert_eq!(v["upstream"], "app", "{v}");
    // It was sent to the backend, which had not answered: no backend answered.
    assert_eq!(v["attempts"], 1, "{v}");
    assert_eq!(v["backend"], serde_json::Value::Null, "{v}");
    assert_eq!(v["client"], me.to_string(), "{v}");
    let us = v["duration_us"].as_u64().unwrap();
    assert!((300_000..2_000_000).contains(&us), "{v}");
    assert_eq!(
        metric(s.admin_addr(), "ringleader_client_aborts_total ").await,
        1
    );
    assert_eq!(
        metric(
            s.admin_addr(),
            "ringleader_http_responses_total{code=\"4xx\"}"
        )
        .await,
        0
    );
}

/// The same over h2c: the client resets its stream (RST_STREAM, when it drops the
/// response future) and keeps the connection; the request is logged as a 499.
#[tokio::test(flavor = "current_thread")]
async fn an_h2_stream_reset_before_the_answer_is_logged_as_499() {
    let (logs, _guard) = Logs::capture();
    let slow = ringleader_proxy::DemoBackend::start("slow", Duration::from_secs(2))
        .await
        .unwrap();
    let s = proxy("\"json\"", slow.addr()).await;
    let tcp = TcpStream::connect(s.proxy_addr()).await.unwrap();
    let mut c = crate::h2::h2_over(tcp).await;
    let req = http::Request::get("http://app.test/reset")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_millis(300), c.send_request(req)).await;
    assert!(answer.is_err(), "an answer before the backend's delay");
    wait_until(Duration::from_secs(5), "an access line for /reset", || {
        let n = access_objects(&logs).len();
        async move { n > 0 }
    })
    .await;
    let all = access_objects(&logs);
    assert_eq!(all.len(), 1, "{}", logs.text());
    assert_eq!(all[0]["status"], 499, "{}", all[0]);
    assert_eq!(all[0]["path"], "/reset", "{}", all[0]);
    assert_eq!(all[0]["attempts"], 1, "{}", all[0]);
    // The connection is still there for the next request.
    assert!(c.ready().await.is_ok());
    assert_eq!(
        metric(s.admin_addr(), "ringleader_client_aborts_total ").await,
        1
    );
}

/// Send `raw` from a socket of our own and read until the proxy closes (or resets:
/// it may close with bytes of ours unread); our address and what came back.
async fn send_raw(proxy: SocketAddr, raw: &[u8]) -> (SocketAddr, String) {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    let me = tcp.local_addr().unwrap();
    // A reset before all of it is written is an answer too.
    let _ = tcp.write_all(raw).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got)).await;
    (me, String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "current_thread")]
async fn answers_hyper_writes_itself_are_logged_and_counted() {
    let (logs, _guard) = Logs::capture();
    let b = backends(1).await;
    let s = proxy("\"json\"", b[0].addr()).await;
    let admin = s.admin_addr();
    const FOUR_XX: &str = "ringleader_http_responses_total{code=\"4xx\"}";
    assert_eq!(metric(admin, FOUR_XX).await, 0);

    // A malformed request line: hyper's own 400, never seen by the handler.
    let (me, got) = send_raw(s.proxy_addr(), b"GARBAGE\r\n\r\n").await;
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    wait_until(Duration::from_secs(10), "the 400's access line", || async {
        !access_objects(&logs).is_empty()
    })
    .await;
    let all = access_objects(&logs);
    assert_eq!(all.len(), 1, "{}", logs.text());
    let v = &all[0];
    assert_eq!(
        (&v["status"], &v["method"], &v["path"], &v["request_id"]),
        (
            &serde_json::json!(400),
            &serde_json::Value::Null,
            &serde_json::json!(""),
            &serde_json::Value::Null
        ),
        "{v}"
    );
    assert_eq!(v["client"], me.to_string());
    assert_eq!(v["upstream"], serde_json::Value::Null);
    assert_eq!(metric(admin, FOUR_XX).await, 1);
    // It was a request too: requests_total is never below the responses.
    assert_eq!(metric(admin, "ringleader_requests_total").await, 1);

    // A 70 KB request line outgrows hyper's read buffer: the 414 in place of its 431.
    let mut long = b"GET /".to_vec();
    long.resize(70_000, b'a');
    long.extend_from_slice(b" HTTP/1.1\r\nHost: app.test\r\n\r\n");
    let (me, _) = send_raw(s.proxy_addr(), &long).await;
    wait_until(Duration::from_secs(10), "the 414's access line", || async {
        access_objects(&logs).len() == 2
    })
    .await;
    let v = &access_objects(&logs)[1];
    assert_eq!(
        (&v["status"], &v["method"]),
        (&serde_json::json!(414), &serde_json::Value::Null),
        "{v}"
    );
    assert_eq!(v["client"], me.to_string());
    assert_eq!(metric(admin, FOUR_XX).await, 2);
    assert_eq!(b[0].requests(), 0);
}
