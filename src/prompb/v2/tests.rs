//! The 2.0 converter, one behaviour per test. Requests are built with the generated prost types
//! (`proto`) and encoded by prost, never by hand, unless the test is about bytes prost would not
//! write.

use prost::Message;

use super::proto::{self, metadata::MetricType};
use super::*;
use crate::prompb::{Label, WireError, WriteRequest, decode_write_request, histogram};

const LIMIT: usize = 1 << 20;

/// 2.0 requests in the tests' shorthand: labels as `(name, value)` pairs, samples as
/// `(value, timestamp)`.
#[derive(Default)]
struct Request {
    b: RequestBuilder,
}

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()
}

impl Request {
    fn new() -> Self {
        Self::default()
    }

    fn sym(&mut self, s: &str) -> u32 {
        self.b.symbol(s)
    }

    fn refs(&mut self, pairs: &[(&str, &str)]) -> Vec<u32> {
        self.b.label_refs(&labels(pairs))
    }

    fn series(mut self, pairs: &[(&str, &str)], samples: &[(f64, i64)]) -> Self {
        self.b.series(&labels(pairs)).samples = samples
            .iter()
            .map(|&(value, timestamp)| proto::Sample {
                value,
                timestamp,
                start_timestamp: 0,
            })
            .collect();
        self
    }

    fn last(&mut self) -> &mut proto::TimeSeries {
        self.b.last()
    }

    fn req(&mut self) -> &mut proto::Request {
        self.b.request_mut()
    }

    fn bytes(&self) -> Vec<u8> {
        self.b.request().encode_to_vec()
    }
}

fn convert_ok(bytes: &[u8]) -> (WriteRequest, V2Summary) {
    let mut out = Vec::new();
    let summary = convert(bytes, LIMIT, &mut out).expect("converts");
    (
        decode_write_request(&out).expect("1.0 output decodes"),
        summary,
    )
}

fn convert_err(bytes: &[u8]) -> V2Error {
    let mut out = Vec::new();
    convert(bytes, LIMIT, &mut out).expect_err("refused")
}

fn exponential_histogram(timestamp: i64) -> proto::Histogram {
    proto::Histogram {
        count: Some(proto::histogram::Count::CountInt(5)),
        sum: 12.5,
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: Some(proto::histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![proto::BucketSpan {
            offset: -2,
            length: 2,
        }],
        positive_deltas: vec![3, -2],
        reset_hint: 2,
        timestamp,
        start_timestamp: timestamp - 60_000,
        ..Default::default()
    }
}

#[test]
fn labels_are_resolved_in_the_order_sent_with_their_samples() {
    let bytes = Request::new()
        .series(
            &[("__name__", "up"), ("instance", "a:9100"), ("job", "node")],
            &[(1.0, 1_700_000_000_000), (0.0, 1_700_000_015_000)],
        )
        .series(&[("__name__", "up"), ("job", "api")], &[(1.0, -5)])
        .bytes();

    let (got, summary) = convert_ok(&bytes);

    assert_eq!(got.timeseries.len(), 2);
    assert_eq!(
        got.timeseries[0].labels,
        vec![
            Label::new("__name__", "up"),
            Label::new("instance", "a:9100"),
            Label::new("job", "node")
        ]
    );
    let samples: Vec<_> = got.timeseries[0]
        .samples
        .iter()
        .map(|s| (s.value, s.timestamp))
        .collect();
    assert_eq!(
        samples,
        [(1.0, 1_700_000_000_000), (0.0, 1_700_000_015_000)]
    );
    assert_eq!(got.timeseries[1].samples[0].timestamp, -5);
    assert_eq!((summary.series, summary.samples), (2, 3));
}

#[test]
fn stale_markers_keep_their_bits() {
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let bytes = Request::new()
        .series(&[("__name__", "gone")], &[(stale, 7)])
        .bytes();
    let (got, _) = convert_ok(&bytes);
    assert_eq!(
        got.timeseries[0].samples[0].value.to_bits(),
        0x7ff0_0000_0000_0002
    );
}

#[test]
fn exemplars_are_kept_with_their_labels() {
    let mut r = Request::new().series(&[("__name__", "req_total")], &[(3.0, 10)]);
    let labels_refs = r.refs(&[("trace_id", "abc123")]);
    r.last().exemplars.push(proto::Exemplar {
        labels_refs,
        value: 0.25,
        timestamp: 9,
    });

    let (got, summary) = convert_ok(&r.bytes());

    let e = &got.timeseries[0].exemplars;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].labels, vec![Label::new("trace_id", "abc123")]);
    assert_eq!((e[0].value, e[0].timestamp), (0.25, 9));
    assert_eq!(summary.exemplars, 1);
}

#[test]
fn native_histograms_become_1_0_histograms_field_for_field() {
    let mut r = Request::new().series(&[("__name__", "latency_seconds")], &[]);
    r.last().histograms.push(exponential_histogram(1000));

    let (got, summary) = convert_ok(&r.bytes());

    let h = &got.timeseries[0].histograms[0];
    assert_eq!(h.count, Some(histogram::Count::CountInt(5)));
    assert_eq!((h.sum, h.schema, h.zero_threshold), (12.5, 3, 1e-128));
    assert_eq!(h.zero_count, Some(histogram::ZeroCount::ZeroCountInt(1)));
    assert_eq!(
        (h.positive_spans[0].offset, h.positive_spans[0].length),
        (-2, 2)
    );
    assert_eq!(h.positive_deltas, vec![3, -2]);
    assert_eq!((h.reset_hint, h.timestamp), (2, 1000));
    assert_eq!((summary.histograms, summary.samples), (1, 0));
}

#[test]
fn start_timestamps_which_1_0_cannot_carry_are_left_out() {
    let mut r = Request::new().series(&[("__name__", "c_total")], &[]);
    r.last().samples.push(proto::Sample {
        value: 4.0,
        timestamp: 2000,
        start_timestamp: 1000,
    });
    r.last().histograms.push(exponential_histogram(2000));
    let mut out = Vec::new();
    convert(&r.bytes(), LIMIT, &mut out).unwrap();

    // Re-encoding what prost decodes drops unknown fields: equal bytes mean none were written.
    let decoded = decode_write_request(&out).unwrap();
    assert_eq!(decoded.encode_to_vec().len(), out.len());
    assert_eq!(decoded.timeseries[0].samples[0].timestamp, 2000);
}

#[test]
fn custom_bucket_histograms_are_dropped_counted_and_named() {
    let mut r = Request::new().series(&[("__name__", "nhcb"), ("job", "x")], &[]);
    r.last().histograms.push(proto::Histogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        custom_values: vec![0.1, 1.0],
        positive_spans: vec![proto::BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_deltas: vec![1, 0, 0],
        timestamp: 5,
        ..Default::default()
    });
    r.last().histograms.push(exponential_histogram(6));
    let r = r.series(&[("__name__", "only_nhcb")], &[]);
    let mut r = r;
    r.last().histograms.push(proto::Histogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        timestamp: 5,
        ..Default::default()
    });

    let (got, summary) = convert_ok(&r.bytes());

    assert_eq!(got.timeseries.len(), 1, "a series left empty is left out");
    assert_eq!(got.timeseries[0].histograms.len(), 1);
    assert_eq!(got.timeseries[0].histograms[0].schema, 3);
    assert_eq!(summary.histograms, 1);
    assert_eq!(summary.dropped_custom_bucket_histograms, 2);
    assert_eq!(
        summary.first_dropped_series.as_deref(),
        Some(r#"{__name__="nhcb", job="x"}"#)
    );
}

#[test]
fn metadata_becomes_family_metadata_once_per_family() {
    let mut r = Request::new();
    for (name, le) in [("rpc_seconds_bucket", "1"), ("rpc_seconds_bucket", "+Inf")] {
        r = r.series(&[("__name__", name), ("le", le)], &[(1.0, 1)]);
        let (help_ref, unit_ref) = (r.sym("RPC latency."), r.sym("seconds"));
        r.last().metadata = Some(proto::Metadata {
            r#type: MetricType::Histogram as i32,
            help_ref,
            unit_ref,
        });
    }
    r = r.series(&[("__name__", "rpc_seconds_count")], &[(2.0, 1)]);
    r.last().metadata = Some(proto::Metadata {
        r#type: MetricType::Histogram as i32,
        help_ref: 0,
        unit_ref: 0,
    });
    r = r.series(&[("__name__", "no_info")], &[(2.0, 1)]);
    r.last().metadata = Some(proto::Metadata::default());

    let (got, summary) = convert_ok(&r.bytes());

    assert_eq!(got.metadata.len(), 1, "{:?}", got.metadata);
    let m = &got.metadata[0];
    assert_eq!(m.metric_family_name, "rpc_seconds");
    assert_eq!(
        m.r#type,
        crate::prompb::metric_metadata::MetricType::Histogram as i32
    );
    assert_eq!(
        (m.help.as_str(), m.unit.as_str()),
        ("RPC latency.", "seconds")
    );
    assert_eq!(summary.metadata, 1);
}

#[test]
fn removed_created_timestamp_and_unknown_fields_are_skipped() {
    let mut r = Request::new().series(&[("__name__", "x")], &[(1.0, 2)]);
    let mut ts = r.req().timeseries[0].encode_to_vec();
    ts.extend([6 << 3, 0x96, 0x01]); // created_timestamp = 150, an int64 removed from the schema
    ts.extend([(15 << 3) | 2, 2, b'h', b'i']); // an unknown length-delimited field (15)
    let mut bytes = Vec::new();
    for s in &r.req().symbols {
        prost::encoding::string::encode(4, s, &mut bytes);
    }
    prost::encoding::bytes::encode(5, &ts, &mut bytes);
    bytes.extend([(1 << 3), 1]); // reserved field 1 of Request, as a 1.0 body would carry

    let (got, summary) = convert_ok(&bytes);

    assert_eq!(got.timeseries[0].labels, vec![Label::new("__name__", "x")]);
    assert_eq!(summary.samples, 1);
}

#[test]
fn an_empty_request_converts_to_an_empty_1_0_request() {
    let (got, summary) = convert_ok(&[]);
    assert_eq!(got, WriteRequest::default());
    assert_eq!(summary, V2Summary::default());
}

#[test]
fn a_label_ref_past_the_symbols_is_refused_naming_the_series() {
    let mut r = Request::new()
        .series(&[("__name__", "ok")], &[(1.0, 1)])
        .series(&[("__name__", "bad")], &[(1.0, 1)]);
    r.last().labels_refs[1] = 99;
    let err = convert_err(&r.bytes());
    assert_eq!(
        err,
        V2Error::RefOutOfRange {
            series: 1,
            field: "TimeSeries.labels_refs",
            reference: 99,
            symbols: 4,
        }
    );
    assert!(!err.is_too_large());
}

#[test]
fn an_odd_number_of_label_refs_is_refused() {
    let mut r = Request::new().series(&[("__name__", "x")], &[(1.0, 1)]);
    r.last().labels_refs.push(1);
    assert!(matches!(
        convert_err(&r.bytes()),
        V2Error::OddLabelRefs {
            series: 0,
            len: 3,
            ..
        }
    ));
}

#[test]
fn exemplar_label_refs_out_of_range_or_odd_are_refused() {
    let mut r = Request::new().series(&[("__name__", "x")], &[(1.0, 1)]);
    r.last().exemplars.push(proto::Exemplar {
        labels_refs: vec![1, 500],
        ..Default::default()
    });
    assert!(matches!(
        convert_err(&r.bytes()),
        V2Error::RefOutOfRange {
            field: "Exemplar.labels_refs",
            reference: 500,
            ..
        }
    ));
    r.last().exemplars[0].labels_refs = vec![1];
    assert!(matches!(
        convert_err(&r.bytes()),
        V2Error::OddLabelRefs {
            field: "Exemplar.labels_refs",
            ..
        }
    ));
}

#[test]
fn help_and_unit_refs_out_of_range_are_refused() {
    let mut r = Request::new().series(&[("__name__", "x")], &[(1.0, 1)]);
    r.last().metadata = Some(proto::Metadata {
        r#type: 1,
        help_ref: 0,
        unit_ref: 1234,
    });
    assert!(matches!(
        convert_err(&r.bytes()),
        V2Error::RefOutOfRange {
            field: "Metadata.unit_ref",
            reference: 1234,
            ..
        }
    ));
}

#[test]
fn a_first_symbol_that_is_not_empty_is_refused() {
    let mut r = Request::new().series(&[("__name__", "x")], &[(1.0, 1)]);
    r.req().symbols[0] = "oops".into();
    assert_eq!(
        convert_err(&r.bytes()),
        V2Error::FirstSymbolNotEmpty { len: 4 }
    );
}

#[test]
fn series_without_any_symbols_are_refused() {
    let mut r = Request::new().series(&[], &[(1.0, 1)]);
    r.req().symbols.clear();
    assert_eq!(convert_err(&r.bytes()), V2Error::NoSymbols { series: 1 });
}

#[test]
fn malformed_protobuf_is_refused_with_its_offset() {
    let mut bytes = Request::new()
        .series(&[("__name__", "x")], &[(1.0, 1)])
        .bytes();
    bytes.truncate(bytes.len() - 1);
    assert!(matches!(convert_err(&bytes), V2Error::Wire(_)));
    let not_utf8 = [0x22, 0x02, 0xff, 0xfe];
    assert!(matches!(
        convert_err(&not_utf8),
        V2Error::Wire(WireError::InvalidUtf8 { offset: 2, .. })
    ));
}

#[test]
fn a_few_symbols_referenced_many_times_stop_at_the_limit() {
    // A 64 KiB symbol used as the value of 1,000 labels: under 2 KiB of refs that would expand to
    // 64 MiB of 1.0 labels.
    let mut r = Request::new();
    let big = r.sym(&"v".repeat(64 << 10));
    let name = r.sym("n");
    r.req().timeseries.push(proto::TimeSeries {
        labels_refs: [name, big].repeat(1000),
        samples: vec![proto::Sample::default()],
        ..Default::default()
    });
    let mut out = Vec::new();
    let err = convert(&r.bytes(), LIMIT, &mut out).unwrap_err();
    assert_eq!(err, V2Error::TooLarge { limit: LIMIT });
    assert!(err.is_too_large());
    assert!(out.capacity() <= 2 * LIMIT, "stopped near the limit");
}

#[test]
fn more_label_refs_than_could_fit_are_refused_before_they_are_stored() {
    let mut r = Request::new();
    r.req().timeseries.push(proto::TimeSeries {
        labels_refs: vec![0; 3000],
        ..Default::default()
    });
    let mut out = Vec::new();
    let err = Converter::new()
        .convert(&r.bytes(), 6000, &mut out)
        .unwrap_err();
    assert_eq!(err, V2Error::TooLarge { limit: 6000 });
}

#[test]
fn a_converter_reused_after_a_refusal_converts_the_next_request_alone() {
    let mut c = Converter::new();
    let mut out = Vec::new();
    let mut bad = Request::new().series(&[("__name__", "a")], &[(1.0, 1)]);
    bad.last().labels_refs.push(7);
    assert!(c.convert(&bad.bytes(), LIMIT, &mut out).is_err());
    let good = Request::new().series(&[("__name__", "b")], &[(2.0, 2)]);
    let summary = c.convert(&good.bytes(), LIMIT, &mut out).unwrap();
    let got = decode_write_request(&out).unwrap();
    assert_eq!(got.timeseries.len(), 1);
    assert_eq!(got.timeseries[0].labels, vec![Label::new("__name__", "b")]);
    assert_eq!(summary.samples, 1);
}
