//! Remote-write pushes: `POST /api/v1/write` and its aliases.
//!
//! The Content-Type tells the protocol version apart ([`message_type`]): 1.0 is handled here,
//! 2.0 (`proto=io.prometheus.write.v2.Request`) by the sibling `remote_write_v2`; anything else
//! gets 415 naming both.
//!
//! A snappy body is validated and queued as it came; a zstd or gzip body is decompressed
//! (bounded by `--max-request-bytes`), validated, and queued as the snappy block storages expect.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;

use super::encoding::{self, Encoding, EncodingError};
use super::{
    DECOMPRESSED, IngestState, KEEP_BUFFER_BYTES, queue, read_body, refuse, still_opening,
};
use crate::forward::Tenant;
use crate::prompb;
use crate::stats::{Reject, Source};

/// What remote-write bodies may be compressed with: snappy (the spec's, and the default when
/// `Content-Encoding` is absent), zstd (vmagent's default) and gzip. The queues hold snappy
/// whatever came in.
pub(super) const ACCEPTED_ENCODINGS: [Encoding; 3] =
    [Encoding::Snappy, Encoding::Zstd, Encoding::Gzip];

pub(super) async fn remote_write(
    State(st): State<Arc<IngestState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    remote_write_of(&st, None, &headers, body).await
}

/// A remote-write push of `tenant` (`None`: pushed without one).
pub(super) async fn remote_write_of(
    st: &IngestState,
    tenant: Option<Tenant>,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let start = Instant::now();
    let resp = handle_remote_write(st, tenant, headers, body).await;
    st.metrics.observe_duration(start.elapsed());
    resp
}

async fn handle_remote_write(
    st: &IngestState,
    tenant: Option<Tenant>,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let m = &st.metrics;
    match message_type(headers) {
        Ok(Message::V1) => {}
        Ok(Message::V2) => {
            return super::remote_write_v2::remote_write_v2(st, tenant, headers, body).await;
        }
        Err(e) => return refuse(m, Reject::UnsupportedMediaType, e),
    }
    let encoding = match encoding::from_headers(headers, Encoding::Snappy, &ACCEPTED_ENCODINGS) {
        Ok(e) => e,
        Err(e) => return refuse(m, e.reject(), e),
    };
    let body = match read_body(st, body) {
        Ok(b) => b,
        Err((reason, why)) => return refuse(&st.metrics, reason, why),
    };
    let limit = st.max_request_bytes;
    let checked = DECOMPRESSED.with(|buf| {
        let mut buf = buf.borrow_mut();
        let res = decode_and_validate(encoding, body, limit, &mut buf);
        if buf.capacity() > KEEP_BUFFER_BYTES {
            *buf = Vec::new();
        }
        res
    });
    let (summary, block) = match checked {
        Ok(checked) => checked,
        Err(BodyError::Encoding(e)) => return refuse_body(st, e.reject(), e),
        Err(BodyError::Wire(e)) if e.is_too_large() => return refuse_body(st, Reject::TooLarge, e),
        Err(BodyError::Wire(e)) => return refuse(m, Reject::BadBody, e),
    };
    let Some(fanout) = st.fanout.wait(st.open_wait).await else {
        return still_opening(st);
    };
    let samples = summary.samples + summary.histograms;
    queue(st, fanout, block, samples, Source::RemoteWrite, tenant).await
}

/// Why a remote-write body was refused before queueing.
enum BodyError {
    Encoding(EncodingError),
    Wire(prompb::WireError),
}

/// 400 or 413 for a body that could not be decoded; a 413 names the flag that sets the limit.
pub(super) fn refuse_body(st: &IngestState, reason: Reject, e: impl std::fmt::Display) -> Response {
    if reason == Reject::TooLarge {
        let why = format!("{e} (--max-request-bytes {})", st.max_request_bytes);
        return refuse(&st.metrics, reason, why);
    }
    refuse(&st.metrics, reason, e)
}

/// Decodes the body into `buf`, validates it, and returns its counts with the block to queue:
/// the body itself when it came as snappy (the hot path: no re-encoding), else the decoded
/// protobuf compressed as the snappy block the queues and storages expect.
fn decode_and_validate(
    encoding: Encoding,
    body: Bytes,
    limit: usize,
    buf: &mut Vec<u8>,
) -> Result<(prompb::WriteSummary, Bytes), BodyError> {
    let plain = encoding::decode(encoding, &body, limit, buf).map_err(BodyError::Encoding)?;
    let summary = prompb::validate_write_request(plain).map_err(BodyError::Wire)?;
    let block = match encoding {
        Encoding::Snappy => body,
        Encoding::Identity | Encoding::Zstd | Encoding::Gzip => {
            Bytes::from(prompb::compress(plain))
        }
    };
    Ok((summary, block))
}

/// The remote-write message a request's Content-Type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Message {
    /// `prometheus.WriteRequest`: no Content-Type, `application/x-protobuf`, or with
    /// `proto=prometheus.WriteRequest`.
    V1,
    /// `io.prometheus.write.v2.Request`.
    V2,
}

/// A `Content-Type` that names no remote-write message (the header as sent).
#[derive(Debug, thiserror::Error)]
#[error(
    "Content-Type {0:?} is not supported: remote-write takes application/x-protobuf (1.0, also \
     with ;proto=prometheus.WriteRequest) or application/x-protobuf;proto=io.prometheus.write.v2.Request (2.0)"
)]
pub(super) struct UnsupportedContentType(String);

/// The message `Content-Type` names, or the header as sent when it names none remote-write
/// knows. Parsed as RFC 9110 media types are: the type and parameter names are case-insensitive,
/// whitespace may surround each `;`, a parameter value may be a quoted string; other parameters
/// (such as `charset`) are ignored.
pub(super) fn message_type(headers: &HeaderMap) -> Result<Message, UnsupportedContentType> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Message::V1);
    };
    let unsupported =
        || UnsupportedContentType(String::from_utf8_lossy(value.as_bytes()).into_owned());
    let ct = value.to_str().map_err(|_| unsupported())?;
    parse_message_type(ct).ok_or_else(unsupported)
}

/// Optional whitespace (RFC 9110 `OWS`).
const OWS: [char; 2] = [' ', '\t'];

fn parse_message_type(ct: &str) -> Option<Message> {
    let mut parts = ct.split(';');
    let media_type = parts.next()?.trim_matches(OWS);
    if !media_type.eq_ignore_ascii_case("application/x-protobuf") {
        return None;
    }
    let mut message = Message::V1;
    for parameter in parts {
        let parameter = parameter.trim_matches(OWS);
        if parameter.is_empty() {
            continue;
        }
        let (name, value) = parameter.split_once('=')?;
        if !name.trim_matches(OWS).eq_ignore_ascii_case("proto") {
            continue;
        }
        message = match unquote(value.trim_matches(OWS))?.as_ref() {
            "prometheus.WriteRequest" => Message::V1,
            "io.prometheus.write.v2.Request" => Message::V2,
            _ => return None,
        };
    }
    Some(message)
}

/// A parameter value: a token as it is, or a quoted string without its quotes and escapes.
fn unquote(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.into());
    };
    let inner = inner.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(inner.into());
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(out.into())
}

#[cfg(test)]
mod tests {
    use super::{Message, parse_message_type};

    #[test]
    fn plain_protobuf_and_the_1_0_proto_parameter_are_1_0() {
        for ct in [
            "application/x-protobuf",
            "Application/X-Protobuf",
            "application/x-protobuf;proto=prometheus.WriteRequest",
            "application/x-protobuf; charset=utf-8",
        ] {
            assert_eq!(parse_message_type(ct), Some(Message::V1), "{ct}");
        }
    }

    #[test]
    fn the_2_0_proto_parameter_is_recognised_with_any_allowed_spacing_quoting_and_case() {
        for ct in [
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "application/x-protobuf; proto=io.prometheus.write.v2.Request",
            "application/x-protobuf \t;\tPROTO=io.prometheus.write.v2.Request ; ",
            "application/x-protobuf;proto=\"io.prometheus.write.v2.Request\"",
            "application/x-protobuf;proto=\"io.prometheus.write.v2\\.Request\"",
            "application/x-protobuf;charset=utf-8;proto=io.prometheus.write.v2.Request",
        ] {
            assert_eq!(parse_message_type(ct), Some(Message::V2), "{ct}");
        }
    }

    #[test]
    fn other_types_and_unknown_messages_are_refused() {
        for ct in [
            "application/json",
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            "application/x-protobuf;proto=IO.PROMETHEUS.WRITE.V2.REQUEST",
            "application/x-protobuf;proto=\"io.prometheus.write.v2.Request",
            "application/x-protobuf;proto",
            "text/plain;proto=io.prometheus.write.v2.Request",
        ] {
            assert_eq!(parse_message_type(ct), None, "{ct}");
        }
    }
}
