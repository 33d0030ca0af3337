//! Body types: what the proxy sends upstream and returns downstream, streaming without boxing.
use crate::pool::Checkin;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// Body of a request sent to a backend.
#[derive(Debug)]
pub enum UpstreamBody {
    /// No body.
    Empty,
    /// A body kept in memory (bounded by `retry.max_body_bytes`) so it can be replayed.
    Full(Option<Bytes>),
    /// The client's body, streamed through.
    Stream(Incoming),
    /// The client's body, streamed through; handed back when dropped before
    /// any byte was taken, so a failed connect can still be retried.
    Tap(TapBody),
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
            UpstreamBody::Tap(t) => Pin::new(t).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Full(b) => b.is_none(),
            UpstreamBody::Stream(s) => s.is_end_stream(),
            UpstreamBody::Tap(t) => t.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            UpstreamBody::Stream(s) => s.size_hint(),
            UpstreamBody::Tap(t) => t.size_hint(),
        }
    }
}

/// A streamed client body that returns itself through a channel if it is
/// dropped before any frame was taken from it.
#[derive(Debug)]
pub struct TapBody {
    inner: Option<Incoming>,
    taken: bool,
    back: Option<oneshot::Sender<Incoming>>,
}

impl TapBody {
    /// Wrap `body`; the receiver gets it back if it was never read.
    pub fn new(body: Incoming) -> (TapBody, oneshot::Receiver<Incoming>) {
        let (tx, rx) = oneshot::channel();
        (
            TapBody {
                inner: Some(body),
                taken: false,
                back: Some(tx),
            },
            rx,
        )
    }
}

impl Body for TapBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let res = Pin::new(inner).poll_frame(cx);
        if res.is_ready() {
            self.taken = true;
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

impl Drop for TapBody {
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
pub enum ProxyBody {
    /// A backend's response body, streamed through; its connection returns
    /// to the pool when the body has been read to the end.
    Upstream {
        /// The backend's body.
        body: Incoming,
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
    /// (at once if it is empty).
    pub fn upstream(body: Incoming, checkin: Checkin) -> ProxyBody {
        if body.is_end_stream() {
            checkin.done();
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
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut *self {
            ProxyBody::Upstream { body, checkin } => {
                let res = Pin::new(&mut *body).poll_frame(cx);
                match &res {
                    Poll::Ready(None) => {
                        if let Some(c) = checkin.take() {
                            c.done();
                        }
                    }
                    Poll::Ready(Some(Ok(_))) if body.is_end_stream() => {
                        if let Some(c) = checkin.take() {
                            c.done();
                        }
                    }
                    // An error: the connection is dropped with the checkin.
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
