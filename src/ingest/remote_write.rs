//! Remote-write pushes: `POST /api/v1/write` and its aliases.
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
const ACCEPTED_ENCODINGS: [Encoding; 3] = [Encoding::Snappy, Encoding::Zstd, Encoding::Gzip];

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
    let encoding = match encoding::from_headers(headers, Encoding::Snappy, &ACCEPTED_ENCODINGS) {
        Ok(e) => e,
        Err(e) => return refuse(m, e.reject(), e),
    };
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").trim();
        let (mime, params) = ct.split_once(';').unwrap_or((ct, ""));
        let v2 = params.contains("io.prometheus.write.v2");
        if !mime.trim().eq_ignore_ascii_case("application/x-protobuf") || v2 {
            return refuse(
                m,
                Reject::UnsupportedMediaType,
                format_args!(
                    "Content-Type {ct:?} is not supported: expected application/x-protobuf (remote-write 1.0)"
                ),
            );
        }
    }
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
fn refuse_body(st: &IngestState, reason: Reject, e: impl std::fmt::Display) -> Response {
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
