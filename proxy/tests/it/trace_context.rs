//! W3C Trace Context (`traceparent`, `tracestate`) passes through untouched: over
//! HTTP/1.1 and HTTP/2, on the first attempt and on a retry to another backend.
use crate::common::*;
use crate::h2::h2_over;
use crate::tls::{answer, request};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ringleader_proxy::{Config, Server};
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};

// The example values of the W3C Trace Context recommendation (§3.2, §3.3); the
// optional whitespace between tracestate's list members must arrive as it was sent.
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE,  rojo=00f067aa0ba902b7";

async fn bind_text(text: &str) -> Server {
    let cfg = Config::from_toml_str(text, "trace.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    Server::bind(cfg).await.unwrap()
}

/// The config: `backends` in this order, round robin, so that over two requests the
/// refused one is tried first once (and the request retried on the next).
fn config_text(backends: &[SocketAddr], protocol: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [upstream.app]\nstrategy = \"round_robin\"\nprotocol = \"{protocol}\"\nbackends = [{}]\n",
        list.join(", ")
    )
}

#[tokio::test]
async fn trace_context_reaches_an_http1_backend_byte_identical_also_on_a_retry() {
    let b = backends(1).await;
    let s = bind_text(&config_text(&[closed_addr(), b[0].addr()], "http1")).await;
    let c = client();
    for _ in 0..2 {
        let a = send(
            &c,
            s.proxy_addr(),
            "GET",
            "/echo-headers",
            &[("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)],
            "",
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let seen: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(seen["traceparent"], TRACEPARENT, "{seen}");
        assert_eq!(seen["tracestate"], TRACESTATE, "{seen}");
    }
    assert_eq!(metric(s.admin_addr(), "ringleader_retries_total ").await, 1);
}

/// An HTTP/2 (h2c) backend answering with the raw bytes of the request's
/// `traceparent` and `tracestate`, one per line.
async fn h2c_trace_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let mut body = Vec::new();
                for name in ["traceparent", "tracestate"] {
                    for v in req.headers().get_all(name) {
                        body.extend_from_slice(v.as_bytes());
                        body.push(b'\n');
                    }
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(body))))
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    addr
}

#[tokio::test]
async fn trace_context_passes_over_http2_both_sides_also_on_a_retry() {
    let backend = h2c_trace_echo().await;
    let s = bind_text(&config_text(&[closed_addr(), backend], "h2c")).await;
    // HTTP/2 with prior knowledge from the client too.
    let mut c = h2_over(TcpStream::connect(s.proxy_addr()).await.unwrap()).await;
    for _ in 0..2 {
        let mut req = request("GET", "http://trace.test/", "", "");
        req.headers_mut()
            .insert("traceparent", http::HeaderValue::from_static(TRACEPARENT));
        req.headers_mut()
            .insert("tracestate", http::HeaderValue::from_static(TRACESTATE));
        let (status, body) = answer(c.send_request(req).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, format!("{TRACEPARENT}\n{TRACESTATE}\n"));
    }
    assert_eq!(metric(s.admin_addr(), "ringleader_retries_total ").await, 1);
}
