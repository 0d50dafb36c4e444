//! Unit tests of the OTLP translation, one behaviour each. Names are pinned against Prometheus'
//! own translator test tables (tests/fixtures/otlptranslator, with provenance and licence).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge,
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    Summary, SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric,
    number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::*;
use crate::prompb::{Label, TimeSeries, histogram};

const T_NS: u64 = 1_700_000_000_123_456_789;
const T_MS: i64 = 1_700_000_000_123;

fn kind_from(name: &str) -> MetricKind {
    match name {
        "MetricTypeMonotonicCounter" => MetricKind::MonotonicCounter,
        "MetricTypeNonMonotonicCounter" => MetricKind::NonMonotonicCounter,
        "MetricTypeGauge" => MetricKind::Gauge,
        "MetricTypeHistogram" => MetricKind::Histogram,
        "MetricTypeExponentialHistogram" => MetricKind::ExponentialHistogram,
        "MetricTypeSummary" => MetricKind::Summary,
        _ => MetricKind::Unknown,
    }
}

#[test]
fn metric_names_match_prometheus_translator_cases() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../tests/fixtures/otlptranslator/metric_names.json"
    ))
    .unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() > 50, "the fixture holds the whole table");
    for c in cases {
        let namer = MetricNamer {
            namespace: c["namespace"].as_str().unwrap().to_string(),
            with_suffixes: c["with_suffixes"].as_bool().unwrap(),
        };
        let got = namer.build(
            c["name"].as_str().unwrap(),
            c["unit"].as_str().unwrap(),
            kind_from(c["type"].as_str().unwrap()),
        );
        let want_error = c["want_error"].as_str().unwrap();
        match got {
            Ok(name) => {
                assert!(
                    want_error.is_empty(),
                    "{}: wanted error {want_error:?}",
                    c["case"]
                );
                assert_eq!(name, c["want"].as_str().unwrap(), "{}", c["case"]);
            }
            Err(e) => assert_eq!(e.to_string(), want_error, "{}", c["case"]),
        }
    }
}

#[test]
fn label_names_match_prometheus_translator_cases() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../tests/fixtures/otlptranslator/label_names.json"
    ))
    .unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    for c in cases {
        let label = c["label"].as_str().unwrap();
        match label_name(label) {
            Ok(name) => assert_eq!(name, c["want"].as_str().unwrap(), "{label:?}"),
            Err(e) => assert_eq!(
                e.to_string(),
                c["want_error"].as_str().unwrap(),
                "{label:?}"
            ),
        }
    }
}

#[test]
fn units_are_recorded_in_prometheus_words() {
    assert_eq!(unit_name("s"), "seconds");
    assert_eq!(unit_name("By/s"), "bytes_per_second");
    assert_eq!(unit_name("1"), "");
    assert_eq!(unit_name("{request}"), "");
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn service_resource() -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", "checkout"),
            kv("service.namespace", "shop"),
            kv("service.instance.id", "pod-1"),
            kv("host.name", "node-a"),
        ],
        ..Default::default()
    }
}

fn request_of(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(service_resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "my.library".to_string(),
                    version: "1.0".to_string(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn number(value: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: T_NS,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_string(),
        unit: unit.to_string(),
        description: format!("{name} help"),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

fn sum(
    name: &str,
    monotonic: bool,
    temporality: AggregationTemporality,
    points: Vec<NumberDataPoint>,
) -> Metric {
    Metric {
        name: name.to_string(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality as i32,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    }
}

/// `name{labels}` of each series, with its one float sample.
fn samples(t: &Translation) -> Vec<(String, f64, i64)> {
    t.request
        .timeseries
        .iter()
        .filter(|s| !s.samples.is_empty())
        .map(|s| (series_name(s), s.samples[0].value, s.samples[0].timestamp))
        .collect()
}

fn series_name(s: &TimeSeries) -> String {
    let name = s
        .labels
        .iter()
        .find(|l| l.name == "__name__")
        .map_or("", |l| l.value.as_str());
    let rest: Vec<String> = s
        .labels
        .iter()
        .filter(|l| l.name != "__name__" && l.name != "job" && l.name != "instance")
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{name}{{{}}}", rest.join(","))
}

#[test]
fn a_gauge_with_a_unit_gets_the_unit_suffix_and_job_instance_from_the_service() {
    let t = translate(
        &request_of(vec![gauge(
            "memory.usage",
            "By",
            vec![number(42.0, vec![kv("state", "used")])],
        )]),
        &Settings::default(),
    );
    let series = &t.request.timeseries[0];
    assert_eq!(
        series.labels,
        vec![
            Label::new("__name__", "memory_usage_bytes"),
            Label::new("instance", "pod-1"),
            Label::new("job", "shop/checkout"),
            Label::new("state", "used"),
        ]
    );
    assert_eq!(series.samples[0].value, 42.0);
    assert_eq!(series.samples[0].timestamp, T_MS);
    assert_eq!(t.accepted_points, 1);
    assert_eq!(t.rejected_points, 0);
}

#[test]
fn a_gauge_with_unit_1_gets_ratio() {
    let t = translate(
        &request_of(vec![gauge(
            "cpu.utilization",
            "1",
            vec![number(0.5, vec![])],
        )]),
        &Settings::default(),
    );
    assert_eq!(samples(&t)[0].0, "cpu_utilization_ratio{}");
}

#[test]
fn a_monotonic_cumulative_sum_is_a_counter_with_total() {
    let mut p = number(0.0, vec![]);
    p.value = Some(number_data_point::Value::AsInt(7));
    let t = translate(
        &request_of(vec![sum(
            "http.requests",
            true,
            AggregationTemporality::Cumulative,
            vec![p],
        )]),
        &Settings::default(),
    );
    assert_eq!(samples(&t)[0].0, "http_requests_total{}");
    assert_eq!(samples(&t)[0].1, 7.0);
    let meta = t
        .request
        .metadata
        .iter()
        .find(|m| m.metric_family_name == "http_requests_total")
        .unwrap();
    assert_eq!(
        meta.r#type,
        crate::prompb::metric_metadata::MetricType::Counter as i32
    );
}

#[test]
fn a_non_monotonic_sum_is_a_gauge_without_total() {
    let t = translate(
        &request_of(vec![sum(
            "queue.size",
            false,
            AggregationTemporality::Cumulative,
            vec![number(3.0, vec![])],
        )]),
        &Settings::default(),
    );
    assert_eq!(samples(&t)[0].0, "queue_size{}");
}

#[test]
fn a_delta_sum_is_refused_with_the_reason_and_the_rest_is_kept() {
    let t = translate(
        &request_of(vec![
            sum(
                "delta.requests",
                true,
                AggregationTemporality::Delta,
                vec![number(1.0, vec![]), number(2.0, vec![])],
            ),
            gauge("kept", "", vec![number(1.0, vec![])]),
        ]),
        &Settings::default(),
    );
    assert_eq!(t.rejected_points, 2);
    assert_eq!(t.accepted_points, 1);
    assert!(
        t.message()
            .contains("invalid temporality and type combination for metric \"delta.requests\""),
        "{}",
        t.message()
    );
    assert!(t.message().contains("delta"), "{}", t.message());
    assert!(samples(&t).iter().all(|s| !s.0.starts_with("delta")));
}

#[test]
fn a_histogram_becomes_cumulative_buckets_sum_and_count() {
    let h = Metric {
        name: "http.server.duration".to_string(),
        unit: "ms".to_string(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: T_NS,
                count: 6,
                sum: Some(123.5),
                bucket_counts: vec![1, 2, 3],
                explicit_bounds: vec![10.0, 100.0],
                exemplars: vec![Exemplar {
                    time_unix_nano: T_NS,
                    trace_id: vec![0xab; 16],
                    span_id: vec![0xcd; 8],
                    value: Some(exemplar::Value::AsDouble(50.0)),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    let t = translate(&request_of(vec![h]), &Settings::default());
    let got: Vec<(String, f64)> = samples(&t)
        .into_iter()
        .filter(|s| !s.0.starts_with("target_info"))
        .map(|s| (s.0, s.1))
        .collect();
    assert_eq!(
        got,
        vec![
            ("http_server_duration_milliseconds_sum{}".to_string(), 123.5),
            ("http_server_duration_milliseconds_count{}".to_string(), 6.0),
            (
                "http_server_duration_milliseconds_bucket{le=\"10\"}".to_string(),
                1.0
            ),
            (
                "http_server_duration_milliseconds_bucket{le=\"100\"}".to_string(),
                3.0
            ),
            (
                "http_server_duration_milliseconds_bucket{le=\"+Inf\"}".to_string(),
                6.0
            ),
        ]
    );
    let with_exemplar: Vec<&TimeSeries> = t
        .request
        .timeseries
        .iter()
        .filter(|s| !s.exemplars.is_empty())
        .collect();
    assert_eq!(with_exemplar.len(), 1);
    assert_eq!(
        series_name(with_exemplar[0]),
        "http_server_duration_milliseconds_bucket{le=\"100\"}"
    );
    assert_eq!(
        with_exemplar[0].exemplars[0].labels,
        vec![
            Label::new("span_id", "cdcdcdcdcdcdcdcd"),
            Label::new("trace_id", "ab".repeat(16))
        ]
    );
}

#[test]
fn an_exponential_histogram_becomes_a_native_histogram() {
    let m = Metric {
        name: "latency".to_string(),
        unit: "s".to_string(),
        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                time_unix_nano: T_NS,
                count: 10,
                sum: Some(4.5),
                scale: 2,
                zero_count: 1,
                positive: Some(Buckets {
                    offset: 0,
                    bucket_counts: vec![4, 3, 2],
                }),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    let t = translate(&request_of(vec![m]), &Settings::default());
    let s = t
        .request
        .timeseries
        .iter()
        .find(|s| !s.histograms.is_empty())
        .unwrap();
    assert_eq!(series_name(s), "latency_seconds{}");
    let h = &s.histograms[0];
    assert_eq!(h.schema, 2);
    assert_eq!(h.count, Some(histogram::Count::CountInt(10)));
    assert_eq!(h.zero_count, Some(histogram::ZeroCount::ZeroCountInt(1)));
    assert_eq!(h.sum, 4.5);
    assert_eq!(h.positive_deltas, vec![4, -1, -1]);
    assert_eq!(h.positive_spans[0].offset, 1);
    assert_eq!(h.timestamp, T_MS);
    assert_eq!(t.histograms, 1);
}

#[test]
fn a_summary_becomes_quantile_series_sum_and_count() {
    let m = Metric {
        name: "rpc.duration".to_string(),
        unit: "s".to_string(),
        data: Some(metric::Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                time_unix_nano: T_NS,
                count: 4,
                sum: 2.0,
                quantile_values: vec![
                    ValueAtQuantile {
                        quantile: 0.5,
                        value: 0.4,
                    },
                    ValueAtQuantile {
                        quantile: 0.99,
                        value: 0.9,
                    },
                ],
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let t = translate(&request_of(vec![m]), &Settings::default());
    let got: Vec<(String, f64)> = samples(&t)
        .into_iter()
        .filter(|s| !s.0.starts_with("target_info"))
        .map(|s| (s.0, s.1))
        .collect();
    assert_eq!(
        got,
        vec![
            ("rpc_duration_seconds_sum{}".to_string(), 2.0),
            ("rpc_duration_seconds_count{}".to_string(), 4.0),
            ("rpc_duration_seconds{quantile=\"0.5\"}".to_string(), 0.4),
            ("rpc_duration_seconds{quantile=\"0.99\"}".to_string(), 0.9),
        ]
    );
}

#[test]
fn target_info_carries_the_other_resource_attributes() {
    let t = translate(
        &request_of(vec![gauge("g", "", vec![number(1.0, vec![])])]),
        &Settings::default(),
    );
    let info = t
        .request
        .timeseries
        .iter()
        .find(|s| s.labels.iter().any(|l| l.value == "target_info"))
        .unwrap();
    assert_eq!(
        info.labels,
        vec![
            Label::new("__name__", "target_info"),
            Label::new("host_name", "node-a"),
            Label::new("instance", "pod-1"),
            Label::new("job", "shop/checkout"),
        ]
    );
    assert_eq!(info.samples[0].value, 1.0);
    assert_eq!(info.samples[0].timestamp, T_MS);
}

#[test]
fn no_recorded_value_becomes_the_stale_marker() {
    let mut p = number(5.0, vec![]);
    p.flags = 1;
    let t = translate(
        &request_of(vec![gauge("g", "", vec![p])]),
        &Settings::default(),
    );
    assert_eq!(samples(&t)[0].1.to_bits(), STALE_NAN_BITS);
}

#[test]
fn colliding_attribute_keys_are_joined_with_semicolons() {
    let t = translate(
        &request_of(vec![gauge(
            "g",
            "",
            vec![number(1.0, vec![kv("a.b", "1"), kv("a_b", "2")])],
        )]),
        &Settings::default(),
    );
    assert_eq!(samples(&t)[0].0, "g{a_b=\"1;2\"}");
}

#[test]
fn promoted_resource_attributes_label_every_series() {
    let settings = Settings {
        promote_resource_attributes: vec!["host.name".to_string()],
        ..Settings::default()
    };
    let t = translate(
        &request_of(vec![gauge("g", "", vec![number(1.0, vec![])])]),
        &settings,
    );
    assert_eq!(samples(&t)[0].0, "g{host_name=\"node-a\"}");
}

#[test]
fn names_as_sent_skips_suffixes() {
    let settings = Settings {
        namer: MetricNamer {
            namespace: String::new(),
            with_suffixes: false,
        },
        ..Settings::default()
    };
    let t = translate(
        &request_of(vec![sum(
            "http.requests",
            true,
            AggregationTemporality::Cumulative,
            vec![number(1.0, vec![])],
        )]),
        &settings,
    );
    assert_eq!(samples(&t)[0].0, "http_requests{}");
}

#[test]
fn the_translation_decodes_as_a_remote_write_request() {
    let t = translate(
        &request_of(vec![gauge(
            "g",
            "By",
            vec![number(1.0, vec![kv("k", "v")])],
        )]),
        &Settings::default(),
    );
    let bytes = prost::Message::encode_to_vec(&t.request);
    let summary = crate::prompb::validate_write_request(&bytes).unwrap();
    assert_eq!(summary.samples, t.samples);
}

#[test]
fn json_bodies_follow_the_otlp_json_mapping() {
    let body = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
      "scopeMetrics":[{"scope":{"name":"s"},"metrics":[{"name":"jobs","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,
      "dataPoints":[{"asInt":"5","timeUnixNano":"1700000000123456789","exemplars":[{"asDouble":1.5,"timeUnixNano":"1700000000123456789",
      "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}}]}]}]}"#;
    let req = decode_request(body, Format::Json).unwrap();
    let t = translate(&req, &Settings::default());
    let s = &t.request.timeseries[0];
    assert_eq!(series_name(s), "jobs_total{}");
    assert_eq!(s.samples[0].value, 5.0);
    assert_eq!(s.samples[0].timestamp, T_MS);
    assert_eq!(
        s.exemplars[0].labels[1],
        Label::new("trace_id", "5b8efff798038103d269b633813fc60c")
    );
}

#[test]
fn a_malformed_protobuf_body_is_a_decode_error() {
    assert!(decode_request(b"\x0a\xff\xff", Format::Protobuf).is_err());
}

#[test]
fn a_response_with_refusals_carries_partial_success() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    let body = encode_response(3, "why", Format::Protobuf);
    let r = <ExportMetricsServiceResponse as prost::Message>::decode(body.as_slice()).unwrap();
    let p = r.partial_success.unwrap();
    assert_eq!(
        (p.rejected_data_points, p.error_message.as_str()),
        (3, "why")
    );
    assert_eq!(encode_response(0, "", Format::Json), b"{}");
}

#[test]
fn translation_stops_past_max_output_bytes() {
    let settings = Settings {
        max_output_bytes: 300,
        ..Settings::default()
    };
    let points = (0..50)
        .map(|i| number(f64::from(i), vec![kv("i", &i.to_string())]))
        .collect();
    let t = translate(&request_of(vec![gauge("g", "", points)]), &settings);
    assert!(t.over_limit);
    assert!(t.request.timeseries.len() < 50);
    let small = translate(
        &request_of(vec![gauge("g", "", vec![number(1.0, vec![])])]),
        &Settings::default(),
    );
    assert!(!small.over_limit);
    assert_eq!(
        small.encoded_bytes,
        prost::Message::encoded_len(&small.request) - metadata_len(&small)
    );
}

/// Bytes of the metadata entries (field 3), which the output bound does not count.
fn metadata_len(t: &Translation) -> usize {
    t.request
        .metadata
        .iter()
        .map(|m| {
            let n = prost::Message::encoded_len(m);
            1 + prost::encoding::encoded_len_varint(n as u64) + n
        })
        .sum()
}

#[test]
fn json_bodies_may_write_64_bit_integers_as_numbers() {
    let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":
      {"dataPoints":[{"asInt":5,"timeUnixNano":1700000000123456789}]}}]}]}]}"#;
    let req = decode_request(body, Format::Json).unwrap();
    let t = translate(&req, &Settings::default());
    assert_eq!(samples(&t), vec![("g{}".to_string(), 5.0, T_MS)]);
}
