//! Ingest: HTTP receive endpoints (being written).

pub mod metrics;

pub use metrics::{IngestMetrics, IngestSnapshot, Reject, Source};
