//! OTLP translation, in OTLP data points per second, on a realistic push: one resource (service
//! attributes and a few others, as an SDK sends), 10,000 data points: 4,000 gauge and 4,000
//! cumulative counter points with 4 attributes each, 1,000 explicit-bucket histogram points of
//! 10 buckets and 1,000 exponential histogram points of 20 buckets.
//!
//! `translate` is the translation alone (`ExportMetricsServiceRequest` to a remote-write
//! `WriteRequest`); `ingest_protobuf` and `ingest_json` are what the endpoint does per push:
//! decode the body, translate, encode the `WriteRequest` and compress it as the queues' snappy
//! block.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    exponential_histogram_data_point::Buckets, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use promrelay::otlp::{Format, Settings, decode_request, translate};
use promrelay::prompb::compress;
use prost::Message;

const T_NS: u64 = 1_700_000_000_000_000_000;
const POINTS: u64 = 10_000;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn attrs(i: usize) -> Vec<KeyValue> {
    vec![
        kv("http.route", &format!("/api/v1/item/{}", i % 50)),
        kv("http.request.method", ["GET", "POST"][i % 2]),
        kv("http.response.status_code", ["200", "404", "500"][i % 3]),
        kv("server.address", &format!("backend-{}", i % 7)),
    ]
}

fn number(i: usize) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs(i),
        time_unix_nano: T_NS,
        start_time_unix_nano: T_NS - 60_000_000_000,
        value: Some(number_data_point::Value::AsDouble(i as f64)),
        ..Default::default()
    }
}

fn metrics() -> Vec<Metric> {
    let mut out = Vec::new();
    for m in 0..20 {
        out.push(Metric {
            name: format!("app.gauge.{m}"),
            unit: "By".to_owned(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: (0..200).map(number).collect(),
            })),
            ..Default::default()
        });
        out.push(Metric {
            name: format!("app.requests.{m}"),
            unit: "{request}".to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: (0..200).map(number).collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        });
    }
    for m in 0..10 {
        out.push(Metric {
            name: format!("http.server.request.duration.{m}"),
            unit: "s".to_owned(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: (0..100)
                    .map(|i| HistogramDataPoint {
                        attributes: attrs(i),
                        time_unix_nano: T_NS,
                        count: 55,
                        sum: Some(12.5),
                        bucket_counts: (0..10).collect(),
                        explicit_bounds: (1..10).map(|b| f64::from(b) * 0.05).collect(),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        });
        out.push(Metric {
            name: format!("rpc.latency.{m}"),
            unit: "ms".to_owned(),
            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: (0..100)
                    .map(|i| ExponentialHistogramDataPoint {
                        attributes: attrs(i),
                        time_unix_nano: T_NS,
                        count: 190,
                        sum: Some(1234.5),
                        scale: 3,
                        positive: Some(Buckets {
                            offset: 10,
                            bucket_counts: (0..20).collect(),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        });
    }
    out
}

fn request() -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("service.namespace", "shop"),
                    kv("service.instance.id", "pod-7f9c"),
                    kv("host.name", "node-12"),
                    kv("telemetry.sdk.language", "go"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: metrics(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn otlp(c: &mut Criterion) {
    let req = request();
    let settings = Settings::default();
    let protobuf = req.encode_to_vec();
    let json = serde_json::to_vec(&req).expect("the request serialises");
    let t = translate(&req, &settings);
    assert_eq!(t.accepted_points, POINTS);
    eprintln!(
        "request: {POINTS} data points, {} bytes of protobuf, {} bytes of JSON -> {} series",
        protobuf.len(),
        json.len(),
        t.request.timeseries.len()
    );

    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(POINTS));
    group.bench_function("translate", |b| {
        b.iter(|| translate(black_box(&req), &settings))
    });
    for (name, body, format) in [
        ("ingest_protobuf", &protobuf, Format::Protobuf),
        ("ingest_json", &json, Format::Json),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let req = decode_request(black_box(body), format).expect("a valid body");
                let t = translate(&req, &settings);
                compress(&t.request.encode_to_vec())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, otlp);
criterion_main!(benches);
