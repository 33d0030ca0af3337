//! Message heads: the request head the proxy writes, and the response head it parses (framing per RFC 9112 §6).
use super::conn::READ_CHUNK;
use super::error::ClientError;
use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::response::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri, Version};
use std::io::Write as _;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest response head accepted from a backend; a larger one is a protocol error (502).
/// nginx fails such a response too ("upstream sent too big header", `proxy_buffer_size`).
pub(super) const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header fields in a response head (hyper's default limit).
const MAX_HEADERS: usize = 100;

/// How the request body is framed on the wire.
pub(super) enum ReqFraming {
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
pub(super) fn encode_head(
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
pub(super) enum RespFraming {
    Length(u64),
    Chunked,
    /// Until the backend closes (the connection cannot be reused).
    Close,
}

/// A parsed response head.
pub(super) struct Head {
    pub(super) parts: Parts,
    pub(super) framing: RespFraming,
    pub(super) keep_alive: bool,
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
    // The backend's reason phrase where it is not the standard one for its code (a
    // code without one, as 499 or 599, or other words): passed on, as nginx does;
    // hyper's server writes it (`hyper::ext::ReasonPhrase`), else its own.
    let reason = res
        .reason
        .filter(|r| !r.is_empty() && Some(*r) != status.canonical_reason())
        .and_then(|r| hyper::ext::ReasonPhrase::try_from(r.as_bytes().to_vec()).ok());
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
    if let Some(r) = reason {
        parts.extensions.insert(r);
    }
    Ok(Some(Head {
        parts,
        framing,
        keep_alive,
    }))
}

/// Read until a final (non-1xx) response head is complete, or a `101 Switching
/// Protocols` when the request asked for an upgrade (`upgrade`): after a 101 the
/// connection carries the new protocol, and what follows the head in `buf` is its.
pub(super) async fn read_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    head_request: bool,
    upgrade: bool,
) -> Result<Head, ClientError> {
    let mut any = !buf.is_empty();
    // An interim response that announced a body (or said close) spoils the connection too.
    let mut interim_keep_alive = true;
    loop {
        if !buf.is_empty() {
            if let Some(mut head) = parse_head(buf, head_request)? {
                if head.parts.status == StatusCode::SWITCHING_PROTOCOLS {
                    // RFC 9110 §15.2.2: a server switches only to a protocol the
                    // request's Upgrade field listed. Without one (the proxy strips
                    // `Upgrade` from every request that is not forwarded as an
                    // upgrade), a 101 was never asked for: the bytes after it are
                    // not HTTP the proxy could pass on.
                    if !upgrade {
                        return Err(ClientError::Protocol("unexpected 101 Switching Protocols"));
                    }
                    head.keep_alive = false;
                    head.framing = RespFraming::Length(0);
                    return Ok(head);
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
        let h = read_head(&mut rd, &mut BytesMut::new(), false, false)
            .await
            .unwrap();
        assert_eq!((h.parts.status.as_u16(), h.keep_alive), (200, false));
    }

    #[tokio::test]
    async fn a_101_ends_the_head_only_when_an_upgrade_was_asked_for() {
        let answer: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                              Connection: Upgrade\r\n\r\n\x81\x02hi";
        let mut buf = BytesMut::new();
        let h = read_head(&mut &answer[..], &mut buf, false, true)
            .await
            .unwrap();
        assert_eq!(h.parts.status, 101);
        assert_eq!(h.parts.headers["upgrade"], "websocket");
        assert!(!h.keep_alive);
        assert_eq!(
            &buf[..],
            b"\x81\x02hi",
            "the new protocol's first bytes stay"
        );
        let unasked = read_head(&mut &answer[..], &mut BytesMut::new(), false, false).await;
        assert!(
            matches!(unasked, Err(ClientError::Protocol(_))),
            "{:?}",
            unasked.map(|h| h.parts.status)
        );
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
}
