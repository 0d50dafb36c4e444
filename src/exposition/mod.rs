//! The exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0 parsing, and turning parsed
//! samples into remote-write series. Used by the scraper (the `scrape` module) and by text import
//! (`POST /api/v1/import/prometheus` in the `ingest` module).
//!
//! - [`parse`]: a zero-copy, never-panicking parser over one body ([`parse::Parser`]).
//! - [`series`]: label merging (`honor_labels`, `metric_relabel_configs`, external labels),
//!   label limits and duplicate series, encoded straight into a remote-write request.
//!
//! Guarantees: the same body yields the same series whoever calls (a pushed exposition and a
//! scraped one are read by the same code).
//!
//! Must not: know where the bytes came from (HTTP, a target, a push), fetch, send, or touch a
//! queue. It depends only on `prompb` (the output encoding) and `relabel` (metric relabeling).

pub mod parse;
pub mod series;
