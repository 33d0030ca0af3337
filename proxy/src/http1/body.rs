//! The response body's framing state: read from the connection as the client takes it.
use super::chunked::{Chunked, Decoded};
use super::conn::{Conn, Io};
use super::error::ClientError;
use super::head::RespFraming;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Decoding state of a response body.
#[derive(Debug)]
enum Reading {
    Length(u64),
    Chunked(Chunked),
    Close,
}

impl Reading {
    fn new(f: RespFraming) -> Reading {
        match f {
            RespFraming::Length(n) => Reading::Length(n),
            RespFraming::Chunked => Reading::Chunked(Chunked::default()),
            RespFraming::Close => Reading::Close,
        }
    }
}

#[derive(Debug)]
enum State {
    /// The whole body is here (or there is none).
    Full(Full<Bytes>),
    /// Streaming from the connection.
    Reading {
        io: Io,
        read: Reading,
        keep_alive: bool,
    },
    /// Read to its end.
    Done,
    /// A `101 Switching Protocols` (no body): the connection, until it is taken
    /// for the tunnel.
    Switched(Conn),
    /// The body of an HTTP/2 backend's response (hyper's client reads it), trailers included.
    H2(hyper::body::Incoming),
    /// Failed; the connection is dropped.
    Failed,
}

/// A backend's response body, read from its connection as the client takes it.
/// When it has been read to the end, [`BackendBody::take_conn`] hands back the
/// connection if it can carry another request.
#[derive(Debug)]
pub(crate) struct BackendBody {
    state: State,
    /// The connection, once the body is complete and the connection reusable.
    conn: Option<Conn>,
    /// How long the backend may send nothing while the body is open.
    idle_timeout: Option<Duration>,
    /// Armed when the body waits for the backend; re-armed after it got bytes.
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes arrived since the timer was last armed.
    progressed: bool,
}

impl BackendBody {
    /// A body that came whole with its head; `conn` is free for the next request.
    pub(super) fn complete(data: Bytes, conn: Option<Conn>) -> BackendBody {
        BackendBody::new(State::Full(Full::new(data)), conn)
    }

    /// A body still to be read from `io`, framed by `framing`; the connection is
    /// reused after it when `keep_alive`.
    pub(super) fn reading(io: Io, framing: RespFraming, keep_alive: bool) -> BackendBody {
        let read = Reading::new(framing);
        BackendBody::new(
            State::Reading {
                io,
                read,
                keep_alive,
            },
            None,
        )
    }

    /// An HTTP/2 backend's response body: its frames, trailers included, pass as
    /// they come, under the same idle timeout.
    pub(crate) fn h2(body: hyper::body::Incoming) -> BackendBody {
        BackendBody::new(State::H2(body), None)
    }

    /// The (empty) body of a `101 Switching Protocols`; `conn` now carries the new protocol.
    pub(super) fn switched(conn: Conn) -> BackendBody {
        BackendBody::new(State::Switched(conn), None)
    }

    /// Whether trailers can come with it: an HTTP/2 backend's do; the HTTP/1.1
    /// client reads a chunked body's trailer section and drops it.
    pub(crate) fn relays_trailers(&self) -> bool {
        matches!(self.state, State::H2(_))
    }

    /// After a `101 Switching Protocols`: the connection, now carrying the new
    /// protocol, with any bytes of it that came behind the head. It never goes back to a pool.
    pub(crate) fn take_upgraded(&mut self) -> Option<Conn> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Switched(c) => Some(c),
            other => {
                self.state = other;
                None
            }
        }
    }

    fn new(state: State, conn: Option<Conn>) -> BackendBody {
        BackendBody {
            state,
            conn,
            idle_timeout: None,
            idle: None,
            progressed: true,
        }
    }

    /// Fail the body if the backend sends nothing for `t` while the client waits
    /// for more of it (nginx's `proxy_read_timeout`). Time the client takes to
    /// read does not count.
    pub(crate) fn with_idle_timeout(mut self, t: Duration) -> BackendBody {
        self.idle_timeout = Some(t);
        self
    }

    /// Poll the idle timer while the body waits for the backend.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(t) = self.idle_timeout else {
            return false;
        };
        let timer = match &mut self.idle {
            Some(timer) => {
                if std::mem::take(&mut self.progressed) {
                    timer.as_mut().reset(tokio::time::Instant::now() + t);
                }
                timer
            }
            None => {
                self.progressed = false;
                self.idle.insert(Box::pin(tokio::time::sleep(t)))
            }
        };
        timer.as_mut().poll(cx).is_ready()
    }

    /// The connection, when the body was read to the end and the backend keeps it open.
    pub(crate) fn take_conn(&mut self) -> Option<Conn> {
        self.conn.take()
    }

    /// The body was read to the end (or there is none).
    pub(crate) fn is_complete(&self) -> bool {
        match &self.state {
            State::Done | State::Switched(_) => true,
            State::Full(b) => b.is_end_stream(),
            State::H2(b) => b.is_end_stream(),
            _ => false,
        }
    }

    fn finish(&mut self) {
        let prev = std::mem::replace(&mut self.state, State::Done);
        if let State::Reading {
            io: Io::Whole(conn),
            keep_alive: true,
            ..
        } = prev
        {
            if conn.buf.is_empty() {
                self.conn = Some(conn);
            }
        }
    }

    fn fail(&mut self, e: ClientError) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        self.state = State::Failed;
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for BackendBody {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        let this = &mut *self;
        loop {
            let (io, read) = match &mut this.state {
                State::Full(b) => {
                    // A `Full` is always ready.
                    let Poll::Ready(frame) = Pin::new(b).poll_frame(cx) else {
                        return Poll::Pending;
                    };
                    if frame.is_none() {
                        this.state = State::Done;
                    }
                    return Poll::Ready(frame.map(|f| f.map_err(|never| match never {})));
                }
                State::Done | State::Failed | State::Switched(_) => return Poll::Ready(None),
                State::H2(b) => {
                    return match Pin::new(b).poll_frame(cx) {
                        Poll::Ready(None) => {
                            this.state = State::Done;
                            Poll::Ready(None)
                        }
                        Poll::Ready(Some(Ok(f))) => {
                            this.progressed = true;
                            Poll::Ready(Some(Ok(f)))
                        }
                        Poll::Ready(Some(Err(e))) => this.fail(ClientError::Http2(e)),
                        Poll::Pending if this.idle_expired(cx) => {
                            this.fail(ClientError::BodyTimeout)
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
                State::Reading { io, read, .. } => (io, read),
            };
            let buf = io.buf();
            match read {
                Reading::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Reading::Length(left) => {
                    if !buf.is_empty() {
                        let n = (*left).min(buf.len() as u64) as usize;
                        *left -= n as u64;
                        let data = buf.split_to(n).freeze();
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Reading::Chunked(c) => match c.decode(buf) {
                    Ok(Decoded::Data(d)) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                    Ok(Decoded::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::More) => {}
                    Err(e) => return this.fail(e),
                },
                Reading::Close => {
                    if !buf.is_empty() {
                        let data = buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            let filled = match io.poll_fill(cx) {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    if this.idle_expired(cx) {
                        return this.fail(ClientError::BodyTimeout);
                    }
                    return Poll::Pending;
                }
            };
            this.progressed = true;
            match filled {
                Ok(0) => {
                    if matches!(read, Reading::Close) {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                    return this.fail(ClientError::Protocol("connection closed inside the body"));
                }
                Ok(_) => {}
                Err(e) => return this.fail(ClientError::Io(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_complete()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Full(b) => b.size_hint(),
            State::H2(b) => b.size_hint(),
            State::Reading {
                read: Reading::Length(n),
                ..
            } => SizeHint::with_exact(*n),
            State::Reading { .. } => SizeHint::default(),
            State::Done | State::Failed | State::Switched(_) => SizeHint::with_exact(0),
        }
    }
}
