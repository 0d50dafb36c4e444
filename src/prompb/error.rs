//! [`WireError`]: why a remote-write body was refused.
//!
//! Every message is one line fit for an HTTP 400 body. Offsets count bytes from the start of the
//! decompressed protobuf, so a sender can find the bad byte with a hex dump.

/// Why a remote-write body (snappy block or protobuf) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The body starts with the snappy framing-format stream identifier (`ff 06 00 00 sNaPpY`).
    /// Remote-write uses the block format; a sender using the stream format is misconfigured.
    #[error("framed snappy is not remote-write; use the block format")]
    FramedSnappy,

    /// The snappy block header declares a decompressed size above the caller's limit. Refused
    /// before anything is allocated; HTTP answers 413.
    #[error("decompressed body would be {declared} bytes, above the limit of {limit} bytes")]
    TooLarge {
        /// Size declared by the snappy block header.
        declared: usize,
        /// The caller's limit.
        limit: usize,
    },

    /// The body is not a valid snappy block (bad header, bad copy offset, empty body, length
    /// mismatch, ...).
    #[error("invalid snappy block: {0}")]
    Snappy(#[from] snap::Error),

    /// The protobuf ends inside a field: a key, varint or fixed-width value runs past the end of the
    /// message that holds it.
    #[error("truncated protobuf: the value at byte {offset} runs past the end of its message")]
    Truncated {
        /// Where the cut value (or key) starts.
        offset: usize,
    },

    /// A varint is longer than 10 bytes, or its 10th byte overflows 64 bits.
    #[error("malformed varint at byte {offset}: longer than 10 bytes or above 64 bits")]
    BadVarint {
        /// Where the varint starts.
        offset: usize,
    },

    /// A length prefix (string, nested message or packed field) points past the end of the message
    /// that holds it.
    #[error("length {len} at byte {offset} runs past its message ({available} bytes left)")]
    LengthOutOfBounds {
        /// Where the length prefix starts.
        offset: usize,
        /// The declared length.
        len: u64,
        /// Bytes left in the enclosing message after the prefix.
        available: usize,
    },

    /// A field key has field number 0, or does not fit in 32 bits.
    #[error("invalid field number at byte {offset}: 0 or above 2^29-1")]
    InvalidFieldNumber {
        /// Where the key starts.
        offset: usize,
    },

    /// A field key has wire type 3 or 4 (deprecated groups) or 6 or 7 (undefined). Remote-write
    /// never uses groups, so even unknown group fields are refused.
    #[error("unsupported wire type {wire_type} at byte {offset}")]
    UnsupportedWireType {
        /// Where the key starts.
        offset: usize,
        /// The wire type found.
        wire_type: u8,
    },

    /// A known field arrives with a wire type its schema type cannot have (for example a string
    /// sent as a varint).
    #[error("field {field} at byte {offset} has wire type {found}, expected {expected}")]
    WrongWireType {
        /// Where the key starts.
        offset: usize,
        /// `Message.field`, as in the `.proto`.
        field: &'static str,
        /// The wire type the schema allows, by name.
        expected: &'static str,
        /// The wire type found.
        found: u8,
    },

    /// A packed repeated `double` field's length is not a multiple of 8.
    #[error("packed field {field} at byte {offset} has length {len}, not a multiple of 8")]
    PackedLength {
        /// Where the length prefix starts.
        offset: usize,
        /// `Message.field`, as in the `.proto`.
        field: &'static str,
        /// The declared length.
        len: usize,
    },

    /// A label name or value, or a metadata string, is not valid UTF-8.
    #[error("field {field} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: usize,
        /// `Message.field`, as in the `.proto`.
        field: &'static str,
    },

    /// prost refused the protobuf (only from [`decode_write_request`](super::decode_write_request)).
    #[error("invalid protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
}

impl WireError {
    /// True when the body is refused for its size alone (HTTP 413), not for its content (400).
    pub fn is_too_large(&self) -> bool {
        matches!(self, WireError::TooLarge { .. })
    }

    /// A short, stable label for the `reason` of a rejected-requests counter.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::FramedSnappy => "framed_snappy",
            WireError::TooLarge { .. } => "too_large",
            WireError::Snappy(_) => "snappy",
            WireError::InvalidUtf8 { .. } => "utf8",
            WireError::Truncated { .. }
            | WireError::BadVarint { .. }
            | WireError::LengthOutOfBounds { .. }
            | WireError::InvalidFieldNumber { .. }
            | WireError::UnsupportedWireType { .. }
            | WireError::WrongWireType { .. }
            | WireError::PackedLength { .. }
            | WireError::Decode(_) => "protobuf",
        }
    }
}
