//! HTTP/2 from clients: over TLS by ALPN and h2c with prior knowledge, to HTTP/1.1
//! backends; failover and retries as for HTTP/1.1; the limits the proxy advertises;
//! rapid reset bounded; GOAWAY on shutdown. Raw frames where a client library
//! would not misbehave on purpose.
use crate::common::*;
use crate::tls::{answer, h1_over, request, tls_config_text, tls_connect, tls_entry, Pki};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ringleader_proxy::{Config, Server};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP/2 client connection over `io`.
pub async fn h2_over<I>(io: I) -> hyper::client::conn::http2::SendRequest<Full<Bytes>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

async fn bind_text(text: &str) -> Server {
    let cfg = Config::from_toml_str(text, "h2.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    Server::bind(cfg).await.unwrap()
}

#[tokio::test]
async fn h2_over_tls_by_alpn_reaches_an_http1_backend() {
    let pki = Pki::new();
    let leaf = pki.leaf("site", &["a.test"]);
    let b = backends(1).await;
    let s = bind_text(&tls_config_text("", &[b[0].addr()], &tls_entry(&leaf, &[]))).await;
    let tls = tls_connect(
        s.tls_addr().unwrap(),
        "a.test",
        pki.client(&[b"h2", b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "ALPN picks h2"
    );
    let mut c = h2_over(tls).await;
    let (status, body) = answer(
        c.send_request(request("GET", "https://a.test/echo-headers", "", ""))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    // :authority became Host; the proxy's own forwarding headers are there.
    assert_eq!(seen["host"], "a.test", "{seen}");
    assert_eq!(seen["x-forwarded-proto"], "https", "{seen}");
    assert_eq!(seen["x-forwarded-host"], "a.test", "{seen}");
    // A body without Content-Length (HTTP/2 frames it) reaches the backend whole.
    let (status, body) = answer(
        c.send_request(request("POST", "https://a.test/echo", "", "h2 body"))
            .await,
    )
    .await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "h2 body"));
    assert_eq!(b[0].posts(), 1);
    // Several streams at once on the one connection.
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut c = c.clone();
        calls.push(tokio::spawn(async move {
            answer(
                c.send_request(request("GET", "https://a.test/", "", ""))
                    .await,
            )
            .await
        }));
    }
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (200, "hello from b0\n"));
    }
}

#[tokio::test]
async fn h2c_prior_knowledge_and_http1_share_the_plain_listener() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let tcp = TcpStream::connect(s.proxy_addr()).await.unwrap();
    let mut c = h2_over(tcp).await;
    let uri = format!("http://{}/echo-headers", s.proxy_addr());
    let (status, body) = answer(c.send_request(request("GET", &uri, "", "")).await).await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["host"], s.proxy_addr().to_string(), "{seen}");
    assert_eq!(seen["x-forwarded-proto"], "http", "{seen}");
    // HTTP/1.1 on the same listener.
    assert_eq!(get(&client(), s.proxy_addr(), "/").await.status, 200);

    // With http2.cleartext = false the listener speaks HTTP/1.1 only.
    let s = start(config(
        "[server.http2]\ncleartext = false",
        &[(&b[0], 1)],
        "",
        "",
    ))
    .await;
    let tcp = TcpStream::connect(s.proxy_addr()).await.unwrap();
    let (mut c, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let uri = format!("http://{}/", s.proxy_addr());
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        c.send_request(request("GET", &uri, "", "")),
    )
    .await
    .expect("answered or refused");
    assert!(r.is_err(), "h2c is off: {r:?}");
    assert_eq!(get(&client(), s.proxy_addr(), "/").await.status, 200);
}

#[tokio::test]
async fn h2_clients_get_failover_and_retries_as_http1_clients_do() {
    let b = backends(2).await;
    // No ejection and no health checks: the dead backend stays in rotation, so every
    // other request picks it and must be retried elsewhere.
    let s = start(config(
        "",
        &[(&b[0], 1), (&b[1], 1)],
        "strategy = \"round_robin\"",
        "[upstream.app.passive]\nmax_ejection_percent = 0\n",
    ))
    .await;
    b[1].kill();
    until_refused(b[1].addr()).await;
    let tcp = TcpStream::connect(s.proxy_addr()).await.unwrap();
    let mut c = h2_over(tcp).await;
    let uri = format!("http://{}/", s.proxy_addr());
    for _ in 0..6 {
        let (status, body) = answer(c.send_request(request("GET", &uri, "", "")).await).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "hello from b0\n"));
    }
    // A POST is not idempotent: the one that meets the dead backend is a 502.
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(
            answer(c.send_request(request("POST", &uri, "", "payload")).await)
                .await
                .0
                .as_u16(),
        );
    }
    codes.sort_unstable();
    assert_eq!(codes, vec![200, 200, 502, 502]);
    assert_eq!(b[0].posts(), 2);
}

/// Raw HTTP/2 frames on a TCP connection (RFC 9113 §4.1: 9-byte header, payload).
struct RawH2 {
    s: TcpStream,
    buf: Vec<u8>,
}

/// A frame read: type, flags, stream, payload.
type Frame = (u8, u8, u32, Vec<u8>);

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HEADERS for `GET /` at `authority`, END_STREAM | END_HEADERS. HPACK (RFC 7541):
/// static-table indices 2 (:method GET), 6 (:scheme http), 4 (:path /), then
/// :authority (index 1) as a literal without indexing.
fn get_headers(stream: u32, authority: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x01, authority.len() as u8];
    block.extend_from_slice(authority.as_bytes());
    frame(HEADERS, 0x1 | 0x4, stream, &block)
}

/// HEADERS for `method` `path` at `authority`, END_STREAM | END_HEADERS: each field a
/// literal without indexing on its static-table name (RFC 7541 §6.2.2: indices 2
/// :method, 4 :path, 1 :authority), :scheme http indexed (6). Values under 128 bytes.
fn request_headers(stream: u32, method: &str, path: &str, authority: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (index, value) in [(0x02, method), (0x04, path), (0x01, authority)] {
        block.extend([index, value.len() as u8]);
        block.extend_from_slice(value.as_bytes());
    }
    block.push(0x86);
    frame(HEADERS, 0x1 | 0x4, stream, &block)
}

impl RawH2 {
    /// Connect and send the preface and an empty SETTINGS.
    async fn connect(addr: SocketAddr) -> RawH2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        s.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
        RawH2 { s, buf: Vec::new() }
    }

    /// The next frame, or `None` when the connection ended (5 s at most).
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let f: Vec<u8> = self.buf.drain(..9 + len).collect();
                    let stream = u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff;
                    if f[3] == PING && f[4] & 1 == 0 {
                        // Answered as a live client does (graceful shutdown pings).
                        let _ = self.s.write_all(&frame(PING, 1, 0, &f[9..])).await;
                    }
                    return Some((f[3], f[4], stream, f[9..].to_vec()));
                }
            }
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("no frame within 5 s"),
            }
        }
    }

    /// Frames until a GOAWAY (its error code) or the end of the connection.
    async fn until_goaway(&mut self) -> Option<u32> {
        while let Some((kind, _, _, payload)) = self.next().await {
            if kind == GOAWAY {
                return Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
        }
        None
    }
}

#[tokio::test]
async fn the_proxy_advertises_its_stream_and_header_limits() {
    let b = backends(1).await;
    let s = start(config(
        "max_header_bytes = 4096\n[server.http2]\nmax_concurrent_streams = 7",
        &[(&b[0], 1)],
        "",
        "",
    ))
    .await;
    let mut h2 = RawH2::connect(s.proxy_addr()).await;
    let (kind, flags, stream, payload) = h2.next().await.expect("the server's SETTINGS");
    assert_eq!((kind, flags & 1, stream), (SETTINGS, 0, 0));
    let settings: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    // RFC 9113 §6.5.2: 0x3 MAX_CONCURRENT_STREAMS, 0x6 MAX_HEADER_LIST_SIZE.
    assert!(settings.contains(&(0x3, 7)), "{settings:?}");
    // Twice max_header_bytes: the proxy's own check of the head decides (431 or a
    // gRPC status), by the same measure as for HTTP/1.1.
    assert!(settings.contains(&(0x6, 8192)), "{settings:?}");
}

#[tokio::test]
async fn rapid_reset_gets_goaway_and_costs_no_more_than_the_requests_sent() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let mut h2 = RawH2::connect(s.proxy_addr()).await;
    let authority = s.proxy_addr().to_string();
    // 1,000 streams opened and cancelled at once (CVE-2023-44487), in one write.
    let sent = 1000u32;
    let mut burst = Vec::new();
    for i in 0..sent {
        let id = 2 * i + 1;
        burst.extend(get_headers(id, &authority));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes())); // CANCEL
    }
    // The server may close while the burst is still being written.
    let _ = h2.s.write_all(&burst).await;
    let code = h2.until_goaway().await;
    // 0xb ENHANCE_YOUR_CALM (RFC 9113 §7).
    assert_eq!(
        code,
        Some(0xb),
        "the abusive connection gets GOAWAY ENHANCE_YOUR_CALM"
    );
    let reached = b[0].requests();
    println!("rapid reset: {reached} of {sent} opened-and-cancelled streams reached the backend");
    assert!(
        reached <= 100,
        "{reached} of {sent} cancelled requests reached the backend"
    );
    // The proxy still serves everyone else.
    assert_eq!(get(&client(), s.proxy_addr(), "/").await.status, 200);
}

#[tokio::test]
async fn shutdown_sends_goaway_and_lets_open_streams_finish() {
    let b = backends(1).await;
    let s = start(config("shutdown_grace = \"5s\"", &[(&b[0], 1)], "", "")).await;
    let addr = s.proxy_addr();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut c = h2_over(tcp).await;
    // A slow request in flight when shutdown starts finishes.
    let uri = format!("http://{addr}/slow?ms=300");
    let slow = {
        let mut c = c.clone();
        let req = request("GET", &uri, "", "");
        tokio::spawn(async move { answer(c.send_request(req).await).await })
    };
    wait_until(
        Duration::from_secs(5),
        "the slow request reaches the backend",
        || async { b[0].requests() >= 1 },
    )
    .await;
    let mut raw = RawH2::connect(addr).await;
    // Past the preface: the server's SETTINGS came, the connection is HTTP/2.
    assert_eq!(raw.next().await.map(|f| f.0), Some(SETTINGS));
    let down = tokio::spawn(s.shutdown());
    assert_eq!(
        raw.until_goaway().await,
        Some(0),
        "GOAWAY NO_ERROR on shutdown"
    );
    let (status, _) = slow.await.unwrap();
    assert_eq!(status, 200);
    // Then the connection ends (a second GOAWAY may come first, RFC 9113 §6.8).
    while raw.next().await.is_some() {}
    // Every connection closed: shutdown returns without waiting out the grace.
    let started = std::time::Instant::now();
    down.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let after = c
        .send_request(request("GET", &format!("http://{addr}/"), "", ""))
        .await;
    assert!(after.is_err(), "no new stream after GOAWAY");
}

#[tokio::test]
async fn an_h1_client_on_tls_still_gets_http1() {
    let pki = Pki::new();
    let leaf = pki.leaf("site", &["a.test"]);
    let b = backends(1).await;
    let s = bind_text(&tls_config_text("", &[b[0].addr()], &tls_entry(&leaf, &[]))).await;
    // A client offering no ALPN at all speaks HTTP/1.1.
    let tls = tls_connect(s.tls_addr().unwrap(), "a.test", pki.client(&[]))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let mut c = h1_over(tls).await;
    let (status, _) = answer(c.send_request(request("GET", "/", "a.test", "")).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_connection_without_a_request_is_closed_after_the_header_read_timeout() {
    let pki = Pki::new();
    let leaf = pki.leaf("site", &["a.test"]);
    let b = backends(1).await;
    let s = bind_text(&tls_config_text(
        "header_read_timeout = \"200ms\"",
        &[b[0].addr()],
        &tls_entry(&leaf, &[]),
    ))
    .await;
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend(frame(SETTINGS, 0, 0, &[]));
    // Nothing at all, too few bytes to tell the protocol, an HTTP/2 preface with no
    // request after it, and a TLS listener given no ClientHello.
    for (addr, bytes, what) in [
        (s.proxy_addr(), &b""[..], "silent"),
        (s.proxy_addr(), &b"PRI"[..], "3 bytes"),
        (s.proxy_addr(), &preface[..], "h2 preface only"),
        (s.tls_addr().unwrap(), &b""[..], "TLS, silent"),
    ] {
        let r = raw_exchange(addr, bytes).await;
        assert!(
            r.end.is_some() && r.took < Duration::from_secs(3),
            "{what}: still open after 3 s: {r:?}"
        );
        assert!(
            r.took >= Duration::from_millis(150),
            "{what}: closed early: {r:?}"
        );
    }
}

#[tokio::test]
async fn an_idle_h2_connection_gets_goaway_after_the_header_read_timeout() {
    let b = backends(1).await;
    let s = start(config(
        "header_read_timeout = \"200ms\"",
        &[(&b[0], 1)],
        "",
        "",
    ))
    .await;
    let mut h2 = RawH2::connect(s.proxy_addr()).await;
    let started = std::time::Instant::now();
    h2.s.write_all(&get_headers(1, &s.proxy_addr().to_string()))
        .await
        .unwrap();
    // The answer, then nothing more from the client: GOAWAY NO_ERROR, then the end.
    let mut answered = false;
    let code = loop {
        match h2.next().await {
            Some((HEADERS, _, 1, _)) => answered = true,
            Some((GOAWAY, _, _, p)) => break Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]])),
            Some(_) => {}
            None => break None,
        }
    };
    assert!(answered, "the request was answered first");
    assert_eq!(code, Some(0));
    while h2.next().await.is_some() {}
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(b[0].requests(), 1);
}

/// Connect to the plain listener and write `first`; return once the proxy has taken
/// the connection up (its first read, on this current-thread runtime, sees just
/// `first`), so what follows reaches it in a read of its own.
async fn connect_and_write_first(s: &Server, first: &[u8]) -> TcpStream {
    let accepted = "ringleader_connections_accepted_total ";
    let before = metric(s.admin_addr(), accepted).await;
    let mut tcp = TcpStream::connect(s.proxy_addr()).await.unwrap();
    tcp.write_all(first).await.unwrap();
    wait_until(
        Duration::from_secs(5),
        "the connection taken up",
        || async { metric(s.admin_addr(), accepted).await > before },
    )
    .await;
    tcp
}

#[tokio::test]
async fn first_bytes_split_across_reads_reach_http1_and_h2c_whole() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let authority = s.proxy_addr().to_string();

    // HTTP/1.1 whose first read holds two bytes: told at once, and the bytes kept.
    let mut tcp = connect_and_write_first(&s, b"GE").await;
    tcp.write_all(
        format!("T /echo-headers HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut out))
        .await
        .expect("answered and closed")
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    assert!(out.contains(r#""x-forwarded-proto":"http""#), "{out}");

    // The HTTP/2 preface in two writes: the proxy waits for the rest, then h2c.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let tcp = connect_and_write_first(&s, &preface[..10]).await;
    let mut h2 = RawH2 {
        s: tcp,
        buf: Vec::new(),
    };
    let mut rest = preface[10..].to_vec();
    rest.extend(frame(SETTINGS, 0, 0, &[]));
    rest.extend(get_headers(1, &authority));
    h2.s.write_all(&rest).await.unwrap();
    let status = loop {
        match h2.next().await {
            // HPACK static index 8 is `:status 200` (RFC 7541 Appendix A).
            Some((HEADERS, _, 1, p)) => break p.first().copied(),
            Some((GOAWAY, ..)) | None => panic!("no answer on stream 1"),
            Some(_) => {}
        }
    };
    assert_eq!(status, Some(0x88), "status 200");
    assert_eq!(b[0].requests(), 2);
}

/// Whether an h2c client with prior knowledge gets an answer from `addr` (or is
/// refused: the connection ends).
async fn h2c_answers(addr: SocketAddr) -> bool {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let Ok((mut c, conn)) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await
    else {
        return false;
    };
    tokio::spawn(conn);
    let uri = format!("http://{addr}/");
    tokio::time::timeout(
        Duration::from_secs(10),
        c.send_request(request("GET", &uri, "", "")),
    )
    .await
    .expect("answered or refused")
    .is_ok()
}

#[tokio::test]
async fn a_reload_of_the_http2_settings_applies_to_new_connections() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    assert!(h2c_answers(s.proxy_addr()).await);
    let h2c = |on: bool| {
        config(
            &format!("[server.http2]\ncleartext = {on}"),
            &[(&b[0], 1)],
            "",
            "",
        )
    };
    s.proxy().reload(h2c(false)).unwrap();
    assert!(!h2c_answers(s.proxy_addr()).await, "h2c turned off");
    assert_eq!(get(&client(), s.proxy_addr(), "/").await.status, 200);
    s.proxy().reload(h2c(true)).unwrap();
    assert!(h2c_answers(s.proxy_addr()).await, "h2c back on");
}

/// RFC 9110 §9.3.2: an answer to HEAD has no content, also when the proxy makes it
/// (here a 502: the backend refuses connections). hyper's HTTP/1.1 server leaves a
/// body out by itself, its HTTP/2 server does not: the stream must end with HEADERS.
#[tokio::test]
async fn the_proxys_own_answer_to_head_has_no_content_over_h2_and_http1() {
    let dead = closed_addr();
    let s = start(config_over("", &[dead], "", "")).await;
    let mut h2 = RawH2::connect(s.proxy_addr()).await;
    let authority = s.proxy_addr().to_string();
    h2.s.write_all(&request_headers(1, "HEAD", "/", &authority))
        .await
        .unwrap();
    let mut on_stream = Vec::new();
    loop {
        let (kind, flags, stream, payload) = h2.next().await.expect("an answer on stream 1");
        if stream != 1 {
            continue;
        }
        on_stream.push((kind, flags, payload.len()));
        if flags & 0x1 != 0 || kind == RST_STREAM {
            break;
        }
    }
    assert_eq!(
        on_stream.iter().map(|f| f.0).collect::<Vec<_>>(),
        [HEADERS],
        "one HEADERS frame with END_STREAM, no DATA: {on_stream:?}"
    );

    // HTTP/1.1: the same fields as to GET, Content-Length included, and no body.
    let get = raw(
        s.proxy_addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let head = raw(
        s.proxy_addr(),
        b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let length = |t: &str| {
        t.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
    };
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert_eq!(length(&head), length(&get), "{head}\n{get}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head:?}");
}

/// RFC 9113 §8.2.3: an HTTP/2 client's cookie fields reach an HTTP/1.1 backend
/// joined by "; " in one field (the demo backend would join two with ", ").
#[tokio::test]
async fn an_h2_requests_cookie_fields_reach_an_http1_backend_as_one() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let tcp = TcpStream::connect(s.proxy_addr()).await.unwrap();
    let mut c = h2_over(tcp).await;
    let mut req = request(
        "GET",
        &format!("http://{}/echo-headers", s.proxy_addr()),
        "",
        "",
    );
    for v in ["a=1", "b=2", "c=3"] {
        req.headers_mut()
            .append("cookie", http::HeaderValue::from_static(v));
    }
    let (status, body) = answer(c.send_request(req).await).await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["cookie"], "a=1; b=2; c=3", "{seen}");
}

/// Rapid reset paced so that the proxy takes up every stream (each reset once its
/// request reached the backend, where hyper's bound on resets of streams not yet
/// taken up never fires): once more than half of 100 streams were reset before
/// their answers, the connection gets GOAWAY, and the proxy serves everyone else.
#[tokio::test]
async fn paced_rapid_reset_gets_goaway_by_the_hundredth_stream() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let mut h2 = RawH2::connect(s.proxy_addr()).await;
    let authority = s.proxy_addr().to_string();
    let path = "/slow?ms=60000";
    let backend = &b[0];
    for i in 0..100u32 {
        let id = 2 * i + 1;
        h2.s.write_all(&request_headers(id, "GET", path, &authority))
            .await
            .unwrap();
        let want = u64::from(i) + 1;
        wait_until(
            Duration::from_secs(10),
            "the request reaches the backend",
            || async move { backend.requests() >= want },
        )
        .await;
        h2.s.write_all(&frame(RST_STREAM, 0, id, &8u32.to_be_bytes()))
            .await
            .unwrap();
    }
    assert_eq!(h2.until_goaway().await, Some(0), "a graceful GOAWAY");
    assert_eq!(b[0].requests(), 100);
    assert_eq!(get(&client(), s.proxy_addr(), "/").await.status, 200);
}

/// RFC 9113 §6.8: a connection that opens no stream within the header read timeout
/// is closed with a GOAWAY first (a bare close reads as a failure to gRPC clients
/// that connect ahead of their first call).
#[tokio::test]
async fn a_connection_without_a_stream_gets_goaway_before_it_is_closed() {
    let b = backends(1).await;
    let s = start(config(
        "header_read_timeout = \"200ms\"",
        &[(&b[0], 1)],
        "",
        "",
    ))
    .await;
    let mut h2 = RawH2::connect(s.proxy_addr()).await;
    assert_eq!(h2.until_goaway().await, Some(0), "GOAWAY NO_ERROR");
}
