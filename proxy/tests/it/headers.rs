//! Request and response headers: Host validation, X-Forwarded-*, X-Request-Id, and hop-by-hop stripping both ways.
use crate::common::*;

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
