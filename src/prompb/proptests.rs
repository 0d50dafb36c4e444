//! Property tests: the validator agrees with prost on valid requests, on damaged ones, and on
//! noise; concatenation is merge.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use prost::Message;

use super::histogram::{Count, ZeroCount};
use super::*;

// ---- random valid requests ----

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_]{0,12}", any::<String>()]
}

fn label() -> impl Strategy<Value = Label> {
    (any_string(), any_string()).prop_map(|(name, value)| Label { name, value })
}

fn sample() -> impl Strategy<Value = Sample> {
    (any::<f64>(), any::<i64>()).prop_map(|(value, timestamp)| Sample { value, timestamp })
}

fn exemplar() -> impl Strategy<Value = Exemplar> {
    (vec(label(), 0..3), any::<f64>(), any::<i64>()).prop_map(|(labels, value, timestamp)| {
        Exemplar {
            labels,
            value,
            timestamp,
        }
    })
}

fn spans() -> impl Strategy<Value = Vec<BucketSpan>> {
    vec(
        (any::<i32>(), any::<u32>()).prop_map(|(offset, length)| BucketSpan { offset, length }),
        0..3,
    )
}

fn histogram() -> impl Strategy<Value = Histogram> {
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
    let scalars = (
        count,
        any::<f64>(),
        any::<i32>(),
        any::<f64>(),
        zero_count,
        0..5i32,
        any::<i64>(),
    );
    let buckets = (
        spans(),
        vec(any::<i64>(), 0..4),
        vec(any::<f64>(), 0..4),
        spans(),
        vec(any::<i64>(), 0..4),
        vec(any::<f64>(), 0..4),
        vec(any::<f64>(), 0..3),
    );
    (scalars, buckets).prop_map(
        |(
            (count, sum, schema, zero_threshold, zero_count, reset_hint, timestamp),
            (
                negative_spans,
                negative_deltas,
                negative_counts,
                positive_spans,
                positive_deltas,
                positive_counts,
                custom_values,
            ),
        )| Histogram {
            count,
            sum,
            schema,
            zero_threshold,
            zero_count,
            negative_spans,
            negative_deltas,
            negative_counts,
            positive_spans,
            positive_deltas,
            positive_counts,
            reset_hint,
            timestamp,
            custom_values,
        },
    )
}

fn time_series() -> impl Strategy<Value = TimeSeries> {
    (
        vec(label(), 0..6),
        vec(sample(), 0..6),
        vec(exemplar(), 0..2),
        vec(histogram(), 0..2),
    )
        .prop_map(|(labels, samples, exemplars, histograms)| TimeSeries {
            labels,
            samples,
            exemplars,
            histograms,
        })
}

fn metadata() -> impl Strategy<Value = MetricMetadata> {
    (any::<i32>(), any_string(), any_string(), any_string()).prop_map(
        |(r#type, metric_family_name, help, unit)| MetricMetadata {
            r#type,
            metric_family_name,
            help,
            unit,
        },
    )
}

fn write_request() -> impl Strategy<Value = WriteRequest> {
    (vec(time_series(), 0..5), vec(metadata(), 0..3)).prop_map(|(timeseries, metadata)| {
        WriteRequest {
            timeseries,
            metadata,
        }
    })
}

// ---- damage ----

#[derive(Debug, Clone)]
pub(super) enum Mutation {
    Xor(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

impl Mutation {
    pub(super) fn apply(&self, bytes: &mut Vec<u8>) {
        if bytes.is_empty() {
            if let Mutation::Insert(_, b) = self {
                bytes.push(*b);
            }
            return;
        }
        match self {
            Mutation::Xor(i, b) => {
                let at = i.index(bytes.len());
                bytes[at] ^= b | 1;
            }
            Mutation::Set(i, b) => {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            Mutation::Insert(i, b) => {
                let at = i.index(bytes.len() + 1);
                bytes.insert(at, *b);
            }
            Mutation::Delete(i) => {
                bytes.remove(i.index(bytes.len()));
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        }
    }
}

pub(super) fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Xor(i, b)),
        // Bytes that are keys or boundaries in this schema make structural damage likelier.
        2 => (any::<Index>(), prop::sample::select(vec![0x00, 0x01, 0x02, 0x03, 0x04, 0x06,
            0x07, 0x0a, 0x12, 0x7f, 0x80, 0xff])).prop_map(|(i, b)| Mutation::Set(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// An unknown field of a valid wire type for the top level of a `WriteRequest` (field numbers 1
/// and 3 are known).
fn unknown_field() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![Just(2u64), 4..1000u64, 1000..(1u64 << 29)];
    let value = prop_oneof![
        any::<u64>().prop_map(|v| (0u64, {
            let mut out = Vec::new();
            prost::encoding::encode_varint(v, &mut out);
            out
        })),
        any::<[u8; 8]>().prop_map(|v| (1, v.to_vec())),
        vec(any::<u8>(), 0..20).prop_map(|v| {
            let mut out = Vec::new();
            prost::encoding::encode_varint(v.len() as u64, &mut out);
            out.extend(v);
            (2, out)
        }),
        any::<[u8; 4]>().prop_map(|v| (5, v.to_vec())),
    ];
    (number, value).prop_map(|(number, (wire, value))| {
        let mut out = Vec::new();
        prost::encoding::encode_varint((number << 3) | wire, &mut out);
        out.extend(value);
        out
    })
}

/// The contract: accepted means prost accepts with the same counts; refused while prost accepts
/// only for groups, which the validator refuses on purpose.
fn agrees_with_prost(bytes: &[u8]) -> Result<(), TestCaseError> {
    match (validate_write_request(bytes), WriteRequest::decode(bytes)) {
        (Ok(summary), Ok(req)) => prop_assert_eq!(summary, WriteSummary::of(&req)),
        (Ok(summary), Err(e)) => {
            prop_assert!(false, "validator accepted {summary:?}, prost refused: {e}")
        }
        (Err(err), Ok(_)) => prop_assert!(
            matches!(
                err,
                WireError::UnsupportedWireType {
                    wire_type: 3 | 4,
                    ..
                }
            ),
            "validator refused what prost accepts: {err}"
        ),
        (Err(_), Err(_)) => {}
    }
    Ok(())
}

proptest! {
    #[test]
    fn valid_requests_are_accepted_and_counted(req in write_request()) {
        let bytes = req.encode_to_vec();
        prop_assert_eq!(validate_write_request(&bytes), Ok(WriteSummary::of(&req)));
    }

    #[test]
    fn unknown_top_level_fields_are_skipped(
        req in write_request(),
        unknown in vec(unknown_field(), 1..4),
        at in vec(any::<Index>(), 1..4),
    ) {
        // Insert each unknown field between two top-level fields (or at either end).
        let mut fields: Vec<Vec<u8>> = req
            .timeseries
            .iter()
            .map(|ts| {
                let mut out = Vec::new();
                prost::encoding::message::encode(1, ts, &mut out);
                out
            })
            .chain(req.metadata.iter().map(|md| {
                let mut out = Vec::new();
                prost::encoding::message::encode(3, md, &mut out);
                out
            }))
            .collect();
        for (field, at) in unknown.into_iter().zip(at.iter().cycle()) {
            let position = at.index(fields.len() + 1);
            fields.insert(position, field);
        }
        let bytes = fields.concat();
        prop_assert_eq!(validate_write_request(&bytes), Ok(WriteSummary::of(&req)));
        agrees_with_prost(&bytes)?;
    }

    #[test]
    fn concatenation_is_merge(a in write_request(), b in write_request()) {
        let mut merged = Vec::new();
        merge_into(&mut merged, &a.encode_to_vec());
        merge_into(&mut merged, &b.encode_to_vec());
        let decoded = WriteRequest::decode(&merged[..]).unwrap();
        let expected = WriteRequest {
            timeseries: [a.timeseries, b.timeseries].concat(),
            metadata: [a.metadata, b.metadata].concat(),
        };
        // Compared as bytes: NaN samples (stale markers) are unequal to themselves as f64.
        prop_assert_eq!(decoded.encode_to_vec(), expected.encode_to_vec());
        prop_assert_eq!(validate_write_request(&merged), Ok(WriteSummary::of(&expected)));
    }

    #[test]
    fn snappy_round_trips_any_request(req in write_request()) {
        let bytes = req.encode_to_vec();
        let body = compress(&bytes);
        prop_assert_eq!(decompress_bounded(&body, bytes.len()), Ok(bytes));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn damaged_requests_never_panic_and_accepted_ones_decode_alike(
        req in write_request(),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut bytes = req.encode_to_vec();
        for m in &mutations {
            m.apply(&mut bytes);
        }
        agrees_with_prost(&bytes)?;
    }

    #[test]
    fn noise_never_panics_and_accepted_noise_decodes_alike(bytes in vec(any::<u8>(), 0..64)) {
        agrees_with_prost(&bytes)?;
    }

    #[test]
    fn damaged_snappy_never_panics(
        req in write_request(),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut body = compress(&req.encode_to_vec());
        for m in &mutations {
            m.apply(&mut body);
        }
        if let Ok(decompressed) = decompress_bounded(&body, 1 << 20) {
            agrees_with_prost(&decompressed)?;
        }
    }
}
