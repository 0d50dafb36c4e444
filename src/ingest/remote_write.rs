//! Remote-write pushes: `POST /api/v1/write` and its aliases.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;

use super::{
    DECOMPRESSED, IngestState, KEEP_BUFFER_BYTES, queue, read_body, refuse, still_opening,
};
use crate::prompb;
use crate::stats::{Reject, Source};

pub(super) async fn remote_write(
    State(st): State<Arc<IngestState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let start = Instant::now();
    let resp = handle_remote_write(&st, &headers, body).await;
    st.metrics.observe_duration(start.elapsed());
    resp
}

async fn handle_remote_write(
    st: &IngestState,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let m = &st.metrics;
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("").trim();
        if !enc.eq_ignore_ascii_case("snappy") {
            return refuse(
                m,
                Reject::UnsupportedMediaType,
                format_args!(
                    "Content-Encoding {enc:?} is not supported: remote-write bodies are snappy (block format)"
                ),
            );
        }
    }
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
    let checked = DECOMPRESSED.with(|buf| {
        let mut buf = buf.borrow_mut();
        let res = prompb::decompress_bounded_into(&body, st.max_request_bytes, &mut buf)
            .and_then(|()| prompb::validate_write_request(&buf));
        if buf.capacity() > KEEP_BUFFER_BYTES {
            *buf = Vec::new();
        }
        res
    });
    let summary = match checked {
        Ok(s) => s,
        Err(e) if e.is_too_large() => {
            return refuse(
                m,
                Reject::TooLarge,
                format_args!("{e} (--max-request-bytes {})", st.max_request_bytes),
            );
        }
        Err(e) => return refuse(m, Reject::BadBody, e),
    };
    let Some(fanout) = st.fanout.wait(st.open_wait).await else {
        return still_opening(st);
    };
    let samples = summary.samples + summary.histograms;
    queue(st, fanout, body, samples, Source::RemoteWrite).await
}
