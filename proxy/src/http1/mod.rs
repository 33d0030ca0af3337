//! The HTTP/1.1 client for backend connections, driven inside the task that serves the client.
//!
//! hyper's client runs each connection as a task of its own and passes the request, the
//! response head and every body chunk across channels, so a proxied request costs four
//! extra task wake-ups and as many channel operations. Here the client's task writes the
//! request and reads the response itself: a small response (its whole body in the buffer
//! that held the head) is complete when the head is parsed, and the connection goes back
//! to the pool at once. Framing follows RFC 9112: `Content-Length`, `chunked`, or
//! read-until-close; no body for `HEAD`, 1xx, 204 and 304; interim 1xx responses skipped.
//!
//! One file per concern, as in hyper's `proto/h1`: [`head`] writes request heads and
//! parses response heads, [`body`] frames the response body, [`chunked`] decodes the
//! chunked coding, [`conn`] holds the socket; this module drives one exchange.
mod body;
mod chunked;
mod conn;
mod error;
mod head;

pub(crate) use body::BackendBody;
pub(crate) use conn::Conn;
pub(crate) use error::{BoxError, ClientError};

use bytes::{Buf, Bytes, BytesMut};
use conn::{Io, Split, Writer};
use head::{encode_head, read_head, Head, ReqFraming, RespFraming};
use http::header::{CONTENT_LENGTH, UPGRADE};
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use http_body::Body;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWriteExt;

/// A request's body, as [`exchange`] sends it. `S` is the body a client streams.
///
/// Not a [`Body`]: the exchange looks inside it, to write a small in-memory body behind
/// the head in one write and to frame a stream by its length (an `http_body_util::Full`
/// would hide its bytes behind `poll_frame`).
#[derive(Debug)]
pub(crate) enum ReqBody<S> {
    /// No body.
    Empty,
    /// A body kept in memory (bounded by `retry.max_body_bytes`), so it can be replayed.
    Full(Bytes),
    /// A body streamed through as it arrives.
    Stream(S),
}

impl<S> ReqBody<S> {
    /// A replayable copy of this body, when it is one (`Empty` or `Full`).
    pub(crate) fn try_clone(&self) -> Option<ReqBody<S>> {
        match self {
            ReqBody::Empty => Some(ReqBody::Empty),
            ReqBody::Full(b) => Some(ReqBody::Full(b.clone())),
            ReqBody::Stream(_) => None,
        }
    }
}
/// Request bodies up to this size are copied behind the head and sent with one write.
const COALESCE_BODY: usize = 16 * 1024;

/// Send the body of a streamed request: raw when its length is known, else chunked.
async fn write_stream<W, S>(
    wr: &mut W,
    mut body: S,
    chunked: bool,
    expected: Option<u64>,
) -> Result<(), ClientError>
where
    W: tokio::io::AsyncWrite + Unpin,
    S: Body<Data = Bytes> + Unpin,
    S::Error: Into<BoxError> + Send,
{
    let mut sent: u64 = 0;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| ClientError::ClientBody(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not forwarded
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if let Some(n) = expected.filter(|&n| sent > n) {
            // Never more than announced: the excess would read as another request.
            return Err(ClientError::ClientBodyLength { declared: n });
        }
        if chunked {
            let size = format!("{:x}\r\n", data.len());
            let mut out = Buf::chain(Buf::chain(size.as_bytes(), data), &b"\r\n"[..]);
            wr.write_all_buf(&mut out).await.map_err(ClientError::Io)?;
        } else {
            let mut data = data;
            wr.write_all_buf(&mut data).await.map_err(ClientError::Io)?;
        }
    }
    if chunked {
        wr.write_all(b"0\r\n\r\n").await.map_err(ClientError::Io)?;
    }
    if let Some(n) = expected.filter(|&n| n != sent) {
        return Err(ClientError::ClientBodyLength { declared: n });
    }
    Ok(())
}

/// One request/response exchange on `conn`. On success the response head is back
/// and its body streams from the connection (or is complete already).
///
/// A request with an `Upgrade` field (the proxy forwards it only on an upgrade
/// request without a body, RFC 9110 §7.8) may be answered `101 Switching Protocols`:
/// then the body is empty and [`BackendBody::take_upgraded`] hands over the
/// connection, which now carries the new protocol. Any other 101 is a protocol error.
pub(crate) async fn exchange<S>(
    mut conn: Conn,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: ReqBody<S>,
) -> Result<Response<BackendBody>, ClientError>
where
    S: Body<Data = Bytes> + Send + Unpin + 'static,
    S::Error: Into<BoxError> + Send,
{
    let head_request = method == Method::HEAD;
    let upgrade = headers.contains_key(UPGRADE);
    // Let the other ready tasks run first, so that the requests of one round of
    // events reach the backends in a burst, as they did when each backend connection
    // was a task woken at the back of the queue: a backend woken by the first write
    // finds the rest waiting instead of being woken (and going back to sleep) once
    // per request. Writing at once, or after `yield_now` (which also waits for the
    // next I/O poll), served fewer requests/s (README, "The proxy"). On the
    // multi-threaded runtime a self-wake runs the task next: one extra poll.
    Requeue::default().await;
    let mut out = std::mem::take(&mut conn.wbuf);
    out.clear();
    match body {
        ReqBody::Empty => {
            let length_zero = headers.contains_key(CONTENT_LENGTH)
                || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
            encode_head(
                method,
                uri,
                headers,
                &ReqFraming::Empty { length_zero },
                &mut out,
            );
            conn.io
                .write_all(&out)
                .await
                .map_err(ClientError::Unanswered)?;
            conn.wbuf = out;
        }
        ReqBody::Full(b) => {
            encode_head(
                method,
                uri,
                headers,
                &ReqFraming::Length(b.len() as u64),
                &mut out,
            );
            if b.len() <= COALESCE_BODY {
                out.extend_from_slice(&b);
                conn.io
                    .write_all(&out)
                    .await
                    .map_err(ClientError::Unanswered)?;
            } else {
                let mut all = Buf::chain(&out[..], b);
                conn.io
                    .write_all_buf(&mut all)
                    .await
                    .map_err(ClientError::Unanswered)?;
            }
            conn.wbuf = out;
        }
        ReqBody::Stream(s) => {
            let expected = s.size_hint().exact();
            let framing = match expected {
                Some(n) => ReqFraming::Length(n),
                None => ReqFraming::Chunked,
            };
            encode_head(method, uri, headers, &framing, &mut out);
            conn.io
                .write_all(&out)
                .await
                .map_err(ClientError::Unanswered)?;
            // The body is written by a task of its own so the backend can answer (and
            // stream its answer) while it still reads: full duplex, as HTTP/1.1 allows.
            let Conn { io, buf, .. } = conn;
            let (rd, mut wr) = io.into_split();
            let chunked = expected.is_none();
            let mut task = Writer(tokio::spawn(async move {
                write_stream(&mut wr, s, chunked, expected).await?;
                Ok(wr)
            }));
            let mut rd = rd;
            let mut buf = buf;
            let head = tokio::select! {
                biased;
                w = &mut task.0 => {
                    let wr = match w {
                        Ok(Ok(wr)) => wr,
                        Ok(Err(ClientError::Io(e))) => {
                            // The backend may have answered (413, 401) and closed
                            // before taking the whole body: its answer, if any, wins.
                            return match read_head(&mut rd, &mut buf, head_request, false).await {
                                Ok(head) => Ok(respond_split(head, Split { rd, _writer: task }, buf)),
                                Err(_) => Err(ClientError::Io(e)),
                            };
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(_) => return Err(ClientError::Io(std::io::Error::other("request body writer failed"))),
                    };
                    let head = read_head(&mut rd, &mut buf, head_request, false).await?;
                    let io = rd.reunite(wr).map_err(|_| ClientError::Io(std::io::Error::other("socket halves do not match")))?;
                    let conn = Conn { io, buf, wbuf: out };
                    return Ok(respond(head, conn));
                }
                // A streamed body is never sent with `Upgrade`: a 101 here is unasked.
                h = read_head(&mut rd, &mut buf, head_request, false) => h?,
            };
            // Answered before the whole request body was sent: keep sending it while
            // the response streams; the connection is not reused afterwards.
            let io = Split { rd, _writer: task };
            return Ok(respond_split(head, io, buf));
        }
    }
    let head = read_head(&mut conn.io, &mut conn.buf, head_request, upgrade).await?;
    Ok(respond(head, conn))
}

/// Resolves on its second poll: the task wakes itself and goes to the back of the
/// runtime's run queue. Unlike `tokio::task::yield_now`, which parks the task until
/// the runtime has polled for I/O again, the task runs again within the same round.
#[derive(Debug, Default)]
struct Requeue(bool);

impl std::future::Future for Requeue {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn respond(head: Head, mut conn: Conn) -> Response<BackendBody> {
    if head.parts.status == StatusCode::SWITCHING_PROTOCOLS {
        // Only returned by `read_head` when the request asked for an upgrade.
        return Response::from_parts(head.parts, BackendBody::switched(conn));
    }
    let body = match head.framing {
        RespFraming::Length(n) if conn.buf.len() as u64 >= n => {
            // The whole body came with the head: done, the connection is free now.
            let data = conn.buf.split_to(n as usize).freeze();
            let reusable = head.keep_alive && conn.buf.is_empty();
            BackendBody::complete(data, reusable.then_some(conn))
        }
        framing => BackendBody::reading(Io::Whole(conn), framing, head.keep_alive),
    };
    Response::from_parts(head.parts, body)
}

fn respond_split(head: Head, io: Split, buf: BytesMut) -> Response<BackendBody> {
    let body = BackendBody::reading(Io::Split(io, buf), head.framing, false);
    Response::from_parts(head.parts, body)
}
