//! Request and response headers: Host validation, X-Forwarded-*, X-Request-Id, and hop-by-hop stripping both ways.
use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// RFC 9110 §5.3: several `X-Forwarded-For` lines are one list; every entry is kept,
/// in order, before the address the proxy saw.
#[tokio::test]
async fn repeated_x_forwarded_for_lines_are_kept_whole() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let out = raw(
        s.proxy_addr(),
        b"GET /echo-headers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\
          X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 198.51.100.2, 192.0.2.9\r\n\r\n",
    )
    .await;
    let seen = echoed(&out);
    assert_eq!(
        seen["x-forwarded-for"], "203.0.113.7, 198.51.100.2, 192.0.2.9, 127.0.0.1",
        "{seen}"
    );
}

/// A client's field whose name, with `_` read as `-`, is one the proxy sets or frames
/// by never reaches the backend (CGI, WSGI and PHP map both to one name); other
/// names with `_` pass.
#[tokio::test]
async fn underscore_twins_of_the_proxys_fields_are_dropped() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let out = raw(
        s.proxy_addr(),
        b"GET /echo-headers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\
          X_Forwarded_For: 6.6.6.6\r\nX_Request_Id: forged\r\nTransfer_Encoding: chunked\r\n\
          X_Custom: kept\r\n\r\n",
    )
    .await;
    let seen = echoed(&out);
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert!(seen.get("x_forwarded_for").is_none(), "{seen}");
    assert!(seen.get("x_request_id").is_none(), "{seen}");
    assert!(seen.get("transfer_encoding").is_none(), "{seen}");
    assert_eq!(seen["x_custom"], "kept", "{seen}");
}

/// hyper answers `Expect: 100-continue` itself when the body is read; the backend
/// gets the body without the expectation (as nginx sends it).
#[tokio::test]
async fn an_expectation_the_proxy_met_is_not_sent_on() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let out = raw(
        s.proxy_addr(),
        b"POST /echo-headers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\
          Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    // The interim 100, then the answer.
    let out = out
        .strip_prefix("HTTP/1.1 100 Continue\r\n\r\n")
        .unwrap_or(&out);
    let seen = echoed(out);
    assert!(seen.get("expect").is_none(), "{seen}");
    assert_eq!(seen["content-length"], "2", "{seen}");
}

/// An HTTP/1.0 client that asks for keep-alive keeps its connection: the answer
/// says `Connection: keep-alive` (RFC 9112 Appendix C.2.2), and a second request on
/// the same connection is answered.
#[tokio::test]
async fn an_http10_keep_alive_connection_is_kept() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let mut c = tokio::net::TcpStream::connect(s.proxy_addr())
        .await
        .unwrap();
    for i in 0..2 {
        c.write_all(b"GET / HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // The head, then the body of its Content-Length.
        let done = |g: &[u8]| {
            let t = String::from_utf8_lossy(g);
            let Some(end) = t.find("\r\n\r\n") else {
                return false;
            };
            let len: usize = t[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("a Content-Length");
            g.len() >= end + 4 + len
        };
        while !done(&got) {
            let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
                .await
                .expect("an answer within 5 s")
                .unwrap();
            assert_ne!(
                n,
                0,
                "request {i}: closed after {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(text.starts_with("http/1.0 200"), "{text}");
        assert!(text.contains("\r\nconnection: keep-alive\r\n"), "{text}");
    }
    assert_eq!(b[0].requests(), 2);
}
