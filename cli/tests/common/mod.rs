//! Helpers of the binary's end-to-end tests: demo backends, a keep-alive client, bounded waits.
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use ringleader_proxy::DemoBackend;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Start `n` demo backends named b0, b1, ... with no delay.
pub async fn backends(n: usize) -> Vec<DemoBackend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(
            DemoBackend::start(&format!("b{i}"), Duration::ZERO)
                .await
                .unwrap(),
        );
    }
    v
}

/// A pooled client (keep-alive) for the tests.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Result of one request: status and `x-backend` (the body is read and dropped).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub backend: Option<String>,
}

/// GET `path` from `addr`, in at most 10 s.
pub async fn get(c: &Client<HttpConnector, Full<Bytes>>, addr: SocketAddr, path: &str) -> Answer {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let status = resp.status();
    let backend = resp
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_string());
    resp.into_body().collect().await.expect("body");
    Answer { status, backend }
}

/// Poll `cond` every 20 ms until it is true; panic with `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
