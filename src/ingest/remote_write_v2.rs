//! Remote-write 2.0 pushes: the same paths as 1.0, told apart by
//! `Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request`.
//!
//! The body is decompressed (snappy, zstd or gzip, bounded by `--max-request-bytes`), validated
//! and converted to a 1.0 `WriteRequest` by the remote-write format module's 2.0 converter, held
//! to the same `--max-request-bytes` (a 2.0 push is taken when its 1.0 form would be), and queued
//! as the snappy block every storage gets. Every answer, success or refusal, carries the 2.0
//! headers `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` with what was
//! queued (all 0 on a refusal: nothing is). Custom-bucket histograms are dropped and counted
//! (`promrelay_ingest_dropped_samples_total{reason="custom_buckets_histogram"}`, a log line
//! naming a series at most once a minute); the headers leave them out, so a sender sees exactly
//! what was kept.

use std::cell::RefCell;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::encoding::{self, Encoding};
use super::remote_write::{ACCEPTED_ENCODINGS, refuse_body};
use super::{
    DECOMPRESSED, IngestState, KEEP_BUFFER_BYTES, queue, read_body, refuse, still_opening,
};
use crate::forward::Tenant;
use crate::prompb::{self, v2};
use crate::stats::{DropReason, Reject, Source};
use crate::util::LogThrottle;

pub(super) const SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";
pub(super) const HISTOGRAMS_WRITTEN: &str = "X-Prometheus-Remote-Write-Histograms-Written";
pub(super) const EXEMPLARS_WRITTEN: &str = "X-Prometheus-Remote-Write-Exemplars-Written";

thread_local! {
    /// The converter's scratch and the 1.0 output, reused by the requests a thread serves.
    static CONVERSION: RefCell<(v2::Converter, Vec<u8>)> = RefCell::new(Default::default());
}

/// At most one log line a minute about dropped custom-bucket histograms.
static DROP_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(60));

/// What was queued, for the response headers.
#[derive(Clone, Copy, Default)]
struct Written {
    samples: u64,
    histograms: u64,
    exemplars: u64,
}

/// Handles a push whose Content-Type said 2.0.
pub(super) async fn remote_write_v2(
    st: &IngestState,
    tenant: Option<Tenant>,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let (mut response, written) = receive(st, tenant, headers, body).await;
    // Only a 2xx queued anything; every refusal reports zeros.
    let written = if response.status().is_success() {
        written
    } else {
        Written::default()
    };
    let h = response.headers_mut();
    for (name, n) in [
        (SAMPLES_WRITTEN, written.samples),
        (HISTOGRAMS_WRITTEN, written.histograms),
        (EXEMPLARS_WRITTEN, written.exemplars),
    ] {
        h.insert(name, HeaderValue::from(n));
    }
    response
}

async fn receive(
    st: &IngestState,
    tenant: Option<Tenant>,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> (Response, Written) {
    let m = &st.metrics;
    let none = Written::default();
    let encoding = match encoding::from_headers(headers, Encoding::Snappy, &ACCEPTED_ENCODINGS) {
        Ok(e) => e,
        Err(e) => return (refuse(m, e.reject(), e), none),
    };
    let body = match read_body(st, body) {
        Ok(b) => b,
        Err((reason, why)) => return (refuse(m, reason, why), none),
    };
    let limit = st.max_request_bytes;
    let converted = match convert(encoding, &body, limit) {
        Ok(c) => c,
        Err(refusal) => return (refusal.answer(st), none),
    };
    let (summary, block) = converted;
    if summary.dropped_custom_bucket_histograms > 0 {
        dropped_custom_buckets(st, &summary);
    }
    let written = Written {
        samples: summary.samples,
        histograms: summary.histograms,
        exemplars: summary.exemplars,
    };
    let Some(block) = block else {
        // Nothing left to queue (an empty request, or only custom-bucket histograms).
        m.accepted(Source::RemoteWriteV2, 0);
        return (StatusCode::NO_CONTENT.into_response(), written);
    };
    let Some(fanout) = st.fanout.wait(st.open_wait).await else {
        return (still_opening(st), none);
    };
    let samples = summary.samples + summary.histograms;
    let response = queue(st, fanout, block, samples, Source::RemoteWriteV2, tenant).await;
    (response, written)
}

/// Why a 2.0 body was refused before queueing.
enum Refusal {
    Encoding(encoding::EncodingError),
    Convert(v2::V2Error),
}

impl Refusal {
    fn answer(self, st: &IngestState) -> Response {
        match self {
            Refusal::Encoding(e) => refuse_body(st, e.reject(), e),
            Refusal::Convert(e) if e.is_too_large() => refuse_body(st, Reject::TooLarge, e),
            Refusal::Convert(e) => {
                refuse_body(st, Reject::BadBody, format!("remote-write 2.0: {e}"))
            }
        }
    }
}

/// Decompresses and converts the body; returns the counts and the snappy 1.0 block to queue
/// (none when the conversion holds nothing).
fn convert(
    encoding: Encoding,
    body: &[u8],
    limit: usize,
) -> Result<(v2::V2Summary, Option<Bytes>), Refusal> {
    DECOMPRESSED.with(|buf| {
        CONVERSION.with(|conversion| {
            let mut buf = buf.borrow_mut();
            let mut conversion = conversion.borrow_mut();
            let (converter, out) = &mut *conversion;
            let result = encoding::decode(encoding, body, limit, &mut buf)
                .map_err(Refusal::Encoding)
                .and_then(|plain| {
                    converter
                        .convert(plain, limit, out)
                        .map_err(Refusal::Convert)
                })
                .map(|summary| {
                    let block = (!out.is_empty()).then(|| Bytes::from(prompb::compress(out)));
                    (summary, block)
                });
            if buf.capacity() > KEEP_BUFFER_BYTES {
                *buf = Vec::new();
            }
            if out.capacity() > KEEP_BUFFER_BYTES {
                *out = Vec::new();
            }
            result
        })
    })
}

/// Counts dropped custom-bucket histograms and logs one of their series at most once a minute.
fn dropped_custom_buckets(st: &IngestState, summary: &v2::V2Summary) {
    let n = summary.dropped_custom_bucket_histograms;
    st.metrics.dropped(DropReason::CustomBucketsHistogram, n);
    if DROP_LOG.due() {
        warn!(
            dropped = n,
            series = summary.first_dropped_series.as_deref().unwrap_or(""),
            "remote-write 2.0: custom-bucket histograms (schema -53) dropped: remote-write 1.0 \
             storages cannot take them (counted in promrelay_ingest_dropped_samples_total)"
        );
    }
}
