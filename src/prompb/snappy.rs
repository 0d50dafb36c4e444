//! The snappy block format that remote-write bodies use (`Content-Encoding: snappy`).
//!
//! Guarantees: a body is refused before any allocation when its declared decompressed size is
//! above the caller's limit; the framing (stream) format is refused with its own error, because a
//! sender that uses it is misconfigured, not corrupt.
//! Must not: accept the framing format, allocate more than the caller's limit, or zero-fill a
//! whole output buffer per call (profiles showed the memset at 2-10% of a scraper's CPU).

use std::cell::RefCell;

use super::WireError;

/// The stream identifier chunk that starts every snappy *framing*-format stream.
///
/// No valid block starts with it: as a block, `ff 06` declares 895 bytes, `00 00` is a one-byte
/// literal, and `s` (0x73) is a copy whose 4-byte offset (`NaPp`) points far before the start of
/// the output. So a prefix match is exact.
pub const FRAMED_SNAPPY_MAGIC: &[u8; 10] = b"\xff\x06\x00\x00sNaPpY";

/// A thread's compression scratch buffer is dropped after use once an input grew it past this
/// (about a 3.4 MiB input), so a rare large block does not pin its memory to the thread.
const KEEP_SCRATCH_BYTES: usize = 4 << 20;

thread_local! {
    /// The encoder keeps a hash table it allocates on the first large input; one per thread keeps
    /// compression allocation-free once the scratch buffer has grown.
    static ENCODER: RefCell<snap::raw::Encoder> = RefCell::new(snap::raw::Encoder::new());

    /// Where blocks are compressed before the written bytes are copied out. The encoder needs an
    /// output of `max_compress_len` (input + 1/6); this buffer only grows, so the zeroing that
    /// safe Rust needs to hand it out is paid once per thread, not on every call, and a caller
    /// gets (and keeps alive) only the compressed bytes, not the worst-case size.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Decompresses a snappy block into a new `Vec`, refusing (before allocating) a block that
/// declares more than `max_len` decompressed bytes.
pub fn decompress_bounded(body: &[u8], max_len: usize) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    decompress_bounded_into(body, max_len, &mut out)?;
    Ok(out)
}

/// Decompresses a snappy block into `out` (its contents replaced, its memory reused across
/// requests), refusing (before growing `out`) a block that declares more than `max_len`
/// decompressed bytes.
///
/// On error `out` is left empty.
pub fn decompress_bounded_into(
    body: &[u8],
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let declared = match declared_len(body) {
        Ok(declared) if declared <= max_len => declared,
        Ok(declared) => {
            out.clear();
            return Err(WireError::TooLarge {
                declared,
                limit: max_len,
            });
        }
        Err(e) => {
            out.clear();
            return Err(e);
        }
    };
    // Not cleared first: `resize` zero-fills only what grows past the previous body, and the
    // decoder overwrites all of `out[..declared]` or fails. Its copies read only bytes it wrote
    // in this call (offsets never reach before the output position), so nothing of the
    // previous body can show through.
    out.resize(declared, 0);
    match snap::raw::Decoder::new().decompress(body, out) {
        Ok(written) => {
            out.truncate(written);
            Ok(())
        }
        Err(e) => {
            out.clear();
            Err(e.into())
        }
    }
}

/// The decompressed length a block declares, refusing the framing format.
fn declared_len(body: &[u8]) -> Result<usize, WireError> {
    if body.starts_with(FRAMED_SNAPPY_MAGIC) {
        return Err(WireError::FramedSnappy);
    }
    Ok(snap::raw::decompress_len(body)?)
}

/// Compresses `buf` into a new snappy block, whose capacity is its length.
///
/// # Panics
/// If `buf` is 4 GiB or larger, which the block format cannot express. Bodies are bounded far
/// below that before they get here.
pub fn compress(buf: &[u8]) -> Vec<u8> {
    with_compressed(buf, <[u8]>::to_vec)
}

/// Compresses `buf` into `out` (its contents replaced, reused across batches) as one snappy
/// block.
///
/// # Panics
/// If `buf` is 4 GiB or larger, as [`compress`].
pub fn compress_into(buf: &[u8], out: &mut Vec<u8>) {
    with_compressed(buf, |block| {
        out.clear();
        out.extend_from_slice(block);
    });
}

/// Compresses `buf` into this thread's scratch buffer and hands the block to `use_block`.
fn with_compressed<R>(buf: &[u8], use_block: impl FnOnce(&[u8]) -> R) -> R {
    // 0 when `buf` is too large; the encoder then refuses it below.
    let need = snap::raw::max_compress_len(buf.len());
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.len() < need {
            scratch.resize(need, 0);
        }
        let written =
            ENCODER.with(|encoder| encoder.borrow_mut().compress(buf, &mut scratch[..need]));
        let result = match written {
            Ok(written) => use_block(&scratch[..written]),
            Err(e) => panic!("snappy cannot compress a {} byte block: {e}", buf.len()),
        };
        if scratch.len() > KEEP_SCRATCH_BYTES {
            *scratch = Vec::new();
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    #[test]
    fn block_round_trips() {
        let data = b"remote write remote write remote write".repeat(10);
        let compressed = compress(&data);
        assert!(compressed.len() < data.len());
        assert_eq!(decompress_bounded(&compressed, LIMIT).unwrap(), data);
    }

    #[test]
    fn compressed_bytes_are_the_snappy_block_format() {
        // A block is: varint decompressed length, then tagged elements; 0x0c = literal of 4 bytes.
        assert_eq!(compress(b"abcd"), [0x04, 0x0c, b'a', b'b', b'c', b'd']);
    }

    #[test]
    fn empty_payload_round_trips_as_a_one_byte_block() {
        assert_eq!(compress(b""), [0x00]);
        assert_eq!(decompress_bounded(&[0x00], LIMIT).unwrap(), b"");
    }

    #[test]
    fn empty_body_is_rejected_as_invalid_snappy() {
        let err = decompress_bounded(b"", LIMIT).unwrap_err();
        assert!(matches!(err, WireError::Snappy(_)), "{err:?}");
    }

    #[test]
    fn framed_snappy_is_rejected_with_its_own_error() {
        let mut framed = Vec::new();
        {
            use std::io::Write;
            let mut w = snap::write::FrameEncoder::new(&mut framed);
            w.write_all(b"some protobuf").unwrap();
            w.flush().unwrap();
        }
        let err = decompress_bounded(&framed, LIMIT).unwrap_err();
        assert_eq!(err, WireError::FramedSnappy);
        assert_eq!(
            err.to_string(),
            "framed snappy is not remote-write; use the block format"
        );
        assert!(!err.is_too_large());
        assert_eq!(err.reason(), "framed_snappy");
    }

    #[test]
    fn garbage_is_rejected_as_invalid_snappy() {
        // Declares 5 bytes, then a copy (tag 0x01) before any output exists.
        let err = decompress_bounded(&[0x05, 0x01, 0x00, 0xff, 0xff], LIMIT).unwrap_err();
        assert!(matches!(err, WireError::Snappy(_)), "{err:?}");
        assert_eq!(err.reason(), "snappy");
    }

    #[test]
    fn block_shorter_than_its_declared_length_is_rejected() {
        let mut body = compress(b"0123456789");
        body.truncate(body.len() - 3);
        let err = decompress_bounded(&body, LIMIT).unwrap_err();
        assert!(matches!(err, WireError::Snappy(_)), "{err:?}");
    }

    #[test]
    fn declared_length_above_limit_is_too_large_before_decompressing() {
        // Only a header: declares 1 MiB + 1 (varint 81 80 40), no data at all. The size check must
        // fire first, so the missing data is never looked at.
        let err = decompress_bounded(&[0x81, 0x80, 0x40], LIMIT).unwrap_err();
        assert_eq!(
            err,
            WireError::TooLarge {
                declared: LIMIT + 1,
                limit: LIMIT
            }
        );
        assert!(err.is_too_large());
        assert_eq!(err.reason(), "too_large");
    }

    #[test]
    fn declared_length_equal_to_limit_is_accepted() {
        let data = vec![7u8; 4096];
        assert_eq!(decompress_bounded(&compress(&data), 4096).unwrap(), data);
    }

    #[test]
    fn too_large_leaves_the_reused_buffer_unallocated() {
        let mut out = Vec::new();
        let body = compress(&vec![0u8; 10_000]);
        let err = decompress_bounded_into(&body, 100, &mut out).unwrap_err();
        assert!(err.is_too_large());
        assert_eq!(out.capacity(), 0);
    }

    #[test]
    fn reused_buffer_holds_only_the_latest_body() {
        let mut out = Vec::new();
        decompress_bounded_into(&compress(&[1u8; 1000]), LIMIT, &mut out).unwrap();
        decompress_bounded_into(&compress(b"short"), LIMIT, &mut out).unwrap();
        assert_eq!(out, b"short");
        assert!(out.capacity() >= 1000, "the buffer's capacity is kept");
    }

    #[test]
    fn failed_decompression_leaves_the_reused_buffer_empty() {
        let mut out = b"stale".to_vec();
        assert!(decompress_bounded_into(&[0x05, 0x01, 0x00], LIMIT, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn compress_into_replaces_the_buffer_contents() {
        let mut out = b"stale".to_vec();
        compress_into(b"abcd", &mut out);
        assert_eq!(out, compress(b"abcd"));
    }

    #[test]
    fn compressed_block_owns_only_its_bytes() {
        let block = compress(&b"remote write ".repeat(1000));
        assert_eq!(block.capacity(), block.len());
    }

    #[test]
    fn compress_after_a_larger_input_shows_nothing_of_it() {
        let large = compress(&(0..=255u8).cycle().take(100_000).collect::<Vec<u8>>());
        let small = compress(b"abcd");
        assert_eq!(small, [0x04, 0x0c, b'a', b'b', b'c', b'd']);
        assert!(large.len() > small.len());
    }

    #[test]
    fn input_above_the_kept_scratch_size_does_not_pin_its_memory() {
        let data = vec![3u8; KEEP_SCRATCH_BYTES];
        assert_eq!(
            decompress_bounded(&compress(&data), usize::MAX).unwrap(),
            data
        );
        assert_eq!(SCRATCH.with(|s| s.borrow().capacity()), 0);
    }

    #[test]
    fn smaller_body_after_a_larger_one_decodes_exactly() {
        let mut out = Vec::new();
        decompress_bounded_into(&compress(&[9u8; 5000]), LIMIT, &mut out).unwrap();
        decompress_bounded_into(&compress(&[1u8; 10]), LIMIT, &mut out).unwrap();
        assert_eq!(out, [1u8; 10]);
        decompress_bounded_into(&compress(&[2u8; 7000]), LIMIT, &mut out).unwrap();
        assert_eq!(out, [2u8; 7000]);
    }
}
