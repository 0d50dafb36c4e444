//! OTLP metrics in: the OTLP/HTTP wire types and the translation of an
//! `ExportMetricsServiceRequest` into a remote-write 1.0 `WriteRequest`, as Prometheus 3 does by
//! default (`translation_strategy: UnderscoreEscapingWithSuffixes`).
//!
//! # Owns
//! - `wire`: decoding requests (protobuf, or the OTLP JSON mapping) and encoding answers
//!   (`ExportMetricsServiceResponse` with `partial_success`, `google.rpc.Status` for errors). The
//!   message types are the `opentelemetry-proto` crate's prost types (its serde derives for JSON).
//! - `names`: metric, unit and label names, ported from prometheus/otlptranslator.
//! - `translate`: resources, scopes, metrics and points to series: `job`/`instance` from the
//!   service attributes, `target_info`, `_total`/`_ratio`/unit suffixes, histograms as
//!   `_bucket{le}`/`_sum`/`_count`, summaries as `quantile` series, exemplars, stale markers,
//!   family metadata.
//! - `histogram`: exponential histograms as native histograms.
//! - `values`: attribute values as label text, exemplars.
//!
//! # Guarantees
//! - Never panics on any decoded request; what cannot be translated (delta or unspecified
//!   temporality, names that escape to nothing, scales below -4) is refused per metric or per
//!   data point and counted in [`Translation::rejected_points`] with a reason, and the rest is
//!   translated.
//! - The output is a valid remote-write 1.0 `WriteRequest` (the prompb types): label names legal
//!   and sorted, no empty label values.
//!
//! # Must not
//! Do I/O or know HTTP: the ingest module serves the endpoints and queues what this returns.

mod histogram;
mod names;
mod translate;
mod values;
mod wire;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use histogram::HistogramError;
pub use names::{MetricKind, MetricNamer, NameError, label_name, unit_name};
pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
pub use translate::{STALE_NAN_BITS, Settings, Translation, translate};
pub use wire::{DecodeError, Format, Status, decode_request, encode_response, encode_status};
