//! Listeners: the proxy's HTTP server (HTTP/1.1 and HTTP/2, plain and TLS, with
//! limits, keep-alive and graceful drain), the HTTPS redirect, and the admin listener.
mod client_io;
mod redirect;
mod resets;
mod sniff;

use crate::admin;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fleet;
use crate::handle::handle;
use crate::headers::{self, Scheme};
use crate::metrics::Metrics;
use crate::response::ProxyBody;
use crate::state::Proxy;
use crate::tls::{self, Certs};
use client_io::ClientIo;
use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sniff::{Proto, Rewind};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running proxy: its listeners, a handle on its state, and its shutdown.
///
/// ```no_run
/// # async fn f() -> Result<(), ringleader_proxy::Error> {
/// let cfg = ringleader_proxy::Config::load(std::path::Path::new("ringleader.toml"))?;
/// let server = ringleader_proxy::Server::bind(cfg).await?;
/// println!("proxy on {}, admin on {}", server.proxy_addr(), server.admin_addr());
/// server.shutdown().await; // stop accepting, drain up to shutdown_grace
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Server {
    proxy: Proxy,
    proxy_addr: SocketAddr,
    admin_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    redirect_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    proxy_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
    /// The cluster link (with a `[cluster]` table).
    fleet_task: Option<JoinHandle<()>>,
}

fn bind_listener(addr: SocketAddr) -> Result<TcpListener> {
    let sock = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|source| Error::Bind { addr, source })?;
    sock.set_reuseaddr(true)
        .map_err(|source| Error::Bind { addr, source })?;
    sock.set_nodelay(true)
        .map_err(|source| Error::Bind { addr, source })?;
    sock.bind(addr)
        .map_err(|source| Error::Bind { addr, source })?;
    sock.listen(4096)
        .map_err(|source| Error::Bind { addr, source })
}

/// hyper's read buffer for a config: it must hold a whole head.
fn read_buf_size(cfg: &Config) -> usize {
    cfg.server.max_header_bytes.max(64 * 1024)
}

/// How many streams a client may reset before the proxy took them up, per
/// connection, before it gets GOAWAY `ENHANCE_YOUR_CALM`: h2's default, stated
/// here so the bound on rapid-reset abuse (CVE-2023-44487) is ours, not an accident.
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// How many streams the proxy itself may reset for a client's protocol errors,
/// per connection, before it closes the connection with GOAWAY (h2's default).
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// A config's connection settings, built once per config generation (a reload
/// makes new ones; connections keep those they started with).
///
/// A plain listener reads the client's first bytes: the HTTP/2 connection preface
/// (RFC 9113 §3.4) goes to hyper's HTTP/2 server (h2c with prior knowledge, unless
/// `http2.cleartext = false`), anything else to its HTTP/1.1 server, with upgrades
/// (the handler relays `101 Switching Protocols`). A TLS listener goes by the
/// protocol ALPN settled (RFC 9113 §3.2: `h2`; RFC 7301), HTTP/1.1 without one.
///
/// HTTP/1.1 gets no head-size limit of hyper's own: a complete head reaches the
/// handler, which answers 414 or 431 by what is too long (`handle::check_head`);
/// a head that outgrows the read buffer fails in hyper, and [`ClientIo`] tells
/// which it was. HTTP/2 advertises `max_header_bytes` as its header list size.
struct Conns {
    /// The config these were built from (a new one is a new generation).
    config: Arc<Config>,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// Plain listeners serve h2c too.
    h2c: bool,
    /// hyper's read buffer size ([`ClientIo`] needs it).
    buf_size: usize,
    /// The header read timeout, which also bounds the wait for a connection's
    /// first request (and, for HTTP/2, between streams).
    header_read_timeout: Duration,
}

impl Conns {
    fn new(config: Arc<Config>) -> Conns {
        let s = &config.server;
        let h2 = &s.http2;
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(s.header_read_timeout)
            .max_buf_size(read_buf_size(&config));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(h2.max_concurrent_streams)
            // Twice `max_header_bytes`, so that the handler's own check of the head
            // (by the same measure as for HTTP/1.1) answers a head over the limit: a
            // 431 with X-Request-Id, or RESOURCE_EXHAUSTED to a gRPC call, where the h2
            // crate would answer a bare 431 itself. HTTP/2 counts 32 bytes more per
            // field (RFC 9113 §6.5.2, RFC 7541 §4.1); the setting is advisory, and a
            // server "can send an HTTP 431" for a block it will not handle (§10.5.1).
            .max_header_list_size(
                u32::try_from(s.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
            )
            .keep_alive_interval(
                (!h2.keepalive_interval.is_zero()).then_some(h2.keepalive_interval),
            )
            .keep_alive_timeout(h2.keepalive_timeout)
            .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
            .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS);
        Conns {
            h2c: h2.cleartext,
            buf_size: read_buf_size(&config),
            header_read_timeout: s.header_read_timeout,
            http1,
            http2,
            config,
        }
    }
}

/// The `[[server.tls]]` entries of a config, as the TLS module loads them.
fn tls_files(cfg: &Config) -> Vec<tls::CertFiles<'_>> {
    cfg.server.tls.iter().map(|t| t.files()).collect()
}

/// What a listener does with its connections.
#[derive(Clone)]
enum Kind {
    /// Plain HTTP: HTTP/1.1 and h2c.
    Plain,
    /// HTTPS with the certificates of `[[server.tls]]`.
    Tls,
    /// Plain HTTP answering every request with a redirect to HTTPS on this port.
    Redirect(u16),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Plain => "listen",
            Kind::Tls => "tls_listen",
            Kind::Redirect(_) => "redirect_listen",
        }
    }
}

impl Server {
    /// Bind the proxy and admin listeners from `config.server` (port 0 picks
    /// a free port), build the proxy and start serving. Call inside a tokio runtime.
    ///
    /// With a `[cluster]` table it also connects to etcd: it leases the X-Request-Id
    /// worker id and starts one membership watcher per upstream with
    /// `backends_from = "cluster"`, and waits up to 3 s for their first memberships
    /// before serving (then serves, with no backends for those upstreams). While etcd
    /// is unreachable those upstreams serve their last known members (none before
    /// the first: 503), and the link retries every second.
    pub async fn bind(config: Config) -> Result<Server> {
        let listener = bind_listener(config.server.listen)?;
        let admin_listener = bind_listener(config.server.admin)?;
        let tls_listener = config.server.tls_listen.map(bind_listener).transpose()?;
        let redirect_listener = config
            .server
            .redirect_listen
            .map(bind_listener)
            .transpose()?;
        let proxy_addr = listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        let tls_addr = tls_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let redirect_addr = redirect_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let certs = match &tls_listener {
            Some(_) => Some(Arc::new(Certs::load(&tls_files(&config)).map_err(|e| {
                Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })?)),
            None => None,
        };
        let max_conns = config.server.max_connections.min(Semaphore::MAX_PERMITS);
        let grace = config.server.shutdown_grace;
        let https_port = config
            .server
            .redirect_port
            .or(tls_addr.map(|a| a.port()))
            .unwrap_or(443);
        let cluster = config.cluster.clone();
        let proxy = Proxy::new(config)?;
        // The first and only set: this Proxy was just made.
        let _ = proxy.shared.running.bound.set(crate::state::BoundAddrs {
            listen: proxy_addr,
            admin: admin_addr,
            tls_listen: tls_addr,
            redirect_listen: redirect_addr,
        });
        let fleet_task = match cluster {
            Some(c) => {
                let (tx, mut rx) = watch::channel(fleet::Startup::Pending);
                let task = fleet::spawn(proxy.clone(), c, tx);
                let started = rx.wait_for(|s| *s == fleet::Startup::Ready);
                if tokio::time::timeout(fleet::START_WAIT, started)
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        "no membership from etcd within {}s: serving; cluster-fed upstreams get their members when it answers",
                        fleet::START_WAIT.as_secs()
                    );
                }
                Some(task)
            }
            None => None,
        };
        let (stop, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(max_conns));
        let mut loops = vec![(listener, Kind::Plain, None)];
        if let Some(l) = tls_listener {
            loops.push((l, Kind::Tls, certs));
        }
        if let Some(l) = redirect_listener {
            loops.push((l, Kind::Redirect(https_port), None));
        }
        let loops: Vec<_> = loops
            .into_iter()
            .map(|(l, kind, certs)| {
                tokio::spawn(accept_loop(
                    l,
                    kind,
                    certs,
                    proxy.clone(),
                    stop_rx.clone(),
                    permits.clone(),
                ))
            })
            .collect();
        let proxy_task = tokio::spawn(drain(loops, permits, max_conns, grace));
        let admin_task = tokio::spawn(admin_loop(admin_listener, proxy.clone(), stop_rx));
        tracing::info!(
            listen = %proxy_addr,
            admin = %admin_addr,
            tls_listen = tls_addr.map(|a| a.to_string()).unwrap_or_default(),
            redirect_listen = redirect_addr.map(|a| a.to_string()).unwrap_or_default(),
            "ringleader is serving"
        );
        Ok(Server {
            proxy,
            proxy_addr,
            admin_addr,
            tls_addr,
            redirect_addr,
            stop,
            proxy_task,
            admin_task,
            fleet_task,
        })
    }

    /// Where the proxy listens.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    /// Where the HTTPS listener listens (with `tls_listen`).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Where the redirect-to-HTTPS listener listens (with `redirect_listen`).
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect_addr
    }

    /// Where the admin endpoints listen.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The proxy's state: reload, status, metrics.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Stop accepting, let open requests and upgraded connections finish for up
    /// to `shutdown_grace` (HTTP/2 clients get GOAWAY, HTTP/1.1 ones
    /// `Connection: close`), then return (connections still open after the grace
    /// are dropped).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Upgraded connections (WebSocket) outlive hyper's: they drain beside them.
        let (_, _) = tokio::join!(self.proxy_task, self.proxy.drain_tunnels());
        self.admin_task.abort();
        self.proxy.stop_health();
        if let Some(t) = self.fleet_task {
            // Stops the membership watchers; then the worker id goes back.
            t.abort();
            let _ = t.await;
            self.proxy.shared.ids.release().await;
        }
    }
}

/// Resolves once shutdown was requested (or the sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// One client connection's service: cloned per request, so one `Arc`.
#[derive(Clone)]
struct ProxyService(Arc<ClientConn>);

/// What the handler needs of a client connection.
struct ClientConn {
    proxy: Proxy,
    peer: SocketAddr,
    peer_ip: HeaderValue,
    /// `X-Forwarded-Proto`.
    scheme: Scheme,
    /// HTTP/2 requests on this connection so far.
    h2_requests: AtomicU64,
    /// Those the client reset before their answers.
    h2_resets: resets::PrematureResets,
}

impl ProxyService {
    fn new(proxy: &Proxy, peer: SocketAddr, scheme: Scheme) -> ProxyService {
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        ProxyService(Arc::new(ClientConn {
            proxy: proxy.clone(),
            peer,
            peer_ip,
            scheme,
            h2_requests: AtomicU64::new(0),
            h2_resets: resets::PrematureResets::default(),
        }))
    }
}

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        if req.version() == Version::HTTP_2 {
            self.0.h2_requests.fetch_add(1, Relaxed);
            headers::join_cookies(req.headers_mut());
            h2_to_origin_form(&mut req);
        }
        let h2 = req.version() == Version::HTTP_2;
        let c = self.0.clone();
        Box::pin(async move {
            let answering = h2.then(|| c.h2_resets.answering(&c.h2_requests));
            let resp = handle(&c.proxy, req, c.peer, &c.peer_ip, c.scheme).await;
            if let Some(a) = answering {
                a.answered();
            }
            Ok(resp)
        })
    }
}

/// A service whose HTTP/2 requests are counted (for the idle check of [`serve_h2`]).
pub(super) trait Watched {
    fn h2_requests(&self) -> u64;

    /// Resolves when the client reset too many streams before their answers
    /// (never, for a service that does not count them).
    fn abusive(&self) -> impl std::future::Future<Output = ()> + Send + '_ {
        std::future::pending()
    }
}

impl Watched for ProxyService {
    fn h2_requests(&self) -> u64 {
        self.0.h2_requests.load(Relaxed)
    }

    fn abusive(&self) -> impl std::future::Future<Output = ()> + Send + '_ {
        self.0.h2_resets.abusive()
    }
}

/// An HTTP/2 request in the shape of an HTTP/1.1 one in origin form: its
/// `:authority` becomes `Host`, as RFC 9113 §8.3.1 asks of an intermediary
/// forwarding to HTTP/1.1 ("MUST construct a Host header field ... by copying the
/// value of :authority"), and replaces a `Host` that differs (the authority is the
/// request's target, as for an absolute-form HTTP/1.1 request, RFC 9112 §3.2.2);
/// the target is the path and query.
fn h2_to_origin_form(req: &mut Request<Incoming>) {
    let Some(authority) = req.uri().authority().cloned() else {
        return;
    };
    if *req.method() == http::Method::CONNECT {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
        req.headers_mut().insert(http::header::HOST, v);
    }
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = req.uri().path_and_query().cloned();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// Accept on `listener` until shutdown, each connection holding a permit of
/// `permits` (at the limit, new clients wait in the backlog).
async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    mut certs: Option<Arc<Certs>>,
    proxy: Proxy,
    mut stop: watch::Receiver<bool>,
    permits: Arc<Semaphore>,
) {
    let mut reloads = proxy.shared.reloaded.subscribe();
    let mut conns = Arc::new(Conns::new(proxy.shared.state.load().config.clone()));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, listener = kind.name(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        // The first request is due within the header read timeout from now.
        let start = Instant::now();
        {
            let state = proxy.shared.state.load();
            if !Arc::ptr_eq(&state.config, &conns.config) {
                conns = Arc::new(Conns::new(state.config.clone()));
            }
        }
        // A reload re-reads the certificates for the handshakes after it; one that
        // fails keeps the ones serving (the reload itself checked them, so only a
        // file changed in between fails here).
        if certs.is_some() && reloads.has_changed().unwrap_or(false) {
            reloads.borrow_and_update();
            match Certs::load(&tls_files(&conns.config)) {
                Ok(c) => {
                    certs = Some(Arc::new(c));
                    tracing::info!("TLS certificates reloaded");
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "TLS certificates not reloaded; the previous ones keep serving"
                ),
            }
        }
        let proxy = proxy.clone();
        let stop = stop.clone();
        let kind = kind.clone();
        let certs = certs.clone();
        let conns = conns.clone();
        tokio::spawn(async move {
            let m = &proxy.shared.metrics;
            m.connections_accepted.fetch_add(1, Relaxed);
            m.connections_open.fetch_add(1, Relaxed);
            let first_by = start + conns.header_read_timeout;
            match (kind, certs) {
                (Kind::Tls, Some(certs)) => {
                    let handshake = tls_handshake(stream, &certs);
                    match tokio::time::timeout_at(first_by, handshake).await {
                        Ok(Some(tls)) => {
                            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                            let io = ClientIo::new(tls, conns.buf_size);
                            let svc = ProxyService::new(&proxy, peer, Scheme::Https);
                            if h2 {
                                serve_h2(&conns, io, svc, first_by, stop, peer).await;
                            } else {
                                let m = Some(&proxy.shared.metrics);
                                serve_h1(&conns, io, svc, stop, peer, m).await;
                            }
                        }
                        Ok(None) => {}
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                (Kind::Redirect(port), _) => {
                    let svc = redirect::Redirect::new(port);
                    serve_plain(&conns, stream, svc, first_by, stop, peer, None).await;
                }
                _ => {
                    let svc = ProxyService::new(&proxy, peer, Scheme::Http);
                    let m = Some(&proxy.shared.metrics);
                    serve_plain(&conns, stream, svc, first_by, stop, peer, m).await;
                }
            }
            proxy.shared.metrics.connections_open.fetch_sub(1, Relaxed);
            drop(permit);
        });
    }
}

/// The server side of a TLS handshake with the certificate for the client's SNI;
/// `None` when it failed (logged at debug). A name that no certificate serves,
/// with no default certificate, gets the alert `unrecognized_name`.
async fn tls_handshake(
    stream: tokio::net::TcpStream,
    certs: &Certs,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match acceptor.await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "TLS: no valid ClientHello");
            return None;
        }
    };
    let name = start.client_hello().server_name().map(str::to_string);
    if certs.store.pick(name.as_deref()).is_none() {
        tracing::debug!(
            sni = name.as_deref().unwrap_or(""),
            "TLS: no certificate for this name"
        );
        let mut io = start.io;
        let _ = io.write_all(&tls::UNRECOGNIZED_NAME_ALERT).await;
        let _ = io.shutdown().await;
        return None;
    }
    match start.into_stream(certs.config.clone()).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
    }
}

/// Serve a plain connection: HTTP/2 when it opens with the HTTP/2 preface (and
/// h2c is on), else HTTP/1.1. The bytes read to tell are served again. A client
/// that has not told by `first_by` (the header read timeout after accept) is closed;
/// an HTTP/1.1 head then has hyper's header read timeout from when it was told
/// (most clients tell with their first byte: only a head starting like the
/// preface, `PRI * HTTP/2.0...`, waits any longer).
/// `metrics`: see [`serve_h1`].
async fn serve_plain<S>(
    conns: &Conns,
    mut stream: TcpStream,
    svc: S,
    first_by: Instant,
    stop: watch::Receiver<bool>,
    peer: SocketAddr,
    metrics: Option<&Metrics>,
) where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<ProxyBody>,
            Error = Infallible,
        > + Watched
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let (proto, pre) = if conns.h2c {
        match tokio::time::timeout_at(first_by, sniff::sniff(&mut stream)).await {
            Ok(Ok(Some(told))) => told,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "no request within the header read timeout: closed");
                return;
            }
        }
    } else {
        (Proto::Http1, bytes::Bytes::new())
    };
    let io = ClientIo::new(Rewind::new(stream, pre), conns.buf_size);
    match proto {
        Proto::H2 => serve_h2(conns, io, svc, first_by, stop, peer).await,
        Proto::Http1 => serve_h1(conns, io, svc, stop, peer, metrics).await,
    }
}

/// Serve one HTTP/1.1 connection (with upgrades) until it ends, or until
/// shutdown (then `Connection: close` after the current request). hyper's header
/// read timeout bounds the wait for each request head, the first one included.
///
/// A head hyper cannot parse gets hyper's own answer (400, 431; or the 414
/// [`ClientIo`] writes in place of its 431), which the handler never sees: with
/// `metrics` (the proxy's listeners) it is counted in the responses by class and,
/// with the access log on, logged with no request ID, method or path.
async fn serve_h1<I, S>(
    conns: &Conns,
    io: ClientIo<I>,
    svc: S,
    mut stop: watch::Receiver<bool>,
    peer: SocketAddr,
    metrics: Option<&Metrics>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<ProxyBody>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let own_answer = io.own_answer();
    let conn = conns
        .http1
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let res = tokio::select! {
        r = conn.as_mut() => r,
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = res {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
        // hyper answers a parse error itself (and only then writes an answer the
        // handler did not make); ClientIo saw which status went out.
        let status = own_answer.load(Relaxed);
        if let (true, Some(m), 400..=599) = (e.is_parse(), metrics, status) {
            m.count_unread(status);
            crate::access_log::Entry::unread(status, peer).emit(conns.config.server.access_log);
        }
    }
}

/// Serve one HTTP/2 connection until it ends, or until shutdown (then GOAWAY,
/// open streams finishing). A connection that starts no stream by `first_by` is
/// closed, and one that then starts no stream for a whole header read timeout
/// (checked once per period: idle 1 to 2 times it) gets GOAWAY: hyper's HTTP/2
/// server has no idle timeout of its own.
async fn serve_h2<I, S>(
    conns: &Conns,
    io: ClientIo<I>,
    svc: S,
    first_by: Instant,
    mut stop: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<ProxyBody>,
            Error = Infallible,
        > + Watched
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let watch = svc.clone();
    let conn = conns.http2.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let deadline = tokio::time::sleep_until(first_by);
    tokio::pin!(deadline);
    let mut watching = true;
    let mut seen = 0;
    let abusive = watch.abusive();
    tokio::pin!(abusive);
    let mut calm = true;
    let res = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = &mut abusive, if calm => {
                tracing::warn!(
                    %peer,
                    "HTTP/2 client reset most of its streams before their answers (rapid reset): GOAWAY"
                );
                conn.as_mut().graceful_shutdown();
                calm = false;
                watching = false;
            }
            _ = &mut deadline, if watching => {
                let n = watch.h2_requests();
                if n == 0 {
                    // RFC 9113 §6.8: endpoints "SHOULD always send a GOAWAY frame before
                    // closing a connection". A client that does not answer the ping of
                    // the graceful shutdown is cut off after a second.
                    tracing::debug!(%peer, "no request within the header read timeout: GOAWAY");
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
                    return;
                }
                if n == seen {
                    tracing::debug!(%peer, "HTTP/2 connection idle: GOAWAY");
                    conn.as_mut().graceful_shutdown();
                    watching = false;
                } else {
                    seen = n;
                    deadline.as_mut().reset(Instant::now() + conns.header_read_timeout);
                }
            }
            _ = stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                break conn.as_mut().await;
            }
        }
    };
    if let Err(e) = res {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}

/// After shutdown: wait for the accept loops to stop, then for every connection
/// (each holds a permit) up to `grace`.
async fn drain(
    loops: Vec<JoinHandle<()>>,
    permits: Arc<Semaphore>,
    max_conns: usize,
    grace: Duration,
) {
    for l in loops {
        let _ = l.await;
    }
    let all = u32::try_from(max_conns).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace elapsed with connections still open");
    } else {
        tracing::info!("all connections drained");
    }
}

async fn admin_loop(listener: TcpListener, proxy: Proxy, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue; }
            },
            _ = stopped(&mut stop) => break,
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(admin::handle(&proxy, &req)) }
            });
            let mut b = http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let _ = b.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
