//! promrelay: a disk-durable forwarding proxy for Prometheus remote-write.
//!
//! # Layout
//! - [`queue`]: one directory of chunk files per storage: append, read, acknowledge, recover, size cap.
//!   A library with no knowledge of HTTP or protobuf. Its on-disk format is `queue-format.md`.
//! - [`prompb`]: the remote-write wire format (protobuf messages, snappy framing, one-pass validation).
//! - [`config`]: command-line flags and the optional YAML file, validated into one [`config::Config`].
//! - [`relabel`]: Prometheus `relabel_config` semantics over label sets.
#![forbid(unsafe_code)]

pub mod config;
pub mod prompb;
pub mod queue;
pub mod relabel;
