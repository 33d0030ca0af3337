//! Chunked transfer-coding decoder (RFC 9112 §7.1).
use super::error::ClientError;
use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (with extensions) and most trailer bytes accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 64 * 1024;

/// Chunked transfer-coding decoder (RFC 9112 §7.1); extensions and trailers are dropped.
#[derive(Debug, Default)]
pub(super) struct Chunked {
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
pub(super) enum Decoded {
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
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ClientError> {
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
