//! Admin: introspection endpoints (`/api/v1/queues`, `/-/healthy`, `/-/ready`). The fuller status
//! page and `/metrics` are being added.
//!
//! # Owns
//! The HTTP view of what the other parts report through [`StatusSource`].
//!
//! # Must not
//! Mutate queues or senders: it only reads snapshots.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;

use crate::forward::StorageStatus;
use crate::ingest::IngestSnapshot;

/// What the admin endpoints read. The application implements it; tests implement it with fixed data.
pub trait StatusSource: Send + Sync + 'static {
    fn storages(&self) -> Vec<StorageStatus>;
    fn ingest(&self) -> IngestSnapshot;
    /// True once every queue is open (the process serves `/-/ready` 200 from then on).
    fn ready(&self) -> bool;
}

type Source = Arc<dyn StatusSource>;

/// The admin routes.
pub fn router(source: Source) -> Router {
    Router::new()
        .route("/api/v1/queues", get(queues))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(ready))
        .with_state(source)
}

async fn queues(State(s): State<Source>) -> Json<Vec<StorageStatus>> {
    Json(s.storages())
}

async fn ready(State(s): State<Source>) -> impl IntoResponse {
    if s.ready() {
        (StatusCode::OK, "OK\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: queues are being opened\n",
        )
    }
}
