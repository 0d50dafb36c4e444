//! OTLP/HTTP pushes are answered as OTLP/HTTP specifies, and every refusal (malformed bodies,
//! unknown content types and encodings, bombs, delta temporality) leaves the queues untouched.

mod common;

use std::io::Write;

use common::relay::{FakeStorage, Pushes, Relay};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use promrelay::otlp::Status;
use prost::Message;

const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON: (&str, &str) = ("content-type", "application/json");

fn now_ns() -> u64 {
    u64::try_from(common::now_ms()).expect("after 1970") * 1_000_000
}

fn point(value: f64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: now_ns(),
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn gauge(name: &str, value: f64) -> Metric {
    Metric {
        name: name.to_owned(),
        unit: "By".to_owned(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![point(value)],
        })),
        ..Default::default()
    }
}

fn counter(name: &str, temporality: AggregationTemporality, points: usize) -> Metric {
    Metric {
        name: name.to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points: (0..points).map(|i| point(i as f64)).collect(),
            aggregation_temporality: temporality as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".to_owned(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("svc".to_owned())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

async fn post(relay: &Relay, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    let mut req = common::http_client()
        .post(format!("{}{path}", relay.url()))
        .body(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("the relay answers");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Answer {
        status: resp.status().as_u16(),
        content_type: header("content-type").unwrap_or_default(),
        body: resp.bytes().await.expect("a body").to_vec(),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// `body` with `headers` is refused with `status` and a `google.rpc.Status` naming the reason
/// (`reason_has`); then nothing is queued: the queue is empty and a good push sent afterwards is
/// the only thing the storage receives.
async fn assert_refused_and_nothing_queued(
    relay_flags: &[&str],
    body: Vec<u8>,
    headers: &[(&str, &str)],
    status: u16,
    reason_has: &str,
) {
    let storage = FakeStorage::new().start().await;
    let mut relay = Relay::with_storages(&[storage.url()]);
    for flag in relay_flags {
        relay = relay.arg(*flag);
    }
    let relay = relay.start().await;

    let answer = post(&relay, "/opentelemetry/v1/metrics", body, headers).await;

    assert_eq!(
        answer.status,
        status,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    let message = if answer.content_type == "application/json" {
        let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("a JSON Status");
        json["message"].as_str().expect("a message").to_owned()
    } else {
        assert_eq!(answer.content_type, "application/x-protobuf");
        Status::decode(answer.body.as_slice())
            .expect("a protobuf Status")
            .message
    };
    assert!(
        message.contains(reason_has),
        "{message:?} names {reason_has:?}"
    );
    let queue = relay.queue(0).await;
    assert_eq!(queue["pending_blocks"], 0, "{queue}");
    let sentinel = Pushes::new("otlp_ingest_sentinel", 1, 1);
    relay.push_accepted(&sentinel.request(0)).await;
    storage
        .samples_at_least(sentinel.metric(), sentinel.sample_count())
        .await;
    assert_eq!(
        storage.requests().len(),
        1,
        "only the good push reached the storage"
    );
}

#[tokio::test]
async fn a_protobuf_push_is_answered_with_an_empty_export_response_and_reaches_the_storage() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;

    let answer = post(
        &relay,
        "/api/v1/otlp/v1/metrics",
        request(vec![gauge("disk.free", 123.0)]).encode_to_vec(),
        &[PROTOBUF],
    )
    .await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/x-protobuf");
    let response = ExportMetricsServiceResponse::decode(answer.body.as_slice()).unwrap();
    assert_eq!(response.partial_success, None);
    let series = storage.samples_at_least("disk_free_bytes", 1).await;
    assert_eq!(series[0].label("job"), Some("svc"));
    assert_eq!(series[0].values(), vec![123.0]);
}

#[tokio::test]
async fn a_gzip_json_push_on_vmagents_path_is_answered_in_json() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let body = serde_json::to_vec(&request(vec![gauge("json.gauge", 7.0)])).unwrap();

    let answer = post(
        &relay,
        "/opentelemetry/api/v1/push",
        gzip(&body),
        &[JSON, ("content-encoding", "gzip")],
    )
    .await;

    assert_eq!(
        answer.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(answer.body, b"{}");
    let series = storage.samples_at_least("json_gauge_bytes", 1).await;
    assert_eq!(series[0].values(), vec![7.0]);
}

#[tokio::test]
async fn delta_points_are_refused_as_a_partial_success_and_the_rest_is_queued() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let body = request(vec![
        counter("delta.requests", AggregationTemporality::Delta, 2),
        gauge("kept", 1.0),
    ]);

    let answer = post(
        &relay,
        "/opentelemetry/v1/metrics",
        body.encode_to_vec(),
        &[PROTOBUF],
    )
    .await;

    assert_eq!(answer.status, 200);
    let partial = ExportMetricsServiceResponse::decode(answer.body.as_slice())
        .unwrap()
        .partial_success
        .expect("a partial success");
    assert_eq!(partial.rejected_data_points, 2);
    assert!(
        partial.error_message.contains("\"delta.requests\"")
            && partial.error_message.contains("delta temporality"),
        "{}",
        partial.error_message
    );
    storage.samples_at_least("kept_bytes", 1).await;
    assert!(storage.series("delta_requests_total").is_empty());
}

#[tokio::test]
async fn refused_points_of_an_accepted_request_are_counted_in_metrics() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let body = request(vec![
        counter("delta.requests", AggregationTemporality::Delta, 3),
        gauge("kept", 1.0),
    ]);

    let answer = post(
        &relay,
        "/opentelemetry/v1/metrics",
        body.encode_to_vec(),
        &[PROTOBUF],
    )
    .await;

    assert_eq!(answer.status, 200);
    let (status, metrics) = relay.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.lines().any(
            |l| l == "promrelay_ingest_dropped_samples_total{reason=\"otlp_refused_points\"} 3"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_of_only_delta_points_is_refused_with_400() {
    let body = request(vec![counter(
        "delta.requests",
        AggregationTemporality::Delta,
        3,
    )]);

    assert_refused_and_nothing_queued(&[], body.encode_to_vec(), &[PROTOBUF], 400, "delta").await;
}

#[tokio::test]
async fn a_malformed_protobuf_body_is_refused_with_400() {
    let garbage = b"\x0a\xff\xff\xff\x0fnot protobuf".to_vec();

    assert_refused_and_nothing_queued(&[], garbage, &[PROTOBUF], 400, "protobuf").await;
}

#[tokio::test]
async fn a_malformed_json_body_is_refused_with_a_json_status() {
    let garbage = br#"{"resourceMetrics": [{"scopeMetrics": 12}]}"#.to_vec();

    assert_refused_and_nothing_queued(&[], garbage, &[JSON], 400, "JSON").await;
}

#[tokio::test]
async fn an_unknown_content_type_is_refused_with_415() {
    let body = request(vec![gauge("g", 1.0)]).encode_to_vec();

    assert_refused_and_nothing_queued(
        &[],
        body,
        &[("content-type", "text/plain")],
        415,
        "text/plain",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_content_encoding_is_refused_with_415() {
    let body = request(vec![gauge("g", 1.0)]).encode_to_vec();

    assert_refused_and_nothing_queued(
        &[],
        body,
        &[PROTOBUF, ("content-encoding", "br")],
        415,
        "br",
    )
    .await;
}

#[tokio::test]
async fn a_gzip_bomb_is_refused_with_413() {
    let bomb = gzip(&vec![0u8; 8 << 20]);

    assert_refused_and_nothing_queued(
        &["--max-request-bytes", "1MiB"],
        bomb,
        &[PROTOBUF, ("content-encoding", "gzip")],
        413,
        "max-request-bytes",
    )
    .await;
}

#[tokio::test]
async fn a_push_that_translates_into_a_huge_request_is_refused_with_413() {
    // 36 KiB of protobuf (under the limit): one histogram point of 2,000 buckets with 4 KiB of attributes, which
    // becomes 2,000 series of 4 KiB of labels each (8 MiB, past 4 times the 64 KiB limit).
    let attributes = (0..20)
        .map(|i| KeyValue {
            key: format!("attribute_{i}"),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("v".repeat(200))),
            }),
            ..Default::default()
        })
        .collect();
    let histogram = Metric {
        name: "wide".to_owned(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes,
                time_unix_nano: now_ns(),
                count: 2_000,
                bucket_counts: vec![1; 2_000],
                explicit_bounds: (1..2_000).map(f64::from).collect(),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    let body = request(vec![histogram]).encode_to_vec();
    assert!(body.len() < 48 << 10, "{} bytes", body.len());

    assert_refused_and_nothing_queued(
        &["--max-request-bytes", "64KiB"],
        body,
        &[PROTOBUF],
        413,
        "smaller batches",
    )
    .await;
}
