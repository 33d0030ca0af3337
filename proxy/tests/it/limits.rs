//! Limits and bad input: header read timeout, max_connections, head size limits
//! (414, 431), refused transfer codings, hosts that are not served.
use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    // The head is never finished.
    let r = raw_exchange(s.proxy_addr(), b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert!(
        r.end.is_some() && r.took < Duration::from_secs(3),
        "connection still open after 3 s: {r:?}"
    );
    assert!(
        r.took >= Duration::from_millis(150),
        "closed before the timeout: {:?}",
        r.took
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

/// RFC 9112 §3.2.2: "A server MUST accept the absolute-form in requests": with a
/// route for any host, `GET http://host/p` is served as `GET /p` with `Host: host`
/// (it still goes to the configured upstream, never to the host it names).
#[tokio::test]
async fn absolute_form_is_served_by_a_route_for_any_host() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let out = raw(
        s.proxy_addr(),
        b"GET http://anything.test/echo-headers HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
    let seen: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(seen["host"], "anything.test", "{seen}");
}

/// Request targets a proxy cannot forward get 400, as nginx answers: the authority
/// form outside CONNECT (RFC 9112 §3.2.3), the asterisk form (§3.2.4), a relative
/// path, an empty host (RFC 9110 §4.2.1); none reaches the backend.
#[tokio::test]
async fn targets_and_hosts_that_cannot_be_forwarded_are_400() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    for req in [
        &b"GET x.test:80 HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n"[..],
        b"GET echo HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: :80\r\nConnection: close\r\n\r\n",
    ] {
        let out = raw(s.proxy_addr(), req).await;
        assert!(
            out.starts_with("HTTP/1.1 400"),
            "{}\n{out}",
            String::from_utf8_lossy(req)
        );
    }
    assert_eq!(b[0].requests(), 0);
}

/// TRACE is never forwarded (it would echo cookies and credentials back): 405 with
/// `Allow`, as nginx answers. OPTIONS counts `Max-Forwards` down (RFC 9110 §7.6.2)
/// and at 0 is answered by the proxy itself.
#[tokio::test]
async fn trace_is_refused_and_options_counts_max_forwards_down() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let out = raw(
        s.proxy_addr(),
        b"TRACE / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    let allow = |t: &str| {
        t.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("allow: ")
                .map(str::to_string)
        })
    };
    assert!(
        allow(&out).is_some_and(|a| a.contains("get") && !a.contains("trace")),
        "{out}"
    );

    let out = raw(
        s.proxy_addr(),
        b"OPTIONS /x HTTP/1.1\r\nHost: a.test\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(allow(&out).is_some(), "{out}");
    assert_eq!(b[0].requests(), 0, "neither reached the backend");

    let out = raw(
        s.proxy_addr(),
        b"OPTIONS /echo-headers HTTP/1.1\r\nHost: a.test\r\nMax-Forwards: 5\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
    let seen: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(seen["max-forwards"], "4", "{seen}");
}
