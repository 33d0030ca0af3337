//! The request body on its way to a backend: streamed with its progress recorded for the watchdog.
use crate::http1::ReqBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Body of a request sent to a backend: none, in memory, or the client's, streamed.
pub(crate) type UpstreamBody = ReqBody<StreamBody>;

/// How a streamed request body is moving, for the attempt's watchdog: when
/// the last frame passed, whether the backend is waiting for the client, and
/// when the body ended. Written by the body, read by the watchdog (`Relaxed`:
/// each value is a self-contained observation, nothing is published through it).
#[derive(Debug)]
pub(crate) struct Progress {
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
    pub(crate) fn done_at(&self) -> Option<Instant> {
        match self.done_us.load(Relaxed) {
            0 => None,
            us => Some(self.at(us)),
        }
    }

    /// When the last frame passed (the start, before the first).
    pub(crate) fn last_frame_at(&self) -> Instant {
        self.at(self.last_frame_us.load(Relaxed))
    }

    /// The backend asked for more and the client has not sent it yet.
    pub(crate) fn waiting_for_client(&self) -> bool {
        self.waiting_for_client.load(Relaxed)
    }
}

/// The client's request body streamed to a backend. It records its
/// [`Progress`], and when made with [`StreamBody::tapped`] it returns itself
/// through a channel if dropped before any frame was taken, so a failed
/// connect can still be retried.
#[derive(Debug)]
pub(crate) struct StreamBody {
    inner: Option<Incoming>,
    taken: bool,
    back: Option<oneshot::Sender<Incoming>>,
    progress: Arc<Progress>,
}

impl StreamBody {
    /// Stream `body`, recording into `progress`.
    pub(crate) fn new(body: Incoming, progress: Arc<Progress>) -> StreamBody {
        StreamBody {
            inner: Some(body),
            taken: false,
            back: None,
            progress,
        }
    }

    /// Like [`StreamBody::new`]; the receiver gets the body back if it was never read.
    pub(crate) fn tapped(
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
