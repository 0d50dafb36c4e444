//! The scrape loop's own HTTP/1.1 client for plain `http://` targets: what vmagent does with
//! fasthttp, for the same reason. reqwest and hyper cost about a third of a scrape's CPU (URL
//! parsing and middleware per request, a connection task woken for the request, the response and
//! every body chunk, and a copy of each chunk); this client does one `write` of a request built
//! once and reads the response straight into the caller's body buffer.
//!
//! Files: this one holds the client (connect, request, retry, keep-alive); `head.rs` reads and
//! parses a response head and picks the body's framing; `body.rs` reads a body by that framing
//! (length, chunked, until close) and inflates gzip.
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
//! - Interim answers (`1xx`, such as `100 Continue` or `103 Early Hints`) are read and skipped:
//!   the final answer after them is the response. `101 Switching Protocols` was never asked for
//!   and is an error.
//! - A redirect is not followed: [`Response::Redirect`] tells the caller to fetch through reqwest,
//!   which follows it as Prometheus does.
//!
//! Must not: speak TLS, follow redirects, or parse the body (it hands back bytes and the
//! `Content-Type`).

mod body;
mod head;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use ::http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use url::{Host, Url};

#[cfg(test)]
use body::Dechunker;
use body::{inflate, read_body};
#[cfg(test)]
use head::head_of;
use head::read_head;

/// What the client sends as `User-Agent`: the same as the job's reqwest client.
const USER_AGENT: &str = super::USER_AGENT;

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
        let mut answered = false;
        let head = loop {
            let head = read_head(conn, &mut head_buf, answered).await?;
            answered = true;
            match head.status {
                101 => {
                    return Err(Error::Head(
                        "101 Switching Protocols was not asked for".into(),
                    ));
                }
                // An interim answer (100 Continue, 103 Early Hints...): the final one follows.
                // The whole fetch is bounded by the timeout, so a server that sends them for
                // ever only makes this fetch time out.
                100..=199 => {
                    head_buf.drain(..head.len);
                }
                _ => break head,
            }
        };
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
