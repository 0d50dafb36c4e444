//! Text pushes: `POST /api/v1/import/prometheus`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{IngestState, queue, read_body, refuse, still_opening};
use crate::forward::Tenant;
use crate::prompb;
use crate::stats::{Reject, Source};

/// `POST /api/v1/import/prometheus`: a text exposition, parsed strictly; 400 names the line.
/// Samples without a timestamp get the time of the request. Nothing is queued unless the whole
/// body is valid.
pub(super) async fn import_text(
    State(st): State<Arc<IngestState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    import_text_of(&st, None, &headers, body).await
}

/// A text push of `tenant` (`None`: pushed without one).
pub(super) async fn import_text_of(
    st: &IngestState,
    tenant: Option<Tenant>,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let start = Instant::now();
    let resp = handle_import(st, tenant, headers, body).await;
    st.metrics.observe_duration(start.elapsed());
    resp
}

async fn handle_import(
    st: &IngestState,
    tenant: Option<Tenant>,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    use crate::exposition::parse::{Entry, Parser, format_from_content_type};
    use crate::exposition::series::{SeriesBuilder, SeriesOptions};
    let m = &st.metrics;
    let body = match read_body(st, body) {
        Ok(b) => b,
        Err((reason, why)) => return refuse(&st.metrics, reason, why),
    };
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("").trim();
        if !enc.is_empty() && !enc.eq_ignore_ascii_case("identity") {
            return refuse(
                m,
                Reject::UnsupportedMediaType,
                format_args!("Content-Encoding {enc:?} is not supported for text imports"),
            );
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let now = crate::util::now_ms() as i64;
    let mut builder = SeriesBuilder::new();
    let opts = SeriesOptions::default();
    let mut parser = Parser::new(&body, format_from_content_type(content_type));
    let mut samples = 0u64;
    while let Some(entry) = parser.next() {
        let s = match entry {
            Ok(Entry::Sample(s)) => s,
            Ok(_) => continue,
            Err(e) => return refuse(m, Reject::BadBody, e),
        };
        if let Err(e) = builder.add(
            s.name,
            s.labels.iter(),
            s.value,
            s.timestamp_ms.unwrap_or(now),
            &opts,
        ) {
            return refuse(
                m,
                Reject::BadBody,
                format_args!("line {}: {e}", parser.line()),
            );
        }
        samples += 1;
    }
    if builder.series() == 0 {
        return StatusCode::NO_CONTENT.into_response();
    }
    let Some(fanout) = st.fanout.wait(st.open_wait).await else {
        return still_opening(st);
    };
    let block = Bytes::from(prompb::compress(builder.as_bytes()));
    queue(st, fanout, block, samples, Source::Import, tenant).await
}
