//! Request bodies by `Content-Encoding`: snappy (block format), zstd, gzip, identity.
//!
//! Every endpoint names the encodings it accepts and the one a body without the header has
//! (remote-write: snappy, as the spec says; OTLP: identity). [`decode`] returns the decompressed
//! bytes, bounded by the caller's limit (`--max-request-bytes`) **before** anything past the limit
//! is allocated:
//! - snappy: the block header declares the size, checked before allocating (the remote-write
//!   format's own bounds).
//! - zstd: a frame may declare its content size; it is checked first. Frames that do not, and
//!   concatenated frames, are decoded as a stream that stops one byte past the limit, and the
//!   decoder's window is capped at the limit's size (at least 8 MiB, at most 128 MiB), so a frame
//!   asking for a larger window is refused instead of allocated.
//! - gzip: decoded as a stream (concatenated members too) that stops one byte past the limit.
//!
//! A bomb (a few KiB that inflate to gigabytes) costs at most `limit` bytes of memory and the
//! time to inflate `limit` bytes, and gets 413.
//!
//! Why here and not in the remote-write wire-format module: a content coding is HTTP's, shared by
//! remote-write and OTLP; the snappy block format stays there and is only called from here.

use std::cell::RefCell;
use std::io::Read;

use axum::http::{HeaderMap, header};

use crate::prompb::{self, WireError};
use crate::stats::Reject;

/// A content coding a request body can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No compression (`identity`).
    Identity,
    /// Snappy block format (not the framing format): remote-write's own.
    Snappy,
    /// Zstandard, one or more frames (vmagent's default for remote-write).
    Zstd,
    /// gzip, one or more members.
    Gzip,
}

impl Encoding {
    /// The coding's name as `Content-Encoding` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Snappy => "snappy",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    fn from_name(name: &str) -> Option<Encoding> {
        [
            Encoding::Identity,
            Encoding::Snappy,
            Encoding::Zstd,
            Encoding::Gzip,
        ]
        .into_iter()
        .find(|e| e.as_str().eq_ignore_ascii_case(name))
        // `x-gzip` is gzip (RFC 9110, 8.4.1.3).
        .or_else(|| {
            name.eq_ignore_ascii_case("x-gzip")
                .then_some(Encoding::Gzip)
        })
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodingError {
    /// The `Content-Encoding` names a coding the endpoint does not take, or several codings
    /// (HTTP 415).
    #[error("Content-Encoding {name:?} is not supported here; accepted: {accepted}")]
    Unsupported {
        /// The header's value as sent.
        name: String,
        /// The accepted codings, for the message.
        accepted: String,
    },
    /// The body inflates past the limit (HTTP 413). Nothing past the limit was allocated.
    #[error("the {encoding} body decompresses to more than {limit} bytes")]
    TooLarge {
        encoding: &'static str,
        /// The caller's limit.
        limit: usize,
    },
    /// The body is not valid in its coding: a bad frame, checksum, or a truncated stream
    /// (HTTP 400).
    #[error("invalid {encoding} body: {source}")]
    Corrupt {
        encoding: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The snappy block is not valid or declares a size past the limit (HTTP 400 or 413, as
    /// [`WireError::is_too_large`] says).
    #[error(transparent)]
    Snappy(#[from] WireError),
}

impl EncodingError {
    /// The refusal this error is answered with.
    pub fn reject(&self) -> Reject {
        match self {
            EncodingError::Unsupported { .. } => Reject::UnsupportedMediaType,
            EncodingError::TooLarge { .. } => Reject::TooLarge,
            EncodingError::Snappy(e) if e.is_too_large() => Reject::TooLarge,
            EncodingError::Corrupt { .. } | EncodingError::Snappy(_) => Reject::BadBody,
        }
    }
}

/// The body's coding from its `Content-Encoding` header: `default` when the header is absent or
/// empty, an error when it names a coding not in `accepted` (or a list of codings: no sender of
/// these protocols stacks them).
pub fn from_headers(
    headers: &HeaderMap,
    default: Encoding,
    accepted: &[Encoding],
) -> Result<Encoding, EncodingError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(default);
    };
    let name = value.to_str().unwrap_or("").trim();
    if name.is_empty() {
        return Ok(default);
    }
    match Encoding::from_name(name) {
        Some(e) if accepted.contains(&e) => Ok(e),
        _ => Err(EncodingError::Unsupported {
            name: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            accepted: accepted
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// zstd windows up to 2^23 bytes are always accepted: encoders use up to that for streams of
/// unknown size at their usual levels.
const MIN_WINDOW_LOG: u32 = 23;
/// libzstd's default bound on the window of a frame it decodes.
const MAX_WINDOW_LOG: u32 = 27;

thread_local! {
    /// One zstd decompression context per thread: creating one costs more than decoding a small
    /// push.
    static ZSTD_CONTEXT: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
}

/// Decodes `body` in `encoding`, at most `limit` bytes. Identity returns `body` itself; the
/// others decode into `buf` (cleared first, its capacity reused) and return it.
pub fn decode<'a>(
    encoding: Encoding,
    body: &'a [u8],
    limit: usize,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], EncodingError> {
    match encoding {
        Encoding::Identity if body.len() > limit => Err(EncodingError::TooLarge {
            encoding: encoding.as_str(),
            limit,
        }),
        Encoding::Identity => Ok(body),
        Encoding::Snappy => {
            prompb::decompress_bounded_into(body, limit, buf)?;
            Ok(buf)
        }
        Encoding::Zstd => {
            zstd_into(body, limit, buf)?;
            Ok(buf)
        }
        Encoding::Gzip => {
            buf.clear();
            let reader = flate2::bufread::MultiGzDecoder::new(body);
            read_bounded(reader, encoding, limit, buf)?;
            Ok(buf)
        }
    }
}

fn zstd_into(body: &[u8], limit: usize, buf: &mut Vec<u8>) -> Result<(), EncodingError> {
    let too_large = || EncodingError::TooLarge {
        encoding: "zstd",
        limit,
    };
    buf.clear();
    // A declared size past the limit is refused before decoding anything.
    if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(body)
        && declared > limit as u64
    {
        return Err(too_large());
    }
    // The window the decoder may allocate: the smallest power of two that holds `limit`, but
    // at least 8 MiB (what every encoder level up to 19 uses for a stream of unknown size) and
    // at most zstd's own default of 128 MiB.
    let window_log = (usize::BITS - limit.saturating_sub(1).leading_zeros())
        .clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG);
    ZSTD_CONTEXT.with(|cell| {
        let mut cell = cell.borrow_mut();
        let context = match cell.as_mut() {
            Some(c) => c,
            None => cell.insert(zstd::zstd_safe::DCtx::create()),
        };
        let mut decoder = zstd::stream::read::Decoder::with_context(body, context);
        decoder
            .window_log_max(window_log)
            .map_err(|source| EncodingError::Corrupt {
                encoding: "zstd",
                source,
            })?;
        read_bounded(decoder, Encoding::Zstd, limit, buf)
    })
}

/// Reads `reader` to its end into `buf`, refusing past `limit` bytes without reading further.
fn read_bounded(
    reader: impl Read,
    encoding: Encoding,
    limit: usize,
    buf: &mut Vec<u8>,
) -> Result<(), EncodingError> {
    let mut reader = reader.take(limit as u64 + 1);
    match reader.read_to_end(buf) {
        Ok(n) if n > limit => {
            buf.clear();
            Err(EncodingError::TooLarge {
                encoding: encoding.as_str(),
                limit,
            })
        }
        Ok(_) => Ok(()),
        Err(source) => {
            buf.clear();
            Err(EncodingError::Corrupt {
                encoding: encoding.as_str(),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::http::HeaderValue;

    use super::*;

    const REMOTE_WRITE: [Encoding; 3] = [Encoding::Snappy, Encoding::Zstd, Encoding::Gzip];

    fn headers_with(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_str(encoding).unwrap(),
        );
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A zstd frame that does not declare its content size, as a streaming encoder writes it.
    fn zstd_streamed(data: &[u8]) -> Vec<u8> {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.include_contentsize(false).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn sample_data() -> Vec<u8> {
        (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn a_body_without_content_encoding_has_the_endpoints_default() {
        assert_eq!(
            from_headers(&HeaderMap::new(), Encoding::Snappy, &REMOTE_WRITE).unwrap(),
            Encoding::Snappy
        );
        assert_eq!(
            from_headers(
                &headers_with(" "),
                Encoding::Identity,
                &[Encoding::Identity]
            )
            .unwrap(),
            Encoding::Identity
        );
    }

    #[test]
    fn codings_are_matched_case_insensitively_with_spaces_trimmed() {
        for (value, want) in [
            ("zstd", Encoding::Zstd),
            (" ZSTD ", Encoding::Zstd),
            ("Gzip", Encoding::Gzip),
            ("x-gzip", Encoding::Gzip),
            ("snappy", Encoding::Snappy),
        ] {
            assert_eq!(
                from_headers(&headers_with(value), Encoding::Snappy, &REMOTE_WRITE).unwrap(),
                want,
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_coding_the_endpoint_does_not_take_is_refused_with_415_naming_the_accepted_ones() {
        for value in ["br", "deflate", "identity", "gzip, zstd", "snappy-framed"] {
            let err = from_headers(&headers_with(value), Encoding::Snappy, &REMOTE_WRITE)
                .expect_err(value);
            assert_eq!(err.reject(), Reject::UnsupportedMediaType, "{value}");
            let msg = err.to_string();
            assert!(
                msg.contains(value) && msg.contains("snappy, zstd, gzip"),
                "{msg}"
            );
        }
    }

    #[test]
    fn every_coding_round_trips() {
        let data = sample_data();
        let bodies = [
            (Encoding::Identity, data.clone()),
            (Encoding::Snappy, prompb::compress(&data)),
            (Encoding::Zstd, zstd::bulk::compress(&data, 3).unwrap()),
            (Encoding::Zstd, zstd_streamed(&data)),
            (Encoding::Gzip, gzip(&data)),
        ];
        for (encoding, body) in bodies {
            let mut buf = Vec::new();
            let out = decode(encoding, &body, data.len(), &mut buf).unwrap();
            assert_eq!(out, &data[..], "{encoding:?}");
        }
    }

    #[test]
    fn concatenated_zstd_frames_and_gzip_members_decode_as_one_body() {
        let (a, b) = (b"first part;".as_slice(), b"second part".as_slice());
        let mut zstd_body = zstd::encode_all(a, 1).unwrap();
        zstd_body.extend(zstd::encode_all(b, 1).unwrap());
        let mut gzip_body = gzip(a);
        gzip_body.extend(gzip(b));
        for (encoding, body) in [(Encoding::Zstd, zstd_body), (Encoding::Gzip, gzip_body)] {
            let mut buf = Vec::new();
            let out = decode(encoding, &body, 1024, &mut buf).unwrap();
            assert_eq!(out, b"first part;second part", "{encoding:?}");
        }
    }

    #[test]
    fn a_zstd_frame_declaring_more_than_the_limit_is_refused_before_decoding() {
        let body = zstd::bulk::compress(&vec![0u8; 1 << 20], 3).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&body).unwrap(),
            Some(1 << 20)
        );
        let mut buf = Vec::new();
        let err = decode(Encoding::Zstd, &body, 1 << 16, &mut buf).unwrap_err();
        assert!(matches!(err, EncodingError::TooLarge { limit, .. } if limit == 1 << 16));
        assert_eq!(err.reject(), Reject::TooLarge);
        assert_eq!(
            buf.capacity(),
            0,
            "nothing was allocated for the refused body"
        );
    }

    #[test]
    fn bombs_without_a_declared_size_stop_one_byte_past_the_limit() {
        // 64 MiB of zeros: a few KiB compressed.
        let zeros = vec![0u8; 64 << 20];
        let limit = 1 << 20;
        for (encoding, body) in [
            (Encoding::Zstd, zstd_streamed(&zeros)),
            (Encoding::Gzip, gzip(&zeros)),
        ] {
            assert!(body.len() < 256 << 10, "{encoding:?}: {}", body.len());
            let mut buf = Vec::new();
            let err = decode(encoding, &body, limit, &mut buf).unwrap_err();
            assert_eq!(err.reject(), Reject::TooLarge, "{encoding:?}: {err}");
            assert!(
                buf.capacity() <= 2 * (limit + 1),
                "{encoding:?}: grew to {} bytes",
                buf.capacity()
            );
        }
    }

    #[test]
    fn a_zstd_frame_asking_for_a_window_larger_than_the_limit_is_refused() {
        // Window 2^25, no declared size, against a 64 KiB limit: the decoder must not allocate
        // a window larger than 8 MiB.
        let data = sample_data();
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.include_contentsize(false).unwrap();
        e.window_log(25).unwrap();
        e.long_distance_matching(true).unwrap();
        e.write_all(&data).unwrap();
        let body = e.finish().unwrap();
        let mut buf = Vec::new();
        let err = decode(Encoding::Zstd, &body, 1 << 16, &mut buf).unwrap_err();
        assert_eq!(err.reject(), Reject::BadBody, "{err}");
        assert!(err.to_string().contains("zstd"), "{err}");
    }

    #[test]
    fn an_identity_body_past_the_limit_is_refused() {
        let mut buf = Vec::new();
        let err = decode(Encoding::Identity, &[0; 11], 10, &mut buf).unwrap_err();
        assert_eq!(err.reject(), Reject::TooLarge);
    }

    #[test]
    fn corrupt_bodies_are_bad_requests_naming_their_coding() {
        let data = sample_data();
        let mut zstd_body = zstd::bulk::compress(&data, 3).unwrap();
        zstd_body.truncate(zstd_body.len() / 2);
        let mut gzip_body = gzip(&data);
        gzip_body.truncate(gzip_body.len() - 4);
        let cases = [
            (Encoding::Zstd, b"not zstd at all".to_vec()),
            (Encoding::Zstd, zstd_body),
            (Encoding::Gzip, b"not gzip".to_vec()),
            (Encoding::Gzip, gzip_body),
            (Encoding::Snappy, b"\x0a\x00".to_vec()),
        ];
        for (encoding, body) in cases {
            let mut buf = Vec::new();
            let err = decode(encoding, &body, 1 << 20, &mut buf).unwrap_err();
            assert_eq!(err.reject(), Reject::BadBody, "{encoding:?}: {err}");
            assert!(err.to_string().contains(encoding.as_str()), "{err}");
        }
    }

    #[test]
    fn the_thread_s_zstd_context_is_reused_across_bodies() {
        let mut buf = Vec::new();
        for i in 0..3u8 {
            let data = vec![i; 1000];
            let body = zstd::encode_all(&data[..], 1).unwrap();
            assert_eq!(
                decode(Encoding::Zstd, &body, 1000, &mut buf).unwrap(),
                &data[..]
            );
        }
        let body = b"garbage";
        assert!(decode(Encoding::Zstd, body, 1000, &mut buf).is_err());
        let data = vec![9u8; 1000];
        let body = zstd::encode_all(&data[..], 1).unwrap();
        assert_eq!(
            decode(Encoding::Zstd, &body, 1000, &mut buf).unwrap(),
            &data[..],
            "a failed body leaves the context usable"
        );
    }
}
