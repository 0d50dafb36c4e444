//! Property tests: the converter never panics, and agrees with the plain prost-decode-then-convert
//! reference (`oracle`) on valid requests, on requests breaking 2.0 rules, on damaged bytes and on
//! noise.

use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;

use super::oracle::{self, Refusal};
use super::proto;
use super::{CUSTOM_BUCKETS_SCHEMA, Converter, V2Error};
use crate::prompb::proptests::{Mutation, mutation};
use crate::prompb::{WireError, WriteRequest};

/// Far above anything generated here: the limit is tested on its own.
const LIMIT: usize = 1 << 24;

fn symbols() -> impl Strategy<Value = Vec<String>> {
    let symbol = prop_oneof![4 => "[a-z_]{1,8}", 1 => any::<String>()];
    // Usually a valid table ("" first); sometimes not, to see it refused alike.
    (vec(symbol, 0..12), prop::bool::weighted(0.95)).prop_map(|(mut rest, empty_first)| {
        if empty_first {
            rest.insert(0, String::new());
        }
        rest
    })
}

/// Refs mostly in range of `n` symbols, sometimes past it.
fn refs(n: usize, max_len: usize) -> impl Strategy<Value = Vec<u32>> {
    let n = n.max(1) as u32;
    vec(prop_oneof![30 => 0..n, 1 => any::<u32>()], 0..max_len).prop_map(|mut v| {
        // Mostly pairs; an odd list now and then.
        if v.len() % 2 == 1 && v.len() > 1 && v[0] % 4 != 0 {
            v.pop();
        }
        v
    })
}

fn histogram() -> impl Strategy<Value = proto::Histogram> {
    use proto::histogram::{Count, ZeroCount};
    let count = prop_oneof![
        Just(None),
        any::<u64>().prop_map(|c| Some(Count::CountInt(c))),
        any::<f64>().prop_map(|c| Some(Count::CountFloat(c))),
    ];
    let zero_count = prop_oneof![
        Just(None),
        any::<u64>().prop_map(|c| Some(ZeroCount::ZeroCountInt(c))),
        any::<f64>().prop_map(|c| Some(ZeroCount::ZeroCountFloat(c))),
    ];
    let span = (any::<i32>(), any::<u32>())
        .prop_map(|(offset, length)| proto::BucketSpan { offset, length });
    (
        (
            count,
            any::<f64>(),
            prop_oneof![Just(CUSTOM_BUCKETS_SCHEMA), -4..9i32, any::<i32>()],
            zero_count,
            vec(span.clone(), 0..3),
            vec(any::<i64>(), 0..4),
        ),
        (
            vec(span, 0..3),
            vec(any::<f64>(), 0..4),
            0..5i32,
            any::<i64>(),
            vec(any::<f64>(), 0..3),
            any::<i64>(),
        ),
    )
        .prop_map(
            |(
                (count, sum, schema, zero_count, negative_spans, negative_deltas),
                (positive_spans, positive_counts, reset_hint, timestamp, custom_values, start),
            )| proto::Histogram {
                count,
                sum,
                schema,
                zero_threshold: 0.001,
                zero_count,
                negative_spans,
                negative_deltas,
                negative_counts: vec![],
                positive_spans,
                positive_deltas: vec![],
                positive_counts,
                reset_hint,
                timestamp,
                custom_values,
                start_timestamp: start,
            },
        )
}

fn series(n: usize) -> impl Strategy<Value = proto::TimeSeries> {
    let sample = (
        any::<f64>(),
        any::<i64>(),
        prop_oneof![Just(0i64), any::<i64>()],
    )
        .prop_map(|(value, timestamp, start_timestamp)| proto::Sample {
            value,
            timestamp,
            start_timestamp,
        });
    let exemplar =
        (refs(n, 4), any::<f64>(), any::<i64>()).prop_map(|(labels_refs, value, timestamp)| {
            proto::Exemplar {
                labels_refs,
                value,
                timestamp,
            }
        });
    let n32 = n.max(1) as u32;
    let metadata = prop::option::of(
        (0..9i32, prop_oneof![9 => 0..n32, 1 => any::<u32>()], 0..n32).prop_map(
            |(r#type, help_ref, unit_ref)| proto::Metadata {
                r#type,
                help_ref,
                unit_ref,
            },
        ),
    );
    (
        refs(n, 10),
        vec(sample, 0..4),
        vec(histogram(), 0..2),
        vec(exemplar, 0..2),
        metadata,
    )
        .prop_map(|(labels_refs, samples, histograms, exemplars, metadata)| {
            proto::TimeSeries {
                labels_refs,
                samples,
                histograms,
                exemplars,
                metadata,
            }
        })
}

fn request() -> impl Strategy<Value = proto::Request> {
    symbols().prop_flat_map(|symbols| {
        let n = symbols.len();
        vec(series(n), 0..6).prop_map(move |timeseries| proto::Request {
            symbols: symbols.clone(),
            timeseries,
        })
    })
}

/// The contract: the converter accepts exactly what the reference accepts, and its 1.0 output
/// decodes to the reference's 1.0 request with the same counts. The one allowed difference: bytes
/// with protobuf groups, which prost skips and the wire walk refuses on purpose.
fn agrees_with_oracle(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    let got = Converter::new().convert(bytes, LIMIT, &mut out);
    match (got, oracle::convert(bytes)) {
        (Ok(summary), Ok((want, dropped))) => {
            let decoded = WriteRequest::decode(&out[..]).expect("1.0 output decodes");
            // Compared as prost's encoding: NaN values are unequal to themselves as f64.
            prop_assert_eq!(decoded.encode_to_vec(), want.encode_to_vec());
            let count = |f: fn(&crate::prompb::TimeSeries) -> usize| {
                want.timeseries.iter().map(f).sum::<usize>() as u64
            };
            prop_assert_eq!(summary.samples, count(|t| t.samples.len()));
            prop_assert_eq!(summary.histograms, count(|t| t.histograms.len()));
            prop_assert_eq!(summary.exemplars, count(|t| t.exemplars.len()));
            prop_assert_eq!(summary.series, want.timeseries.len() as u64);
            prop_assert_eq!(summary.metadata, want.metadata.len() as u64);
            prop_assert_eq!(summary.dropped_custom_bucket_histograms, dropped);
        }
        (Ok(summary), Err(refusal)) => {
            prop_assert!(
                false,
                "converter accepted {summary:?}, the reference refused: {refusal:?}"
            )
        }
        (Err(err), Ok(_)) => prop_assert!(
            matches!(
                err,
                V2Error::Wire(WireError::UnsupportedWireType {
                    wire_type: 3 | 4,
                    ..
                })
            ),
            "converter refused what the reference accepts: {err}"
        ),
        (Err(err), Err(refusal)) => {
            // Bytes prost decodes are never refused as undecodable (a request broken in both
            // ways may be reported either way).
            if refusal == Refusal::Rule {
                prop_assert!(!matches!(err, V2Error::Wire(_)), "{}", err);
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn requests_convert_as_the_prost_reference_does(req in request()) {
        agrees_with_oracle(&req.encode_to_vec())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn damaged_requests_never_panic_and_agree_with_the_reference(
        req in request(),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut bytes = req.encode_to_vec();
        for m in &mutations {
            Mutation::apply(m, &mut bytes);
        }
        agrees_with_oracle(&bytes)?;
    }

    #[test]
    fn noise_never_panics_and_agrees_with_the_reference(bytes in vec(any::<u8>(), 0..96)) {
        agrees_with_oracle(&bytes)?;
    }

    #[test]
    fn any_limit_is_kept_or_refused_as_too_large(req in request(), limit in 0usize..2048) {
        let mut out = Vec::new();
        match Converter::new().convert(&req.encode_to_vec(), limit, &mut out) {
            Ok(_) => prop_assert!(out.len() <= limit),
            Err(e) => prop_assert!(
                e.is_too_large() || oracle::convert(&req.encode_to_vec()).is_err(),
                "refused {e} though the reference converts it"
            ),
        }
    }
}
