//! Shared helpers of the integration tests: demo backends, a proxy on 127.0.0.1:0, a client, bounded waits.
#![allow(dead_code)]

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use ringleader_proxy::{Config, DemoBackend, Server};
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

/// A config with listeners on port 0, one upstream `app` over `backends`
/// (weights given), `upstream_extra` appended inside `[upstream.app]` and
/// `tail` appended at the end (sub-tables).
pub fn config(
    server_extra: &str,
    backends: &[(&DemoBackend, u32)],
    upstream_extra: &str,
    tail: &str,
) -> Config {
    let list: Vec<String> = backends
        .iter()
        .map(|(b, w)| format!("{{ addr = \"{}\", weight = {w} }}", b.addr()))
        .collect();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{server_extra}\n\
         [upstream.app]\nbackends = [{}]\n{upstream_extra}\n{tail}\n",
        list.join(", ")
    );
    Config::from_toml_str(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// [`config`] over the first three of `b`, each at weight 1, no server settings.
pub fn equal_three(b: &[DemoBackend], upstream_extra: &str, tail: &str) -> Config {
    config(
        "",
        &[(&b[0], 1), (&b[1], 1), (&b[2], 1)],
        upstream_extra,
        tail,
    )
}

/// Bind a proxy for `cfg`.
pub async fn start(cfg: Config) -> Server {
    Server::bind(cfg).await.unwrap()
}

/// A pooled client (keep-alive) for the tests.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Result of one request: status, `x-backend`, body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub backend: Option<String>,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// Send `method path` with `headers` to `addr`.
pub async fn send(
    c: &Client<HttpConnector, Full<Bytes>>,
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
pub async fn get(c: &Client<HttpConnector, Full<Bytes>>, addr: SocketAddr, path: &str) -> Answer {
    send(c, addr, "GET", path, &[], "").await
}

/// GET /status from the admin listener.
pub async fn status(admin: SocketAddr) -> serde_json::Value {
    let a = get(&client(), admin, "/status").await;
    assert_eq!(a.status, 200);
    serde_json::from_str(&a.body).unwrap()
}

/// The `health` of backend `addr` in upstream `app` according to /status.
pub async fn health_of(admin: SocketAddr, addr: SocketAddr) -> Option<String> {
    let s = status(admin).await;
    s["upstreams"]["app"]["backends"]
        .as_array()?
        .iter()
        .find(|b| b["addr"] == addr.to_string())
        .map(|b| b["health"].as_str().unwrap_or("").to_string())
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
