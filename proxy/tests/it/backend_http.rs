//! The proxy's HTTP/1.1 client against raw TCP backends on 127.0.0.1:0: response
//! framings, interim responses, invalid answers, request body framing, and pooled
//! connections the backend has closed.
use crate::common::*;
use http::StatusCode;
use ringleader_proxy::Config;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A backend that speaks HTTP/1.1 by hand: it answers each request with the
/// canned bytes its path names, and records every request it received.
struct RawBackend {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    closed: Arc<Notify>,
}

/// What the backend does after answering.
#[derive(PartialEq)]
enum After {
    KeepOpen,
    Close,
    /// Answer the next request on this connection with bytes it never asked for
    /// (as if they were sent late, after a body the backend framed wrongly).
    ThenStray,
    /// Close the connection when the next request arrives, without answering it.
    ThenEof,
    /// Reset the connection when the next request arrives, without answering it.
    ThenReset,
}

/// The answer to a request that follows [`After::ThenStray`].
const STRAY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray";

fn answer_for(method: &str, target: &str) -> (Vec<u8>, After) {
    let keep = After::KeepOpen;
    // `?s=NNN` picks the status of the `/cl-*` answers.
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let status = query.strip_prefix("s=").unwrap_or("200");
    let cl = |fields: &str| format!("HTTP/1.1 {status} X\r\n{fields}\r\n\r\n").into_bytes();
    let (bytes, after): (Vec<u8>, After) = match path {
        "/cl-two" => (cl("Content-Length: 5\r\nContent-Length: 7"), keep),
        "/cl-abc" => (cl("Content-Length: abc"), keep),
        "/cl-list" => (cl("Content-Length: 5, 7"), keep),
        "/cl-same" => (cl("Content-Length: 5, 5"), keep),
        "/te-http10" => (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            After::ThenStray,
        ),
        "/then-eof" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            After::ThenEof,
        ),
        "/then-reset" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            After::ThenReset,
        ),
        "/len" if method == "HEAD" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(),
            keep,
        ),
        "/len" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            keep,
        ),
        "/chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n\
              5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n"
                .to_vec(),
            keep,
        ),
        "/close" => (b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec(), After::Close),
        "/continue" => (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
            keep,
        ),
        "/nocontent" => (b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), keep),
        "/reason" => (
            b"HTTP/1.1 599 Network Read Timeout\r\nContent-Length: 0\r\n\r\n".to_vec(),
            keep,
        ),
        "/garbage" => (b"SMTP ready\r\n\r\n".to_vec(), keep),
        "/conflict" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            keep,
        ),
        "/bighead" => {
            let mut v = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
            v.extend(std::iter::repeat_n(b'a', 70 * 1024));
            v.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            (v, keep)
        }
        "/truncated" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
            After::Close,
        ),
        "/stall" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial".to_vec(),
            keep,
        ),
        "/reject" => (
            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n".to_vec(),
            After::Close,
        ),
        "/idle-close" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            After::Close,
        ),
        _ => (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            keep,
        ),
    };
    (bytes, after)
}

/// Read one request (head, then a content-length or chunked body) from `s`.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, String, String)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = req.parse(buf) {
            let method = req.method.unwrap().to_string();
            let path = req.path.unwrap().to_string();
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            let len: Option<usize> = header("content-length").map(|v| v.parse().unwrap());
            let chunked = header("transfer-encoding").is_some();
            // `/reject` answers before reading the body (as a 413 or 401 would).
            let early = path == "/reject";
            loop {
                let have = buf.len() - n;
                let done = early
                    || match (len, chunked) {
                        (_, true) => buf[n..].ends_with(b"0\r\n\r\n"),
                        (Some(l), false) => have >= l,
                        (None, false) => true,
                    };
                if done {
                    break;
                }
                let mut tmp = [0u8; 4096];
                let r = s.read(&mut tmp).await.ok()?;
                if r == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..r]);
            }
            let text = String::from_utf8_lossy(buf).into_owned();
            buf.clear();
            return Some((method, path, text));
        }
        let mut tmp = [0u8; 4096];
        let r = s.read(&mut tmp).await.ok()?;
        if r == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..r]);
    }
}

impl RawBackend {
    async fn start() -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Notify::new());
        let (c, r, cl) = (connections.clone(), requests.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                c.fetch_add(1, Relaxed);
                let (r, cl) = (r.clone(), cl.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut pending = After::KeepOpen;
                    while let Some((method, path, text)) = read_request(&mut s, &mut buf).await {
                        r.lock().unwrap().push(text);
                        let (bytes, after) = match std::mem::replace(&mut pending, After::KeepOpen)
                        {
                            After::ThenStray => (STRAY.to_vec(), After::KeepOpen),
                            After::ThenEof => break,
                            After::ThenReset => {
                                // SO_LINGER 0: closing sends a reset, not a FIN (and
                                // does not block, which is why tokio deprecates the call).
                                #[allow(deprecated)]
                                let _ = s.set_linger(Some(std::time::Duration::ZERO));
                                break;
                            }
                            _ => answer_for(&method, &path),
                        };
                        if s.write_all(&bytes).await.is_err() || after == After::Close {
                            break;
                        }
                        pending = after;
                    }
                    drop(s);
                    cl.notify_one();
                });
            }
        });
        RawBackend {
            addr,
            connections,
            requests,
            closed,
        }
    }

    fn last_request(&self) -> String {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

/// A proxy config over `b` alone, with `server_extra` in `[server]` and
/// `upstream_extra` after `[upstream.app]`.
fn proxy_config(b: &RawBackend, server_extra: &str, upstream_extra: &str) -> Config {
    config_over(server_extra, &[b.addr], upstream_extra, "")
}

const NO_RETRY: &str = "[upstream.app.retry]\nattempts = 0\n";

#[tokio::test]
async fn response_framings_reach_the_client_intact_over_one_kept_connection() {
    let b = RawBackend::start().await;
    let s = start(proxy_config(&b, "", "")).await;
    let c = client();
    let p = s.proxy_addr();
    for (method, path, status, body) in [
        ("GET", "/len", 200, "hello"),
        ("GET", "/chunked", 200, "hello world"),
        ("GET", "/continue", 200, "ok"),
        ("GET", "/nocontent", 204, ""),
        ("HEAD", "/len", 200, ""),
        ("GET", "/len", 200, "hello"),
    ] {
        let a = send(&c, p, method, path, &[], "").await;
        assert_eq!(
            (a.status.as_u16(), a.body.as_str()),
            (status, body),
            "{method} {path}"
        );
        if path == "/len" {
            assert_eq!(a.headers["content-length"], "5", "{method} {path}");
        }
        if path == "/chunked" {
            assert!(
                !a.headers.contains_key("trailer"),
                "hop-by-hop Trailer stripped"
            );
        }
    }
    assert_eq!(
        b.connections.load(Relaxed),
        1,
        "length, chunked, 1xx-preceded, 204 and HEAD answers all leave the connection reusable"
    );
    let a = send(&c, p, "GET", "/close", &[], "").await;
    assert_eq!((a.status.as_u16(), a.body.as_str()), (200, "until close"));
    assert_eq!(send(&c, p, "GET", "/len", &[], "").await.body, "hello");
    assert_eq!(
        b.connections.load(Relaxed),
        2,
        "a body delimited by the close is not followed by reuse"
    );
}

#[tokio::test]
async fn invalid_backend_answers_are_502_and_the_proxy_keeps_serving() {
    let b = RawBackend::start().await;
    let s = start(proxy_config(&b, "", NO_RETRY)).await;
    let c = client();
    let p = s.proxy_addr();
    for path in ["/garbage", "/conflict", "/bighead"] {
        let a = send(&c, p, "GET", path, &[], "").await;
        assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{path}");
    }
    // A body cut short: the head went out already (or is still buffered), so the
    // client's connection is closed before a complete response, never left hanging.
    let (out, _) = until_closed(
        p,
        b"GET /truncated HTTP/1.1\r\nHost: t\r\n\r\n",
        "the proxy closes the client connection of a truncated body",
    )
    .await;
    let body_len = out.find("\r\n\r\n").map_or(0, |i| out.len() - i - 4);
    assert!(
        out.is_empty() || out.starts_with("HTTP/1.1 200 OK"),
        "{out}"
    );
    assert!(body_len < 100, "{out}");
    assert_eq!(send(&c, p, "GET", "/len", &[], "").await.body, "hello");
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_is_not_used() {
    let b = RawBackend::start().await;
    let s = start(proxy_config(&b, "", NO_RETRY)).await;
    let c = client();
    let closed = b.closed.notified();
    // Answered with keep-alive, then the backend closes it while it sits in the pool.
    assert_eq!(
        send(&c, s.proxy_addr(), "GET", "/idle-close", &[], "")
            .await
            .body,
        "ok"
    );
    closed.await;
    let a = send(&c, s.proxy_addr(), "GET", "/len", &[], "").await;
    assert_eq!((a.status.as_u16(), a.body.as_str()), (200, "hello"));
    assert_eq!(b.connections.load(Relaxed), 2);
    assert_eq!(
        s.proxy().metrics().retries.load(Relaxed),
        0,
        "not saved by a retry"
    );
}

#[tokio::test]
async fn request_bodies_are_framed_by_what_is_actually_sent() {
    let b = RawBackend::start().await;
    let s = start(proxy_config(&b, "", "")).await;
    let c = client();
    let p = s.proxy_addr();

    let a = send(&c, p, "POST", "/len", &[], "abc").await;
    assert_eq!(a.status, 200);
    let req = b.last_request();
    assert!(req.contains("content-length: 3\r\n"), "{req}");
    assert!(req.ends_with("\r\n\r\nabc"), "{req}");

    // An empty POST still says its length; a GET says nothing.
    send(&c, p, "POST", "/len", &[], "").await;
    assert!(b.last_request().contains("content-length: 0\r\n"));
    send(&c, p, "GET", "/len", &[], "").await;
    let req = b.last_request();
    assert!(
        !req.contains("content-length") && !req.contains("transfer-encoding"),
        "{req}"
    );

    // A chunked upload of unknown length streams on chunked; the client's own
    // chunk boundaries and its Transfer-Encoding header are not copied.
    let (out, end) = until_closed(
        p,
        b"POST /len HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        "Connection: close is honoured",
    )
    .await;
    end.unwrap();
    assert!(out.ends_with("hello"), "{out}");
    let req = b.last_request();
    assert!(req.contains("transfer-encoding: chunked\r\n"), "{req}");
    let body = &req[req.find("\r\n\r\n").unwrap() + 4..];
    let mut decoded = String::new();
    let mut rest = body;
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size, 16).unwrap();
        if n == 0 {
            break;
        }
        decoded.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    assert_eq!(decoded, "abcde");
}

#[tokio::test]
async fn an_answer_before_the_upload_ends_reaches_the_client() {
    let b = RawBackend::start().await;
    let s = start(proxy_config(&b, "", "")).await;
    let m = s.proxy().metrics();
    // 8 MiB POSTs (streamed); the backend answers 413 after the head and closes
    // without reading the body. What the proxy answered is read from its metrics:
    // the client's own view depends on whether its socket was reset first.
    for i in 1..=3u64 {
        let mut raw = TcpStream::connect(s.proxy_addr()).await.unwrap();
        let uploader = tokio::spawn(async move {
            let head = format!(
                "POST /reject HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                8 << 20
            );
            let _ = raw.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..128 {
                if raw.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            raw
        });
        wait_until(std::time::Duration::from_secs(10), "an answer", || async {
            m.responses_in_class(4) + m.responses_in_class(5) >= i
        })
        .await;
        uploader.abort();
    }
    assert_eq!(
        (m.responses_in_class(4), m.responses_in_class(5)),
        (3, 0),
        "the backend's own 413s, not 502s"
    );
    assert_eq!(m.retries.load(Relaxed), 0);
}

#[tokio::test]
async fn a_backend_pausing_mid_body_past_request_timeout_is_cut_off() {
    let b = RawBackend::start().await;
    let s = start(proxy_config(&b, "request_timeout = \"300ms\"", "")).await;
    // The backend sends 7 of 100 body bytes and then nothing, keeping the connection open.
    let started = std::time::Instant::now();
    let (out, _) = until_closed(
        s.proxy_addr(),
        b"GET /stall HTTP/1.1\r\nHost: t\r\n\r\n",
        "the client connection is closed, not left hanging",
    )
    .await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "not before the timeout"
    );
    assert!(
        !out.contains("partial") || out.ends_with("partial"),
        "{out}"
    );
    // The backend is not left counted as busy.
    let st = status(s.admin_addr()).await;
    assert_eq!(
        st["upstreams"]["app"]["backends"][0]["in_flight"], 0,
        "{st}"
    );
}

#[tokio::test]
async fn a_backend_with_faulty_framing_is_read_then_not_reused() {
    let b = RawBackend::start().await;
    let s = start(proxy_config(&b, "", NO_RETRY)).await;
    let c = client();
    let p = s.proxy_addr();
    // HTTP/1.0 + keep-alive + chunked (RFC 9112 §6.1: faulty framing). The body is
    // read as chunked; the backend's later bytes must never reach another request.
    let a = send(&c, p, "GET", "/te-http10", &[], "").await;
    assert_eq!((a.status.as_u16(), a.body.as_str()), (200, "hello"));
    let a = send(&c, p, "GET", "/len", &[], "").await;
    assert_eq!(
        (a.status.as_u16(), a.body.as_str()),
        (200, "hello"),
        "the next request got the backend's stray bytes"
    );
    assert_eq!(
        b.connections.load(Relaxed),
        2,
        "closed after the faulty answer"
    );
}

#[tokio::test]
async fn content_length_of_answers_without_a_body_is_validated() {
    let b = RawBackend::start().await;
    // Nine 502s in a row: no passive ejection, so each is the backend's answer judged.
    let no_eject = format!("{NO_RETRY}[upstream.app.passive]\nmax_ejection_percent = 0\n");
    let s = start(proxy_config(&b, "", &no_eject)).await;
    let p = s.proxy_addr();
    for (method, query) in [("HEAD", ""), ("GET", "?s=304"), ("GET", "?s=204")] {
        for path in ["/cl-two", "/cl-abc", "/cl-list"] {
            let req =
                format!("{method} {path}{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let (out, _) = until_closed(p, req.as_bytes(), "the proxy answers and closes").await;
            assert!(
                out.starts_with("HTTP/1.1 502 "),
                "{method} {path}{query}: an invalid Content-Length is a 502, never relayed \
                 nor a silent close: {out:?}"
            );
        }
    }
    // Equal values: one plain value reaches the client.
    let (out, _) = until_closed(
        p,
        b"HEAD /cl-same HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "the proxy answers and closes",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("\r\ncontent-length: 5\r\n"),
        "{out}"
    );
}

/// `failures` of backend `b` according to /status.
async fn failures(admin: SocketAddr, b: &RawBackend) -> u64 {
    backend_status(admin, b.addr).await.expect("listed")["failures"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_pooled_connection_closed_unanswered_is_resent_once_for_idempotent_requests() {
    // RFC 9112 §9.3.1. The backend takes the next request on the pooled connection
    // and closes it (FIN, then a reset) without a byte of answer; no other backend,
    // no retries configured.
    for first in ["/then-eof", "/then-reset"] {
        let b = RawBackend::start().await;
        let s = start(proxy_config(&b, "", NO_RETRY)).await;
        let c = client();
        let p = s.proxy_addr();
        for (method, body) in [("GET", ""), ("PUT", "abc")] {
            assert_eq!(send(&c, p, "GET", first, &[], "").await.body, "ok");
            let a = send(&c, p, method, "/len", &[], body).await;
            assert_eq!(
                (a.status.as_u16(), a.body.as_str()),
                (200, "hello"),
                "{first}: {method} sent again on a new connection"
            );
            if method == "PUT" {
                assert!(b.last_request().ends_with("\r\n\r\nabc"), "body replayed");
            }
        }
        assert_eq!(b.connections.load(Relaxed), 3, "{first}");
        assert_eq!(s.proxy().metrics().retries.load(Relaxed), 0, "not a retry");
        assert_eq!(failures(s.admin_addr(), &b).await, 0, "no failure counted");

        // A POST is not idempotent: never sent twice.
        assert_eq!(send(&c, p, "GET", first, &[], "").await.body, "ok");
        let posts_before = b.requests.lock().unwrap().len();
        let a = send(&c, p, "POST", "/len", &[], "abc").await;
        assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{first}");
        assert_eq!(
            b.requests.lock().unwrap().len(),
            posts_before + 1,
            "sent once"
        );
        assert_eq!(failures(s.admin_addr(), &b).await, 1);
    }
}

/// A backend's reason phrase reaches the client where it is not the standard one
/// (a code with none, as 599), as nginx passes it; hyper would write none.
#[tokio::test]
async fn a_backends_own_reason_phrase_is_passed_on() {
    let b = RawBackend::start().await;
    let s = start(proxy_config(&b, "", "")).await;
    let out = raw(
        s.proxy_addr(),
        b"GET /reason HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 599 Network Read Timeout\r\n"),
        "{out}"
    );
}
