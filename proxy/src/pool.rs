//! Keep-alive connection pool per backend on hyper's HTTP/1 client connections.
//!
//! A connection goes back to its pool when the response body it carried has
//! been read to the end ([`Checkin`], held by the response body), so no task
//! is spawned per request; a connection whose response was abandoned is
//! dropped (and closed by hyper).
use crate::body::UpstreamBody;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use ringleader_balancer::Pick;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections kept per backend.
pub const MAX_IDLE_PER_BACKEND: usize = 1024;

/// A sender on an HTTP/1.1 connection to a backend.
pub type Conn = SendRequest<UpstreamBody>;

/// Why a request could not be sent.
#[derive(Debug)]
pub enum SendError {
    /// TCP connect failed.
    Connect(std::io::Error),
    /// TCP connect did not finish within `connect_timeout`.
    ConnectTimeout,
    /// The HTTP exchange failed (reset, closed, invalid response).
    Http(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::ConnectTimeout => f.write_str("connect timed out"),
            SendError::Http(e) => {
                write!(f, "{e}")?;
                let mut cur = std::error::Error::source(e);
                while let Some(c) = cur {
                    write!(f, ": {c}")?;
                    cur = c.source();
                }
                Ok(())
            }
        }
    }
}

impl SendError {
    /// The backend actively refused the connection.
    pub fn is_refused(&self) -> bool {
        matches!(self, SendError::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    }

    /// The backend's answer was not valid HTTP.
    pub fn is_protocol(&self) -> bool {
        matches!(self, SendError::Http(e) if e.is_parse() || e.is_parse_status())
    }
}

/// The idle connections to one backend, and how to open new ones.
#[derive(Debug)]
pub struct BackendConns {
    addr: String,
    sock: Option<SocketAddr>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Idle connections with the time they went idle; most recent last.
    idle: Mutex<Vec<(Conn, Instant)>>,
}

impl BackendConns {
    /// A pool for `addr` (`host:port`); connections idle longer than
    /// `idle_timeout` are not reused.
    pub fn new(addr: &str, connect_timeout: Duration, idle_timeout: Duration) -> BackendConns {
        BackendConns {
            addr: addr.to_string(),
            sock: addr.parse().ok(),
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Idle timeout of pooled connections.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Connect timeout of new connections.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Idle connections right now.
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }

    /// A ready connection: the most recently used idle one, else a new one.
    async fn checkout(&self) -> Result<Conn, SendError> {
        loop {
            // The lock is held for a pop only (uncontended with one worker).
            let Some((mut c, since)) = self.idle.lock().pop() else {
                break;
            };
            if c.is_closed() {
                continue;
            }
            if since.elapsed() > self.idle_timeout {
                // The ones below it went idle earlier still.
                self.idle.lock().clear();
                continue;
            }
            if c.is_ready() {
                return Ok(c);
            }
            // Checked in at body end; its connection task has not caught up yet.
            // Bounded: a connection that stays busy is dropped, not waited on.
            if let Ok(Ok(())) = tokio::time::timeout(self.connect_timeout, c.ready()).await {
                return Ok(c);
            }
        }
        self.connect().await
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
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "backend connection ended with an error");
            }
        });
        Ok(tx)
    }

    /// Return a connection whose exchange is complete.
    pub fn checkin(&self, c: Conn) {
        if c.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE_PER_BACKEND {
            idle.push((c, now));
        }
    }

    /// Send `req` on a pooled or new connection. A request that never reached
    /// the wire (a stale idle connection) is resent on another connection.
    pub async fn send(
        &self,
        mut req: Request<UpstreamBody>,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, Conn), SendError> {
        for fresh in [false, false, true] {
            let mut c = if fresh {
                self.connect().await?
            } else {
                self.checkout().await?
            };
            match c.try_send_request(req).await {
                Ok(resp) => return Ok((resp, c)),
                Err(mut e) => match e.take_message() {
                    Some(r) => req = r,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        Err(SendError::Connect(std::io::Error::other(
            "backend connections keep closing before use",
        )))
    }
}

/// Puts a connection back into its pool once the response body it carries is done,
/// and ends the request's balancer [`Pick`] then: a backend streaming a long response
/// counts as busy (in flight) until the last byte, as least-connections needs.
#[derive(Debug)]
pub struct Checkin {
    conn: Conn,
    pool: Arc<BackendConns>,
    /// The successful pick and its time to the response head, recorded at the end.
    pick: Option<(Pick, Duration)>,
}

impl Checkin {
    /// Pair a connection with its pool.
    pub fn new(conn: Conn, pool: Arc<BackendConns>) -> Checkin {
        Checkin {
            conn,
            pool,
            pick: None,
        }
    }

    /// Also finish `pick` as a success with `latency` (time to the response head) when
    /// the body ends; if the body is abandoned or fails, the pick is dropped (cancelled:
    /// in flight ends, no outcome recorded).
    pub fn with_pick(mut self, pick: Pick, latency: Duration) -> Checkin {
        self.pick = Some((pick, latency));
        self
    }

    /// The exchange is complete: return the connection, record the pick's success.
    pub fn done(self) {
        self.pool.checkin(self.conn);
        if let Some((pick, latency)) = self.pick {
            pick.success(latency);
        }
    }
}
