//! In-process demo backends for `ringleader demo` and the integration tests:
//! a small HTTP server that can be slowed, broken, killed and revived.
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A demo backend on loopback.
///
/// Paths: `/healthz` (200, or 503 when made unhealthy), `/echo-headers`
/// (the request headers as JSON), `/echo` (streams the request body back),
/// `/upload` (reads the whole body, then answers its size),
/// `/bytes?n=N` (streams N bytes), `/slow?ms=N`, `/hop` (answers with
/// hop-by-hop headers), `/_demo/down?secs=N` (refuses connections for N
/// seconds); anything else answers `hello from NAME`. Every response carries
/// `x-backend: NAME`.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let b = ringleader_proxy::DemoBackend::start("a", std::time::Duration::ZERO).await?;
/// println!("{}", b.addr());
/// b.kill();          // connections are refused now
/// b.revive().await?; // and accepted again, on the same port
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DemoBackend {
    state: Arc<DemoState>,
    addr: SocketAddr,
    task: TaskSlot,
}

#[derive(Debug)]
struct DemoState {
    name: String,
    delay_ms: AtomicU64,
    requests: AtomicU64,
    posts: AtomicU64,
    connections: AtomicU64,
    fail_status: AtomicU16,
    unhealthy: AtomicBool,
}

impl DemoBackend {
    /// Start on `127.0.0.1:0`; every answer is delayed by `delay`.
    pub async fn start(name: &str, delay: Duration) -> std::io::Result<DemoBackend> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(DemoState {
            name: name.to_string(),
            delay_ms: AtomicU64::new(delay.as_millis() as u64),
            requests: AtomicU64::new(0),
            posts: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            fail_status: AtomicU16::new(0),
            unhealthy: AtomicBool::new(false),
        });
        let task = Arc::new(Mutex::new(None));
        let b = DemoBackend { state, addr, task };
        b.spawn(listener);
        Ok(b)
    }

    fn spawn(&self, listener: TcpListener) {
        spawn_accept(listener, &self.state, self.addr, &self.task);
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its name (the `x-backend` header).
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Requests answered, health checks not counted.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Relaxed)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Relaxed)
    }

    /// POST requests received.
    pub fn posts(&self) -> u64 {
        self.state.posts.load(Relaxed)
    }

    /// Answer every request except health checks with `status` (`None` = normal).
    pub fn set_failing(&self, status: Option<StatusCode>) {
        self.state
            .fail_status
            .store(status.map_or(0, |s| s.as_u16()), Relaxed);
    }

    /// Make `/healthz` answer 503 (`false`) or 200 (`true`).
    pub fn set_healthy(&self, healthy: bool) {
        self.state.unhealthy.store(!healthy, Relaxed);
    }

    /// Delay every answer by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Relaxed);
    }

    /// Stop listening and drop every open connection: connects are refused.
    pub fn kill(&self) {
        kill_task(&self.task);
    }

    /// Listen again on the same address after [`kill`](Self::kill).
    pub async fn revive(&self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        self.spawn(listener);
        Ok(())
    }
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

type TaskSlot = Arc<Mutex<Option<JoinHandle<()>>>>;

fn spawn_accept(listener: TcpListener, state: &Arc<DemoState>, addr: SocketAddr, task: &TaskSlot) {
    let handle = tokio::spawn(accept_loop(listener, state.clone(), addr, task.clone()));
    if let Some(old) = task.lock().replace(handle) {
        old.abort();
    }
}

fn kill_task(task: &TaskSlot) {
    if let Some(t) = task.lock().take() {
        t.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<DemoState>,
    addr: SocketAddr,
    task: TaskSlot,
) {
    // Connections live in this set: aborting the accept task drops them all.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => { tokio::time::sleep(Duration::from_millis(5)).await; continue; }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        state.connections.fetch_add(1, Relaxed);
        let state = state.clone();
        let task = task.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let task = task.clone();
                async move { Ok::<_, Infallible>(answer(req, state, addr, task).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn query_u64(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// `left` bytes of `x`, produced chunk by chunk as the connection asks for them.
struct RepeatBody {
    left: u64,
    chunk: Bytes,
}

impl http_body::Body for RepeatBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let len = self.left.min(self.chunk.len() as u64) as usize;
        self.left -= len as u64;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(self.chunk.slice(..len)))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

type DemoResponse = Response<http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>>;

fn text(status: StatusCode, s: String) -> DemoResponse {
    let mut r = Response::new(
        http_body_util::Full::new(Bytes::from(s))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

async fn answer(
    req: Request<Incoming>,
    state: Arc<DemoState>,
    addr: SocketAddr,
    task: TaskSlot,
) -> DemoResponse {
    let path = req.uri().path().to_string();
    let mut resp = if path == "/healthz" {
        if state.unhealthy.load(Relaxed) {
            text(StatusCode::SERVICE_UNAVAILABLE, "sick\n".into())
        } else {
            text(StatusCode::OK, "ok\n".into())
        }
    } else {
        state.requests.fetch_add(1, Relaxed);
        if req.method() == Method::POST {
            state.posts.fetch_add(1, Relaxed);
        }
        let delay = state.delay_ms.load(Relaxed);
        let extra = if path == "/slow" {
            query_u64(&req, "ms").unwrap_or(1000)
        } else {
            0
        };
        if delay + extra > 0 {
            tokio::time::sleep(Duration::from_millis(delay + extra)).await;
        }
        let fail = state.fail_status.load(Relaxed);
        if fail != 0 {
            let status = StatusCode::from_u16(fail).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text(status, format!("{} is failing on purpose\n", state.name))
        } else {
            match path.as_str() {
                "/echo-headers" => {
                    let mut map = serde_json::Map::new();
                    for (k, v) in req.headers() {
                        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                        match map.get_mut(k.as_str()) {
                            Some(serde_json::Value::String(prev)) => {
                                prev.push_str(", ");
                                prev.push_str(&v);
                            }
                            _ => {
                                map.insert(k.as_str().to_string(), serde_json::Value::String(v));
                            }
                        }
                    }
                    text(StatusCode::OK, serde_json::Value::Object(map).to_string())
                }
                "/echo" => Response::new(req.into_body().boxed_unsync()),
                "/upload" => {
                    // Read the whole body (without keeping it), then answer its size.
                    let mut body = req.into_body();
                    let mut n = 0usize;
                    while let Some(frame) = body.frame().await {
                        match frame {
                            Ok(f) => n += f.data_ref().map_or(0, |d| d.len()),
                            Err(_) => break,
                        }
                    }
                    text(StatusCode::OK, format!("received {n} bytes\n"))
                }
                "/bytes" => {
                    let n = query_u64(&req, "n").unwrap_or(1 << 20);
                    let body = RepeatBody {
                        left: n,
                        chunk: Bytes::from(vec![b'x'; 64 * 1024]),
                    };
                    Response::new(body.boxed_unsync())
                }
                "/hop" => {
                    let mut r = text(StatusCode::OK, "hop\n".into());
                    let h = r.headers_mut();
                    h.insert(header::CONNECTION, HeaderValue::from_static("x-hop-secret"));
                    h.insert("x-hop-secret", HeaderValue::from_static("1"));
                    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
                    h.insert(
                        header::PROXY_AUTHENTICATE,
                        HeaderValue::from_static("Basic"),
                    );
                    r
                }
                "/_demo/down" => {
                    let secs = query_u64(&req, "secs").unwrap_or(10);
                    let state2 = state.clone();
                    tokio::spawn(async move {
                        // Let this response go out first.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        kill_task(&task);
                        tokio::time::sleep(Duration::from_secs(secs)).await;
                        if let Ok(listener) = TcpListener::bind(addr).await {
                            spawn_accept(listener, &state2, addr, &task);
                        }
                    });
                    text(
                        StatusCode::OK,
                        format!("{} refuses connections for {secs}s\n", state.name),
                    )
                }
                _ => text(StatusCode::OK, format!("hello from {}\n", state.name)),
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&state.name) {
        resp.headers_mut().insert("x-backend", v);
    }
    resp
}
