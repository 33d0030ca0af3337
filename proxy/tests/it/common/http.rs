//! The client side: a pooled hyper client, requests and their answers, runs of
//! sequential requests, and raw bytes on a socket for what hyper would not send.
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tests' client type.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A pooled client (keep-alive) for the tests.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Result of one request: status, `x-backend`, headers, body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub backend: Option<String>,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// Send `method path` with `headers` and `body` to `addr` (10 s at most).
pub async fn send(
    c: &HttpClient,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> Answer {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let status = resp.status();
    let headers = resp.headers().clone();
    let backend = headers
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        backend,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// GET `path`.
pub async fn get(c: &HttpClient, addr: SocketAddr, path: &str) -> Answer {
    send(c, addr, "GET", path, &[], "").await
}

/// `n` GETs of `/` one after another, each asserted 200: how many each backend answered.
pub async fn sequential(
    n: usize,
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> HashMap<String, usize> {
    let c = client();
    let mut seen = HashMap::new();
    for _ in 0..n {
        let a = send(&c, addr, "GET", "/", headers, "").await;
        assert_eq!(a.status, 200, "{a:?}");
        *seen.entry(a.backend.unwrap()).or_default() += 1;
    }
    seen
}

/// What [`raw_exchange`] read.
#[derive(Debug)]
pub struct RawReply {
    /// Every byte read, as text.
    pub text: String,
    /// How reading ended (a reset is an error); `None`: still open after 5 s.
    pub end: Option<std::io::Result<usize>>,
    /// From the end of the write to the end of reading.
    pub took: Duration,
}

/// Send `bytes` on a new connection to `addr` and read until the peer closes it, 5 s at most.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> RawReply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .ok();
    RawReply {
        text: String::from_utf8_lossy(&out).into_owned(),
        end,
        took: started.elapsed(),
    }
}

/// What [`raw_exchange`] read (by the 5 s limit, if the connection stayed open).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    raw_exchange(addr, bytes).await.text
}

/// [`raw_exchange`] where the proxy must close the connection (panics with `what` if
/// it is still open after 5 s): what was read, and how the reading ended.
pub async fn until_closed(
    addr: SocketAddr,
    bytes: &[u8],
    what: &str,
) -> (String, std::io::Result<usize>) {
    let r = raw_exchange(addr, bytes).await;
    let end = r.end.unwrap_or_else(|| panic!("{what}"));
    (r.text, end)
}

/// Send `bytes` (not more than the proxy reads, or a reset could lose its answer)
/// and return the status line of the answer.
pub async fn status_line(addr: SocketAddr, bytes: &[u8]) -> String {
    let out = raw(addr, bytes).await;
    out.lines().next().unwrap_or_default().to_string()
}
