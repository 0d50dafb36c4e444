//! Property tests: whatever a sender puts in a decoded request (any names, units, attribute
//! keys and values, scales, offsets, bucket counts, flags, temporalities, timestamps), the
//! translation does not panic, accounts for every data point, and yields a remote-write request
//! the prompb validator accepts, with legal, sorted, unique label names and no empty values.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric,
    number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;

use super::*;

/// Short strings from an alphabet that hits every escaping rule: letters, digits, `_`, `:`,
/// `.`, `/`, braces, spaces and a non-ASCII letter.
fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9_:./{} é]{0,12}").expect("a valid regex")
}

fn key_value() -> impl Strategy<Value = KeyValue> {
    let value = prop_oneof![
        text().prop_map(any_value::Value::StringValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        any::<f64>().prop_map(any_value::Value::DoubleValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(any_value::Value::BytesValue),
    ];
    (text(), proptest::option::of(value)).prop_map(|(key, value)| KeyValue {
        key,
        value: value.map(|v| AnyValue { value: Some(v) }),
        ..Default::default()
    })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(key_value(), 0..4)
}

fn time() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        any::<u64>(),
        1_600_000_000_000_000_000u64..1_800_000_000_000_000_000
    ]
}

fn exemplars() -> impl Strategy<Value = Vec<Exemplar>> {
    proptest::collection::vec(
        (
            any::<f64>(),
            time(),
            proptest::collection::vec(any::<u8>(), 0..17),
            attributes(),
        )
            .prop_map(|(v, t, id, attrs)| Exemplar {
                filtered_attributes: attrs,
                time_unix_nano: t,
                span_id: id.iter().take(8).copied().collect(),
                trace_id: id,
                value: Some(exemplar::Value::AsDouble(v)),
            }),
        0..3,
    )
}

fn number_points() -> impl Strategy<Value = Vec<NumberDataPoint>> {
    proptest::collection::vec(
        (
            attributes(),
            time(),
            0u32..4,
            any::<f64>(),
            any::<i64>(),
            exemplars(),
        )
            .prop_map(|(attributes, t, flags, d, i, exemplars)| NumberDataPoint {
                attributes,
                time_unix_nano: t,
                flags,
                exemplars,
                value: Some(if i % 2 == 0 {
                    number_data_point::Value::AsDouble(d)
                } else {
                    number_data_point::Value::AsInt(i)
                }),
                ..Default::default()
            }),
        0..4,
    )
}

fn buckets() -> impl Strategy<Value = Option<Buckets>> {
    proptest::option::of(
        (
            prop_oneof![any::<i32>(), -20i32..20],
            proptest::collection::vec(prop_oneof![any::<u64>(), 0u64..5], 0..12),
        )
            .prop_map(|(offset, bucket_counts)| Buckets {
                offset,
                bucket_counts,
            }),
    )
}

fn metric_data() -> impl Strategy<Value = metric::Data> {
    let temporality = 0i32..4;
    prop_oneof![
        number_points().prop_map(|data_points| metric::Data::Gauge(Gauge { data_points })),
        (number_points(), temporality.clone(), any::<bool>()).prop_map(|(p, t, m)| {
            metric::Data::Sum(Sum {
                data_points: p,
                aggregation_temporality: t,
                is_monotonic: m,
            })
        }),
        (
            proptest::collection::vec(
                (
                    attributes(),
                    time(),
                    any::<u64>(),
                    proptest::option::of(any::<f64>()),
                    proptest::collection::vec(any::<u64>(), 0..6),
                    proptest::collection::vec(any::<f64>(), 0..6),
                    exemplars(),
                    0u32..4,
                ),
                0..3
            ),
            temporality.clone()
        )
            .prop_map(|(points, t)| metric::Data::Histogram(Histogram {
                data_points: points
                    .into_iter()
                    .map(
                        |(a, time, count, sum, bc, eb, ex, flags)| HistogramDataPoint {
                            attributes: a,
                            time_unix_nano: time,
                            count,
                            sum,
                            bucket_counts: bc,
                            explicit_bounds: eb,
                            exemplars: ex,
                            flags,
                            ..Default::default()
                        }
                    )
                    .collect(),
                aggregation_temporality: t,
            })),
        (
            proptest::collection::vec(
                (
                    attributes(),
                    time(),
                    any::<u64>(),
                    prop_oneof![any::<i32>(), -6i32..12],
                    buckets(),
                    buckets(),
                    0u32..4
                ),
                0..3
            ),
            temporality
        )
            .prop_map(|(points, t)| {
                metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: points
                        .into_iter()
                        .map(|(a, time, count, scale, positive, negative, flags)| {
                            ExponentialHistogramDataPoint {
                                attributes: a,
                                time_unix_nano: time,
                                count,
                                scale,
                                positive,
                                negative,
                                flags,
                                ..Default::default()
                            }
                        })
                        .collect(),
                    aggregation_temporality: t,
                })
            }),
        proptest::collection::vec(
            (
                attributes(),
                time(),
                any::<u64>(),
                any::<f64>(),
                proptest::collection::vec((any::<f64>(), any::<f64>()), 0..3)
            ),
            0..3
        )
        .prop_map(|points| metric::Data::Summary(Summary {
            data_points: points
                .into_iter()
                .map(|(a, time, count, sum, q)| SummaryDataPoint {
                    attributes: a,
                    time_unix_nano: time,
                    count,
                    sum,
                    quantile_values: q
                        .into_iter()
                        .map(|(quantile, value)| ValueAtQuantile { quantile, value })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        })),
    ]
}

fn request() -> impl Strategy<Value = ExportMetricsServiceRequest> {
    let metric =
        (text(), text(), proptest::option::of(metric_data())).prop_map(|(name, unit, data)| {
            Metric {
                name,
                unit,
                data,
                ..Default::default()
            }
        });
    let resource =
        (attributes(), proptest::collection::vec(metric, 0..4)).prop_map(|(mut attrs, metrics)| {
            attrs.push(KeyValue {
                key: "service.name".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("svc".to_owned())),
                }),
                ..Default::default()
            });
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: attrs,
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }
        });
    proptest::collection::vec(resource, 0..3)
        .prop_map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
}

fn points_in(req: &ExportMetricsServiceRequest) -> u64 {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(metric::Data::Summary(s)) => s.data_points.len(),
            None => 0,
        } as u64)
        .sum()
}

fn legal_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn legal_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn translation_never_panics_and_yields_a_valid_remote_write_request(req in request()) {
        for settings in [Settings::default(), Settings {
            namer: MetricNamer { namespace: String::new(), with_suffixes: false },
            promote_resource_attributes: vec!["service.name".to_owned(), "a".to_owned()],
            ..Settings::default()
        }] {
            let t = translate(&req, &settings);
            prop_assert_eq!(t.accepted_points + t.rejected_points, points_in(&req));
            let bytes = prost::Message::encode_to_vec(&t.request);
            let summary = crate::prompb::validate_write_request(&bytes)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(summary.samples, t.samples);
            prop_assert_eq!(summary.histograms, t.histograms);
            for series in &t.request.timeseries {
                prop_assert!(series.labels.windows(2).all(|w| w[0].name < w[1].name), "{:?}", series.labels);
                for l in &series.labels {
                    prop_assert!(legal_label_name(&l.name), "{:?}", l);
                    prop_assert!(!l.value.is_empty(), "{:?}", l);
                    if l.name == "__name__" {
                        prop_assert!(legal_metric_name(&l.value), "{:?}", l);
                    }
                }
            }
        }
    }

    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(req) = decode_request(&bytes, Format::Protobuf) {
            translate(&req, &Settings::default());
        }
        let _ = decode_request(&bytes, Format::Json);
    }
}
