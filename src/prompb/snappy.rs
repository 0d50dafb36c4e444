//! The snappy block format that remote-write bodies use (`Content-Encoding: snappy`).
//!
//! Guarantees: a body is refused before any allocation when its declared decompressed size is
//! above the caller's limit; the framing (stream) format is refused with its own error, because a
//! sender that uses it is misconfigured, not corrupt. Blocks concatenate without recompression
//! ([`concat_blocks_into`]).
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

/// The most a block may declare: its header is a `uint32` varint, and Go's decoders (Prometheus,
/// VictoriaMetrics) refuse anything above it.
pub const MAX_BLOCK_LEN: usize = u32::MAX as usize;

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

/// Concatenates snappy blocks into one block (into `out`, its contents replaced) that decodes to
/// the concatenation of what the blocks decode to, without decompressing or recompressing.
///
/// Why this is sound: a block is a varint of its decoded length followed by a stream of
/// elements, literals and copies. A copy's offset counts back from the current output position,
/// and in a valid block never reaches before that block's own first byte. So the element
/// streams of several blocks, written one after the other behind one header that declares the
/// sum of their lengths, decode each block's bytes right after the previous block's: every
/// decoder checks only `0 < offset <= position` per copy and `position == declared` at the end
/// (snap's `Decompress`, Go's `decode_other.go` and klauspost's s2, whose `ConcatBlocks` does
/// the same). It costs a copy of the compressed bytes; the sender merged small pushes by
/// decompressing and recompressing them, about a fifth of the CPU of the scraper benchmark.
///
/// Only the headers are read: the blocks must be valid (the sender's come from the queue, which
/// ingest fills with validated pushes and guards with a CRC). An invalid element stream makes an
/// invalid result, which the storage refuses like the block itself. Never panics.
///
/// # Errors
/// A block that is empty, framed snappy, or has an invalid header; or a sum of declared lengths
/// above [`MAX_BLOCK_LEN`] ([`WireError::TooLarge`]). `out` is then left empty.
pub fn concat_blocks_into<'a, I>(blocks: I, out: &mut Vec<u8>) -> Result<(), WireError>
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: Clone,
{
    out.clear();
    let blocks = blocks.into_iter();
    let mut total: u64 = 0;
    let mut elements = 0usize;
    for block in blocks.clone() {
        let (len, header) = block_header(block)?;
        total += len as u64; // At most 2^32 per block: no overflow before the check below.
        elements += block.len() - header;
        if total > MAX_BLOCK_LEN as u64 {
            return Err(WireError::TooLarge {
                declared: usize::try_from(total).unwrap_or(usize::MAX),
                limit: MAX_BLOCK_LEN,
            });
        }
    }
    out.reserve_exact(MAX_VARINT32_LEN + elements);
    put_varint(out, total);
    for block in blocks {
        // The first pass read every header; a block cannot change in between.
        let (_, header) = block_header(block)?;
        out.extend_from_slice(&block[header..]);
    }
    Ok(())
}

/// The decoded length a block declares, read as [`concat_blocks_into`] reads it: an error for
/// what it would refuse (empty, framed snappy, invalid header).
pub fn block_len(block: &[u8]) -> Result<usize, WireError> {
    block_header(block).map(|(len, _)| len)
}

/// Bytes of the longest block header (a `uint32` varint).
const MAX_VARINT32_LEN: usize = 5;

/// A block's declared decoded length and the length of its header, as snap reads them (at most
/// five bytes, at most [`MAX_BLOCK_LEN`]).
fn block_header(block: &[u8]) -> Result<(usize, usize), WireError> {
    if block.is_empty() {
        // `decompress_len` calls an empty input 0 bytes long; no decoder accepts it as a block.
        return Err(snap::Error::Empty.into());
    }
    let len = declared_len(block)?;
    // `decompress_len` accepted a varint, so it ends within the first five bytes.
    let header = block
        .iter()
        .position(|&b| b < 0x80)
        .map_or(block.len(), |i| i + 1);
    Ok((len, header))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
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

    fn concat(blocks: &[&[u8]]) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        concat_blocks_into(blocks.iter().copied(), &mut out).map(|()| out)
    }

    #[test]
    fn concatenated_blocks_decode_to_the_concatenated_payloads() {
        let a = b"cpu_seconds_total cpu_seconds_total cpu_seconds_total".repeat(20);
        let b = b"memory_bytes memory_bytes".repeat(30);
        let merged = concat(&[&compress(&a), &compress(&b)]).unwrap();
        assert_eq!(decompress_bounded(&merged, LIMIT).unwrap(), [a, b].concat());
    }

    #[test]
    fn concat_of_one_block_is_that_block() {
        let block = compress(&b"a single push".repeat(100));
        assert_eq!(concat(&[&block]).unwrap(), block);
    }

    #[test]
    fn empty_payload_blocks_add_nothing_to_a_concatenation() {
        let block = compress(b"abcd");
        assert_eq!(concat(&[&[0x00], &block, &[0x00]]).unwrap(), block);
    }

    #[test]
    fn concat_of_no_blocks_is_the_empty_block() {
        assert_eq!(concat(&[]).unwrap(), [0x00]);
    }

    #[test]
    fn concat_header_grows_when_the_sum_needs_more_varint_bytes() {
        // 100 bytes each: one header byte per block, two for the 200 bytes of the merge.
        let merged = concat(&[&compress(&[1u8; 100]), &compress(&[2u8; 100])]).unwrap();
        assert_eq!(merged[..2], [0xc8, 0x01]);
        let want = [[1u8; 100], [2u8; 100]].concat();
        assert_eq!(decompress_bounded(&merged, LIMIT).unwrap(), want);
    }

    #[test]
    fn concat_refuses_an_empty_slice_as_no_block() {
        let mut out = b"stale".to_vec();
        let err = concat_blocks_into([&compress(b"ok")[..], &[]], &mut out).unwrap_err();
        assert!(
            matches!(err, WireError::Snappy(snap::Error::Empty)),
            "{err:?}"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn concat_refuses_a_header_longer_than_five_bytes() {
        let err = concat(&[&compress(b"ok"), &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]]).unwrap_err();
        assert!(matches!(err, WireError::Snappy(_)), "{err:?}");
    }

    #[test]
    fn concat_refuses_a_header_that_never_ends() {
        let err = concat(&[&[0xff, 0xff]]).unwrap_err();
        assert!(matches!(err, WireError::Snappy(_)), "{err:?}");
    }

    #[test]
    fn concat_refuses_framed_snappy() {
        assert_eq!(concat(&[FRAMED_SNAPPY_MAGIC]), Err(WireError::FramedSnappy));
    }

    #[test]
    fn concat_refuses_a_sum_above_what_a_block_can_declare() {
        // Headers only: 2^32 - 1 bytes (ff ff ff ff 0f), then 1 byte. Refused before any copy.
        let max = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            concat(&[&max, &[0x01, 0x00, b'x']]),
            Err(WireError::TooLarge {
                declared: MAX_BLOCK_LEN + 1,
                limit: MAX_BLOCK_LEN
            })
        );
        assert_eq!(
            concat(&[&max]).unwrap(),
            max,
            "exactly the maximum is a block"
        );
    }

    #[test]
    fn concat_replaces_the_reused_buffer_contents() {
        let mut out = b"stale".to_vec();
        concat_blocks_into([&compress(b"abcd")[..]], &mut out).unwrap();
        assert_eq!(out, compress(b"abcd"));
    }
}
