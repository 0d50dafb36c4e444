//! Golden bytes: hand-computed encodings that pin every field number and scalar type of the
//! schema, the concatenation property the sender's batching relies on, and whole-pipeline round
//! trips. The hex is worked out by hand from the protobuf encoding rules (key = field << 3 | wire
//! type; 0 varint, 1 fixed64, 2 length-delimited; sint zigzag), not copied from prost's output.

use prost::Message;

use super::histogram::{Count, ResetHint, ZeroCount};
use super::metric_metadata::MetricType;
use super::*;

/// Joins hex byte strings, ignoring spaces.
fn hex(lines: &[&str]) -> Vec<u8> {
    let digits: Vec<u8> = lines
        .concat()
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("hex is ASCII");
            u8::from_str_radix(pair, 16).expect("valid hex pair")
        })
        .collect()
}

fn minimal_request() -> WriteRequest {
    WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![Label::new("__name__", "up")],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1000,
            }],
            ..TimeSeries::default()
        }],
        metadata: vec![MetricMetadata {
            r#type: MetricType::Counter as i32,
            metric_family_name: "up".into(),
            help: "h".into(),
            unit: "s".into(),
        }],
    }
}

#[rustfmt::skip]
const MINIMAL_REQUEST: &[&str] = &[
    "0a 1e",                        // WriteRequest.timeseries (1, LEN), 30 bytes
    "  0a 0e",                      //   TimeSeries.labels (1, LEN), 14 bytes
    "    0a 08 5f5f6e616d655f5f",   //     Label.name (1, LEN) "__name__"
    "    12 02 7570",               //     Label.value (2, LEN) "up"
    "  12 0c",                      //   TimeSeries.samples (2, LEN), 12 bytes
    "    09 000000000000f03f",      //     Sample.value (1, fixed64) 1.0
    "    10 e807",                  //     Sample.timestamp (2, varint) 1000
    "1a 0c",                        // WriteRequest.metadata (3, LEN), 12 bytes
    "  08 01",                      //   MetricMetadata.type (1, varint) COUNTER
    "  12 02 7570",                 //   MetricMetadata.metric_family_name (2, LEN) "up"
    "  22 01 68",                   //   MetricMetadata.help (4, LEN) "h"
    "  2a 01 73",                   //   MetricMetadata.unit (5, LEN) "s"
];

#[test]
fn minimal_request_encodes_to_golden_bytes() {
    assert_eq!(minimal_request().encode_to_vec(), hex(MINIMAL_REQUEST));
}

#[test]
fn minimal_golden_bytes_validate_and_decode_to_the_minimal_request() {
    let bytes = hex(MINIMAL_REQUEST);
    assert_eq!(
        validate_write_request(&bytes).unwrap(),
        WriteSummary {
            series: 1,
            samples: 1,
            exemplars: 0,
            histograms: 0,
            metadata: 1,
        }
    );
    assert_eq!(WriteRequest::decode(&bytes[..]).unwrap(), minimal_request());
}

#[rustfmt::skip]
const EXEMPLAR_SERIES: &[&str] = &[
    "1a 1d",                        // TimeSeries.exemplars (3, LEN), 29 bytes
    "  0a 0f",                      //   Exemplar.labels (1, LEN), 15 bytes
    "    0a 08 74726163655f6964",   //     Label.name "trace_id"
    "    12 03 616263",             //     Label.value "abc"
    "  11 000000000000f03f",        //   Exemplar.value (2, fixed64) 1.0
    "  18 e807",                    //   Exemplar.timestamp (3, varint) 1000
    "22 00",                        // TimeSeries.histograms (4, LEN), an empty Histogram
];

#[test]
fn series_with_exemplar_and_histogram_encodes_to_golden_bytes() {
    let series = TimeSeries {
        exemplars: vec![Exemplar {
            labels: vec![Label::new("trace_id", "abc")],
            value: 1.0,
            timestamp: 1000,
        }],
        histograms: vec![Histogram::default()],
        ..TimeSeries::default()
    };
    assert_eq!(series.encode_to_vec(), hex(EXEMPLAR_SERIES));
    let req = WriteRequest {
        timeseries: vec![series],
        metadata: vec![],
    };
    let summary = validate_write_request(&req.encode_to_vec()).unwrap();
    assert_eq!((summary.exemplars, summary.histograms), (1, 1));
}

#[rustfmt::skip]
const INTEGER_HISTOGRAM: &[&str] = &[
    "08 03",                        // count_int (1, varint) 3
    "19 000000000000f03f",          // sum (3, fixed64) 1.0
    "20 01",                        // schema (4, varint, sint32) -1 -> zigzag 1
    "29 000000000000e03f",          // zero_threshold (5, fixed64) 0.5
    "30 01",                        // zero_count_int (6, varint) 1
    "42 04 0803 1001",              // negative_spans (8, LEN): offset -2 -> zigzag 3, length 1
    "4a 01 02",                     // negative_deltas (9, packed sint64) [1 -> 2]
    "5a 02 1002",                   // positive_spans (11, LEN): offset 0 (omitted), length 2
    "62 02 0201",                   // positive_deltas (12, packed sint64) [1 -> 2, -1 -> 1]
    "70 02",                        // reset_hint (14, varint) NO
    "78 e807",                      // timestamp (15, varint) 1000
];

#[test]
fn integer_histogram_encodes_to_golden_bytes() {
    let histogram = Histogram {
        count: Some(Count::CountInt(3)),
        sum: 1.0,
        schema: -1,
        zero_threshold: 0.5,
        zero_count: Some(ZeroCount::ZeroCountInt(1)),
        negative_spans: vec![BucketSpan {
            offset: -2,
            length: 1,
        }],
        negative_deltas: vec![1],
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1, -1],
        reset_hint: ResetHint::No as i32,
        timestamp: 1000,
        ..Histogram::default()
    };
    assert_eq!(histogram.encode_to_vec(), hex(INTEGER_HISTOGRAM));
}

#[rustfmt::skip]
const FLOAT_HISTOGRAM: &[&str] = &[
    "11 0000000000000040",          // count_float (2, fixed64) 2.0
    "39 000000000000e03f",          // zero_count_float (7, fixed64) 0.5
    "52 08 000000000000f03f",       // negative_counts (10, packed double) [1.0]
    "5a 04 0802 1001",              // positive_spans (11, LEN): offset 1 -> zigzag 2, length 1
    "6a 08 000000000000e03f",       // positive_counts (13, packed double) [0.5]
    "70 03",                        // reset_hint (14, varint) GAUGE
    "8201 08 000000000000f03f",     // custom_values (16, packed double; 2-byte key) [1.0]
];

#[test]
fn float_histogram_encodes_to_golden_bytes() {
    let histogram = Histogram {
        count: Some(Count::CountFloat(2.0)),
        zero_count: Some(ZeroCount::ZeroCountFloat(0.5)),
        negative_counts: vec![1.0],
        positive_spans: vec![BucketSpan {
            offset: 1,
            length: 1,
        }],
        positive_counts: vec![0.5],
        reset_hint: ResetHint::Gauge as i32,
        custom_values: vec![1.0],
        ..Histogram::default()
    };
    assert_eq!(histogram.encode_to_vec(), hex(FLOAT_HISTOGRAM));
}

#[test]
fn golden_histograms_validate_inside_a_request() {
    for histogram in [hex(INTEGER_HISTOGRAM), hex(FLOAT_HISTOGRAM)] {
        let series = [vec![0x22, histogram.len() as u8], histogram].concat();
        let req = [vec![0x0a, series.len() as u8], series].concat();
        let summary = validate_write_request(&req).unwrap();
        assert_eq!((summary.series, summary.histograms), (1, 1));
        assert!(WriteRequest::decode(&req[..]).is_ok());
    }
}

#[test]
fn concatenated_requests_decode_as_both_in_order() {
    let a = example_write_request(3, 2, 1_000);
    let b = minimal_request();
    let mut merged = Vec::new();
    merge_into(&mut merged, &a.encode_to_vec());
    merge_into(&mut merged, &b.encode_to_vec());

    let decoded = WriteRequest::decode(&merged[..]).unwrap();
    let expected = WriteRequest {
        timeseries: [a.timeseries.clone(), b.timeseries.clone()].concat(),
        metadata: [a.metadata.clone(), b.metadata.clone()].concat(),
    };
    assert_eq!(decoded, expected);

    let sum = |x: WriteSummary, y: WriteSummary| WriteSummary {
        series: x.series + y.series,
        samples: x.samples + y.samples,
        exemplars: x.exemplars + y.exemplars,
        histograms: x.histograms + y.histograms,
        metadata: x.metadata + y.metadata,
    };
    assert_eq!(
        validate_write_request(&merged).unwrap(),
        sum(WriteSummary::of(&a), WriteSummary::of(&b))
    );
}

#[test]
fn example_request_survives_snappy_validation_and_decoding() {
    let req = example_write_request(1000, 10, 1_700_000_000_000);
    let body = compress(&req.encode_to_vec());
    let decompressed = decompress_bounded(&body, 16 << 20).unwrap();
    assert_eq!(
        validate_write_request(&decompressed).unwrap(),
        WriteSummary {
            series: 1000,
            samples: 10_000,
            ..WriteSummary::default()
        }
    );
    assert_eq!(decode_write_request(&decompressed).unwrap(), req);
}

#[test]
fn decode_write_request_reports_prost_errors_as_protobuf() {
    let err = decode_write_request(&[0x0a, 0x05]).unwrap_err();
    assert!(matches!(err, WireError::Decode(_)), "{err:?}");
    assert_eq!(err.reason(), "protobuf");
}
