//! The client's connection (TCP or TLS) as hyper sees it: a request line too long for hyper's buffer is answered 414, not 431, and the status of an answer hyper writes itself is kept.
use crate::error::Error;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client connection as hyper sees it, telling a request line too long from a
/// head too large when the head does not fit hyper's read buffer.
///
/// hyper answers such a head with 431 itself. This counts the bytes read since the
/// last line feed: when hyper gives up on a head with at least a buffer's worth of
/// them, the head's first line never ended, and the client gets the 414 that
/// RFC 9112 §3 asks for in place of hyper's 431. (A single header line as long as
/// the whole buffer is taken for a request line too: either way, the head was far
/// over the limit.) Everything else passes through untouched.
#[derive(Debug)]
pub(super) struct ClientIo<S> {
    pub(super) io: S,
    /// Bytes read since the last `\n` (saturating).
    since_lf: usize,
    /// hyper's read buffer size.
    buf_size: usize,
    /// The 414 being written in place of hyper's 431, how much of it is out, and
    /// how many bytes of hyper's to report written once it is all out.
    replacing: Option<(Vec<u8>, usize, usize)>,
    /// The status of the last answer written that the handler did not make (no
    /// `x-request-id`): hyper's own 400 or 431 to a head it could not parse, or
    /// the 414 in place of its 431. 0: none. Read once the connection ends.
    own_answer: Arc<AtomicU16>,
}

impl<S: AsyncWrite + Unpin> ClientIo<S> {
    pub(super) fn new(io: S, buf_size: usize) -> ClientIo<S> {
        ClientIo {
            io,
            since_lf: 0,
            buf_size,
            replacing: None,
            own_answer: Arc::default(),
        }
    }

    /// Where the status of an answer the handler did not make is kept (see
    /// `own_answer`), to read once hyper is done with the connection.
    pub(super) fn own_answer(&self) -> Arc<AtomicU16> {
        self.own_answer.clone()
    }

    /// Keep the status of `head` when it is an error answer without `x-request-id`
    /// (every answer of the proxy's handler carries one; hyper's own do not).
    fn note(&self, head: &[u8]) {
        if let Some(status) = own_error_status(head) {
            self.own_answer.store(status, Relaxed);
        }
    }

    /// Whether `head` is hyper's own 431 for a head whose first line never ended
    /// (every answer of the proxy's handler carries `x-request-id`; hyper's does not).
    fn replaces(&self, head: &[u8]) -> bool {
        self.since_lf >= self.buf_size
            && head.starts_with(b"HTTP/1.1 431 ")
            && !head.windows(12).any(|w| w == b"x-request-id")
    }

    fn start_replacing(&mut self, hypers: usize) {
        let status = Error::UriTooLong.status();
        let out = format!(
            "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or(""),
        );
        self.replacing = Some((out.into_bytes(), 0, hypers));
        self.own_answer.store(status.as_u16(), Relaxed);
    }

    fn poll_replace(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let Some((out, sent, hypers)) = &mut self.replacing else {
            return Poll::Ready(Ok(0));
        };
        while *sent < out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &out[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        let hypers = *hypers;
        self.replacing = None;
        self.since_lf = 0;
        Poll::Ready(Ok(hypers))
    }
}

/// The status of `head` if it is the head of a 4xx or 5xx answer with no
/// `x-request-id` (checked only for writes that start like an error's status line).
fn own_error_status(head: &[u8]) -> Option<u16> {
    let code = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    if !matches!(code[0], b'4' | b'5') || head.windows(12).any(|w| w == b"x-request-id") {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Position of the last `\n` in `b`. Body bytes pass through here too, so the
/// blocks are tested without an early exit (which the compiler can vectorise).
fn last_lf(b: &[u8]) -> Option<usize> {
    let mut end = b.len();
    for block in b.rchunks(64) {
        end -= block.len();
        if block.iter().fold(false, |any, &x| any | (x == b'\n')) {
            return block.iter().rposition(|&x| x == b'\n').map(|i| end + i);
        }
    }
    None
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        this.since_lf = match last_lf(new) {
            Some(i) => new.len() - 1 - i,
            None => this.since_lf.saturating_add(new.len()),
        };
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() && this.replaces(buf) {
            this.start_replacing(buf.len());
        }
        if this.replacing.is_some() {
            return this.poll_replace(cx);
        }
        this.note(buf);
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if let (None, [head]) = (&this.replacing, bufs) {
            if this.replaces(head) {
                this.start_replacing(head.len());
            }
        }
        if this.replacing.is_some() {
            return this.poll_replace(cx);
        }
        if let Some(head) = bufs.first() {
            this.note(head);
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_feed_is_found_in_any_block() {
        assert_eq!(last_lf(b""), None);
        assert_eq!(last_lf(b"abc"), None);
        assert_eq!(last_lf(b"a\nb\nc"), Some(3));
        let mut v = vec![b'x'; 1000];
        for at in [0, 1, 63, 64, 65, 500, 935, 936, 999] {
            v[at] = b'\n';
            assert_eq!(last_lf(&v), Some(at), "{at}");
        }
        assert_eq!(last_lf(&vec![b'x'; 1000]), None);
    }

    #[test]
    fn own_error_answers_are_told_from_the_handlers() {
        let hypers = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(own_error_status(hypers), Some(400));
        let handlers = b"HTTP/1.1 404 Not Found\r\nx-request-id: 1\r\n\r\n";
        assert_eq!(own_error_status(handlers), None);
        assert_eq!(own_error_status(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(own_error_status(b"HTTP/1.1 4"), None);
        assert_eq!(own_error_status(b"body bytes"), None);
    }
}
