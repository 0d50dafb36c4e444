//! The scrape loop's own HTTP/1.1 client for plain `http://` targets: what vmagent does with
//! fasthttp, for the same reason. reqwest and hyper cost about a third of a scrape's CPU (URL
//! parsing and middleware per request, a connection task woken for the request, the response and
//! every body chunk, and a copy of each chunk); this client does one `write` of a request built
//! once and reads the response straight into the caller's body buffer.
//!
//! Owns: one target's request bytes (built once: the target's URL and headers never change for a
//! loop) and at most one keep-alive connection to it.
//!
//! Guarantees:
//! - A whole fetch (connect, retry, request, response, decompression) takes at most the timeout
//!   given to [`Client::new`], or fails with [`Error::Timeout`].
//! - The body is complete and decoded (chunked framing removed, gzip inflated) or the fetch fails:
//!   a body cut short is an error, never a shorter body.
//! - `body_size_limit` (0 = none) bounds the bytes read and, for gzip, the inflated bytes; nothing
//!   is allocated on a `Content-Length` or chunk size above it before it is refused.
//! - The connection is reused only after a response that was read completely, where neither side
//!   asked to close it and nothing followed it. On any error or timeout it is dropped.
//! - A reused connection that the server closed while idle (the request cannot be written, or the
//!   connection ends before any byte of the answer) is retried once on a new connection; nothing
//!   else is retried.
//! - A redirect is not followed: [`Response::Redirect`] tells the caller to fetch through reqwest,
//!   which follows it as Prometheus does.
//!
//! Must not: speak TLS, follow redirects, or parse the body (it hands back bytes and the
//! `Content-Type`).

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Duration;

use ::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::{Host, Url};

/// What the client sends as `User-Agent`: the same as the job's reqwest client.
const USER_AGENT: &str = concat!("promrelay/", env!("CARGO_PKG_VERSION"));

/// Largest response head (status line and headers) read before giving up.
const MAX_HEAD_BYTES: usize = 64 << 10;
/// Most response headers parsed.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions) of a chunked body.
const MAX_CHUNK_LINE: usize = 4 << 10;
/// Free space ensured in a buffer before each read when the body's size is unknown.
const READ_SIZE: usize = 64 << 10;
/// Most reserved at once from a `Content-Length` or chunk size when there is no body limit, so a
/// lying server cannot make us allocate what it never sends.
const MAX_UPFRONT: usize = 16 << 20;

/// Why a fetch failed. `Display` is what the targets page shows as the scrape's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target's host name did not resolve to any address.
    #[error("resolving {host}: {reason}")]
    Resolve { host: String, reason: String },
    /// No address of the target accepted a TCP connection.
    #[error("connecting to {addr}: {error}")]
    Connect { addr: SocketAddr, error: io::Error },
    /// The request could not be sent, or the connection ended before any byte of the answer.
    #[error("server closed the connection without answering: {0}")]
    Unanswered(String),
    /// Reading the response failed after it had begun.
    #[error("reading the response: {0}")]
    Read(io::Error),
    /// The connection ended in the middle of the response.
    #[error("server closed the connection before the response ended")]
    Truncated,
    /// The response head is not HTTP/1.x, too large, or has too many headers.
    #[error("malformed response head: {0}")]
    Head(String),
    /// The status is neither 2xx nor 3xx. Same text as the reqwest path's.
    #[error("server returned HTTP status {0}")]
    Status(StatusCode),
    /// A framing or encoding this client does not speak, or a malformed chunked body.
    #[error("{0}")]
    Body(String),
    /// The body, or its inflated form, is larger than `body_size_limit`.
    #[error("body size limit exceeded ({0} bytes)")]
    BodyLimit(u64),
    /// The body says it is gzip but does not inflate.
    #[error("decompressing the gzip body: {0}")]
    Gzip(io::Error),
    /// The whole fetch took longer than the scrape timeout.
    #[error("operation timed out: no complete response within the scrape timeout of {0:?}")]
    Timeout(Duration),
}

impl Error {
    /// Whether a reused connection was found closed by the server: worth one retry on a new one.
    pub fn is_stale_connection(&self) -> bool {
        matches!(self, Error::Unanswered(_))
    }
}

/// A fetch that did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Response {
    /// 2xx: the body is in the caller's buffer; the response's `Content-Type`, if any.
    Body { content_type: Option<String> },
    /// 3xx: not followed here; the caller fetches through a client that follows redirects.
    Redirect(StatusCode),
}

/// Where the target listens.
enum Address {
    Ip(SocketAddr),
    Name(String, u16),
}

/// One target's client: its request and its keep-alive connection.
pub struct Client {
    /// The whole request, sent with one write: it never changes for a target.
    request: Vec<u8>,
    address: Address,
    timeout: Duration,
    /// Most body bytes, raw and inflated; 0 = no limit.
    body_size_limit: u64,
    /// The idle keep-alive connection, if the last response left one. Taken out during a fetch,
    /// so a fetch that fails, times out or is cancelled drops it.
    conn: Option<TcpStream>,
}

/// Whether the environment configures a proxy that reqwest would use for `http://` URLs: then
/// scrapes keep going through reqwest (which applies it, and `NO_PROXY`), as before this client.
pub fn proxy_from_env() -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

impl Client {
    /// A client for `url` sending `headers` (name, value) besides `Host`, `User-Agent` and
    /// `Accept-Encoding`. `None` when this client cannot fetch it (not `http://`, no host, or a
    /// header value with a line break): the caller uses reqwest.
    pub fn new(
        url: &Url,
        headers: &[(&str, &[u8])],
        timeout: Duration,
        body_size_limit: u64,
    ) -> Option<Client> {
        if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let port = url.port_or_known_default()?;
        let address = match url.host()? {
            Host::Ipv4(ip) => Address::Ip(SocketAddr::new(ip.into(), port)),
            Host::Ipv6(ip) => Address::Ip(SocketAddr::new(ip.into(), port)),
            Host::Domain(name) => Address::Name(name.to_owned(), port),
        };
        let mut request = Vec::with_capacity(512);
        request.extend_from_slice(b"GET ");
        request.extend_from_slice(url.path().as_bytes());
        if let Some(q) = url.query() {
            request.push(b'?');
            request.extend_from_slice(q.as_bytes());
        }
        request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        request.extend_from_slice(url.host_str()?.as_bytes());
        if let Some(p) = url.port() {
            request.extend_from_slice(format!(":{p}").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        let fixed: [(&str, &[u8]); 2] = [
            ("User-Agent", USER_AGENT.as_bytes()),
            ("Accept-Encoding", b"gzip"),
        ];
        for (name, value) in fixed.iter().chain(headers) {
            if value.iter().any(|&b| b == b'\r' || b == b'\n') || name.contains(['\r', '\n']) {
                return None;
            }
            request.extend_from_slice(name.as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        Some(Client {
            request,
            address,
            timeout,
            body_size_limit,
            conn: None,
        })
    }

    /// Fetches the target into `body` (cleared first).
    pub async fn fetch(&mut self, body: &mut Vec<u8>) -> Result<Response, Error> {
        body.clear();
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.fetch_untimed(body)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    async fn fetch_untimed(&mut self, body: &mut Vec<u8>) -> Result<Response, Error> {
        if let Some(mut conn) = self.conn.take() {
            match self.exchange(&mut conn, body).await {
                Err(e) if e.is_stale_connection() => body.clear(),
                Ok((response, keep)) => return Ok(self.keep(conn, keep, response)),
                Err(e) => return Err(e),
            }
        }
        let mut conn = self.connect().await?;
        let (response, keep) = self.exchange(&mut conn, body).await?;
        Ok(self.keep(conn, keep, response))
    }

    fn keep(&mut self, conn: TcpStream, keep: bool, response: Response) -> Response {
        if keep {
            self.conn = Some(conn);
        }
        response
    }

    async fn connect(&self) -> Result<TcpStream, Error> {
        let addrs: Vec<SocketAddr> = match &self.address {
            Address::Ip(addr) => vec![*addr],
            Address::Name(name, port) => tokio::net::lookup_host((name.as_str(), *port))
                .await
                .map_err(|e| Error::Resolve {
                    host: name.clone(),
                    reason: e.to_string(),
                })?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(conn) => {
                    // Requests are one write and wait for their answer: nothing to coalesce.
                    let _ = conn.set_nodelay(true);
                    return Ok(conn);
                }
                Err(error) => last = Some(Error::Connect { addr, error }),
            }
        }
        Err(last.unwrap_or_else(|| Error::Resolve {
            host: match &self.address {
                Address::Name(name, _) => name.clone(),
                Address::Ip(addr) => addr.to_string(),
            },
            reason: "no addresses".to_owned(),
        }))
    }

    /// One request and its response on `conn`; also whether `conn` may be reused.
    async fn exchange(
        &self,
        conn: &mut TcpStream,
        body: &mut Vec<u8>,
    ) -> Result<(Response, bool), Error> {
        conn.write_all(&self.request)
            .await
            .map_err(|e| Error::Unanswered(e.to_string()))?;
        let mut head_buf = Vec::with_capacity(8 << 10);
        let head = read_head(conn, &mut head_buf).await?;
        let leftover = &head_buf[head.len..];
        let status = StatusCode::from_u16(head.status)
            .map_err(|_| Error::Head(format!("status {}", head.status)))?;
        if status.is_redirection() {
            return Ok((Response::Redirect(status), false));
        }
        if !status.is_success() {
            return Err(Error::Status(status));
        }
        let framing = head.framing?;
        let limit = self.body_size_limit;
        let complete = if head.gzip {
            let mut raw = Vec::new();
            let complete = read_body(conn, leftover, framing, &mut raw, limit).await?;
            inflate(&raw, body, limit)?;
            complete
        } else {
            read_body(conn, leftover, framing, body, limit).await?
        };
        let response = Response::Body {
            content_type: head.content_type,
        };
        Ok((response, complete && head.keep_alive))
    }
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Eof,
}

/// What the client needs from a response head.
struct Head {
    /// Bytes of the head, blank line included.
    len: usize,
    status: u16,
    /// Whether the server lets the connection stay open after this response.
    keep_alive: bool,
    /// Refused framings are kept as errors: they only matter for a 2xx.
    framing: Result<Framing, Error>,
    gzip: bool,
    content_type: Option<String>,
}

/// Reads until the end of a response head into `buf` (which may then hold the body's first
/// bytes too) and parses it.
async fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head, Error> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => return head_of(&resp, len),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::Head(format!("more than {MAX_HEADERS} headers")));
            }
            Err(e) => return Err(Error::Head(e.to_string())),
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(Error::Head(format!(
                "longer than {} KiB",
                MAX_HEAD_BYTES >> 10
            )));
        }
        if buf.capacity() == buf.len() {
            buf.reserve(buf.len().max(1 << 10));
        }
        let first = buf.is_empty();
        match conn.read_buf(buf).await {
            Ok(0) if first => return Err(Error::Unanswered("connection closed".to_owned())),
            Ok(0) => return Err(Error::Truncated),
            Ok(_) => {}
            Err(e) if first && is_closed(&e) => return Err(Error::Unanswered(e.to_string())),
            Err(e) => return Err(Error::Read(e)),
        }
    }
}

/// Whether a read error means the peer closed or reset the connection.
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

fn head_of(resp: &httparse::Response<'_, '_>, len: usize) -> Result<Head, Error> {
    let status = resp.code.unwrap_or(0);
    // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told to keep it.
    let mut keep_alive = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut length_error = None;
    let mut transfer = None::<&[u8]>;
    let mut gzip = false;
    let mut encoding_error = None;
    let mut content_type = None;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && resp.version == Some(0) {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => length_error = Some(String::from_utf8_lossy(h.value).into_owned()),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // A second Transfer-Encoding header would add codings: refuse what we cannot read.
            transfer = Some(if transfer.is_some() {
                b"(several)"
            } else {
                h.value
            });
        } else if name.eq_ignore_ascii_case("content-encoding") {
            let v = h.value.trim_ascii();
            if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") {
                if gzip {
                    encoding_error = Some("gzip, gzip".to_owned());
                }
                gzip = true;
            } else if !v.is_empty() && !v.eq_ignore_ascii_case(b"identity") {
                encoding_error = Some(String::from_utf8_lossy(v).into_owned());
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = std::str::from_utf8(h.value).ok().map(str::to_owned);
        }
    }
    let framing = if matches!(status, 100..=199 | 204 | 304) {
        Ok(Framing::Empty)
    } else if let Some(te) = transfer {
        if te.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            // With a Content-Length too, the message is suspect: read it, then close.
            keep_alive &= length.is_none() && length_error.is_none();
            Ok(Framing::Chunked)
        } else {
            Err(Error::Body(format!(
                "unsupported Transfer-Encoding {:?}",
                String::from_utf8_lossy(te)
            )))
        }
    } else if let Some(bad) = length_error {
        Err(Error::Body(format!("invalid Content-Length {bad:?}")))
    } else {
        Ok(length.map_or(Framing::Eof, Framing::Length))
    };
    let framing = match encoding_error {
        Some(e) => Err(Error::Body(format!("unsupported Content-Encoding {e:?}"))),
        None => framing,
    };
    Ok(Head {
        len,
        status,
        keep_alive,
        framing,
        gzip,
        content_type,
    })
}

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
async fn read_body(
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
struct Dechunker {
    state: ChunkState,
    /// Bytes at the start of the buffer that are decoded data.
    decoded: usize,
    /// Bytes of trailer fields seen, bounded like a head.
    trailer_bytes: usize,
}

impl Dechunker {
    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes what `buf` holds past the decoded bytes (`buf[..decoded]` on entry is data) and
    /// leaves `buf` as decoded data followed by the undecoded rest. Returns how many more bytes
    /// are worth reading if known (when done: the count of bytes after the body, so `Some(0)`
    /// means it ended exactly).
    fn decode(&mut self, buf: &mut Vec<u8>, limit: u64) -> Result<Option<usize>, Error> {
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
fn inflate(raw: &[u8], body: &mut Vec<u8>, limit: u64) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use tokio::net::TcpListener;

    use super::*;

    /// What the canned server does with one request on a connection.
    #[derive(Clone)]
    enum Reply {
        /// Writes these bytes, keeps the connection open for the next request.
        Send(Vec<u8>),
        /// Writes these bytes and closes the connection.
        SendAndClose(Vec<u8>),
        /// Writes these bytes and never anything more (holds the connection open).
        SendAndStall(Vec<u8>),
    }

    /// An in-process server: connection `i` answers its requests with `script[i]`, in order,
    /// then closes. Counts accepted connections and keeps every request it read.
    struct Canned {
        url: Url,
        accepted: Arc<AtomicUsize>,
        requests: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl Canned {
        async fn start(script: Vec<Vec<Reply>>) -> Canned {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = Url::parse(&format!(
                "http://{}/metrics?x=1",
                listener.local_addr().unwrap()
            ))
            .unwrap();
            let accepted = Arc::new(AtomicUsize::new(0));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let (acc, reqs) = (Arc::clone(&accepted), Arc::clone(&requests));
            tokio::spawn(async move {
                for replies in script {
                    let Ok((conn, _)) = listener.accept().await else {
                        return;
                    };
                    acc.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(conn, replies, Arc::clone(&reqs)));
                }
            });
            Canned {
                url,
                accepted,
                requests,
            }
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }

        fn client(&self) -> Client {
            client_for(&self.url, Duration::from_secs(5), 0)
        }
    }

    fn client_for(url: &Url, timeout: Duration, limit: u64) -> Client {
        let headers: [(&str, &[u8]); 2] =
            [("Accept", b"text/plain"), ("Authorization", b"Bearer t")];
        Client::new(url, &headers, timeout, limit).unwrap()
    }

    async fn serve(mut conn: TcpStream, replies: Vec<Reply>, requests: Arc<Mutex<Vec<Vec<u8>>>>) {
        for reply in replies {
            let mut req = Vec::new();
            while memchr::memmem::find(&req, b"\r\n\r\n").is_none() {
                match conn.read_buf(&mut req).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
            requests.lock().unwrap().push(req);
            match reply {
                Reply::Send(bytes) => {
                    let _ = conn.write_all(&bytes).await;
                }
                Reply::SendAndClose(bytes) => {
                    let _ = conn.write_all(&bytes).await;
                    return;
                }
                Reply::SendAndStall(bytes) => {
                    let _ = conn.write_all(&bytes).await;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            }
        }
    }

    fn ok(head: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!("HTTP/1.1 200 OK\r\n{head}\r\n").into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn with_length(body: &str) -> Vec<u8> {
        ok(
            &format!(
                "Content-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n",
                body.len()
            ),
            body.as_bytes(),
        )
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    async fn fetch_one(reply: Reply) -> (Result<Response, Error>, Vec<u8>) {
        let server = Canned::start(vec![vec![reply]]).await;
        let mut body = Vec::new();
        let r = server.client().fetch(&mut body).await;
        (r, body)
    }

    const EXPOSITION: &str = "up 1\nnode_load1 0.5\n";

    #[tokio::test]
    async fn request_is_one_get_with_host_agent_encoding_and_the_given_headers() {
        let server = Canned::start(vec![vec![Reply::Send(with_length(EXPOSITION))]]).await;
        server.client().fetch(&mut Vec::new()).await.unwrap();
        let req = String::from_utf8(server.requests.lock().unwrap()[0].clone()).unwrap();
        let host = server.url.host_str().unwrap();
        let port = server.url.port().unwrap();
        assert_eq!(
            req,
            format!(
                "GET /metrics?x=1 HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {USER_AGENT}\r\n\
                 Accept-Encoding: gzip\r\nAccept: text/plain\r\nAuthorization: Bearer t\r\n\r\n"
            )
        );
    }

    #[tokio::test]
    async fn content_length_body_is_read_whole_with_its_content_type() {
        let (r, body) = fetch_one(Reply::Send(with_length(EXPOSITION))).await;
        assert_eq!(
            r.unwrap(),
            Response::Body {
                content_type: Some("text/plain; version=0.0.4".to_owned())
            }
        );
        assert_eq!(body, EXPOSITION.as_bytes());
    }

    #[tokio::test]
    async fn chunked_body_is_decoded_ignoring_extensions_and_trailers() {
        let raw = ok(
            "Transfer-Encoding: chunked\r\n",
            b"5\r\nup 1\n\r\n3;name=value\r\nnod\r\nA ; x\r\ne_load1 0.\r\n2\r\n5\n\r\n0\r\nX-Trailer: 1\r\n\r\n",
        );
        let server = Canned::start(vec![vec![Reply::Send(raw.clone()), Reply::Send(raw)]]).await;
        let mut client = server.client();
        for _ in 0..2 {
            let mut body = Vec::new();
            client.fetch(&mut body).await.unwrap();
            assert_eq!(body, EXPOSITION.as_bytes());
        }
        // Read exactly to its end: the connection carried the second answer.
        assert_eq!(server.accepted(), 1);
    }

    #[tokio::test]
    async fn gzip_body_is_inflated() {
        let (r, body) = fetch_one(Reply::Send(ok(
            &format!(
                "Content-Encoding: gzip\r\nContent-Length: {}\r\n",
                gzip(EXPOSITION.as_bytes()).len()
            ),
            &gzip(EXPOSITION.as_bytes()),
        )))
        .await;
        r.unwrap();
        assert_eq!(body, EXPOSITION.as_bytes());
    }

    #[tokio::test]
    async fn body_without_length_is_read_to_eof_and_the_connection_dropped() {
        let server = Canned::start(vec![
            vec![Reply::SendAndClose(ok("", EXPOSITION.as_bytes()))],
            vec![Reply::SendAndClose(ok("", EXPOSITION.as_bytes()))],
        ])
        .await;
        let mut client = server.client();
        for _ in 0..2 {
            let mut body = Vec::new();
            client.fetch(&mut body).await.unwrap();
            assert_eq!(body, EXPOSITION.as_bytes());
        }
        assert_eq!(server.accepted(), 2);
    }

    #[tokio::test]
    async fn keep_alive_connection_is_reused() {
        let server = Canned::start(vec![vec![
            Reply::Send(with_length(EXPOSITION)),
            Reply::Send(with_length("up 2\n")),
        ]])
        .await;
        let mut client = server.client();
        let mut body = Vec::new();
        client.fetch(&mut body).await.unwrap();
        client.fetch(&mut body).await.unwrap();
        assert_eq!(body, b"up 2\n");
        assert_eq!(server.accepted(), 1);
    }

    #[tokio::test]
    async fn idle_connection_closed_by_the_server_is_retried_on_a_new_one() {
        let server = Canned::start(vec![
            vec![Reply::SendAndClose(with_length(EXPOSITION))],
            vec![Reply::Send(with_length("up 2\n"))],
        ])
        .await;
        let mut client = server.client();
        let mut body = Vec::new();
        client.fetch(&mut body).await.unwrap();
        // The client kept the connection (HTTP/1.1, no `Connection: close`); the server closed it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.fetch(&mut body).await.unwrap();
        assert_eq!(body, b"up 2\n");
        assert_eq!(server.accepted(), 2);
    }

    #[tokio::test]
    async fn connection_close_from_the_server_is_honoured() {
        let close = ok(
            &format!(
                "Connection: close\r\nContent-Length: {}\r\n",
                EXPOSITION.len()
            ),
            EXPOSITION.as_bytes(),
        );
        // The server would answer again on the same connection: the client must not ask it to.
        let server = Canned::start(vec![
            vec![Reply::Send(close.clone()), Reply::Send(close.clone())],
            vec![Reply::Send(close)],
        ])
        .await;
        let mut client = server.client();
        client.fetch(&mut Vec::new()).await.unwrap();
        client.fetch(&mut Vec::new()).await.unwrap();
        assert_eq!(server.accepted(), 2);
    }

    #[tokio::test]
    async fn http_1_0_answer_closes_unless_it_says_keep_alive() {
        let answer = |extra: &str| {
            format!("HTTP/1.0 200 OK\r\n{extra}Content-Length: 5\r\n\r\nup 1\n").into_bytes()
        };
        let server = Canned::start(vec![
            vec![Reply::Send(answer("")), Reply::Send(answer(""))],
            vec![
                Reply::Send(answer("Connection: keep-alive\r\n")),
                Reply::Send(answer("")),
            ],
        ])
        .await;
        let mut client = server.client();
        for _ in 0..3 {
            client.fetch(&mut Vec::new()).await.unwrap();
        }
        assert_eq!(server.accepted(), 2);
    }

    #[tokio::test]
    async fn not_found_is_an_error_with_the_status_text() {
        let (r, _) = fetch_one(Reply::Send(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".to_vec(),
        ))
        .await;
        assert_eq!(
            r.unwrap_err().to_string(),
            "server returned HTTP status 404 Not Found"
        );
    }

    #[tokio::test]
    async fn redirect_is_handed_back_not_followed() {
        let (r, _) = fetch_one(Reply::Send(
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: /other\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        ))
        .await;
        assert_eq!(
            r.unwrap(),
            Response::Redirect(StatusCode::MOVED_PERMANENTLY)
        );
    }

    #[tokio::test]
    async fn body_over_the_limit_is_refused() {
        let big = "x".repeat(1000);
        for reply in [
            with_length(&big),
            ok(
                "Transfer-Encoding: chunked\r\n",
                format!("3e8\r\n{big}\r\n0\r\n\r\n").as_bytes(),
            ),
            ok("", big.as_bytes()),
        ] {
            let server = Canned::start(vec![vec![Reply::SendAndClose(reply)]]).await;
            let mut client = client_for(&server.url, Duration::from_secs(5), 999);
            let err = client.fetch(&mut Vec::new()).await.unwrap_err();
            assert_eq!(err.to_string(), "body size limit exceeded (999 bytes)");
        }
    }

    #[tokio::test]
    async fn gzip_body_inflating_over_the_limit_is_refused() {
        let packed = gzip("x".repeat(100_000).as_bytes());
        assert!(packed.len() < 1000);
        let server = Canned::start(vec![vec![Reply::Send(ok(
            &format!(
                "Content-Encoding: gzip\r\nContent-Length: {}\r\n",
                packed.len()
            ),
            &packed,
        ))]])
        .await;
        let mut client = client_for(&server.url, Duration::from_secs(5), 1000);
        let err = client.fetch(&mut Vec::new()).await.unwrap_err();
        assert_eq!(err.to_string(), "body size limit exceeded (1000 bytes)");
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        // The head arrives, the body never does.
        let server = Canned::start(vec![vec![Reply::SendAndStall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nup".to_vec(),
        )]])
        .await;
        let mut client = client_for(&server.url, Duration::from_millis(200), 0);
        let started = std::time::Instant::now();
        let err = client.fetch(&mut Vec::new()).await.unwrap_err();
        assert!(matches!(err, Error::Timeout(_)), "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn malformed_heads_are_errors() {
        let many_headers = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X-A: 1\r\n".repeat(101));
        let long_head = format!("HTTP/1.1 200 OK\r\nX-A: {}\r\n\r\n", "a".repeat(70_000));
        for (raw, want) in [
            ("HTTP/1.1 abc OK\r\n\r\n", "malformed response head"),
            ("\u{0}\u{1}garbage\r\n\r\n", "malformed response head"),
            ("SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed response head"),
            (&many_headers, "more than 100 headers"),
            (&long_head, "longer than 64 KiB"),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nup 1\n",
                "invalid Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "unsupported Transfer-Encoding",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 0\r\n\r\n",
                "unsupported Content-Encoding",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "malformed chunked body",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nup",
                "before the response ended",
            ),
            ("HTTP/1.1 200", "before the response ended"),
        ] {
            let (r, _) = fetch_one(Reply::SendAndClose(raw.as_bytes().to_vec())).await;
            let err = r.unwrap_err().to_string();
            assert!(err.contains(want), "{raw:?}: {err}");
        }
    }

    #[tokio::test]
    async fn no_content_answer_is_an_empty_body_on_a_kept_connection() {
        let server = Canned::start(vec![vec![
            Reply::Send(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
            Reply::Send(with_length(EXPOSITION)),
        ]])
        .await;
        let mut client = server.client();
        let mut body = b"old".to_vec();
        client.fetch(&mut body).await.unwrap();
        assert!(body.is_empty());
        client.fetch(&mut body).await.unwrap();
        assert_eq!(server.accepted(), 1);
    }

    #[tokio::test]
    async fn refused_connection_is_an_error_naming_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = Url::parse(&format!("http://{addr}/metrics")).unwrap();
        let err = client_for(&url, Duration::from_secs(5), 0)
            .fetch(&mut Vec::new())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("connecting to {addr}: ")),
            "{err}"
        );
    }

    #[test]
    fn only_plain_http_urls_get_a_client() {
        let headers: [(&str, &[u8]); 0] = [];
        let new =
            |u: &str| Client::new(&Url::parse(u).unwrap(), &headers, Duration::from_secs(1), 0);
        assert!(new("http://localhost:9100/metrics").is_some());
        assert!(new("http://[::1]:9100/metrics").is_some());
        assert!(new("https://localhost:9100/metrics").is_none());
        assert!(new("http://user:pw@localhost:9100/metrics").is_none());
        let bad: [(&str, &[u8]); 1] = [("X", b"a\r\nInjected: 1")];
        let url = Url::parse("http://localhost:9100/metrics").unwrap();
        assert!(Client::new(&url, &bad, Duration::from_secs(1), 0).is_none());
    }

    /// `data` as a chunked body cut into chunks of the sizes in `cuts` (cycled), with extensions
    /// on some chunk-size lines and a trailer.
    fn chunked(data: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = data;
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].clamp(1, rest.len());
            let ext = if i % 3 == 1 { ";ext=\"v\"" } else { "" };
            out.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            i += 1;
        }
        out.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
        out
    }

    proptest! {
        #[test]
        fn dechunking_any_body_read_in_any_pieces_gives_the_body(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(1usize..300, 1..8),
            reads in proptest::collection::vec(1usize..500, 1..8),
        ) {
            let raw = chunked(&data, &cuts);
            let mut buf = Vec::new();
            let mut chunks = Dechunker::default();
            let mut fed = 0;
            let mut i = 0;
            loop {
                let after = chunks.decode(&mut buf, 0).unwrap();
                if chunks.done() {
                    prop_assert_eq!(after, Some(0));
                    break;
                }
                prop_assert!(fed < raw.len(), "wants more after the whole body");
                let n = reads[i % reads.len()].min(raw.len() - fed);
                buf.extend_from_slice(&raw[fed..fed + n]);
                fed += n;
                i += 1;
            }
            prop_assert_eq!(buf, data);
        }

        #[test]
        fn dechunking_arbitrary_bytes_never_panics(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8),
        ) {
            let mut buf = Vec::new();
            let mut chunks = Dechunker::default();
            for piece in pieces {
                buf.extend_from_slice(&piece);
                if chunks.decode(&mut buf, 100).is_err() || chunks.done() {
                    break;
                }
            }
        }

        #[test]
        fn parsing_arbitrary_heads_never_panics(head in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(len)) = resp.parse(&head) {
                let _ = head_of(&resp, len);
            }
        }
    }
}
