//! Bodies stream both ways: lockstep echo of large uploads, in-flight accounting until a
//! response body ends, slow uploads against `request_timeout`, stalled ones cut with 408.
use crate::common::*;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A request body fed chunk by chunk from a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// A new HTTP/1.1 connection to `proxy`, for requests with a [`ChannelBody`].
async fn connection(proxy: SocketAddr) -> SendRequest<ChannelBody> {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// A `method uri` request whose body is what is sent on the returned channel,
/// with a Content-Length if `content_length` is given (else it goes chunked).
fn channel_request(
    method: &str,
    uri: &str,
    content_length: Option<usize>,
) -> (mpsc::Sender<Bytes>, http::Request<ChannelBody>) {
    let (tx, rx) = mpsc::channel(1);
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "test");
    if let Some(n) = content_length {
        req = req.header("content-length", n.to_string());
    }
    (tx, req.body(ChannelBody(rx)).unwrap())
}

/// Send `chunks` x 256 KiB to /echo and read each chunk back before sending
/// the next: impossible unless both directions stream.
async fn lockstep_echo(proxy: SocketAddr, method: &str, chunks: usize) {
    const CHUNK: usize = 256 * 1024;
    let mut sender = connection(proxy).await;
    let (tx, req) = channel_request(method, "/echo", Some(CHUNK * chunks));
    let chunk = Bytes::from(vec![7u8; CHUNK]);
    tx.send(chunk.clone()).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("no response head while the body is still being sent")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut received = 0usize;
    for sent in 1..=chunks {
        while received < sent * CHUNK {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .expect("echo stalled: the proxy is buffering")
                .expect("body ended early")
                .unwrap();
            if let Ok(d) = frame.into_data() {
                received += d.len();
            }
        }
        if sent < chunks {
            tx.send(chunk.clone()).await.unwrap();
        }
    }
    drop(tx);
    assert_eq!(received, CHUNK * chunks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_response_counts_in_flight_until_its_body_ends() {
    // least_connections must see a backend that is still streaming a response
    // as busy: the request stays in flight after the response head, until the
    // last byte of the body.
    let b = backends(1).await;
    let s = start(config(
        "",
        &[(&b[0], 1)],
        "strategy = \"least_connections\"",
        "",
    ))
    .await;
    let mut sender = connection(s.proxy_addr()).await;
    let (tx, req) = channel_request("POST", "/echo", Some(8));
    tx.send(Bytes::from_static(b"1234")).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("response head")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk")
        .expect("body ended early")
        .unwrap();
    assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"1234"));
    // Head and a chunk are through, the body is not finished: still in flight.
    assert_eq!(in_flight_of(s.admin_addr(), b[0].addr()).await, 1);

    tx.send(Bytes::from_static(b"5678")).await.unwrap();
    drop(tx);
    let mut rest = Vec::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("rest of the body")
    {
        if let Ok(d) = frame.unwrap().into_data() {
            rest.extend_from_slice(&d);
        }
    }
    assert_eq!(rest, b"5678");
    let admin = s.admin_addr();
    let backend = b[0].addr();
    wait_until(
        Duration::from_secs(5),
        "in_flight back to 0",
        || async move { in_flight_of(admin, backend).await == 0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_without_whole_buffering() {
    let b = backends(1).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    // 16 MiB POST (never retried: plain streaming) and PUT (retryable, larger
    // than retry.max_body_bytes: streamed with the tap).
    lockstep_echo(s.proxy_addr(), "POST", 64).await;
    lockstep_echo(s.proxy_addr(), "PUT", 64).await;
    // A 32 MiB download streams too.
    let c = client();
    let a = get(&c, s.proxy_addr(), "/bytes?n=33554432").await;
    assert_eq!(a.body.len(), 32 << 20);
}

/// POST /upload with the body fed from a channel; returns the sender and the response future.
async fn upload(
    proxy: SocketAddr,
) -> (
    mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<(StatusCode, String)>,
) {
    let mut sender = connection(proxy).await;
    let (tx, req) = channel_request("POST", "/upload", None);
    let resp = tokio::spawn(async move {
        let r = sender.send_request(req).await.unwrap();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    (tx, resp)
}

#[tokio::test]
async fn slow_uploads_are_not_cut_by_request_timeout_but_stalled_ones_are() {
    let b = backends(1).await;
    let s = start(config("request_timeout = \"300ms\"", &[(&b[0], 1)], "", "")).await;
    // 8 chunks, 100 ms apart: 800 ms in all, each gap well inside the timeout.
    let (tx, resp) = upload(s.proxy_addr()).await;
    for _ in 0..8 {
        tx.send(Bytes::from(vec![1u8; 1000])).await.unwrap();
        // The scenario itself: a slow client, whose gaps the proxy's timers see in real time.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tx);
    let (code, body) = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (code.as_u16(), body.as_str()),
        (200, "received 8000 bytes\n")
    );

    // One chunk, then silence: 408, and the backend is not blamed.
    let (tx, resp) = upload(s.proxy_addr()).await;
    tx.send(Bytes::from_static(b"partial")).await.unwrap();
    let started = Instant::now();
    let (code, _) = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 408);
    assert!(started.elapsed() >= Duration::from_millis(250));
    let st = status(s.admin_addr()).await;
    assert_eq!(st["upstreams"]["app"]["backends"][0]["failures"], 0);
    drop(tx);
}
