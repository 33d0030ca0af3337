//! Body types: what the proxy sends upstream and returns downstream, streaming without boxing.
use crate::client::{BackendBody, ClientError};
use crate::pool::Checkin;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Body of a request sent to a backend.
#[derive(Debug)]
pub enum UpstreamBody {
    /// No body.
    Empty,
    /// A body kept in memory (bounded by `retry.max_body_bytes`) so it can be replayed.
    Full(Option<Bytes>),
    /// The client's body, streamed through.
    Stream(StreamBody),
}

impl UpstreamBody {
    /// A replayable copy of this body, when it is one (`Empty` or `Full`).
    pub fn try_clone(&self) -> Option<UpstreamBody> {
        match self {
            UpstreamBody::Empty => Some(UpstreamBody::Empty),
            UpstreamBody::Full(b) => Some(UpstreamBody::Full(b.clone())),
            _ => None,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut *self {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            UpstreamBody::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Full(b) => b.is_none(),
            UpstreamBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            UpstreamBody::Stream(s) => s.size_hint(),
        }
    }
}

/// How a streamed request body is moving, for the attempt's watchdog: when
/// the last frame passed, whether the backend is waiting for the client, and
/// when the body ended. Written by the body, read by the watchdog (`Relaxed`:
/// each value is a self-contained observation, nothing is published through it).
#[derive(Debug)]
pub struct Progress {
    epoch: Instant,
    last_frame_us: AtomicU64,
    done_us: AtomicU64,
    waiting_for_client: AtomicBool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            epoch: Instant::now(),
            last_frame_us: AtomicU64::new(0),
            done_us: AtomicU64::new(0),
            waiting_for_client: AtomicBool::new(false),
        }
    }
}

impl Progress {
    fn now_us(&self) -> u64 {
        // +1 so that 0 can mean "never".
        self.epoch
            .elapsed()
            .as_micros()
            .min(u128::from(u64::MAX - 1)) as u64
            + 1
    }

    fn at(&self, us: u64) -> Instant {
        self.epoch + Duration::from_micros(us.saturating_sub(1))
    }

    /// When the body ended, if it has.
    pub fn done_at(&self) -> Option<Instant> {
        match self.done_us.load(Relaxed) {
            0 => None,
            us => Some(self.at(us)),
        }
    }

    /// When the last frame passed (the start, before the first).
    pub fn last_frame_at(&self) -> Instant {
        self.at(self.last_frame_us.load(Relaxed))
    }

    /// The backend asked for more and the client has not sent it yet.
    pub fn waiting_for_client(&self) -> bool {
        self.waiting_for_client.load(Relaxed)
    }
}

/// The client's request body streamed to a backend. It records its
/// [`Progress`], and when made with [`StreamBody::tapped`] it returns itself
/// through a channel if dropped before any frame was taken, so a failed
/// connect can still be retried.
#[derive(Debug)]
pub struct StreamBody {
    inner: Option<Incoming>,
    taken: bool,
    back: Option<oneshot::Sender<Incoming>>,
    progress: Arc<Progress>,
}

impl StreamBody {
    /// Stream `body`, recording into `progress`.
    pub fn new(body: Incoming, progress: Arc<Progress>) -> StreamBody {
        StreamBody {
            inner: Some(body),
            taken: false,
            back: None,
            progress,
        }
    }

    /// Like [`StreamBody::new`]; the receiver gets the body back if it was never read.
    pub fn tapped(
        body: Incoming,
        progress: Arc<Progress>,
    ) -> (StreamBody, oneshot::Receiver<Incoming>) {
        let (tx, rx) = oneshot::channel();
        let mut b = StreamBody::new(body, progress);
        b.back = Some(tx);
        (b, rx)
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let res = Pin::new(&mut *inner).poll_frame(cx);
        let end = inner.is_end_stream();
        let p = &self.progress;
        match &res {
            Poll::Pending => p.waiting_for_client.store(true, Relaxed),
            Poll::Ready(r) => {
                let now = p.now_us();
                p.last_frame_us.store(now, Relaxed);
                p.waiting_for_client.store(false, Relaxed);
                if r.is_none() || end {
                    p.done_us.store(now, Relaxed);
                }
                self.taken = true;
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(b) => b.is_end_stream(),
            None => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        if !self.taken {
            if let (Some(body), Some(tx)) = (self.inner.take(), self.back.take()) {
                let _ = tx.send(body);
            }
        }
    }
}

/// Body of a response sent to the client.
#[derive(Debug)]
// `Upstream` is nearly every response; boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum ProxyBody {
    /// A backend's response body, streamed through; its connection returns
    /// to the pool when the body has been read to the end.
    Upstream {
        /// The backend's body.
        body: BackendBody,
        /// Returns the connection to its pool at the end of the body.
        checkin: Option<Checkin>,
    },
    /// A body the proxy made itself (errors, admin pages).
    Full(Option<Bytes>),
}

impl ProxyBody {
    /// A body from static or owned bytes.
    pub fn full(b: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Full(Some(b.into()))
    }

    /// A backend's body; `checkin` runs once it is read to the end
    /// (at once if it is complete already).
    pub fn upstream(mut body: BackendBody, checkin: Checkin) -> ProxyBody {
        if body.is_complete() {
            checkin.done(body.take_conn());
            return ProxyBody::Upstream {
                body,
                checkin: None,
            };
        }
        ProxyBody::Upstream {
            body,
            checkin: Some(checkin),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        match &mut *self {
            ProxyBody::Upstream { body, checkin } => {
                let res = Pin::new(&mut *body).poll_frame(cx);
                match &res {
                    // The end, reported with the last frame or after it.
                    Poll::Ready(None) | Poll::Ready(Some(Ok(_))) if body.is_complete() => {
                        if let Some(c) = checkin.take() {
                            c.done(body.take_conn());
                        }
                    }
                    // An error: the connection is dropped with the body.
                    Poll::Ready(Some(Err(_))) => *checkin = None,
                    _ => {}
                }
                res
            }
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
