//! Upgraded connections (HTTP/1.1 `Upgrade`, WebSocket): after a relayed `101`, bytes copied both ways until either side closes.
//!
//! RFC 9110 §7.8: after a `101 Switching Protocols` both connections carry the
//! protocol the client asked for, which the proxy does not speak: it copies bytes
//! (as RFC 6455 §4.1 expects of an intermediary for WebSocket) until either side
//! closes, no byte moves either way for the idle timeout, or a shutdown's grace ends.
use crate::http1::Conn;
use crate::metrics::Tunnels;
use crate::pool::Checkin;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

/// Both ends of a switched connection, and what it holds until it ends.
pub(crate) struct Tunnel {
    /// The client's connection, once hyper has written the `101` to it.
    pub(crate) client: OnUpgrade,
    /// The backend's connection, with the bytes of the new protocol that came behind its `101`.
    pub(crate) backend: Conn,
    /// Holds the balancer's pick: the tunnel counts as a request in flight to the
    /// backend (least-connections sees it) until it ends.
    pub(crate) checkin: Checkin,
    /// No byte either way for this long closes both sides.
    pub(crate) idle_timeout: Duration,
    /// Upstream and backend, for the log line at the end.
    pub(crate) upstream: String,
    pub(crate) backend_label: String,
}

/// How a tunnel ended.
#[derive(Debug)]
enum End {
    /// The client closed its side, after this many bytes to the backend.
    ClientClosed(u64),
    /// The backend closed its side, after this many bytes to the client.
    BackendClosed(u64),
    /// A socket failed (reset, ...).
    Failed(std::io::Error),
    /// No byte moved either way for the idle timeout.
    Idle,
    /// The client's side of the upgrade never completed (it went away first).
    NoClient(hyper::Error),
    /// The shutdown grace ended.
    Shutdown,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClientClosed(n) => {
                write!(f, "closed by the client ({n} bytes sent to the backend)")
            }
            End::BackendClosed(n) => {
                write!(f, "closed by the backend ({n} bytes sent to the client)")
            }
            End::Failed(e) => write!(f, "failed: {e}"),
            End::Idle => f.write_str("idle for the idle timeout"),
            End::NoClient(e) => write!(f, "the client's upgrade failed: {e}"),
            End::Shutdown => f.write_str("closed at the end of the shutdown grace"),
        }
    }
}

/// Copy between both ends of `t` in a task of its own, counted in `tunnels` and in
/// the backend's pool (`upgraded`) while it runs.
pub(crate) fn spawn(t: Tunnel, tunnels: &Tunnels) {
    let open = tunnels.enter();
    let per_backend = t.checkin.pool().count_upgraded();
    let tunnels = tunnels.clone();
    tokio::spawn(async move {
        let Tunnel {
            client,
            backend,
            checkin,
            idle_timeout,
            upstream,
            backend_label,
        } = t;
        let end = tokio::select! {
            e = run(client, backend, idle_timeout) => e,
            _ = tunnels.closing() => End::Shutdown,
        };
        tracing::debug!(upstream = %upstream, backend = %backend_label, "upgraded connection ended: {end}");
        // The pick ends (in flight drops); the connection never goes back to a pool.
        checkin.done(None);
        drop((per_backend, open));
    });
}

async fn run(client: OnUpgrade, backend: Conn, idle: Duration) -> End {
    let client = match tokio::time::timeout(idle, client).await {
        Ok(Ok(u)) => TokioIo::new(u),
        Ok(Err(e)) => return End::NoClient(e),
        Err(_) => return End::Idle,
    };
    let (backend, early) = backend.into_parts();
    let activity = Arc::new(Activity::new());
    let (client_rd, mut client_wr) = tokio::io::split(client);
    let (backend_rd, mut backend_wr) = backend.into_split();
    let mut client_rd = Watched {
        io: client_rd,
        activity: activity.clone(),
    };
    let mut backend_rd = Watched {
        io: backend_rd,
        activity: activity.clone(),
    };
    // Each direction copies until its reader ends, then passes the end on (a FIN).
    // The first to end ends the tunnel: the other side is closed too, as nginx
    // does, rather than left half-open (a client that stops reading after its
    // backend went away would otherwise hold the tunnel until the idle timeout).
    let up = async {
        let n = tokio::io::copy(&mut client_rd, &mut backend_wr).await?;
        backend_wr.shutdown().await?;
        Ok::<_, std::io::Error>(n)
    };
    let down = async {
        // What the backend sent right behind its 101 is the new protocol's first bytes.
        client_wr.write_all(&early).await?;
        let n = tokio::io::copy(&mut backend_rd, &mut client_wr).await?;
        client_wr.shutdown().await?;
        Ok::<_, std::io::Error>(n + early.len() as u64)
    };
    tokio::select! {
        r = up => match r {
            Ok(n) => End::ClientClosed(n),
            Err(e) => End::Failed(e),
        },
        r = down => match r {
            Ok(n) => End::BackendClosed(n),
            Err(e) => End::Failed(e),
        },
        _ = activity.idle_for(idle) => End::Idle,
    }
}

/// When a byte last moved on a tunnel, either way.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last read that returned bytes (`Relaxed`:
    /// the idle watch only compares it, nothing is published through it).
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        self.last_ms.store(ms, Relaxed);
    }

    /// Resolves once nothing moved for `t`.
    async fn idle_for(&self, t: Duration) {
        loop {
            let last = self.last_ms.load(Relaxed);
            tokio::time::sleep_until(self.start + Duration::from_millis(last) + t).await;
            if self.last_ms.load(Relaxed) == last {
                return;
            }
        }
    }
}

/// A socket's read side, its reads recorded in an [`Activity`].
struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_is_idle_only_when_nothing_moved_for_the_timeout() {
        let a = Activity::new();
        let t = Duration::from_secs(10);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(6)).await;
        a.touch();
        a.idle_for(t).await;
        assert_eq!(started.elapsed(), Duration::from_secs(16));
    }
}
