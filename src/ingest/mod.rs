//! Ingest: the HTTP endpoints data arrives on.
//!
//! # Owns
//! `POST /api/v1/write` (also `/api/v1/push` and the same under `/prometheus`): Prometheus
//! remote-write 1.0, a protobuf `WriteRequest` compressed as a snappy **block** (or zstd, or gzip:
//! `encoding`), and remote-write 2.0 (by Content-Type), converted to 1.0 before queueing. `POST
//! /api/v1/import/prometheus`: a text exposition (Prometheus text, or
//! OpenMetrics when the Content-Type says `application/openmetrics-text`), parsed strictly. `POST
//! /opentelemetry/v1/metrics`, `/opentelemetry/api/v1/push` and `/api/v1/otlp/v1/metrics`:
//! OTLP/HTTP metrics (protobuf or JSON), translated by the otlp module. The same under
//! `/insert/<accountID>[:<projectID>]/prometheus/...` and `/insert/<accountID>[:<projectID>]/opentelemetry/...`
//! (vminsert's paths) keep their tenant for multitenant storages. Limits, decompression,
//! validation; it bumps the ingest counters ([`IngestMetrics`], owned by [`crate::stats`]).
//!
//! # Guarantees
//! - 204 only after [`Fanout::push`] put the body in every storage's queue (design.md durability).
//! - Validation before anything is queued: the declared decompressed length is bounded before
//!   allocating, and one pass over the protobuf checks it is well-formed. Refusals: 400 undecodable,
//!   413 over `--max-request-bytes` (compressed or decompressed), 415 unsupported Content-Encoding
//!   or Content-Type, 400 a tenant that is not `accountID[:projectID]` (VictoriaMetrics' rules),
//!   503 when a queue cannot take the data or a new tenant is past `max_tenants`. A push that
//!   arrives while the queues are being opened waits for them (at most `open_wait`, [`OPEN_WAIT`] in the
//!   application); if they are still not open then, it gets 503 with `Retry-After`. The body of
//!   each is one line.
//!   A refused request leaves nothing in any queue (except a 503 from a disk failing half-way
//!   through the storages, where those already written keep it: at-least-once).
//! - Hot path: a snappy body is queued as it came (no decode and re-encode), the decompression
//!   buffer is reused per thread. zstd and gzip bodies are re-compressed as the snappy block the
//!   queues hold.
//!
//! # Must not
//! Block on a slow storage: it only appends to queues; senders run on their own.
//!
//! # Layout
//! One file per protocol, each with its handler: `remote_write` (remote-write pushes; 1.0, and the
//! Content-Type dispatch), `remote_write_v2` (2.0 pushes, converted to 1.0), `import` (text
//! pushes), `otlp` (OTLP/HTTP metrics pushes, answered as OTLP/HTTP specifies); `tenant` (the
//! `/insert/<tenant>/...` routes and their tenant). `encoding`: bounded decompression by
//! `Content-Encoding`, for every protocol. `opening`: [`FanoutSlot`], the queues as a push sees
//! them while the process starts. This file holds what they share: the state, the routes,
//! refusals and queueing.

pub mod encoding;
mod import;
mod opening;
mod otlp;
mod remote_write;
mod remote_write_v2;
mod tenant;

pub use opening::{FanoutSlot, OPEN_WAIT};

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tracing::warn;

use crate::forward::{Fanout, PushError, Tenant};
use crate::stats::{IngestMetrics, Reject, Source};

/// A decompression buffer kept per thread is shrunk back when a request grew it past this.
const KEEP_BUFFER_BYTES: usize = 16 << 20;

thread_local! {
    static DECOMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What the ingest handlers need.
pub struct IngestState {
    /// Set once the queues are open; a push that arrives before waits up to `open_wait` for it.
    pub fanout: Arc<FanoutSlot>,
    /// How long a push waits for the queues to open ([`OPEN_WAIT`] in the application).
    pub open_wait: Duration,
    pub metrics: Arc<IngestMetrics>,
    /// `--max-request-bytes`: limit on the compressed body and on its decompressed size.
    pub max_request_bytes: usize,
    /// How OTLP pushes are translated (names, promoted resource attributes).
    pub otlp: crate::otlp::Settings,
}

/// The ingest routes.
pub fn router(state: Arc<IngestState>) -> Router {
    let limit = state.max_request_bytes;
    Router::new()
        .route("/api/v1/write", post(remote_write::remote_write))
        .route("/api/v1/push", post(remote_write::remote_write))
        .route("/prometheus/api/v1/write", post(remote_write::remote_write))
        .route("/prometheus/api/v1/push", post(remote_write::remote_write))
        .route("/api/v1/import/prometheus", post(import::import_text))
        .route(
            "/prometheus/api/v1/import/prometheus",
            post(import::import_text),
        )
        .route("/opentelemetry/v1/metrics", post(otlp::otlp_metrics))
        .route("/opentelemetry/api/v1/push", post(otlp::otlp_metrics))
        .route("/api/v1/otlp/v1/metrics", post(otlp::otlp_metrics))
        .merge(tenant::routes())
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A refusal: its status and one line saying why.
fn refuse(m: &IngestMetrics, reason: Reject, why: impl std::fmt::Display) -> Response {
    m.rejected(reason);
    let status = StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let line = why.to_string().replace(['\n', '\r'], " ");
    (status, format!("{line}\n")).into_response()
}

/// Seconds a sender is asked to wait before it retries a push refused because the queues are
/// still being opened.
const OPENING_RETRY_AFTER_SECONDS: &str = "2";

/// 503 with `Retry-After` for a push that waited `open_wait` and the queues are still not open.
fn still_opening(st: &IngestState) -> Response {
    let mut response = refuse(
        &st.metrics,
        Reject::QueueUnavailable,
        format_args!(
            "starting: the queues are still being opened after {:?}, retry shortly",
            st.open_wait
        ),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(OPENING_RETRY_AFTER_SECONDS),
    );
    response
}

/// The body, or why it could not be read (413 over the limit) for [`refuse`].
fn read_body(
    st: &IngestState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, (Reject, String)> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            (
                Reject::TooLarge,
                format!(
                    "request body is larger than --max-request-bytes ({} bytes)",
                    st.max_request_bytes
                ),
            )
        } else {
            (Reject::BadBody, format!("reading the body: {e}"))
        }
    })
}

/// Queues a validated block of `tenant` (`None`: pushed without one) for every storage and
/// answers: 204, or 413/503 with the reason.
async fn queue(
    st: &IngestState,
    fanout: &Fanout,
    block: Bytes,
    samples: u64,
    source: Source,
    tenant: Option<Tenant>,
) -> Response {
    let m = &st.metrics;
    match fanout
        .push(block, u32::try_from(samples).unwrap_or(u32::MAX), tenant)
        .await
    {
        Ok(()) => {
            m.accepted(source, samples);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e @ PushError::TooLarge { .. }) => refuse(m, Reject::TooLarge, e),
        Err(e @ PushError::TooManyTenants { .. }) => {
            warn!(error = %e, "push refused: too many tenants");
            refuse(m, Reject::TooManyTenants, e)
        }
        Err(e) => {
            warn!(error = %e, source = source.as_str(), "push refused: a queue cannot take data");
            refuse(m, Reject::QueueUnavailable, e)
        }
    }
}
