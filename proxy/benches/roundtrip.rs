//! Criterion benchmark of one keep-alive GET through the proxy against the same
//! GET sent straight to the backend, both in-process on one current-thread
//! runtime (client, proxy and backend share the thread, so the difference is
//! the proxy's own cost per request: parse, route, balance, forward, respond).
//!
//! Run: `cargo bench -p ringleader-proxy --bench roundtrip -- --warm-up-time 1 --measurement-time 3`
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use ringleader_proxy::{Config, DemoBackend, Server};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    tx
}

async fn get(tx: &mut SendRequest<Empty<Bytes>>) -> usize {
    tx.ready().await.expect("ready");
    let req = http::Request::builder()
        .uri("/")
        .header("host", "bench")
        .body(Empty::new())
        .expect("request");
    let resp = tx.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    resp.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn roundtrip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (_backend, _server, mut direct, mut proxied) = rt.block_on(async {
        let backend = DemoBackend::start("b", Duration::ZERO)
            .await
            .expect("backend");
        let cfg = Config::from_toml_str(
            &format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
                 [upstream.app]\nbackends = [{{ addr = \"{}\" }}]\n",
                backend.addr()
            ),
            "bench.toml",
        )
        .expect("config");
        let server = Server::bind(cfg).await.expect("proxy");
        let direct = connect(backend.addr()).await;
        let proxied = connect(server.proxy_addr()).await;
        (backend, server, direct, proxied)
    });
    let mut g = c.benchmark_group("keepalive_get");
    g.bench_function("direct_to_backend", |b| {
        b.iter(|| rt.block_on(get(&mut direct)))
    });
    g.bench_function("through_ringleader", |b| {
        b.iter(|| rt.block_on(get(&mut proxied)))
    });
    g.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
