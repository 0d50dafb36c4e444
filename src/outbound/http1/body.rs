//! A response body: read it by its framing (length, chunked, until close) into the caller's
//! buffer, bounded by the body size limit, and inflate gzip.

use std::io::Read;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::head::Framing;
use super::{Error, MAX_CHUNK_LINE, MAX_HEAD_BYTES, MAX_UPFRONT, READ_SIZE};

/// Makes room for the next read into `dst`: `want` bytes if known (bounded), else [`READ_SIZE`].
fn reserve(dst: &mut Vec<u8>, want: Option<usize>) {
    let want = want.map_or(READ_SIZE, |w| w.clamp(1, MAX_UPFRONT));
    if dst.capacity() - dst.len() < want.min(READ_SIZE) {
        dst.reserve(want);
    }
}

/// Reads a body framed by `framing` into `dst` (empty on entry), starting with `leftover`, the
/// bytes that came with the head. Returns whether the connection ended exactly after it (so it
/// may carry the next request).
pub(super) async fn read_body(
    conn: &mut TcpStream,
    leftover: &[u8],
    framing: Framing,
    dst: &mut Vec<u8>,
    limit: u64,
) -> Result<bool, Error> {
    let over = |n: usize| limit > 0 && n as u64 > limit;
    match framing {
        Framing::Empty => Ok(leftover.is_empty()),
        Framing::Length(n) => {
            if limit > 0 && n > limit {
                return Err(Error::BodyLimit(limit));
            }
            let n = usize::try_from(n).map_err(|_| Error::Body(format!("Content-Length {n}")))?;
            let first = leftover.len().min(n);
            dst.reserve(n.min(MAX_UPFRONT));
            dst.extend_from_slice(&leftover[..first]);
            let mut clean = leftover.len() == first;
            while dst.len() < n {
                reserve(dst, Some(n - dst.len()));
                match conn.read_buf(dst).await {
                    Ok(0) => return Err(Error::Truncated),
                    Ok(_) => {}
                    Err(e) => return Err(Error::Read(e)),
                }
            }
            if dst.len() > n {
                // More than announced: the server is confused; do not read a next answer here.
                dst.truncate(n);
                clean = false;
            }
            Ok(clean)
        }
        Framing::Eof => {
            dst.extend_from_slice(leftover);
            loop {
                if over(dst.len()) {
                    return Err(Error::BodyLimit(limit));
                }
                reserve(dst, None);
                match conn.read_buf(dst).await {
                    Ok(0) => return Ok(false),
                    Ok(_) => {}
                    Err(e) => return Err(Error::Read(e)),
                }
            }
        }
        Framing::Chunked => {
            dst.extend_from_slice(leftover);
            let mut chunks = Dechunker::default();
            loop {
                let want = chunks.decode(dst, limit)?;
                if chunks.done() {
                    return Ok(want == Some(0));
                }
                reserve(dst, want);
                match conn.read_buf(dst).await {
                    Ok(0) => return Err(Error::Truncated),
                    Ok(_) => {}
                    Err(e) => return Err(Error::Read(e)),
                }
            }
        }
    }
}

/// Where a chunked body's decoding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// In a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line.
    Trailer,
    Done,
}

/// Decodes a chunked body in place: the buffer holds decoded bytes, then raw bytes not yet
/// decoded. Data is moved down over the chunk-size lines before it, so a read that lands in the
/// middle of a chunk needs no move at all.
#[derive(Debug, Default)]
pub(super) struct Dechunker {
    state: ChunkState,
    /// Bytes at the start of the buffer that are decoded data.
    decoded: usize,
    /// Bytes of trailer fields seen, bounded like a head.
    trailer_bytes: usize,
}

impl Dechunker {
    pub(super) fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes what `buf` holds past the decoded bytes (`buf[..decoded]` on entry is data) and
    /// leaves `buf` as decoded data followed by the undecoded rest. Returns how many more bytes
    /// are worth reading if known (when done: the count of bytes after the body, so `Some(0)`
    /// means it ended exactly).
    pub(super) fn decode(&mut self, buf: &mut Vec<u8>, limit: u64) -> Result<Option<usize>, Error> {
        let malformed = |what: &str| Error::Body(format!("malformed chunked body: {what}"));
        let mut out = self.decoded;
        let mut pos = self.decoded;
        let result = loop {
            let rest = &buf[pos..];
            match self.state {
                ChunkState::Size => {
                    let Some(i) = memchr::memchr(b'\n', rest) else {
                        if rest.len() > MAX_CHUNK_LINE {
                            break Err(malformed("chunk-size line too long"));
                        }
                        break Ok(None);
                    };
                    let line = rest[..i].strip_suffix(b"\r").unwrap_or(&rest[..i]);
                    let size = line
                        .split(|&b| b == b';')
                        .next()
                        .unwrap_or(&[])
                        .trim_ascii();
                    let size = match parse_hex(size) {
                        Some(s) => s,
                        None => break Err(malformed("bad chunk size")),
                    };
                    pos += i + 1;
                    if size == 0 {
                        self.state = ChunkState::Trailer;
                    } else if limit > 0 && out as u64 + size > limit {
                        break Err(Error::BodyLimit(limit));
                    } else {
                        self.state = ChunkState::Data(size);
                    }
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        break Ok(Some(usize::try_from(left).unwrap_or(usize::MAX)));
                    }
                    let k = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    if pos != out {
                        buf.copy_within(pos..pos + k, out);
                    }
                    out += k;
                    pos += k;
                    self.state = if left == k as u64 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - k as u64)
                    };
                }
                ChunkState::DataEnd => {
                    if rest.starts_with(b"\r\n") {
                        pos += 2;
                    } else if rest.starts_with(b"\n") {
                        pos += 1;
                    } else if rest.is_empty() || rest == b"\r" {
                        break Ok(None);
                    } else {
                        break Err(malformed("no CRLF after chunk data"));
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let Some(i) = memchr::memchr(b'\n', rest) else {
                        if self.trailer_bytes + rest.len() > MAX_HEAD_BYTES {
                            break Err(malformed("trailers too long"));
                        }
                        break Ok(None);
                    };
                    let line = rest[..i].strip_suffix(b"\r").unwrap_or(&rest[..i]);
                    self.trailer_bytes += i + 1;
                    pos += i + 1;
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => {
                    let after = buf.len() - pos;
                    buf.truncate(out);
                    self.decoded = out;
                    return Ok(Some(after));
                }
            }
        };
        // Keep the undecoded tail (a partial line at most) right after the decoded data.
        if pos != out {
            buf.copy_within(pos.., out);
            buf.truncate(out + (buf.len() - pos));
        }
        self.decoded = out;
        result
    }
}

/// A chunk size: 1 to 16 hex digits.
fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16)?;
        Some(n << 4 | u64::from(v))
    })
}

/// Inflates the gzip body `raw` into `body`, refusing more than `limit` bytes (0 = none).
pub(super) fn inflate(raw: &[u8], body: &mut Vec<u8>, limit: u64) -> Result<(), Error> {
    let decoder = flate2::read::MultiGzDecoder::new(raw);
    // Exposition text compresses about tenfold; start near that and let read_to_end grow it.
    let guess = raw.len().saturating_mul(8).min(MAX_UPFRONT);
    let guess = if limit > 0 {
        guess.min(usize::try_from(limit).unwrap_or(usize::MAX))
    } else {
        guess
    };
    body.reserve(guess);
    let cap = if limit > 0 { limit + 1 } else { u64::MAX };
    decoder.take(cap).read_to_end(body).map_err(Error::Gzip)?;
    if limit > 0 && body.len() as u64 > limit {
        return Err(Error::BodyLimit(limit));
    }
    Ok(())
}
