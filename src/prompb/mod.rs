//! The Prometheus remote-write wire formats: 1.0 protobuf messages and the snappy block framing,
//! and 2.0 requests converted to 1.0 (submodule [`v2`]).
//!
//! Owns: hand-written prost structs that mirror `prompb/types.proto` and `prompb/remote.proto` of
//! Prometheus (field numbers are the contract; never renumber), so the project needs no protoc;
//! the one-pass validator of decompressed bodies; snappy block (de)compression with size bounds;
//! the error type ingest turns into HTTP 400/413 answers.
//!
//! Guarantees:
//! - Whatever [`validate_write_request`] accepts, `prost::Message::decode` into [`WriteRequest`]
//!   accepts too, and the [`WriteSummary`] counts match the decoded message. The validator walks
//!   the wire format once and allocates nothing: ingest validates every push without decoding it.
//! - [`decompress_bounded`] refuses a body whose declared size is above the limit before it
//!   allocates ([`WireError::is_too_large`], HTTP 413), and refuses the snappy framing format with
//!   its own error.
//! - Concatenating two serialized `WriteRequest`s yields one `WriteRequest` holding the series and
//!   metadata of both, in order (every field of `WriteRequest` is repeated, and protobuf merges a
//!   repeated field by appending; [`merge_into`]). Their snappy blocks concatenate too, without
//!   recompression ([`concat_blocks_into`]): that is how the sender batches queued pushes.
//!
//! Must not: know about queues, HTTP or storages; panic on any input bytes.
//!
//! # Layout
//! - `types`: the prost structs ([`WriteRequest`], [`TimeSeries`], ...).
//! - `validate`: [`validate_write_request`] and [`WriteSummary`].
//! - `snappy`: [`decompress_bounded`], [`compress`], their buffer-reusing variants, and
//!   [`concat_blocks_into`].
//! - `wire`: the protobuf cursor both the validator and the 2.0 converter walk with.
//! - [`v2`]: remote-write 2.0: generated types, the bounded 2.0 -> 1.0 converter.
//! - `error`: [`WireError`].
//! - `example`: [`example_write_request`], realistic load for tests and benchmarks.

mod encode;
mod error;
mod example;
mod snappy;
mod types;
pub mod v2;
mod validate;
mod wire;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod validate_tests;

pub use encode::{WriteRequestEncoder, encode_labels_into};
pub use error::WireError;
pub use example::example_write_request;
pub use snappy::{
    FRAMED_SNAPPY_MAGIC, MAX_BLOCK_LEN, block_len, compress, compress_into, concat_blocks_into,
    decompress_bounded, decompress_bounded_into,
};
pub use types::*;
pub use validate::{WriteSummary, validate_write_request};

/// Appends one decompressed, valid `WriteRequest` to `out`, so that `out` holds one
/// `WriteRequest` with the series and metadata of everything appended so far, in order.
///
/// This is plain concatenation: protobuf merges a repeated field by appending, and every field of
/// `WriteRequest` is repeated. Both sides must already be valid (ingest validated them); the merge
/// of an invalid body is invalid.
pub fn merge_into(out: &mut Vec<u8>, decompressed: &[u8]) {
    out.extend_from_slice(decompressed);
}

/// Decodes a decompressed body into a [`WriteRequest`] (for the parts that need the series
/// themselves, such as relabelling). Ingest does not need this: it validates and forwards bytes.
pub fn decode_write_request(buf: &[u8]) -> Result<WriteRequest, WireError> {
    Ok(<WriteRequest as prost::Message>::decode(buf)?)
}
