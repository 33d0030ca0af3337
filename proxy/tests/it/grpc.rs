//! gRPC through the proxy to an h2c backend (tonic on both sides, messages by prost derive, no
//! codegen): a unary and a server-streaming call with trailers, a dead backend's UNAVAILABLE,
//! and the gRPC health service as the active check.
// tonic's API is `Result<_, Status>` throughout, whatever the size of `Status`.
#![allow(clippy::result_large_err)]
use crate::common::*;
use http::uri::PathAndQuery;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tonic::codec::ProstCodec;
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::codegen::{BoxFuture, Service};
use tonic::{Code, Request, Response, Status};

#[derive(Clone, PartialEq, prost::Message)]
struct Say {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse` (status 1 = SERVING, 2 = NOT_SERVING).
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `/test.Echo/Say`: the text back, with the backend's name appended.
struct SaySvc(&'static str);

impl tonic::server::UnaryService<Say> for SaySvc {
    type Response = Say;
    type Future = BoxFuture<Response<Say>, Status>;

    fn call(&mut self, req: Request<Say>) -> Self::Future {
        let name = self.0;
        Box::pin(async move {
            let m = req.into_inner();
            Ok(Response::new(Say {
                text: format!("{} from {name}", m.text),
                count: m.count,
            }))
        })
    }
}

type SayStream = Pin<Box<dyn Stream<Item = Result<Say, Status>> + Send>>;

/// `/test.Echo/Count`: `count` messages, then the status NOT_FOUND "enough" in the trailers.
struct CountSvc;

fn counted(text: &str, i: u32) -> Result<Say, Status> {
    Ok(Say {
        text: format!("{text} {i}"),
        count: i,
    })
}

impl tonic::server::ServerStreamingService<Say> for CountSvc {
    type Response = Say;
    type ResponseStream = SayStream;
    type Future = BoxFuture<Response<SayStream>, Status>;

    fn call(&mut self, req: Request<Say>) -> Self::Future {
        Box::pin(async move {
            let m = req.into_inner();
            let mut items: Vec<Result<Say, Status>> =
                (0..m.count).map(|i| counted(&m.text, i)).collect();
            items.push(Err(Status::not_found("enough")));
            Ok(Response::new(
                Box::pin(tokio_stream::iter(items)) as SayStream
            ))
        })
    }
}

/// `/grpc.health.v1.Health/Check`: the serving status the test sets.
struct HealthSvc(Arc<AtomicU64>);

impl tonic::server::UnaryService<HealthCheckRequest> for HealthSvc {
    type Response = HealthCheckResponse;
    type Future = BoxFuture<Response<HealthCheckResponse>, Status>;

    fn call(&mut self, _: Request<HealthCheckRequest>) -> Self::Future {
        let status = self.0.load(Relaxed) as i32;
        Box::pin(async move { Ok(Response::new(HealthCheckResponse { status })) })
    }
}

/// The backend's gRPC services, routed by path as tonic-build's code would.
#[derive(Clone)]
struct EchoServer {
    name: &'static str,
    serving: Arc<AtomicU64>,
}

impl tonic::server::NamedService for EchoServer {
    const NAME: &'static str = "test.Echo";
}

impl Service<http::Request<tonic::body::BoxBody>> for EchoServer {
    type Response = http::Response<tonic::body::BoxBody>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::BoxBody>) -> Self::Future {
        let (name, serving) = (self.name, self.serving.clone());
        Box::pin(async move {
            Ok(match req.uri().path() {
                "/test.Echo/Say" => {
                    let mut g = tonic::server::Grpc::new(ProstCodec::<Say, Say>::default());
                    g.unary(SaySvc(name), req).await
                }
                "/test.Echo/Count" => {
                    let mut g = tonic::server::Grpc::new(ProstCodec::<Say, Say>::default());
                    g.server_streaming(CountSvc, req).await
                }
                "/grpc.health.v1.Health/Check" => {
                    let mut g = tonic::server::Grpc::new(ProstCodec::<
                        HealthCheckResponse,
                        HealthCheckRequest,
                    >::default());
                    g.unary(HealthSvc(serving), req).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// The same routes under the health service's name (tonic routes by service name).
#[derive(Clone)]
struct HealthServer(EchoServer);

impl tonic::server::NamedService for HealthServer {
    const NAME: &'static str = "grpc.health.v1.Health";
}

impl Service<http::Request<tonic::body::BoxBody>> for HealthServer {
    type Response = http::Response<tonic::body::BoxBody>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::BoxBody>) -> Self::Future {
        self.0.call(req)
    }
}

/// A tonic h2c backend on 127.0.0.1:0; its health service answers `serving`.
async fn grpc_backend(name: &'static str, serving: Arc<AtomicU64>) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from_listener(l, true, None).unwrap();
    let echo = EchoServer { name, serving };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(echo.clone())
            .add_service(HealthServer(echo))
            .serve_with_incoming(incoming),
    );
    addr
}

/// A tonic client of the proxy at `addr` (HTTP/2 with prior knowledge).
async fn grpc_client(addr: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect to the proxy");
    tonic::client::Grpc::new(ch)
}

async fn say(
    c: &mut tonic::client::Grpc<tonic::transport::Channel>,
    text: &str,
) -> Result<Say, Status> {
    c.ready().await.unwrap();
    let req = Request::new(Say {
        text: text.into(),
        count: 0,
    });
    c.unary(
        req,
        PathAndQuery::from_static("/test.Echo/Say"),
        ProstCodec::<Say, Say>::default(),
    )
    .await
    .map(Response::into_inner)
}

#[tokio::test]
async fn unary_and_server_streaming_calls_with_trailers_reach_an_h2c_backend() {
    let b = grpc_backend("g0", Arc::new(AtomicU64::new(1))).await;
    let s = start(config_over("", &[b], "protocol = \"h2c\"", "")).await;
    let mut c = grpc_client(s.proxy_addr()).await;

    // Unary: one message each way, grpc-status 0 in the trailers.
    let got = say(&mut c, "hi").await.expect("unary call");
    assert_eq!(got.text, "hi from g0");

    // Server streaming: three messages, then NOT_FOUND in the trailers.
    c.ready().await.unwrap();
    let req = Request::new(Say {
        text: "n".into(),
        count: 3,
    });
    let mut stream = c
        .server_streaming(
            req,
            PathAndQuery::from_static("/test.Echo/Count"),
            ProstCodec::<Say, Say>::default(),
        )
        .await
        .expect("streaming call")
        .into_inner();
    let mut texts = Vec::new();
    let end = loop {
        match stream.message().await {
            Ok(Some(m)) => texts.push(m.text),
            Ok(None) => break None,
            Err(st) => break Some(st),
        }
    };
    assert_eq!(texts, ["n 0", "n 1", "n 2"]);
    let end = end.expect("the status from the trailers");
    assert_eq!((end.code(), end.message()), (Code::NotFound, "enough"));

    // Many calls share the backend's one HTTP/2 connection.
    for i in 0..20 {
        assert_eq!(
            say(&mut c, &i.to_string()).await.unwrap().text,
            format!("{i} from g0")
        );
    }
}

#[tokio::test]
async fn a_grpc_call_to_a_dead_backend_gets_unavailable_not_html() {
    let dead = closed_addr();
    let s = start(config_over("", &[dead], "protocol = \"h2c\"", "")).await;
    let mut c = grpc_client(s.proxy_addr()).await;
    let st = say(&mut c, "hi").await.expect_err("no backend");
    assert_eq!(st.code(), Code::Unavailable, "{st:?}");
    assert_eq!(st.message(), "upstream connection failed");

    // On the wire: HTTP 200, trailers-only (grpc-status in the one HEADERS frame, no
    // body), not a 502 page a gRPC client would have to guess a status from.
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!("http://{}/test.Echo/Say", s.proxy_addr()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(&[
            0, 0, 0, 0, 0,
        ])))
        .unwrap();
    let resp = h2.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    assert_eq!(resp.headers()["grpc-status"], "14");
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    assert!(body.trailers().is_none());
    assert!(body.to_bytes().is_empty());
}

#[tokio::test]
async fn the_grpc_health_service_decides_a_backends_health() {
    let serving = Arc::new(AtomicU64::new(2)); // NOT_SERVING
    let b = grpc_backend("g0", serving.clone()).await;
    let s = start(config_over(
        "",
        &[b],
        "protocol = \"h2c\"",
        "[upstream.app.health]\ngrpc = true\ninterval = \"50ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n",
    ))
    .await;
    let admin = s.admin_addr();
    wait_until(
        Duration::from_secs(5),
        "backend down (NOT_SERVING)",
        || async move { health_of(admin, b).await.as_deref() == Some("down") },
    )
    .await;
    serving.store(1, Relaxed); // SERVING
    wait_until(
        Duration::from_secs(5),
        "backend up (SERVING)",
        || async move { health_of(admin, b).await.as_deref() == Some("up") },
    )
    .await;
    let mut c = grpc_client(s.proxy_addr()).await;
    assert_eq!(say(&mut c, "ok").await.unwrap().text, "ok from g0");
}

/// An HTTP/2-over-TLS backend (hyper, rustls with ALPN h2) whose certificate for
/// `backend.test` is signed by a CA made here; it answers with what it received
/// (method, `:authority`, `te`, body, the `x-req` trailer) and a trailer of its own.
/// Returns its address, the CA's PEM file and a count of the connections it accepted.
async fn h2_tls_backend(dir: &std::path::Path) -> (SocketAddr, std::path::PathBuf, Arc<AtomicU64>) {
    use http_body_util::BodyExt;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let ca_file = dir.join("backend-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["backend.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &Issuer::new(ca, ca_key))
        .unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key.into())
    .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicU64::new(0));
    let accepted = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            accepted.fetch_add(1, Relaxed);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap();
                        let trailer = body
                            .trailers()
                            .and_then(|t| t.get("x-req"))
                            .map(|v| v.to_str().unwrap().to_string());
                        let te = parts
                            .headers
                            .get("te")
                            .map(|v| v.to_str().unwrap().to_string());
                        let text = format!(
                            "{} {} te={te:?} body={:?} trailer={trailer:?}",
                            parts.method,
                            parts.uri,
                            String::from_utf8_lossy(&body.to_bytes())
                        );
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("x-resp", http::HeaderValue::from_static("done"));
                        let frames: Vec<
                            Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
                        > = vec![
                            Ok(http_body::Frame::data(bytes::Bytes::from(text))),
                            Ok(http_body::Frame::trailers(trailers)),
                        ];
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::StreamBody::new(tokio_stream::iter(frames)),
                        ))
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
            });
        }
    });
    (addr, ca_file, conns)
}

#[tokio::test]
async fn h2_over_tls_to_a_backend_carries_trailers_both_ways() {
    use http_body_util::BodyExt;
    let dir = tempfile::tempdir().unwrap();
    let (b, ca, conns) = h2_tls_backend(dir.path()).await;
    let s = start(config_over(
        "",
        &[b],
        &format!(
            "protocol = \"h2\"\ntls_ca = {:?}\ntls_server_name = \"backend.test\"",
            ca.display().to_string()
        ),
        "",
    ))
    .await;
    // An HTTP/2 client (h2c to the proxy) sending a body with a trailer.
    let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-req", http::HeaderValue::from_static("sent"));
    let frames: Vec<Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>> = vec![
        Ok(http_body::Frame::data(bytes::Bytes::from_static(
            b"payload",
        ))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let req = http::Request::post(format!("http://{}/echo?x=1", s.proxy_addr()))
        .header("te", "trailers")
        .body(http_body_util::StreamBody::new(tokio_stream::iter(frames)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap();
    assert_eq!(
        body.trailers().and_then(|t| t.get("x-resp")).unwrap(),
        "done",
        "the backend's trailer reaches the client"
    );
    // Concurrent requests share the backend's one HTTP/2 connection.
    let mut calls = Vec::new();
    for i in 0..10 {
        let c = c.clone();
        let uri = format!("http://{}/n/{i}", s.proxy_addr());
        calls.push(tokio::spawn(async move {
            let req = http::Request::get(uri)
                .body(http_body_util::StreamBody::new(tokio_stream::iter(
                    Vec::new(),
                )))
                .unwrap();
            c.request(req).await.unwrap().status()
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!(
        conns.load(Relaxed),
        1,
        "one multiplexed connection to the backend"
    );
    // The client's :authority goes on as the backend's (as Host does on HTTP/1.1).
    let text = String::from_utf8(body.to_bytes().to_vec()).unwrap();
    assert_eq!(
        text,
        format!(
            "POST https://{}/echo?x=1 te=Some(\"trailers\") body=\"payload\" trailer=Some(\"sent\")",
            s.proxy_addr()
        )
    );
}

#[tokio::test]
async fn an_h2_backend_whose_certificate_does_not_match_is_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let (b, ca, _) = h2_tls_backend(dir.path()).await;
    let s = start(config_over(
        "",
        &[b],
        &format!(
            "protocol = \"h2\"\ntls_ca = {:?}\ntls_server_name = \"other.test\"",
            ca.display().to_string()
        ),
        "[upstream.app.health]\npath = \"/healthz\"\ninterval = \"50ms\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n",
    ))
    .await;
    // Its active check over h2 fails the TLS handshake: down.
    let admin = s.admin_addr();
    wait_until(
        Duration::from_secs(5),
        "backend down (bad certificate)",
        || async move { health_of(admin, b).await.as_deref() == Some("down") },
    )
    .await;
    let a = get(&client(), s.proxy_addr(), "/").await;
    assert!(a.status == 502 || a.status == 503, "{a:?}");
}

#[tokio::test]
async fn active_checks_of_an_h2_backend_speak_http2_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (b, ca, conns) = h2_tls_backend(dir.path()).await;
    let s = start(config_over(
        "",
        &[b],
        &format!(
            "protocol = \"h2\"\ntls_ca = {:?}\ntls_server_name = \"backend.test\"",
            ca.display().to_string()
        ),
        "[upstream.app.health]\npath = \"/healthz\"\ninterval = \"50ms\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n",
    ))
    .await;
    // Each check is a connection of its own; three of them, and the backend is still up.
    let seen = conns.clone();
    wait_until(Duration::from_secs(5), "three checks", || {
        let n = seen.load(Relaxed);
        async move { n >= 3 }
    })
    .await;
    assert_eq!(health_of(s.admin_addr(), b).await.as_deref(), Some("up"));
}

/// An HTTP/1.1 client asking for trailers (`TE: trailers`) gets an HTTP/2 backend's
/// trailers after the last chunk: the backend's `Trailer` field, which names them,
/// is kept (RFC 9110 §7.6.1 does not make it hop-by-hop), and hyper's HTTP/1.1
/// server writes the trailers it names.
#[tokio::test]
async fn an_http1_client_gets_an_h2_backends_declared_trailers() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let svc =
                hyper::service::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("x-resp", http::HeaderValue::from_static("done"));
                    let frames: Vec<
                        Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
                    > = vec![
                        Ok(http_body::Frame::data(bytes::Bytes::from_static(b"body"))),
                        Ok(http_body::Frame::trailers(trailers)),
                    ];
                    let mut r = http::Response::new(http_body_util::StreamBody::new(
                        tokio_stream::iter(frames),
                    ));
                    r.headers_mut()
                        .insert("trailer", http::HeaderValue::from_static("x-resp"));
                    Ok::<_, std::convert::Infallible>(r)
                });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc),
            );
        }
    });
    let s = start(config_over("", &[backend], "protocol = \"h2c\"", "")).await;
    let out = raw(
        s.proxy_addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("\r\ntrailer: x-resp\r\n"), "{out}");
    assert!(lower.ends_with("0\r\nx-resp: done\r\n\r\n"), "{out:?}");
}

/// A call whose backend never takes its connection (an accept queue kept full, so
/// the kernel drops the SYN) fails UNAVAILABLE after `connect_timeout`: it reached no
/// backend, so a client may retry it. DEADLINE_EXCEEDED is for a backend that took
/// the call and did not answer.
#[tokio::test]
async fn a_connect_timeout_is_unavailable_to_grpc() {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = sock.listen(0).unwrap();
    let addr = l.local_addr().unwrap();
    // Never accepted: connect until one does not complete.
    let mut held = Vec::new();
    loop {
        let c = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        match c {
            Ok(Ok(s)) if held.len() < 64 => held.push(s),
            Ok(Ok(_)) => panic!("the accept queue never filled"),
            _ => break,
        }
    }
    let s = start(config_over(
        "",
        &[addr],
        "protocol = \"h2c\"\nconnect_timeout = \"200ms\"",
        "",
    ))
    .await;
    let mut c = grpc_client(s.proxy_addr()).await;
    let st = say(&mut c, "hi").await.expect_err("no connection");
    assert_eq!(st.code(), Code::Unavailable, "{st:?}");
    assert_eq!(st.message(), "upstream connect timed out");
    drop(l);
}

/// Metadata over `max_header_bytes` is RESOURCE_EXHAUSTED (8) to a gRPC call, as
/// docs/proxy.md says, not a bare 431 (which a gRPC client reads as UNKNOWN): the
/// proxy's own check of the head answers, not the h2 crate's header list limit.
#[tokio::test]
async fn metadata_over_the_head_limit_is_resource_exhausted() {
    let b = grpc_backend("g0", Arc::new(AtomicU64::new(1))).await;
    let s = start(config_over(
        "max_header_bytes = 8192",
        &[b],
        "protocol = \"h2c\"",
        "",
    ))
    .await;
    let mut c = grpc_client(s.proxy_addr()).await;
    c.ready().await.unwrap();
    let mut req = Request::new(Say {
        text: "hi".into(),
        count: 0,
    });
    let big = "x".repeat(9000);
    req.metadata_mut().insert("x-big", big.parse().unwrap());
    let st = c
        .unary(
            req,
            PathAndQuery::from_static("/test.Echo/Say"),
            ProstCodec::<Say, Say>::default(),
        )
        .await
        .expect_err("over the limit");
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    // Within it, the call goes through.
    assert_eq!(say(&mut c, "ok").await.unwrap().text, "ok from g0");
}
