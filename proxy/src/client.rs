//! The HTTP/1.1 client for backend connections, driven inside the task that serves the client.
//!
//! hyper's client runs each connection as a task of its own and passes the request, the
//! response head and every body chunk across channels, so a proxied request costs four
//! extra task wake-ups and as many channel operations. Here the client's task writes the
//! request and reads the response itself: a small response (its whole body in the buffer
//! that held the head) is complete when the head is parsed, and the connection goes back
//! to the pool at once. Framing follows RFC 9112: `Content-Length`, `chunked`, or
//! read-until-close; no body for `HEAD`, 1xx, 204 and 304; interim 1xx responses skipped.
use crate::body::{StreamBody, UpstreamBody};
use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::response::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use std::future::{poll_fn, Future as _};
use std::io::Write as _;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Largest response head accepted from a backend; a larger one is a protocol error (502).
/// nginx fails such a response too ("upstream sent too big header", `proxy_buffer_size`).
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header fields in a response head (hyper's default limit).
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions) and most trailer bytes accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 64 * 1024;
/// Request bodies up to this size are copied behind the head and sent with one write.
const COALESCE_BODY: usize = 16 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange with a backend failed.
#[derive(Debug)]
pub enum ClientError {
    /// Reading or writing the backend's socket failed.
    Io(std::io::Error),
    /// The backend closed the connection before any byte of a response.
    Closed,
    /// The connection failed (reset, broken pipe) before any byte of a response.
    Unanswered(std::io::Error),
    /// The backend's answer is not valid HTTP/1.x.
    Protocol(&'static str),
    /// The client's request body failed while it was being sent.
    ClientBody(String),
    /// The backend sent nothing for the idle timeout in the middle of a body.
    BodyTimeout,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Closed => f.write_str("connection closed before a response"),
            ClientError::Unanswered(e) => write!(f, "connection failed before a response: {e}"),
            ClientError::Protocol(p) => write!(f, "invalid response: {p}"),
            ClientError::ClientBody(e) => write!(f, "client request body: {e}"),
            ClientError::BodyTimeout => {
                f.write_str("backend sent nothing mid-body for the timeout")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) | ClientError::Unanswered(e) => Some(e),
            _ => None,
        }
    }
}

impl ClientError {
    /// The backend closed or reset the connection without sending any byte of a
    /// response: on a reused connection, the request may be sent again (RFC 9112 §9.3.1).
    pub fn is_unanswered(&self) -> bool {
        matches!(self, ClientError::Closed | ClientError::Unanswered(_))
    }
}

/// One keep-alive connection to a backend with its read buffer.
#[derive(Debug)]
pub struct Conn {
    io: TcpStream,
    buf: BytesMut,
    /// Where request heads are encoded (kept to save an allocation per request).
    wbuf: Vec<u8>,
}

impl Conn {
    /// A freshly opened connection.
    pub fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            wbuf: Vec::with_capacity(512),
        }
    }

    /// An idle connection is usable unless the backend closed it or sent something
    /// unasked. Costs no system call unless the runtime saw the socket readable.
    pub fn is_usable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// How the request body is framed on the wire.
enum ReqFraming {
    /// No body (`content-length: 0` written when `length_zero`).
    Empty { length_zero: bool },
    /// `content-length` bytes follow.
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked,
}

/// Write the request line and headers into `dst`. `Content-Length` and
/// `Transfer-Encoding` come from `framing`, never from `headers` (hop-by-hop
/// headers were stripped by the caller; a client's `Content-Length` is
/// replaced by the length actually sent).
fn encode_head(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    framing: &ReqFraming,
    dst: &mut Vec<u8>,
) {
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    dst.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    match framing {
        ReqFraming::Empty { length_zero: false } => {}
        ReqFraming::Empty { length_zero: true } => {
            dst.extend_from_slice(b"content-length: 0\r\n");
        }
        ReqFraming::Length(n) => {
            let _ = write!(dst, "content-length: {n}\r\n");
        }
        ReqFraming::Chunked => dst.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    dst.extend_from_slice(b"\r\n");
}

/// How the response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RespFraming {
    Length(u64),
    Chunked,
    /// Until the backend closes (the connection cannot be reused).
    Close,
}

/// A parsed response head.
struct Head {
    parts: Parts,
    framing: RespFraming,
    keep_alive: bool,
}

fn header_has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The response's transfer codings: `None` without `Transfer-Encoding`, else whether
/// `chunked` is the final coding. `chunked` applied twice is an error (RFC 9112 §6.1:
/// "A sender MUST NOT apply the chunked transfer coding more than once").
fn transfer_coding(headers: &HeaderMap) -> Result<Option<bool>, ClientError> {
    let mut values = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    let mut chunked = 0;
    let mut last_chunked = false;
    for v in values {
        let v = v
            .to_str()
            .map_err(|_| ClientError::Protocol("invalid transfer-encoding"))?;
        for coding in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            last_chunked = coding.eq_ignore_ascii_case("chunked");
            chunked += usize::from(last_chunked);
        }
    }
    if chunked > 1 {
        return Err(ClientError::Protocol("chunked applied more than once"));
    }
    Ok(Some(last_chunked))
}

/// The response's `Content-Length`: every value (comma-separated or on several field
/// lines) must be the same run of digits (RFC 9110 §8.6; `+5` or `0x5` would parse
/// elsewhere, not here). Several equal values are replaced by one plain value.
fn content_length(headers: &mut HeaderMap) -> Result<Option<u64>, ClientError> {
    let mut len: Option<u64> = None;
    let mut values = 0;
    for v in headers.get_all(CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(ClientError::Protocol("invalid content-length"));
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if len.is_some_and(|l| l != n) {
                return Err(ClientError::Protocol("conflicting content-length"));
            }
            len = Some(n);
            values += 1;
        }
    }
    if values > 1 {
        // `3, 3` or repeated fields: the client gets one plain value.
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len.unwrap_or(0)));
    }
    Ok(len)
}

/// Parse one response head at the start of `buf`; `Ok(None)` when it is not complete
/// yet. On success the head's bytes are taken off `buf` (header values share them).
fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, ClientError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut raw);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ClientError::Protocol("too many header fields"))
        }
        Err(_) => return Err(ClientError::Protocol("malformed response head")),
    };
    let code = res.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| ClientError::Protocol("invalid status code"))?;
    let version = match res.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    // Where each name and value sits in the head, so the values can share its bytes.
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let mut spans = [((0, 0), (0, 0)); MAX_HEADERS];
    let n = res.headers.len();
    for (span, h) in spans.iter_mut().zip(res.headers.iter()) {
        *span = (at(h.name.as_bytes()), at(h.value));
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(n);
    for &((ns, nl), (vs, vl)) in &spans[..n] {
        let name = HeaderName::from_bytes(&head[ns..ns + nl])
            .map_err(|_| ClientError::Protocol("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..vs + vl))
            .map_err(|_| ClientError::Protocol("invalid header value"))?;
        headers.append(name, value);
    }

    let mut keep_alive = if version == Version::HTTP_11 {
        !header_has_token(&headers, &CONNECTION, "close")
    } else {
        header_has_token(&headers, &CONNECTION, "keep-alive")
    };
    let chunked = transfer_coding(&headers)?;
    if chunked.is_some() {
        if version == Version::HTTP_10 {
            // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing;
            // the body is read as the field says, then the connection is closed.
            keep_alive = false;
        }
        // RFC 9112 §6.3 (3): Transfer-Encoding overrides Content-Length, which an
        // intermediary removes before forwarding; such a message might be an attempt
        // at response splitting, so the connection is not reused.
        if headers.remove(CONTENT_LENGTH).is_some() {
            keep_alive = false;
        }
    }
    // Validated on every answer, also those without a body (HEAD, 1xx, 204, 304):
    // a value the client's side could not frame by is never passed on.
    let length = content_length(&mut headers)?;
    let framing = if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        // RFC 9112 §6.3 (1): no body, whatever the fields say.
        if status.is_informational() || status == StatusCode::NO_CONTENT {
            // RFC 9110 §8.6, RFC 9112 §6.1: such a response has neither field. A
            // backend announcing a body here might send one: not reused.
            if chunked.is_some() || length.is_some_and(|n| n > 0) {
                keep_alive = false;
            }
            headers.remove(CONTENT_LENGTH);
        }
        RespFraming::Length(0)
    } else if let Some(chunked) = chunked {
        // RFC 9112 §6.3 (4): chunked must be the final coding, else the body runs
        // until the connection closes.
        if chunked {
            RespFraming::Chunked
        } else {
            RespFraming::Close
        }
    } else if let Some(n) = length {
        RespFraming::Length(n)
    } else {
        RespFraming::Close
    };
    if framing == RespFraming::Close {
        keep_alive = false;
    }
    let mut parts = Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(Head {
        parts,
        framing,
        keep_alive,
    }))
}

/// Read until a final (non-1xx) response head is complete.
async fn read_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Head, ClientError> {
    let mut any = !buf.is_empty();
    // An interim response that announced a body (or said close) spoils the connection too.
    let mut interim_keep_alive = true;
    loop {
        if !buf.is_empty() {
            if let Some(mut head) = parse_head(buf, head_request)? {
                if head.parts.status == StatusCode::SWITCHING_PROTOCOLS {
                    // The proxy strips `Upgrade`, so a 101 was never asked for.
                    return Err(ClientError::Protocol("unexpected 101 Switching Protocols"));
                }
                if head.parts.status.is_informational() {
                    interim_keep_alive &= head.keep_alive;
                    continue; // 100 Continue, 103 Early Hints: not forwarded
                }
                head.keep_alive &= interim_keep_alive;
                return Ok(head);
            }
            if buf.len() >= MAX_RESPONSE_HEAD {
                return Err(ClientError::Protocol("response head too large"));
            }
        }
        buf.reserve(READ_CHUNK);
        let n = rd.read_buf(buf).await.map_err(|e| {
            if any {
                ClientError::Io(e)
            } else {
                ClientError::Unanswered(e)
            }
        })?;
        if n == 0 {
            return Err(if any {
                ClientError::Protocol("connection closed inside the response head")
            } else {
                ClientError::Closed
            });
        }
        any = true;
    }
}

/// Send the body of a streamed request: raw when its length is known, else chunked.
async fn write_stream<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    mut body: StreamBody,
    chunked: bool,
    expected: Option<u64>,
) -> Result<(), ClientError> {
    let mut sent: u64 = 0;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| ClientError::ClientBody(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not forwarded
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if expected.is_some_and(|n| sent > n) {
            // Never more than announced: the excess would read as another request.
            return Err(ClientError::ClientBody(
                "request body longer than its content-length".into(),
            ));
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
    if expected.is_some_and(|n| n != sent) {
        return Err(ClientError::ClientBody(
            "request body length differs from its content-length".into(),
        ));
    }
    Ok(())
}

/// One request/response exchange on `conn`. On success the response head is back
/// and its body streams from the connection (or is complete already).
pub async fn exchange(
    mut conn: Conn,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: UpstreamBody,
) -> Result<Response<BackendBody>, ClientError> {
    let head_request = method == Method::HEAD;
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
        UpstreamBody::Empty => {
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
        UpstreamBody::Full(b) => {
            let b = b.unwrap_or_default();
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
        UpstreamBody::Stream(s) => {
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
                            return match read_head(&mut rd, &mut buf, head_request).await {
                                Ok(head) => Ok(respond_split(head, Split { rd, _writer: task }, buf)),
                                Err(_) => Err(ClientError::Io(e)),
                            };
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(_) => return Err(ClientError::Io(std::io::Error::other("request body writer failed"))),
                    };
                    let head = read_head(&mut rd, &mut buf, head_request).await?;
                    let io = rd.reunite(wr).map_err(|_| ClientError::Io(std::io::Error::other("socket halves do not match")))?;
                    let conn = Conn { io, buf, wbuf: out };
                    return Ok(respond(head, conn));
                }
                h = read_head(&mut rd, &mut buf, head_request) => h?,
            };
            // Answered before the whole request body was sent: keep sending it while
            // the response streams; the connection is not reused afterwards.
            let io = Split { rd, _writer: task };
            return Ok(respond_split(head, io, buf));
        }
    }
    let head = read_head(&mut conn.io, &mut conn.buf, head_request).await?;
    Ok(respond(head, conn))
}

/// The task writing a streamed request body; stopped when dropped (attempt
/// abandoned, response done), so it never outlives the exchange.
#[derive(Debug)]
struct Writer(JoinHandle<Result<tokio::net::tcp::OwnedWriteHalf, ClientError>>);

impl Drop for Writer {
    fn drop(&mut self) {
        self.0.abort();
    }
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

/// The read half of a connection whose request body is still being written.
#[derive(Debug)]
struct Split {
    rd: tokio::net::tcp::OwnedReadHalf,
    _writer: Writer,
}

fn respond(head: Head, mut conn: Conn) -> Response<BackendBody> {
    let body = match head.framing {
        RespFraming::Length(n) if conn.buf.len() as u64 >= n => {
            // The whole body came with the head: done, the connection is free now.
            let data = conn.buf.split_to(n as usize).freeze();
            let reusable = head.keep_alive && conn.buf.is_empty();
            BackendBody::new(
                State::Full(if data.is_empty() { None } else { Some(data) }),
                reusable.then_some(conn),
            )
        }
        framing => BackendBody::new(
            State::Reading {
                io: Io::Whole(conn),
                read: Reading::new(framing),
                keep_alive: head.keep_alive,
            },
            None,
        ),
    };
    Response::from_parts(head.parts, body)
}

fn respond_split(head: Head, io: Split, buf: BytesMut) -> Response<BackendBody> {
    let body = BackendBody::new(
        State::Reading {
            io: Io::Split(io, buf),
            read: Reading::new(head.framing),
            keep_alive: false,
        },
        None,
    );
    Response::from_parts(head.parts, body)
}

/// Where the response body's bytes come from.
#[derive(Debug)]
enum Io {
    Whole(Conn),
    Split(Split, BytesMut),
}

impl Io {
    fn buf(&mut self) -> &mut BytesMut {
        match self {
            Io::Whole(c) => &mut c.buf,
            Io::Split(_, b) => b,
        }
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        match self {
            Io::Whole(c) => {
                c.buf.reserve(READ_CHUNK);
                pin!(c.io.read_buf(&mut c.buf)).poll(cx)
            }
            Io::Split(s, b) => {
                b.reserve(READ_CHUNK);
                pin!(s.rd.read_buf(b)).poll(cx)
            }
        }
    }
}

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
    Full(Option<Bytes>),
    /// Streaming from the connection.
    Reading {
        io: Io,
        read: Reading,
        keep_alive: bool,
    },
    /// Read to its end.
    Done,
    /// Failed; the connection is dropped.
    Failed,
}

/// A backend's response body, read from its connection as the client takes it.
/// When it has been read to the end, [`BackendBody::take_conn`] hands back the
/// connection if it can carry another request.
#[derive(Debug)]
pub struct BackendBody {
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
    pub fn with_idle_timeout(mut self, t: Duration) -> BackendBody {
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
    pub fn take_conn(&mut self) -> Option<Conn> {
        self.conn.take()
    }

    /// The body was read to the end (or there is none).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Done | State::Full(None))
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
                    let b = b.take();
                    if b.is_none() {
                        this.state = State::Done;
                    }
                    return Poll::Ready(b.map(|b| Ok(Frame::data(b))));
                }
                State::Done | State::Failed => return Poll::Ready(None),
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
            State::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            State::Reading {
                read: Reading::Length(n),
                ..
            } => SizeHint::with_exact(*n),
            State::Reading { .. } => SizeHint::default(),
            State::Done | State::Failed => SizeHint::with_exact(0),
        }
    }
}

/// Chunked transfer-coding decoder (RFC 9112 §7.1); extensions and trailers are dropped.
#[derive(Debug, Default)]
struct Chunked {
    state: ChunkState,
    trailer_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// What the decoder got out of the buffer.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    Data(Bytes),
    /// Needs more bytes.
    More,
    End,
}

/// One line off `buf`, without its end. Chunk-size lines end in CRLF (RFC 9112 §7.1,
/// as hyper's decoder requires too); trailer field lines may end in a bare LF (§2.2).
fn take_line(buf: &mut BytesMut, max: usize, crlf: bool) -> Result<Option<BytesMut>, ClientError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            } else if crlf {
                return Err(ClientError::Protocol("chunk line without CRLF"));
            }
            Ok(Some(line))
        }
        None if buf.len() > max => Err(ClientError::Protocol("chunk line too long")),
        None => Ok(None),
    }
}

impl Chunked {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ClientError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE, true)? else {
                        return Ok(Decoded::More);
                    };
                    // chunk-size [ chunk-ext ], chunk-ext = *( BWS ";" ... ): hex digits,
                    // then nothing, or whitespace and ";" (whatever follows is dropped).
                    let end = line
                        .iter()
                        .position(|b| !b.is_ascii_hexdigit())
                        .unwrap_or(line.len());
                    let (digits, rest) = line.split_at(end);
                    let ext = rest.trim_ascii_start();
                    if digits.is_empty()
                        || digits.len() > 16
                        || !(rest.is_empty() || ext.first() == Some(&b';'))
                    {
                        return Err(ClientError::Protocol("invalid chunk size"));
                    }
                    let mut size: u64 = 0;
                    for &d in digits {
                        let v = (d as char)
                            .to_digit(16)
                            .ok_or(ClientError::Protocol("invalid chunk size"))?;
                        size = size << 4 | u64::from(v);
                    }
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = left.min(buf.len() as u64) as usize;
                    self.state = if n as u64 == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n as u64)
                    };
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                ChunkState::DataEnd => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                    } else if buf.is_empty() || buf[..] == b"\r"[..] {
                        return Ok(Decoded::More);
                    } else {
                        return Err(ClientError::Protocol("missing CRLF after chunk data"));
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let before = buf.len();
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE, false)? else {
                        return Ok(Decoded::More);
                    };
                    self.trailer_bytes += before - buf.len();
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(ClientError::Protocol("trailers too large"));
                    }
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => return Ok(Decoded::End),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, head_request: bool) -> Result<Option<(Head, BytesMut)>, ClientError> {
        let mut b = BytesMut::from(s);
        Ok(parse_head(&mut b, head_request)?.map(|h| (h, b)))
    }

    #[test]
    fn heads_are_parsed_with_their_framing() {
        let (h, rest) = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.parts.status, 200);
        assert_eq!(h.framing, RespFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.parts.headers["x-a"], "b");
        assert_eq!(&rest[..], b"hello");

        let (h, _) = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, RespFraming::Chunked);
        let (h, _) = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (RespFraming::Close, false));
        let (h, _) = parse("HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (RespFraming::Close, false));
        let (h, _) = parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, RespFraming::Length(0), "HEAD has no body");
        let (h, _) = parse(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, RespFraming::Length(0));
        let (h, _) = parse(
            "HTTP/1.1 200 OK\r\nConnection: x, Close\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!h.keep_alive);
        let (h, _) = parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive, "HTTP/1.0 closes unless it says keep-alive");
        let (h, _) = parse(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(h.keep_alive);
        let (h, _) = parse("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, RespFraming::Length(3));
        assert_eq!(
            h.parts.headers["content-length"], "3",
            "one plain value forwarded"
        );
        let (h, _) = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (RespFraming::Chunked, false));
        assert!(
            !h.parts.headers.contains_key("content-length"),
            "a Content-Length beside Transfer-Encoding is removed (RFC 9112 6.3)"
        );
    }

    #[test]
    fn faulty_framing_is_read_then_the_connection_is_not_reused() {
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing, keep-alive or not.
        let (h, _) = parse(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (RespFraming::Chunked, false));
        // A 204 that announces a body might send one.
        for (head, keep) in [
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                false,
            ),
            (
                "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
            ),
            ("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", true),
        ] {
            let (h, _) = parse(head, false).unwrap().unwrap();
            assert_eq!(
                (h.framing, h.keep_alive),
                (RespFraming::Length(0), keep),
                "{head:?}"
            );
            assert!(!h.parts.headers.contains_key("content-length"), "{head:?}");
        }
        // Content-Length beside Transfer-Encoding on a HEAD answer: removed, not reused.
        let (h, _) = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (RespFraming::Length(0), false));
        assert!(!h.parts.headers.contains_key("content-length"));
    }

    #[tokio::test]
    async fn an_interim_answer_that_says_close_spoils_the_connection() {
        let mut rd: &[u8] = b"HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n\
                              HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let h = read_head(&mut rd, &mut BytesMut::new(), false)
            .await
            .unwrap();
        assert_eq!((h.parts.status.as_u16(), h.keep_alive), (200, false));
    }

    #[test]
    fn content_length_is_validated_on_answers_without_a_body() {
        for status in [
            "200 OK",
            "304 Not Modified",
            "204 No Content",
            "100 Continue",
        ] {
            for bad in [
                "Content-Length: 5\r\nContent-Length: 7",
                "Content-Length: abc",
                "Content-Length: 5, 7",
                "Content-Length: -1",
            ] {
                let head = format!("HTTP/1.1 {status}\r\n{bad}\r\n\r\n");
                assert!(
                    matches!(parse(&head, true), Err(ClientError::Protocol(_))),
                    "{head:?}"
                );
            }
        }
        let (h, _) = parse("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, RespFraming::Length(0));
        assert_eq!(h.parts.headers["content-length"], "5", "one plain value");
        assert_eq!(h.parts.headers.get_all("content-length").iter().count(), 1);
    }

    #[test]
    fn bad_heads_are_protocol_errors_and_partial_heads_wait() {
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Le", false)
            .unwrap()
            .is_none());
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "SMTP ready\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad, false), Err(ClientError::Protocol(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn request_heads_carry_the_framing_actually_sent() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("b"));
        h.insert("content-length", HeaderValue::from_static("99"));
        let uri: Uri = "/a?b=1".parse().unwrap();
        let mut out = Vec::new();
        encode_head(&Method::POST, &uri, &h, &ReqFraming::Length(3), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /a?b=1 HTTP/1.1\r\nhost: b\r\ncontent-length: 3\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_head(&Method::PUT, &uri, &h, &ReqFraming::Chunked, &mut out);
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("host: b\r\ntransfer-encoding: chunked\r\n\r\n"));
    }

    /// Decode `input` fed in pieces of `step` bytes.
    fn dechunk(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ClientError> {
        let mut c = Chunked::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match c.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End => return Ok((out, buf.len())),
                Decoded::More => {
                    if fed == input.len() {
                        return Err(ClientError::Closed);
                    }
                    let n = step.min(input.len() - fed);
                    buf.extend_from_slice(&input[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_boundaries() {
        let wire =
            b"5;ext=1\r\nhello\r\n1A \t; e=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\n\r\n";
        for step in [1, 2, 3, 7, 64, 1000] {
            let (out, left) = dechunk(wire, step).unwrap();
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert_eq!(left, 0);
        }
        // Bytes after the final CRLF stay in the buffer (the connection is then not reused).
        let mut c = Chunked::default();
        let mut buf = BytesMut::from(&b"0\r\n\r\nHTTP"[..]);
        assert_eq!(c.decode(&mut buf).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"HTTP");
    }

    #[test]
    fn bad_chunks_are_protocol_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"11111111111111111\r\n",
            b"3\r\nabcX\r\n",
            // RFC 9112 §7.1: CRLF after the size and after the data; nothing but an
            // extension after the size.
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3 x\r\nabc\r\n0\r\n\r\n",
            b"3x\r\nabc\r\n0\r\n\r\n",
            b"3 \r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\r\n0\n\r\n",
        ] {
            assert!(
                matches!(dechunk(bad, 1000), Err(ClientError::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'1'; MAX_CHUNK_LINE + 10];
        assert!(matches!(dechunk(&long, 100), Err(ClientError::Protocol(_))));
    }
}
