//! Listeners: the proxy's HTTP/1.1 server (limits, keep-alive, graceful drain) and the admin listener.
use crate::admin;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::handle::handle;
use crate::response::ProxyBody;
use crate::state::Proxy;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

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
    stop: watch::Sender<bool>,
    proxy_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
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

/// The hyper HTTP/1.1 server settings for a config. hyper gets no head-size limit
/// of its own: a complete head reaches the handler, which answers 414 or 431 by
/// what is too long (`handle::check_head`); a head that outgrows the read buffer
/// fails in hyper, and [`ClientIo`] tells which it was.
fn http1_builder(cfg: &Config) -> http1::Builder {
    let s = &cfg.server;
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(s.header_read_timeout)
        .max_buf_size(read_buf_size(cfg));
    b
}

/// A client connection as hyper sees it, telling a request line too long from a
/// head too large when the head does not fit hyper's read buffer.
///
/// hyper answers such a head with 431 itself. This counts the bytes read since the
/// last line feed: when hyper gives up on a head with at least a buffer's worth of
/// them, the head's first line never ended, and the client gets the 414 that
/// RFC 9112 §3 asks for in place of hyper's 431. (A single header line as long as
/// the whole buffer is taken for a request line too: either way, the head was far
/// over the limit.) Everything else passes through untouched.
#[derive(Debug)]
struct ClientIo {
    io: TcpStream,
    /// Bytes read since the last `\n` (saturating).
    since_lf: usize,
    /// hyper's read buffer size.
    buf_size: usize,
    /// The 414 being written in place of hyper's 431, how much of it is out, and
    /// how many bytes of hyper's to report written once it is all out.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl ClientIo {
    fn new(io: TcpStream, buf_size: usize) -> ClientIo {
        ClientIo {
            io,
            since_lf: 0,
            buf_size,
            replacing: None,
        }
    }

    /// Whether `head` is hyper's own 431 for a head whose first line never ended
    /// (every answer of the proxy's handler carries `x-request-id`; hyper's does not).
    fn replaces(&self, head: &[u8]) -> bool {
        self.since_lf >= self.buf_size
            && head.starts_with(b"HTTP/1.1 431 ")
            && !head.windows(12).any(|w| w == b"x-request-id")
    }

    fn start_replacing(&mut self, hypers: usize) {
        let status = Error::UriTooLong.status();
        let out = format!(
            "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or(""),
        );
        self.replacing = Some((out.into_bytes(), 0, hypers));
    }

    fn poll_replace(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let Some((out, sent, hypers)) = &mut self.replacing else {
            return Poll::Ready(Ok(0));
        };
        while *sent < out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &out[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        let hypers = *hypers;
        self.replacing = None;
        self.since_lf = 0;
        Poll::Ready(Ok(hypers))
    }
}

/// Position of the last `\n` in `b`. Body bytes pass through here too, so the
/// blocks are tested without an early exit (which the compiler can vectorise).
fn last_lf(b: &[u8]) -> Option<usize> {
    let mut end = b.len();
    for block in b.rchunks(64) {
        end -= block.len();
        if block.iter().fold(false, |any, &x| any | (x == b'\n')) {
            return block.iter().rposition(|&x| x == b'\n').map(|i| end + i);
        }
    }
    None
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        this.since_lf = match last_lf(new) {
            Some(i) => new.len() - 1 - i,
            None => this.since_lf.saturating_add(new.len()),
        };
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() && this.replaces(buf) {
            this.start_replacing(buf.len());
        }
        if this.replacing.is_some() {
            return this.poll_replace(cx);
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if let (None, [head]) = (&this.replacing, bufs) {
            if this.replaces(head) {
                this.start_replacing(head.len());
            }
        }
        if this.replacing.is_some() {
            return this.poll_replace(cx);
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl Server {
    /// Bind the proxy and admin listeners from `config.server` (port 0 picks
    /// a free port), build the proxy and start serving. Call inside a tokio runtime.
    pub async fn bind(config: Config) -> Result<Server> {
        let listener = bind_listener(config.server.listen)?;
        let admin_listener = bind_listener(config.server.admin)?;
        let proxy_addr = listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        let max_conns = config.server.max_connections.min(Semaphore::MAX_PERMITS);
        let grace = config.server.shutdown_grace;
        let proxy = Proxy::new(config)?;
        let (stop, stop_rx) = watch::channel(false);
        let proxy_task = tokio::spawn(accept_loop(
            listener,
            proxy.clone(),
            stop_rx.clone(),
            max_conns,
            grace,
        ));
        let admin_task = tokio::spawn(admin_loop(admin_listener, proxy.clone(), stop_rx));
        tracing::info!(listen = %proxy_addr, admin = %admin_addr, "ringleader is serving");
        Ok(Server {
            proxy,
            proxy_addr,
            admin_addr,
            stop,
            proxy_task,
            admin_task,
        })
    }

    /// Where the proxy listens.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    /// Where the admin endpoints listen.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The proxy's state: reload, status, metrics.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Stop accepting, let open requests finish for up to `shutdown_grace`,
    /// then return (connections still open after the grace are dropped).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.proxy_task.await;
        self.admin_task.abort();
        self.proxy.stop_health();
    }
}

/// Resolves once shutdown was requested (or the sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// One client connection's service.
#[derive(Clone)]
struct ProxyService {
    proxy: Proxy,
    peer: SocketAddr,
    peer_ip: HeaderValue,
}

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(handle(&this.proxy, req, this.peer, &this.peer_ip).await) })
    }
}

async fn accept_loop(
    listener: TcpListener,
    proxy: Proxy,
    mut stop: watch::Receiver<bool>,
    max_conns: usize,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(max_conns));
    loop {
        // At the connection limit, stop accepting: new clients wait in the backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let (builder, buf_size) = {
            let state = proxy.shared.state.load();
            (http1_builder(&state.config), read_buf_size(&state.config))
        };
        let proxy = proxy.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let stream = ClientIo::new(stream, buf_size);
            serve_conn(builder, stream, peer, proxy, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    // Drain: every connection holds a permit until it is done.
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

async fn serve_conn(
    builder: http1::Builder,
    stream: ClientIo,
    peer: SocketAddr,
    proxy: Proxy,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.io.set_nodelay(true);
    let m = &proxy.shared.metrics;
    m.connections_accepted.fetch_add(1, Relaxed);
    m.connections_open.fetch_add(1, Relaxed);
    let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or(HeaderValue::from_static("unknown"));
    let svc = ProxyService {
        proxy: proxy.clone(),
        peer,
        peer_ip,
    };
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
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
    }
    proxy.shared.metrics.connections_open.fetch_sub(1, Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_feed_is_found_in_any_block() {
        assert_eq!(last_lf(b""), None);
        assert_eq!(last_lf(b"abc"), None);
        assert_eq!(last_lf(b"a\nb\nc"), Some(3));
        let mut v = vec![b'x'; 1000];
        for at in [0, 1, 63, 64, 65, 500, 935, 936, 999] {
            v[at] = b'\n';
            assert_eq!(last_lf(&v), Some(at), "{at}");
        }
        assert_eq!(last_lf(&vec![b'x'; 1000]), None);
    }
}
