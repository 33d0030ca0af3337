//! Connections per backend: a keep-alive pool on the proxy's own HTTP/1.1 client
//! ([`crate::http1`]), or one multiplexed HTTP/2 connection ([`h2`]).
//!
//! A connection goes back to its pool when the response body it carried has
//! been read to the end ([`Checkin`], held by the response body), so no task
//! is spawned per request; a connection whose response was abandoned is
//! dropped (closed).
mod h2;

pub(crate) use h2::{connect as h2_connect, h2_body, request as h2_request};
pub(crate) use h2::{te_trailers, H2Target, TlsTo};

use crate::http1::{self, BackendBody, BoxError, ClientError, Conn, ReqBody};
use bytes::Bytes;
use http::{HeaderMap, Method, Response, Uri};
use http_body::Body;
use parking_lot::Mutex;
use ringleader_balancer::Pick;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections kept per backend.
pub(crate) const MAX_IDLE_PER_BACKEND: usize = 1024;

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SendError {
    /// TCP connect failed.
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// TCP connect did not finish within `connect_timeout`.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The HTTP exchange failed (reset, closed, invalid response, client body).
    #[error("{0}")]
    Exchange(#[source] ClientError),
    /// The HTTP/2 connection or exchange failed (handshake, GOAWAY, reset stream).
    #[error("http/2: {0}")]
    H2(#[source] hyper::Error),
    /// The TLS handshake with the backend failed (certificate, ALPN).
    #[error("tls: {0}")]
    Tls(#[source] std::io::Error),
    /// The request could not be put in HTTP/2 form.
    #[error("request: {0}")]
    Request(#[source] http::Error),
}

impl SendError {
    /// The backend actively refused the connection.
    pub(crate) fn is_refused(&self) -> bool {
        matches!(self, SendError::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    }

    /// The connection was never opened (refused, failed, timed out): nothing was sent.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_) | SendError::ConnectTimeout)
    }

    /// The backend's answer was not valid HTTP.
    pub(crate) fn is_protocol(&self) -> bool {
        matches!(self, SendError::Exchange(ClientError::Protocol(_)))
            || matches!(self, SendError::H2(e) if e.is_parse())
    }

    /// The client's request body failed, not the backend.
    pub(crate) fn is_client_body(&self) -> bool {
        matches!(self, SendError::Exchange(e) if e.is_client_body())
    }
}

/// The idle connections to one backend, and how to open new ones.
#[derive(Debug)]
pub(crate) struct BackendConns {
    addr: String,
    sock: Option<SocketAddr>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Idle connections with the time they went idle; most recent last.
    idle: Mutex<Vec<(Conn, Instant)>>,
    /// Upgraded connections (tunnels) open to this backend: shared with the pool
    /// that replaces this one on a reload, so tunnels opened before it still count.
    upgraded: Arc<AtomicU64>,
    /// `protocol = "h2c"` / `"h2"`: the backend's one HTTP/2 connection (`idle` stays empty).
    h2: Option<(H2Target, h2::H2Conn)>,
}

impl BackendConns {
    /// A pool for `addr` (`host:port`); connections idle longer than
    /// `idle_timeout` are not reused.
    pub(crate) fn new(
        addr: &str,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> BackendConns {
        BackendConns {
            addr: addr.to_string(),
            sock: addr.parse().ok(),
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
            upgraded: Arc::default(),
            h2: None,
        }
    }

    /// Speak HTTP/2 to the backend, as `target` says.
    pub(crate) fn with_h2(mut self, target: Option<H2Target>) -> BackendConns {
        self.h2 = target.map(|t| (t, h2::H2Conn::default()));
        self
    }

    /// How HTTP/2 reaches this backend (`None`: HTTP/1.1).
    pub(crate) fn h2_target(&self) -> Option<&H2Target> {
        self.h2.as_ref().map(|(t, _)| t)
    }

    /// A new pool for the same backend as `prev` (new timeouts), keeping its count of
    /// open tunnels.
    pub(crate) fn succeeding(
        prev: &BackendConns,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> BackendConns {
        let mut p = BackendConns::new(&prev.addr, connect_timeout, idle_timeout);
        p.upgraded = prev.upgraded.clone();
        p
    }

    /// Upgraded connections (WebSocket and other tunnels) open to this backend now
    /// (for /status: `upgraded` of each backend).
    pub(crate) fn upgraded(&self) -> u64 {
        self.upgraded.load(Relaxed)
    }

    /// Count one open tunnel to this backend until the guard is dropped.
    pub(crate) fn count_upgraded(&self) -> UpgradedGuard {
        self.upgraded.fetch_add(1, Relaxed);
        UpgradedGuard(self.upgraded.clone())
    }

    /// The backend's address (`host:port`), as configured.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Idle timeout of pooled connections.
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Connect timeout of new connections.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Idle connections right now.
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().len()
    }

    /// A usable connection: the most recently used idle one (`true`: reused), else a new one.
    async fn checkout(&self) -> Result<(Conn, bool), SendError> {
        loop {
            // The lock is held for a pop only (uncontended with one worker).
            let Some((c, since)) = self.idle.lock().pop() else {
                break;
            };
            if since.elapsed() > self.idle_timeout {
                // The ones below it went idle earlier still.
                self.idle.lock().clear();
                continue;
            }
            if c.is_usable() {
                return Ok((c, true));
            }
        }
        Ok((self.connect().await?, false))
    }

    /// Open a new connection.
    async fn connect(&self) -> Result<Conn, SendError> {
        let connect = async {
            match self.sock {
                Some(sa) => TcpStream::connect(sa).await,
                None => TcpStream::connect(self.addr.as_str()).await,
            }
        };
        let stream = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| SendError::ConnectTimeout)?
            .map_err(SendError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(Conn::new(stream))
    }

    /// Return a connection whose exchange is complete.
    pub(crate) fn checkin(&self, c: Conn) {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        // Drop the oldest when they have outlived the idle timeout (closing them).
        let expired = idle
            .iter()
            .take_while(|(_, t)| now.duration_since(*t) > self.idle_timeout)
            .count();
        if expired > 0 {
            idle.drain(..expired);
        }
        if idle.len() < MAX_IDLE_PER_BACKEND {
            idle.push((c, now));
        }
    }

    /// Send a request on a pooled connection (one the backend has not closed) or a
    /// new one. The response body streams from the connection; see [`Checkin`].
    ///
    /// A backend may close an idle connection just as a request goes out on it. When a
    /// reused connection is closed or reset before any byte of a response, an
    /// `idempotent` request whose body can be replayed is sent once more, on a new
    /// connection to the same backend (RFC 9112 §9.3.1: "a client MAY open a new
    /// connection and automatically retransmit an aborted sequence of requests if all
    /// of those requests have idempotent methods"). It is not a retry: only the
    /// second exchange's outcome is the backend's.
    ///
    /// An `upgrade` request (WebSocket and others) always goes out on a new
    /// connection, which a `101` takes out of the pool for good, and is never sent
    /// twice: a backend may have started the new protocol on it.
    pub(crate) async fn send<S>(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: ReqBody<S>,
        idempotent: bool,
        upgrade: bool,
    ) -> Result<Response<BackendBody>, SendError>
    where
        S: Body<Data = Bytes> + Send + Unpin + 'static,
        S::Error: Into<BoxError> + Send,
    {
        if let Some((target, conn)) = &self.h2 {
            // HTTP/2 has no Upgrade (RFC 9113 §8.6): the handler never forwards one to it.
            let body = h2::h2_body(body);
            // Boxed: its connect and handshake make this future several KB, which
            // every HTTP/1.1 request's future would otherwise carry (and move).
            let send = conn.send(target, self.connect_timeout, (method, uri, headers), body);
            let resp = Box::pin(send).await?;
            return Ok(resp.map(BackendBody::h2));
        }
        if upgrade {
            let conn = self.connect().await?;
            return http1::exchange(conn, method, uri, headers, body)
                .await
                .map_err(SendError::Exchange);
        }
        let (conn, reused) = self.checkout().await?;
        let again = if reused && idempotent {
            body.try_clone()
        } else {
            None
        };
        match http1::exchange(conn, method, uri, headers, body).await {
            Err(e) if e.is_unanswered() => {
                let Some(body) = again else {
                    return Err(SendError::Exchange(e));
                };
                tracing::debug!(addr = %self.addr, error = %e, "pooled connection to {} closed unanswered; sending again on a new one", self.addr);
                let conn = self.connect().await?;
                http1::exchange(conn, method, uri, headers, body)
                    .await
                    .map_err(SendError::Exchange)
            }
            r => r.map_err(SendError::Exchange),
        }
    }
}

/// Counts one open tunnel of a backend (see [`BackendConns::upgraded`]) while it lives.
#[derive(Debug)]
pub(crate) struct UpgradedGuard(Arc<AtomicU64>);

impl Drop for UpgradedGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Puts a connection back into its pool once the response body it carries is done,
/// and ends the request's balancer [`Pick`] then: a backend streaming a long response
/// counts as busy (in flight) until the last byte, as least-connections needs.
#[derive(Debug)]
pub(crate) struct Checkin {
    pool: Arc<BackendConns>,
    /// The successful pick and its time to the response head, recorded at the end.
    pick: Option<(Pick, Duration)>,
}

impl Checkin {
    /// For a response from `pool`.
    pub(crate) fn new(pool: Arc<BackendConns>) -> Checkin {
        Checkin { pool, pick: None }
    }

    /// Also finish `pick` as a success with `latency` (time to the response head) when
    /// the body ends; if the body is abandoned or fails, the pick is dropped (cancelled:
    /// in flight ends, no outcome recorded).
    pub(crate) fn with_pick(mut self, pick: Pick, latency: Duration) -> Checkin {
        self.pick = Some((pick, latency));
        self
    }

    /// The pool the response came from.
    pub(crate) fn pool(&self) -> &Arc<BackendConns> {
        &self.pool
    }

    /// The exchange is complete: return the connection (when the backend keeps it
    /// open), record the pick's success.
    pub(crate) fn done(self, conn: Option<Conn>) {
        if let Some(c) = conn {
            self.pool.checkin(c);
        }
        if let Some((pick, latency)) = self.pick {
            pick.success(latency);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::error::Error as _;

    #[tokio::test]
    async fn a_refused_connect_keeps_its_cause_up_to_the_proxy_error() {
        // A port nothing listens on: bound, then closed.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let pool = BackendConns::new(&addr, Duration::from_secs(5), Duration::from_secs(5));
        let body = ReqBody::<http_body_util::Empty<Bytes>>::Empty;
        let uri = Uri::from_static("/");
        let e = pool
            .send(&Method::GET, &uri, &HeaderMap::new(), body, true, false)
            .await
            .unwrap_err();
        assert!(e.is_refused(), "{e}");
        // Error -> SendError -> io::Error.
        let e = Error::UpstreamConnect(Box::new(e));
        let io = e
            .source()
            .and_then(|s| s.source())
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
    }
}
