//! A plain connection's protocol, told from its first bytes: the HTTP/2 connection preface, or HTTP/1.1; and the bytes read to tell it, given back.
use bytes::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The client connection preface of HTTP/2 with prior knowledge (RFC 9113 §3.4):
/// "the string PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", which no HTTP/1.1 request starts
/// with (a method is a token, RFC 9110 §9.1, and `PRI` with target `*` and version
/// `HTTP/2.0` is not a valid HTTP/1.1 request line).
pub(super) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection's first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Proto {
    /// The whole HTTP/2 preface.
    H2,
    /// Anything else (HTTP/1.1, or a client that closed before telling).
    Http1,
}

/// Read from `io` until its first bytes tell the protocol: all 24 bytes of the
/// preface, or the first byte that differs from it (usually the very first: `G`
/// of `GET` is not `P`), or the end of the stream. Returns what was read, to be
/// given back with [`Rewind`]; an empty read at the start means the client closed
/// without a byte (`None`). Bound the wait with a timeout.
pub(super) async fn sniff<I: AsyncRead + Unpin>(
    io: &mut I,
) -> std::io::Result<Option<(Proto, Bytes)>> {
    let mut buf = [0u8; PREFACE.len()];
    let mut len = 0;
    loop {
        let n = io.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok((len > 0).then(|| (Proto::Http1, Bytes::copy_from_slice(&buf[..len]))));
        }
        len += n;
        if buf[..len] != PREFACE[..len] {
            return Ok(Some((Proto::Http1, Bytes::copy_from_slice(&buf[..len]))));
        }
        if len == PREFACE.len() {
            return Ok(Some((Proto::H2, Bytes::from_static(PREFACE))));
        }
    }
}

/// A connection whose first bytes were read already: they are read again first.
#[derive(Debug)]
pub(super) struct Rewind<S> {
    pre: Bytes,
    io: S,
}

impl<S> Rewind<S> {
    pub(super) fn new(io: S, pre: Bytes) -> Rewind<S> {
        Rewind { pre, io }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
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
    use tokio::io::AsyncWriteExt;

    /// Sniff what `parts` write one after another (each write reaching the sniffer
    /// before the next is made), then read everything back through [`Rewind`].
    async fn run(parts: &[&[u8]]) -> (Option<Proto>, Vec<u8>, usize) {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let mut reads_waited = 0;
        let mut written = 0;
        let got = {
            let sniffing = sniff(&mut server);
            tokio::pin!(sniffing);
            let mut got = None;
            for part in parts {
                client.write_all(part).await.unwrap();
                written += 1;
                // Poll once: either the sniffer decided on what it has, or it waits.
                tokio::select! {
                    biased;
                    r = &mut sniffing => { got = Some(r.unwrap()); break; }
                    () = std::future::ready(()) => reads_waited += 1,
                }
            }
            match got {
                Some(g) => g,
                None => {
                    drop(client);
                    return match sniffing.await.unwrap() {
                        None => (None, Vec::new(), reads_waited),
                        Some((proto, pre)) => (Some(proto), pre.to_vec(), reads_waited),
                    };
                }
            }
        };
        for part in &parts[written..] {
            client.write_all(part).await.unwrap();
        }
        let Some((proto, pre)) = got else {
            return (None, Vec::new(), reads_waited);
        };
        let mut all = Vec::new();
        let mut io = Rewind::new(server, pre);
        let total: usize = parts.iter().map(|p| p.len()).sum();
        while all.len() < total {
            let mut chunk = [0u8; 7];
            let n = io.read(&mut chunk).await.unwrap();
            assert!(n > 0, "bytes lost: {all:?}");
            all.extend_from_slice(&chunk[..n]);
        }
        (Some(proto), all, reads_waited)
    }

    #[tokio::test]
    async fn http1_is_told_by_its_first_byte_and_no_byte_is_lost() {
        let (proto, all, waited) = run(&[b"GE", b"T / HTTP/1.1\r\nHost: a\r\n\r\n"]).await;
        assert_eq!(proto, Some(Proto::Http1));
        assert_eq!(waited, 0, "decided on \"GE\"");
        assert_eq!(all, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[tokio::test]
    async fn a_preface_split_in_two_writes_is_waited_for() {
        let (proto, all, waited) = run(&[&PREFACE[..10], &PREFACE[10..], b"\0\0\0\x04"]).await;
        assert_eq!(proto, Some(Proto::H2));
        assert_eq!(waited, 1, "waited after 10 bytes");
        assert_eq!(all, [&PREFACE[..], b"\0\0\0\x04"].concat());
    }

    #[tokio::test]
    async fn a_prefix_of_the_preface_that_goes_on_otherwise_is_http1() {
        let (proto, all, waited) = run(&[b"PRI * HTTP/1.1\r\n"]).await;
        assert_eq!((proto, waited), (Some(Proto::Http1), 0));
        assert_eq!(all, b"PRI * HTTP/1.1\r\n");
        // Closed mid-preface: HTTP/1.1 gets the bytes (and answers them as it does).
        let (proto, all, _) = run(&[b"PRI *"]).await;
        assert_eq!((proto, &all[..]), (Some(Proto::Http1), &b"PRI *"[..]));
        // Closed before a byte: nothing to serve.
        assert_eq!(run(&[]).await.0, None);
    }
}
