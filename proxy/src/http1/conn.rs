//! A backend connection: the socket, its read buffer, and the halves it splits into while a request body streams.
use super::error::ClientError;
use bytes::BytesMut;
use std::future::Future as _;
use std::pin::pin;
use std::task::{Context, Poll};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Read buffer growth step.
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// One keep-alive connection to a backend with its read buffer.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(super) io: TcpStream,
    pub(super) buf: BytesMut,
    /// Where request heads are encoded (kept to save an allocation per request).
    pub(super) wbuf: Vec<u8>,
}

impl Conn {
    /// A freshly opened connection.
    pub(crate) fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            wbuf: Vec::with_capacity(512),
        }
    }

    /// The socket, and the bytes read from it that nothing consumed yet (after a
    /// `101 Switching Protocols`: the first bytes of the new protocol).
    pub(crate) fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.io, self.buf)
    }

    /// An idle connection is usable unless the backend closed it or sent something
    /// unasked. Costs no system call unless the runtime saw the socket readable.
    pub(crate) fn is_usable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// The task writing a streamed request body; stopped when dropped (attempt
/// abandoned, response done), so it never outlives the exchange.
#[derive(Debug)]
pub(super) struct Writer(
    pub(super) JoinHandle<Result<tokio::net::tcp::OwnedWriteHalf, ClientError>>,
);

impl Drop for Writer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The read half of a connection whose request body is still being written.
#[derive(Debug)]
pub(super) struct Split {
    pub(super) rd: tokio::net::tcp::OwnedReadHalf,
    pub(super) _writer: Writer,
}

/// Where the response body's bytes come from.
#[derive(Debug)]
pub(super) enum Io {
    Whole(Conn),
    Split(Split, BytesMut),
}

impl Io {
    pub(super) fn buf(&mut self) -> &mut BytesMut {
        match self {
            Io::Whole(c) => &mut c.buf,
            Io::Split(_, b) => b,
        }
    }

    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
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
