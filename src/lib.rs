//! promrelay: a disk-durable forwarding proxy for Prometheus remote-write.
//!
//! # Layout
//! - [`queue`]: one directory of chunk files per storage: append, read, acknowledge, recover, size cap;
//!   [`queue::offline`] examines queue directories read-only (`promrelay queue verify|inspect`).
//!   A library with no knowledge of HTTP or protobuf. Its on-disk format is `queue-format.md`.
//! - [`prompb`]: the remote-write wire formats (protobuf messages, snappy framing, one-pass validation;
//!   2.0 requests converted to 1.0 in `prompb::v2`).
//! - [`config`]: command-line flags and the optional YAML file, validated into one [`config::Config`].
//! - [`relabel`]: Prometheus `relabel_config` semantics over label sets.
//! - [`exposition`]: Prometheus text / OpenMetrics parsing and series building, shared by the
//!   scraper and text import; it does not know where the bytes came from.
//! - [`stats`]: the ingest counters (samples per source, refusals by reason) that ingest and the
//!   scraper bump and admin renders.
//! - [`ingest`]: the HTTP receive endpoints: decompression, validation, limits, vminsert's
//!   `/insert/<tenant>/...` paths.
//! - [`listener`]: accepts connections: TLS, basic auth, response headers and rate limit from
//!   `--web.config.file` (re-read on change), slow-client timeouts, the bound on concurrent
//!   ingest requests.
//! - [`otlp`]: OTLP metrics wire types and their translation into a remote-write 1.0
//!   `WriteRequest`, as Prometheus 3 does by default; no I/O, no HTTP.
//! - [`forward`]: per storage, its queue and its sender (batching, retries, per-series order); a
//!   multitenant storage (vminsert cluster) has one of each per tenant.
//! - [`server`]: builds the parts from a [`config::Config`] and serves until shutdown (what the
//!   binary and the end-to-end tests run).
//! - [`outbound`]: every outgoing HTTP request: the one client builder (TLS, auth headers,
//!   timeouts) for senders and scrapes, bounded reads of reported bodies, and the scrape loop's
//!   own HTTP/1.1 client for plain `http://` targets.
//! - [`scrape`]: the built-in scraper: scrape config, discovery, vmagent-compatible sharding,
//!   one loop per target feeding the same fan-out as ingest.
//! - [`util`]: helpers written once: `now_ms`, `error_chain`, `one_line`.
//! - [`admin`]: introspection: `/api/v1/queues`, `/metrics`, the status page (with charts of
//!   the last 15 minutes, `/api/v1/history`) and targets pages, `/api/v1/targets`, health and
//!   readiness.
//!
//! No two top-level modules import each other, directly or through others (`tests/layout.rs`
//! checks it from the sources); a module with sub-modules is a folder with a `mod.rs`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod exposition;
pub mod forward;
pub mod ingest;
pub mod listener;
pub mod otlp;
pub mod outbound;
pub mod prompb;
pub mod queue;
pub mod relabel;
pub mod scrape;
pub mod server;
pub mod stats;
pub mod util;
