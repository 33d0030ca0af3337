//! HTTP/1.1 upgrades through the proxy: a real WebSocket client and echo backend (tungstenite)
//! exchange messages both ways and close; a killed backend or an idle tunnel closes the client;
//! an open tunnel is in flight; an unasked 101 is a 502; an upgrade is never sent twice.
use crate::common::*;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

/// Blocking reads give up after this (a test fails rather than hangs).
const READ_LIMIT: Duration = Duration::from_secs(5);

/// A WebSocket echo backend on 127.0.0.1:0 (tungstenite on threads of its own): it
/// greets each client with `welcome`, echoes every text and binary message, and
/// answers a close. [`WsEcho::kill`] closes every socket it accepted, as a killed process would.
struct WsEcho {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    handshakes: Arc<AtomicUsize>,
}

impl WsEcho {
    fn start() -> WsEcho {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let (acc, hs) = (accepted.clone(), handshakes.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                acc.lock().unwrap().push(s.try_clone().unwrap());
                let hs = hs.clone();
                std::thread::spawn(move || {
                    let Ok(mut ws) = tungstenite::accept(s) else {
                        return;
                    };
                    hs.fetch_add(1, Relaxed);
                    let _ = echo(&mut ws);
                    // The socket is shared with `kill`: closing the WebSocket's
                    // copy alone would not close it.
                    let _ = ws.get_ref().shutdown(std::net::Shutdown::Both);
                });
            }
        });
        WsEcho {
            addr,
            accepted,
            handshakes,
        }
    }

    /// Close every connection it accepted (both directions), as a killed process does.
    fn kill(&self) {
        for s in self.accepted.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Greet, then echo text and binary messages until the connection ends.
fn echo(ws: &mut Ws) -> tungstenite::Result<()> {
    ws.send(Message::text("welcome"))?;
    loop {
        // tungstenite answers a close (and pings) itself; the next read ends.
        if let m @ (Message::Text(_) | Message::Binary(_)) = ws.read()? {
            ws.send(m)?;
        }
    }
}

type Ws = WebSocket<TcpStream>;

/// Open a WebSocket to `path` through the proxy at `proxy` (a real tungstenite client)
/// and read the backend's greeting.
async fn ws_connect(
    proxy: SocketAddr,
    path: &str,
) -> (Ws, tungstenite::handshake::client::Response) {
    let url = format!("ws://{proxy}{path}");
    tokio::task::spawn_blocking(move || {
        let s = TcpStream::connect(proxy).unwrap();
        s.set_read_timeout(Some(READ_LIMIT)).unwrap();
        let (mut ws, resp) = tungstenite::client(url, s).expect("websocket handshake");
        assert_eq!(ws.read().unwrap(), Message::text("welcome"));
        (ws, resp)
    })
    .await
    .unwrap()
}

/// Run `f` on the client off the runtime's threads.
async fn on_ws<T: Send + 'static>(
    mut ws: Ws,
    f: impl FnOnce(&mut Ws) -> T + Send + 'static,
) -> (Ws, T) {
    tokio::task::spawn_blocking(move || {
        let t = f(&mut ws);
        (ws, t)
    })
    .await
    .unwrap()
}

/// Whether the read ended because the peer closed (not because READ_LIMIT passed).
fn closed_by_peer(r: &tungstenite::Result<Message>) -> bool {
    match r {
        Ok(Message::Close(_)) => true,
        Ok(_) => false,
        Err(tungstenite::Error::Io(e)) => {
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
        }
        Err(_) => true,
    }
}

#[tokio::test]
async fn a_websocket_echo_goes_both_ways_counts_in_flight_and_closes_cleanly() {
    let echo = WsEcho::start();
    let s = start(config_over(
        "",
        &[echo.addr],
        "strategy = \"least_connections\"",
        "",
    ))
    .await;
    let (ws, resp) = ws_connect(s.proxy_addr(), "/chat?room=1").await;
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().contains_key("x-request-id"), "{resp:?}");
    let (ws, echoed) = on_ws(ws, |ws| {
        ws.send(Message::text("hello")).unwrap();
        let a = ws.read().unwrap();
        ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
        let b = ws.read().unwrap();
        (a, b)
    })
    .await;
    assert_eq!(
        echoed,
        (Message::text("hello"), Message::binary(vec![1u8, 2, 3]))
    );

    // Open: in flight to its backend (least-connections sees it), and counted.
    assert_eq!(in_flight_of(s.admin_addr(), echo.addr).await, 1);
    assert_eq!(
        metric(s.admin_addr(), "ringleader_upgraded_connections ").await,
        1
    );
    // /status: open tunnels per backend and in all.
    let st = status(s.admin_addr()).await;
    assert_eq!(st["upgraded_connections"], 1, "{st}");
    let b = backend_status(s.admin_addr(), echo.addr).await.unwrap();
    assert_eq!(b["upgraded"], 1, "{b}");
    assert_eq!(
        metric(s.admin_addr(), "ringleader_upgrades_total ").await,
        1
    );

    // A clean close: the client's close frame goes through, the backend's answer comes back.
    let (_ws, end) = on_ws(ws, |ws| {
        ws.close(None).unwrap();
        loop {
            match ws.read() {
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    })
    .await;
    assert!(
        matches!(end, tungstenite::Error::ConnectionClosed),
        "not a clean close: {end:?}"
    );
    let admin = s.admin_addr();
    wait_until(Duration::from_secs(5), "the tunnel ends", || async move {
        metric(admin, "ringleader_upgraded_connections ").await == 0
    })
    .await;
    assert_eq!(in_flight_of(admin, echo.addr).await, 0);
    let st = status(admin).await;
    assert_eq!(st["upgraded_connections"], 0, "{st}");
    let b = backend_status(admin, echo.addr).await.unwrap();
    assert_eq!(b["upgraded"], 0, "{b}");
    assert_eq!(echo.handshakes.load(Relaxed), 1);
}

#[tokio::test]
async fn a_backend_killed_mid_websocket_closes_the_client_side() {
    let echo = WsEcho::start();
    let s = start(config_over("", &[echo.addr], "", "")).await;
    let (ws, _) = ws_connect(s.proxy_addr(), "/").await;
    let (ws, got) = on_ws(ws, |ws| {
        ws.send(Message::text("one")).unwrap();
        ws.read().unwrap()
    })
    .await;
    assert_eq!(got, Message::text("one"));
    echo.kill();
    let (_ws, end) = on_ws(ws, |ws| ws.read()).await;
    assert!(closed_by_peer(&end), "the client side stayed open: {end:?}");
    let admin = s.admin_addr();
    wait_until(Duration::from_secs(5), "the tunnel ends", || async move {
        metric(admin, "ringleader_upgraded_connections ").await == 0
    })
    .await;
}

#[tokio::test]
async fn a_tunnel_idle_for_the_idle_timeout_is_closed() {
    let echo = WsEcho::start();
    let s = start(config_over(
        "",
        &[echo.addr],
        "idle_timeout = \"300ms\"",
        "",
    ))
    .await;
    let (ws, _) = ws_connect(s.proxy_addr(), "/").await;
    // Nothing is sent: the proxy closes both sides after 300 ms, well within READ_LIMIT.
    let (_ws, end) = on_ws(ws, |ws| ws.read()).await;
    assert!(closed_by_peer(&end), "the idle tunnel stayed open: {end:?}");
}

#[tokio::test]
async fn shutdown_gives_an_open_tunnel_the_grace_then_closes_it() {
    let echo = WsEcho::start();
    let s = start(config_over(
        "shutdown_grace = \"300ms\"",
        &[echo.addr],
        "",
        "",
    ))
    .await;
    let (ws, _) = ws_connect(s.proxy_addr(), "/").await;
    // The tunnel outlives hyper's connection: shutdown waits for it up to the grace
    // (here it never ends by itself), then closes it.
    tokio::time::timeout(Duration::from_secs(5), s.shutdown())
        .await
        .expect("shutdown returns after the grace");
    let (_ws, end) = on_ws(ws, |ws| ws.read()).await;
    assert!(
        closed_by_peer(&end),
        "the tunnel outlived the shutdown: {end:?}"
    );
}

/// A backend on 127.0.0.1:0 that reads each request head and answers it with `answer`
/// (or, when `None`, closes without a word); it counts the heads and keeps them.
async fn raw_backend(answer: Option<&'static str>) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                if let Some(a) = answer {
                    let _ = s.write_all(a.as_bytes()).await;
                    // Hold the connection open: the proxy decides what the answer means.
                    let _ = s.read(&mut buf).await;
                }
            });
        }
    });
    (addr, heads)
}

const UPGRADE_REQUEST: &[u8] =
    b"GET /chat HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

#[tokio::test]
async fn a_101_nobody_asked_for_is_a_502() {
    let (addr, heads) = raw_backend(Some(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nnot http",
    ))
    .await;
    let s = start(config_over("", &[addr], "", "")).await;
    let a = get(&client(), s.proxy_addr(), "/plain").await;
    assert_eq!(a.status, 502, "{a:?}");
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        !head.contains("upgrade"),
        "a plain request carries no Upgrade: {head}"
    );
}

#[tokio::test]
async fn an_upgrade_request_is_sent_once_and_never_retried() {
    // Both backends take the request and close without an answer.
    let (a, heads_a) = raw_backend(None).await;
    let (b, heads_b) = raw_backend(None).await;
    let s = start(config_over(
        "",
        &[a, b],
        "strategy = \"round_robin\"",
        "[upstream.app.passive]\nmax_ejection_percent = 0\n[upstream.app.retry]\nattempts = 2\non = [\"connect_error\"]\n",
    ))
    .await;
    let seen = || heads_a.lock().unwrap().len() + heads_b.lock().unwrap().len();
    // A plain GET is retried on the other backend...
    let (text, _) = until_closed(
        s.proxy_addr(),
        b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
        "plain GET",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
    assert_eq!(seen(), 2, "a plain GET is retried");
    // ... an upgrade is not: it may have switched protocols at the backend.
    let (text, _) = until_closed(s.proxy_addr(), UPGRADE_REQUEST, "upgrade").await;
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
    assert_eq!(seen(), 3, "the upgrade request was sent more than once");
    let all: Vec<String> = heads_a
        .lock()
        .unwrap()
        .iter()
        .chain(heads_b.lock().unwrap().iter())
        .cloned()
        .collect();
    let up = all
        .iter()
        .find(|h| h.starts_with("GET /chat"))
        .expect("upgrade forwarded");
    let lower = up.to_ascii_lowercase();
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{up}");
    assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{up}");
    assert!(
        lower.contains("\r\nsec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n"),
        "{up}"
    );
}

/// RFC 9113 §3.1 deprecates the HTTP/1.1 upgrade to h2c; relayed, it would open a
/// tunnel to the backend past routing and X-Forwarded-* ("h2c smuggling"). The
/// proxy drops `h2c` from `Upgrade` (and `HTTP2-Settings`, connection-specific per
/// RFC 7540 §3.2.1): alone, the request goes on as a plain one; beside another
/// protocol, only that one is asked for.
#[tokio::test]
async fn an_h2c_upgrade_is_never_relayed() {
    let (addr, heads) = raw_backend(Some(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    ))
    .await;
    let s = start(config_over("", &[addr], "", "")).await;
    let (text, _) = until_closed(
        s.proxy_addr(),
        b"GET / HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
        "h2c upgrade",
    )
    .await;
    // Sent as a plain request, the backend's 101 is one nobody asked for.
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(!head.contains("upgrade"), "{head}");
    assert!(!head.contains("http2-settings"), "{head}");

    let (addr, heads) = raw_backend(Some(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ))
    .await;
    let s = start(config_over("", &[addr], "", "")).await;
    let mut c = tokio::net::TcpStream::connect(s.proxy_addr())
        .await
        .unwrap();
    c.write_all(
        b"GET /chat HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert_ne!(n, 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
}

/// RFC 9110 §15.5.22: "The server MUST send an Upgrade header field in a 426
/// response": a backend's 426 reaches the client with its `Upgrade` (and the
/// `Connection: upgrade` that goes with it, §7.8), where other answers lose both.
#[tokio::test]
async fn a_backends_426_keeps_its_upgrade_field() {
    let (addr, _) = raw_backend(Some(
        "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Content-Length: 0\r\n\r\n",
    ))
    .await;
    let s = start(config_over("", &[addr], "", "")).await;
    let (text, _) = until_closed(s.proxy_addr(), UPGRADE_REQUEST, "426").await;
    let lower = text.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 426"), "{text}");
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{text}");
    assert!(lower.contains("\r\nconnection: upgrade"), "{text}");
}
