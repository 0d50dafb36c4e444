//! A response head: read it (bounded), parse it, and decide the body's framing from it.

use std::io;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{Error, MAX_HEAD_BYTES, MAX_HEADERS};

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Eof,
}

/// What the client needs from a response head.
pub(super) struct Head {
    /// Bytes of the head, blank line included.
    pub(super) len: usize,
    pub(super) status: u16,
    /// Whether the server lets the connection stay open after this response.
    pub(super) keep_alive: bool,
    /// Refused framings are kept as errors: they only matter for a 2xx.
    pub(super) framing: Result<Framing, Error>,
    pub(super) gzip: bool,
    pub(super) content_type: Option<String>,
}

/// Reads until the end of a response head into `buf` (which may then hold the body's first
/// bytes too) and parses it. `answered`: an interim answer came before this head, so the
/// connection ending now is a cut answer ([`Error::Truncated`]), not a stale connection.
pub(super) async fn read_head(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    answered: bool,
) -> Result<Head, Error> {
    loop {
        if let Some(head) = parse_head(buf)? {
            return Ok(head);
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
        let first = buf.is_empty() && !answered;
        match conn.read_buf(buf).await {
            Ok(0) if first => return Err(Error::Unanswered("connection closed".to_owned())),
            Ok(0) => return Err(Error::Truncated),
            Ok(_) => {}
            Err(e) if first && is_closed(&e) => return Err(Error::Unanswered(e.to_string())),
            Err(e) => return Err(Error::Read(e)),
        }
    }
}

/// The head at the start of `buf` if it is complete. A function of its own, not inline in
/// [`read_head`]'s loop: there the header array (`MAX_HEADERS` x 32 bytes) would be kept across
/// the read's `.await`, in every scrape loop's task (3.7 of its 4.9 KB).
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => head_of(&resp, len).map(Some),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            Err(Error::Head(format!("more than {MAX_HEADERS} headers")))
        }
        Err(e) => Err(Error::Head(e.to_string())),
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

pub(super) fn head_of(resp: &httparse::Response<'_, '_>, len: usize) -> Result<Head, Error> {
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
