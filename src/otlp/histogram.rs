//! OTLP exponential histograms as Prometheus native histograms (remote-write 1.0 `Histogram`
//! messages), ported from Prometheus' `exponentialToNativeHistogram` and `convertBucketsLayout`
//! (`storage/remote/otlptranslator/prometheusremotewrite/histograms.go`).
//!
//! OTLP bucket `i` of offset `o` covers `(base^(o+i), base^(o+i+1)]`; Prometheus bucket `k`
//! covers `(base^(k-1), base^k]`, so indexes shift by one. Scales above 8 are merged down to 8;
//! scales below -4 cannot be expressed and are refused.

use opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint;

use super::translate::STALE_NAN_BITS;
use crate::prompb::{BucketSpan, Histogram, histogram};

/// The coarsest native histogram schema.
const SCHEMA_MIN: i32 = -4;
/// The finest native histogram schema; finer OTLP scales are merged down to it.
const SCHEMA_MAX: i32 = 8;
/// Prometheus sets this zero threshold on every converted point (`defaultZeroThreshold`).
const ZERO_THRESHOLD: f64 = 1e-128;
/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// Why an exponential histogram point cannot become a native histogram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    /// The scale is coarser than the coarsest native histogram schema.
    #[error(
        "cannot convert exponential to native histogram. Scale must be >= {SCHEMA_MIN}, was {0}"
    )]
    ScaleTooSmall(i32),
}

/// One exponential histogram point as a native histogram (integer counts, cumulative: reset
/// hint unknown). A point flagged "no recorded value" becomes the stale marker.
pub fn exponential_to_native(
    p: &ExponentialHistogramDataPoint,
) -> Result<Histogram, HistogramError> {
    let mut scale = p.scale;
    if scale < SCHEMA_MIN {
        return Err(HistogramError::ScaleTooSmall(scale));
    }
    let mut scale_down = 0;
    if scale > SCHEMA_MAX {
        scale_down = scale - SCHEMA_MAX;
        scale = SCHEMA_MAX;
    }
    let (pos, neg) = (p.positive.as_ref(), p.negative.as_ref());
    let (positive_spans, positive_deltas) = pos.map_or((Vec::new(), Vec::new()), |b| {
        buckets_layout(&b.bucket_counts, b.offset, scale_down)
    });
    let (negative_spans, negative_deltas) = neg.map_or((Vec::new(), Vec::new()), |b| {
        buckets_layout(&b.bucket_counts, b.offset, scale_down)
    });
    let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
    let (sum, count) = if stale {
        (f64::from_bits(STALE_NAN_BITS), STALE_NAN_BITS)
    } else {
        (p.sum.unwrap_or(0.0), p.count)
    };
    Ok(Histogram {
        count: Some(histogram::Count::CountInt(count)),
        sum,
        schema: scale,
        zero_threshold: ZERO_THRESHOLD,
        zero_count: Some(histogram::ZeroCount::ZeroCountInt(p.zero_count)),
        negative_spans,
        negative_deltas,
        negative_counts: Vec::new(),
        positive_spans,
        positive_deltas,
        positive_counts: Vec::new(),
        reset_hint: histogram::ResetHint::Unknown as i32,
        timestamp: (p.time_unix_nano as i64) / 1_000_000,
        custom_values: Vec::new(),
    })
}

/// Go's `x >> n` on an int32: a shift by 32 or more leaves the sign (0 or -1), where Rust's
/// would overflow. Scales far above 8 make such shifts.
fn shr(x: i32, n: i32) -> i32 {
    x >> n.clamp(0, 31)
}

/// `convertBucketsLayout` with `adjustOffset`: OTLP dense bucket counts to Prometheus spans and
/// count deltas, merging `2^scale_down` neighbours into one and starting a new span only over
/// gaps of more than two empty buckets (smaller gaps are filled with zero counts).
fn buckets_layout(counts: &[u64], offset: i32, scale_down: i32) -> (Vec<BucketSpan>, Vec<i64>) {
    if counts.is_empty() {
        return (Vec::new(), Vec::new());
    }
    // Go's int32 arithmetic wraps; so does this port (offsets near i32::MAX are the sender's
    // nonsense, not a reason to panic).
    let mut spans = vec![BucketSpan {
        offset: shr(offset, scale_down).wrapping_add(1),
        length: 0,
    }];
    let mut deltas: Vec<i64> = Vec::with_capacity(counts.len());
    let mut prev: i64 = 0;
    let mut append_delta = |spans: &mut Vec<BucketSpan>, count: i64| {
        if let Some(last) = spans.last_mut() {
            last.length += 1;
        }
        deltas.push(count.wrapping_sub(prev));
        prev = count;
    };
    let mut bucket_idx = shr(offset, scale_down).wrapping_add(1);
    let mut count: i64 = 0;
    for (i, c) in counts.iter().enumerate() {
        let next = shr((i as i32).wrapping_add(offset), scale_down).wrapping_add(1);
        if bucket_idx == next {
            count = count.wrapping_add(*c as i64);
            continue;
        }
        if count == 0 {
            count = *c as i64;
            continue;
        }
        let gap = next.wrapping_sub(bucket_idx).wrapping_sub(1);
        if gap > 2 {
            spans.push(BucketSpan {
                offset: gap,
                length: 0,
            });
        } else {
            for _ in 0..gap {
                append_delta(&mut spans, 0);
            }
        }
        append_delta(&mut spans, count);
        count = *c as i64;
        bucket_idx = next;
    }
    let gap = shr(
        (counts.len() as i32).wrapping_add(offset).wrapping_sub(1),
        scale_down,
    )
    .wrapping_add(1)
    .wrapping_sub(bucket_idx);
    if gap > 2 {
        spans.push(BucketSpan {
            offset: gap,
            length: 0,
        });
    } else {
        for _ in 0..gap {
            append_delta(&mut spans, 0);
        }
    }
    append_delta(&mut spans, count);
    (spans, deltas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(offset: i32, length: u32) -> BucketSpan {
        BucketSpan { offset, length }
    }

    // The dense and scale-down cases are the "zero offset" case of Prometheus'
    // TestConvertBucketsLayout (histograms_test.go), with its expected spans and deltas.
    #[test]
    fn dense_buckets_become_one_span_of_deltas() {
        let (s, d) = buckets_layout(&[4, 3, 2, 1], 0, 0);
        assert_eq!(s, vec![span(1, 4)]);
        assert_eq!(d, vec![4, -1, -1, -1]);
    }

    #[test]
    fn gaps_up_to_two_buckets_are_filled_with_zero_counts() {
        let (s, d) = buckets_layout(&[4, 0, 0, 3, 2, 1], 0, 0);
        // Zero buckets inside the counts are counts like any other.
        assert_eq!(s, vec![span(1, 6)]);
        assert_eq!(d, vec![4, -4, 0, 3, -1, -1]);
    }

    #[test]
    fn scale_down_by_one_merges_neighbouring_buckets() {
        // Offset 0 at scale s+1: buckets (0,1) (2,3) ... merge into s-buckets 1, 2.
        let (s, d) = buckets_layout(&[4, 3, 2, 1], 0, 1);
        assert_eq!(s, vec![span(1, 2)]);
        assert_eq!(d, vec![7, -4]);
    }

    #[test]
    fn a_scale_below_minus_four_is_refused() {
        let p = ExponentialHistogramDataPoint {
            scale: -5,
            ..Default::default()
        };
        assert_eq!(
            exponential_to_native(&p),
            Err(HistogramError::ScaleTooSmall(-5))
        );
    }

    #[test]
    fn a_scale_above_eight_is_merged_down_to_eight() {
        let p = ExponentialHistogramDataPoint {
            scale: 10,
            count: 4,
            positive: Some(
                opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets {
                    offset: 0,
                    bucket_counts: vec![1, 1, 1, 1],
                },
            ),
            ..Default::default()
        };
        let h = exponential_to_native(&p).unwrap();
        assert_eq!(h.schema, 8);
        assert_eq!(h.positive_spans, vec![span(1, 1)]);
        assert_eq!(h.positive_deltas, vec![4]);
    }

    // Found by the proptest: a scale of 8 + 32 or more shifted an i32 by its width.
    #[test]
    fn a_scale_far_above_eight_merges_everything_without_overflow() {
        let (s, d) = buckets_layout(&[1, 2, 3], 5, 40);
        assert_eq!(d.iter().sum::<i64>(), 6);
        assert_eq!(s.iter().map(|s| s.length).sum::<u32>() as usize, d.len());
    }
}
