//! One-pass, allocation-free validation of a decompressed `WriteRequest`.
//!
//! Guarantees: whatever [`validate_write_request`] accepts, `prost::Message::decode` into
//! [`WriteRequest`](super::WriteRequest) accepts too, and the returned [`WriteSummary`] equals
//! [`WriteSummary::of`] the decoded message. The validator is stricter than prost in one place
//! only: it refuses groups (wire types 3 and 4) even in unknown fields, which remote-write never
//! sends. Unknown fields with wire types 0, 1, 2 and 5 are skipped, as proto3 asks.
//!
//! How it mirrors prost 0.14 (`prost::encoding`): a varint's 10th byte must be 0 or 1; a key must
//! fit in 32 bits and have a non-zero field number; a known field must have its schema's wire type
//! (repeated numeric fields accept their scalar type or the packed, length-delimited form); a
//! nested message, string or packed run must end exactly inside its parent; strings must be UTF-8.
//!
//! Speed: labels and samples are nearly all of a push, so their usual encodings
//! (`0a n name 12 m value` in ASCII; `09 <double> 10 <varint>`) are recognised with a few compares
//! and one word-at-a-time ASCII scan; anything else goes through the general field loop, which
//! accepts exactly the same messages (pinned by tests against prost).
//!
//! Must not: allocate, or decode values it does not need (timestamps and floats are only skipped).

use super::wire::{Key, LEN, Reader};
use super::{WireError, WriteRequest};

/// `TimeSeries.labels` (field 1, length-delimited) as its one-byte key.
const LABELS_KEY: u8 = (1 << 3) | LEN;
/// `TimeSeries.samples` (field 2, length-delimited) as its one-byte key.
const SAMPLES_KEY: u8 = (2 << 3) | LEN;

/// What a valid `WriteRequest` holds, counted while validating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// `TimeSeries` messages.
    pub series: u64,
    /// Float samples, over all series.
    pub samples: u64,
    /// Exemplars, over all series.
    pub exemplars: u64,
    /// Native histogram samples, over all series.
    pub histograms: u64,
    /// `MetricMetadata` messages.
    pub metadata: u64,
}

impl WriteSummary {
    /// The counts of an already decoded request (for requests built in memory, like the scraper's).
    pub fn of(req: &WriteRequest) -> Self {
        let mut summary = WriteSummary {
            series: req.timeseries.len() as u64,
            metadata: req.metadata.len() as u64,
            ..WriteSummary::default()
        };
        for ts in &req.timeseries {
            summary.samples += ts.samples.len() as u64;
            summary.exemplars += ts.exemplars.len() as u64;
            summary.histograms += ts.histograms.len() as u64;
        }
        summary
    }
}

/// Checks that `buf` (a decompressed remote-write body) is a `WriteRequest` that prost decodes,
/// and counts what it holds, in one pass without allocating.
///
/// Refuses truncated data, malformed varints, lengths past the end of their message, field number
/// 0, wire types 3, 4, 6 and 7, a known field with the wrong wire type, and label names, label
/// values or metadata strings that are not UTF-8. The error's offset counts from the start of
/// `buf`.
pub fn validate_write_request(buf: &[u8]) -> Result<WriteSummary, WireError> {
    let mut summary = WriteSummary::default();
    let mut r = Reader::new(buf, 0);
    while let Some(f) = r.next_field()? {
        match f.number {
            1 => {
                time_series(r.message(f, "WriteRequest.timeseries")?, &mut summary)?;
                summary.series += 1;
            }
            3 => {
                metric_metadata(r.message(f, "WriteRequest.metadata")?)?;
                summary.metadata += 1;
            }
            _ => r.skip(f)?,
        }
    }
    Ok(summary)
}

fn time_series(mut r: Reader<'_>, summary: &mut WriteSummary) -> Result<(), WireError> {
    // Whether a run of labels may still be checked at once: after one run held a byte that is
    // not ASCII, the rest of this series goes label by label, so no bytes are scanned twice.
    let mut runs = true;
    loop {
        // Labels and samples are nearly all a series holds: test their one-byte keys first,
        // before the general key decoding and dispatch.
        match r.data.get(r.pos) {
            Some(&LABELS_KEY) => {
                if runs {
                    let end = label_run_end(r.data, r.pos);
                    if end > r.pos {
                        if is_ascii(&r.data[r.pos..end]) {
                            r.pos = end;
                            continue;
                        }
                        runs = false;
                    }
                }
                r.pos += 1;
                label(r.len_delimited()?)?;
                continue;
            }
            Some(&SAMPLES_KEY) => {
                r.pos += 1;
                sample(r.len_delimited()?)?;
                summary.samples += 1;
                continue;
            }
            _ => {}
        }
        let Some(f) = r.next_field()? else {
            return Ok(());
        };
        match f.number {
            1 => label(r.message(f, "TimeSeries.labels")?)?,
            2 => {
                sample(r.message(f, "TimeSeries.samples")?)?;
                summary.samples += 1;
            }
            3 => {
                exemplar(r.message(f, "TimeSeries.exemplars")?)?;
                summary.exemplars += 1;
            }
            4 => {
                histogram(r.message(f, "TimeSeries.histograms")?)?;
                summary.histograms += 1;
            }
            _ => r.skip(f)?,
        }
    }
}

#[inline(always)]
fn label(r: Reader<'_>) -> Result<(), WireError> {
    // Fast path for how every sender encodes a label: `0a <n> name 12 <m> value`, all ASCII
    // (which also makes both lengths one-byte varints). ASCII bytes are valid UTF-8, so one
    // word-at-a-time scan checks both strings.
    if let [0x0a, name_len, rest @ ..] = r.data {
        let name_len = usize::from(*name_len);
        if let Some([0x12, value_len, value @ ..]) = rest.get(name_len..)
            && usize::from(*value_len) == value.len()
            && r.data.is_ascii()
        {
            return Ok(());
        }
    }
    label_fields(r)
}

/// Where the run of labels starting at `pos` in a `TimeSeries` ends, reading each as the usual
/// encoding (`0a <len> 0a <n> name 12 <m> value`, every length one byte and `len = n + m + 4`);
/// `pos` when the first label is not so. Each label's structure is checked here; its bytes are
/// not: the caller checks the whole run is ASCII in one scan, which also makes every byte read as
/// a one-byte length here really one (a longer varint has a byte of 0x80 or above).
#[inline(always)]
fn label_run_end(data: &[u8], mut pos: usize) -> usize {
    while let [LABELS_KEY, len, 0x0a, name_len, rest @ ..] = &data[pos..] {
        let (len, name_len) = (usize::from(*len), usize::from(*name_len));
        match rest.get(name_len..) {
            Some([0x12, value_len, ..]) if name_len + usize::from(*value_len) + 4 == len => {}
            _ => break,
        }
        if len + 2 > data.len() - pos {
            break;
        }
        pos += len + 2;
    }
    pos
}

/// `bytes.is_ascii()` for a label run (tens to hundreds of bytes): the bytes ORed together a word
/// at a time (vectorised), the tail as one overlapping word, so no byte-at-a-time loop at either
/// end (std's spent a quarter of validation there on the relay benchmark's labels).
#[inline(always)]
fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let Some(last) = bytes.last_chunk::<8>() else {
        return bytes.iter().fold(0, |acc, b| acc | b) < 0x80;
    };
    let (words, _) = bytes.as_chunks::<8>();
    let acc = words.iter().fold(u64::from_ne_bytes(*last), |acc, w| {
        acc | u64::from_ne_bytes(*w)
    });
    acc & HIGH_BITS == 0
}

#[inline(never)]
fn label_fields(mut r: Reader<'_>) -> Result<(), WireError> {
    while let Some(f) = r.next_field()? {
        match f.number {
            1 => r.string(f, "Label.name")?,
            2 => r.string(f, "Label.value")?,
            _ => r.skip(f)?,
        }
    }
    Ok(())
}

#[inline(always)]
fn sample(r: Reader<'_>) -> Result<(), WireError> {
    // Fast path for the usual encoding: `09 <8-byte value> 10 <timestamp varint>`, the varint
    // ending exactly at the end of the message and at most 8 bytes long (so it cannot overflow).
    if let [0x09, _, _, _, _, _, _, _, _, 0x10, timestamp @ ..] = r.data
        && (1..=8).contains(&timestamp.len())
        && ends_with_one_varint(r.data, timestamp.len())
    {
        return Ok(());
    }
    sample_fields(r)
}

/// True when the last `n` bytes (1 to 8) of `data` (at least 8 bytes long) are exactly one
/// varint: `n - 1` bytes with the continuation bit set, then one without. One 8-byte load instead
/// of a loop over the bytes.
#[inline(always)]
fn ends_with_one_varint(data: &[u8], n: usize) -> bool {
    let Some(tail) = data.last_chunk::<8>() else {
        return false;
    };
    let word = u64::from_le_bytes(*tail);
    // The continuation bits of bytes 8-n..=6 of the word (little-endian: byte 7 is the last).
    let continuation = 0x0080_8080_8080_8080_u64 & !((1_u64 << (8 * (8 - n))) - 1);
    word & (continuation | 0x8000_0000_0000_0000) == continuation
}

#[inline(never)]
fn sample_fields(mut r: Reader<'_>) -> Result<(), WireError> {
    while let Some(f) = r.next_field()? {
        match f.number {
            1 => r.fixed64(f, "Sample.value")?,
            2 => r.varint_field(f, "Sample.timestamp")?,
            _ => r.skip(f)?,
        }
    }
    Ok(())
}

fn exemplar(mut r: Reader<'_>) -> Result<(), WireError> {
    while let Some(f) = r.next_field()? {
        match f.number {
            1 => label(r.message(f, "Exemplar.labels")?)?,
            2 => r.fixed64(f, "Exemplar.value")?,
            3 => r.varint_field(f, "Exemplar.timestamp")?,
            _ => r.skip(f)?,
        }
    }
    Ok(())
}

fn histogram(mut r: Reader<'_>) -> Result<(), WireError> {
    while let Some(f) = r.next_field()? {
        histogram_field(&mut r, f)?;
    }
    Ok(())
}

/// Checks (and steps over) one field of a native `Histogram`, which remote-write 1.0 and 2.0
/// share field for field (2.0 adds `start_timestamp` = 17, unknown here and skipped).
pub(super) fn histogram_field(r: &mut Reader<'_>, f: Key) -> Result<(), WireError> {
    match f.number {
        1 => r.varint_field(f, "Histogram.count_int"),
        2 => r.fixed64(f, "Histogram.count_float"),
        3 => r.fixed64(f, "Histogram.sum"),
        4 => r.varint_field(f, "Histogram.schema"),
        5 => r.fixed64(f, "Histogram.zero_threshold"),
        6 => r.varint_field(f, "Histogram.zero_count_int"),
        7 => r.fixed64(f, "Histogram.zero_count_float"),
        8 => bucket_span(r.message(f, "Histogram.negative_spans")?),
        9 => r.repeated_varint(f, "Histogram.negative_deltas"),
        10 => r.repeated_fixed64(f, "Histogram.negative_counts"),
        11 => bucket_span(r.message(f, "Histogram.positive_spans")?),
        12 => r.repeated_varint(f, "Histogram.positive_deltas"),
        13 => r.repeated_fixed64(f, "Histogram.positive_counts"),
        14 => r.varint_field(f, "Histogram.reset_hint"),
        15 => r.varint_field(f, "Histogram.timestamp"),
        16 => r.repeated_fixed64(f, "Histogram.custom_values"),
        _ => r.skip(f),
    }
}

fn bucket_span(mut r: Reader<'_>) -> Result<(), WireError> {
    while let Some(f) = r.next_field()? {
        match f.number {
            1 => r.varint_field(f, "BucketSpan.offset")?,
            2 => r.varint_field(f, "BucketSpan.length")?,
            _ => r.skip(f)?,
        }
    }
    Ok(())
}

fn metric_metadata(mut r: Reader<'_>) -> Result<(), WireError> {
    while let Some(f) = r.next_field()? {
        match f.number {
            1 => r.varint_field(f, "MetricMetadata.type")?,
            2 => r.string(f, "MetricMetadata.metric_family_name")?,
            4 => r.string(f, "MetricMetadata.help")?,
            5 => r.string(f, "MetricMetadata.unit")?,
            _ => r.skip(f)?,
        }
    }
    Ok(())
}
