//! Listeners: the proxy's HTTP/1.1 server (limits, keep-alive, graceful drain) and the admin listener.
mod client_io;

use crate::admin;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fleet;
use crate::handle::handle;
use crate::response::ProxyBody;
use crate::state::Proxy;
use client_io::ClientIo;
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
use std::time::Duration;
use tokio::net::TcpListener;
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
        let proxy_addr = listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        let max_conns = config.server.max_connections.min(Semaphore::MAX_PERMITS);
        let grace = config.server.shutdown_grace;
        let cluster = config.cluster.clone();
        let proxy = Proxy::new(config)?;
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
            fleet_task,
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
