//! OTLP/HTTP metrics pushes: `POST /opentelemetry/v1/metrics` and `/opentelemetry/api/v1/push`
//! (vmagent's paths) and `POST /api/v1/otlp/v1/metrics` (Prometheus 3's).
//!
//! Answers as OTLP/HTTP specifies: 200 with an `ExportMetricsServiceResponse` in the request's
//! encoding, with `partial_success` (`rejected_data_points` and the reasons) when some points
//! were refused (delta temporality, names that escape to nothing); 400 when the body is not a
//! request or nothing in it could be taken; 413, 415; 503 with `Retry-After` when a queue cannot
//! take it. Every 4xx/5xx body is a `google.rpc.Status` with the reason in `message`, in the
//! request's encoding (protobuf when the Content-Type itself was refused).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::encoding::{self, Encoding, EncodingError};
use super::{
    DECOMPRESSED, IngestState, KEEP_BUFFER_BYTES, queue, read_body, refuse, still_opening,
};
use tracing::warn;

use crate::forward::Tenant;
use crate::otlp::{self, Format};
use crate::prompb;
use crate::stats::{DropReason, Reject, Source};
use crate::util::LogThrottle;

/// OTLP/HTTP names gzip; zstd costs nothing more here. No header means identity.
const ACCEPTED_ENCODINGS: [Encoding; 3] = [Encoding::Identity, Encoding::Gzip, Encoding::Zstd];

/// Why an OTLP body was refused before translation.
enum BodyError {
    Encoding(EncodingError),
    Otlp(otlp::DecodeError),
}

/// At most one log line a minute about refused data points.
static REFUSED_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(60));

/// Seconds a sender is asked to wait before retrying a push a queue could not take.
const QUEUE_RETRY_AFTER_SECONDS: &str = "5";
/// Refusal lines are short; this bounds reading one back to wrap it in a `Status`.
const MAX_REFUSAL_LINE: usize = 64 << 10;

pub(super) async fn otlp_metrics(
    State(st): State<Arc<IngestState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    otlp_metrics_of(&st, None, &headers, body).await
}

/// An OTLP/HTTP metrics push of `tenant` (`None`: pushed without one).
pub(super) async fn otlp_metrics_of(
    st: &IngestState,
    tenant: Option<Tenant>,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let start = Instant::now();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = Format::from_content_type(content_type);
    let resp = match format {
        Some(format) => handle_otlp(st, tenant, headers, format, body).await,
        None => refuse(
            &st.metrics,
            Reject::UnsupportedMediaType,
            format_args!(
                "Content-Type {content_type:?} is not supported: OTLP/HTTP bodies are application/x-protobuf or application/json"
            ),
        ),
    };
    let resp = as_otlp_answer(resp, format.unwrap_or(Format::Protobuf)).await;
    st.metrics.observe_duration(start.elapsed());
    resp
}

/// A push refused before its body was looked at (a bad tenant in the path), answered as
/// OTLP/HTTP specifies: the reason in a `Status`, in the request's encoding.
pub(super) async fn refused(headers: &HeaderMap, refusal: Response) -> Response {
    let format = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_content_type)
        .unwrap_or(Format::Protobuf);
    as_otlp_answer(refusal, format).await
}

async fn handle_otlp(
    st: &IngestState,
    tenant: Option<Tenant>,
    headers: &HeaderMap,
    format: Format,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let m = &st.metrics;
    let encoding = match encoding::from_headers(headers, Encoding::Identity, &ACCEPTED_ENCODINGS) {
        Ok(e) => e,
        Err(e) => return refuse(m, e.reject(), e),
    };
    let body = match read_body(st, body) {
        Ok(b) => b,
        Err((reason, why)) => return refuse(m, reason, why),
    };
    let limit = st.max_request_bytes;
    let decoded = DECOMPRESSED.with(|buf| {
        let mut buf = buf.borrow_mut();
        let res = encoding::decode(encoding, &body, limit, &mut buf)
            .map_err(BodyError::Encoding)
            .and_then(|plain| otlp::decode_request(plain, format).map_err(BodyError::Otlp));
        if buf.capacity() > KEEP_BUFFER_BYTES {
            *buf = Vec::new();
        }
        res
    });
    drop(body);
    let request = match decoded {
        Ok(r) => r,
        Err(BodyError::Encoding(e)) if e.reject() == Reject::TooLarge => {
            return refuse(
                m,
                Reject::TooLarge,
                format_args!("{e} (--max-request-bytes {limit})"),
            );
        }
        Err(BodyError::Encoding(e)) => return refuse(m, e.reject(), e),
        Err(BodyError::Otlp(e)) => return refuse(m, Reject::BadBody, e),
    };
    let translation = otlp::translate(&request, &st.otlp);
    drop(request);
    if translation.over_limit {
        return refuse(
            m,
            Reject::TooLarge,
            format_args!(
                "the request translates into more than {} bytes of remote-write (a multiple of --max-request-bytes {limit}): send smaller batches",
                st.otlp.max_output_bytes
            ),
        );
    }
    if translation.accepted_points == 0 && translation.rejected_points > 0 {
        return refuse(
            m,
            Reject::BadBody,
            format_args!(
                "all {} data points refused: {}",
                translation.rejected_points,
                translation.message()
            ),
        );
    }
    let answer = otlp::encode_response(translation.rejected_points, &translation.message(), format);
    if translation.rejected_points > 0 {
        m.dropped(DropReason::OtlpRefusedPoints, translation.rejected_points);
        if REFUSED_LOG.due() {
            warn!(
                refused_points = translation.rejected_points,
                reasons = %translation.message(),
                "OTLP: data points refused, the rest queued (counted in \
                 promrelay_ingest_dropped_samples_total{{reason=\"otlp_refused_points\"}})"
            );
        }
    }
    if translation.request.timeseries.is_empty() {
        return ok(answer, format);
    }
    let Some(fanout) = st.fanout.wait(st.open_wait).await else {
        return still_opening(st);
    };
    let encoded = prost::Message::encode_to_vec(&translation.request);
    let block = Bytes::from(prompb::compress(&encoded));
    let samples = translation.samples + translation.histograms;
    let queued = queue(st, fanout, block, samples, Source::Otlp, tenant).await;
    if queued.status().is_success() {
        ok(answer, format)
    } else {
        queued
    }
}

fn ok(body: Vec<u8>, format: Format) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

/// A refusal from the shared ingest helpers (a one-line text body) as OTLP/HTTP wants it: the
/// same status with a `google.rpc.Status` body, and `Retry-After` on every 503 (OTLP clients
/// retry 503 and honour it).
async fn as_otlp_answer(resp: Response, format: Format) -> Response {
    if resp.status().is_success() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let line = axum::body::to_bytes(body, MAX_REFUSAL_LINE)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&line).trim_end().to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    if parts.status == StatusCode::SERVICE_UNAVAILABLE
        && !parts.headers.contains_key(header::RETRY_AFTER)
    {
        parts.headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(QUEUE_RETRY_AFTER_SECONDS),
        );
    }
    Response::from_parts(parts, Body::from(otlp::encode_status(&message, format)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_queue_refusal_becomes_a_status_body_with_retry_after() {
        let line = (StatusCode::SERVICE_UNAVAILABLE, "disk full\n").into_response();

        let answer = as_otlp_answer(line, Format::Protobuf).await;

        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            answer.headers()[header::RETRY_AFTER],
            QUEUE_RETRY_AFTER_SECONDS
        );
        assert_eq!(
            answer.headers()[header::CONTENT_TYPE],
            "application/x-protobuf"
        );
        let body = axum::body::to_bytes(answer.into_body(), 1 << 10)
            .await
            .unwrap();
        let status = <otlp::Status as prost::Message>::decode(body).unwrap();
        assert_eq!(status.message, "disk full");
    }

    #[tokio::test]
    async fn a_refusal_of_a_json_request_is_a_json_status() {
        let line = (StatusCode::BAD_REQUEST, "bad body\n").into_response();

        let answer = as_otlp_answer(line, Format::Json).await;

        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        assert!(!answer.headers().contains_key(header::RETRY_AFTER));
        let body = axum::body::to_bytes(answer.into_body(), 1 << 10)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"message":"bad body"}"#);
    }
}
