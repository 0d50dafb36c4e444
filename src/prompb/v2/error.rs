//! [`V2Error`]: why a remote-write 2.0 request was refused.

use super::super::WireError;

/// Why a decompressed remote-write 2.0 `io.prometheus.write.v2.Request` was refused. Every
/// message is one line fit for an HTTP 400 (or 413) body; series are numbered from 0 in the order
/// of the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    /// The bytes are not a protobuf `Request` prost would decode (truncated, bad varint, wrong
    /// wire type, a symbol that is not UTF-8, ...).
    #[error("{0}")]
    Wire(#[from] WireError),

    /// `symbols` is not empty and its first string is not the empty string, which the 2.0 spec
    /// requires (refs 0 mean "no value").
    #[error("symbols[0] must be the empty string, found a {len}-byte string")]
    FirstSymbolNotEmpty {
        /// Length of the first symbol.
        len: usize,
    },

    /// The request has series but no symbols at all, so none of their refs can resolve.
    #[error("the request has {series} series but no symbols")]
    NoSymbols {
        /// Series in the request.
        series: u64,
    },

    /// A ref (label, exemplar label, help or unit) points past the end of `symbols`.
    #[error("series {series}: {field} ref {reference} is out of range ({symbols} symbols)")]
    RefOutOfRange {
        /// Index of the series in the request.
        series: u64,
        /// `Message.field`, as in the `.proto`.
        field: &'static str,
        /// The ref found.
        reference: u32,
        /// Symbols in the request.
        symbols: usize,
    },

    /// A `labels_refs` list has an odd length: label refs come in name/value pairs.
    #[error("series {series}: {field} has {len} refs, not name/value pairs")]
    OddLabelRefs {
        /// Index of the series in the request.
        series: u64,
        /// `Message.field`, as in the `.proto`.
        field: &'static str,
        /// Refs in the list.
        len: usize,
    },

    /// The request converted to remote-write 1.0 would be larger than the limit (the same
    /// `--max-request-bytes` a 1.0 body is held to), as when few symbols are referenced many
    /// times. Stopped as soon as the output passes the limit; HTTP answers 413.
    #[error("converted to remote-write 1.0 the request would exceed {limit} bytes")]
    TooLarge {
        /// The caller's limit on the converted request.
        limit: usize,
    },
}

impl V2Error {
    /// True when the request is refused for its size alone (HTTP 413), not its content (400).
    pub fn is_too_large(&self) -> bool {
        match self {
            V2Error::TooLarge { .. } => true,
            V2Error::Wire(e) => e.is_too_large(),
            _ => false,
        }
    }
}
