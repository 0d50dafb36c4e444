//! Remote-write 2.0 in: bodies encoded by prost from the official 2.0 schema (the generated
//! `promrelay::prompb::v2::proto` types, never our own encoder) pushed into the real relay, which
//! converts them to 1.0 for real VictoriaMetrics and Prometheus and for the fake storage. Every
//! answer carries the `X-Prometheus-Remote-Write-*-Written` headers with exact counts; every
//! refusal leaves nothing queued.

mod common;

use common::relay::{FakeStorage, Pushes, Relay, assert_holds_exactly};
use common::{Peers, Prometheus, VictoriaMetrics, http_client};
use promrelay::prompb::v2::{RequestBuilder, proto};
use promrelay::prompb::{self, Label, WriteRequest};
use prost::Message;

const V2_CONTENT_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// The headers Prometheus 3 sends with a 2.0 push.
const V2_HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", V2_CONTENT_TYPE),
    ("X-Prometheus-Remote-Write-Version", "2.0.0"),
];

/// A relay's answer to one push: status, the three `-Written` headers (None when absent), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    written: [Option<u64>; 3],
    body: String,
}

impl Answer {
    /// The samples, histograms and exemplars the headers say were written.
    fn written(&self) -> [u64; 3] {
        self.written
            .map(|n| n.unwrap_or_else(|| panic!("a -Written header is missing: {self:?}")))
    }
}

/// POSTs `body` with `headers` to the relay's remote-write path.
async fn post(relay: &Relay, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    post_to(relay, "/api/v1/write", body, headers).await
}

/// POSTs `body` with `headers` to `path` on the relay.
async fn post_to(relay: &Relay, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    let mut request = http_client()
        .post(format!("{}{path}", relay.url()))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("push to the relay");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ASCII header").parse().expect("a count"))
    };
    let written = [
        header("X-Prometheus-Remote-Write-Samples-Written"),
        header("X-Prometheus-Remote-Write-Histograms-Written"),
        header("X-Prometheus-Remote-Write-Exemplars-Written"),
    ];
    let status = response.status().as_u16();
    let body = response.text().await.expect("read the answer");
    Answer {
        status,
        written,
        body,
    }
}

/// A 2.0 request being built, encoded by prost from the generated types.
#[derive(Default)]
struct V2 {
    b: RequestBuilder,
}

impl V2 {
    fn new() -> Self {
        Self::default()
    }

    fn sym(&mut self, s: &str) -> u32 {
        self.b.symbol(s)
    }

    fn refs(&mut self, labels: &[Label]) -> Vec<u32> {
        self.b.label_refs(labels)
    }

    /// The 2.0 form of a 1.0 request's series and samples.
    fn from_v1(request: &WriteRequest) -> Self {
        V2 {
            b: RequestBuilder::from(request),
        }
    }

    fn last(&mut self) -> &mut proto::TimeSeries {
        self.b.last()
    }

    fn req(&mut self) -> &mut proto::Request {
        self.b.request_mut()
    }

    fn protobuf(&self) -> Vec<u8> {
        self.b.request().encode_to_vec()
    }

    fn snappy(&self) -> Vec<u8> {
        prompb::compress(&self.protobuf())
    }
}

/// Pushes `pushes` as 2.0 requests, each answered 204 with every sample counted as written.
async fn push_all_as_v2(relay: &Relay, pushes: &Pushes) {
    for request in pushes.requests() {
        let samples: usize = request.timeseries.iter().map(|t| t.samples.len()).sum();
        let answer = post(relay, V2::from_v1(&request).snappy(), &V2_HEADERS).await;
        assert_eq!(answer.status, 204, "{answer:?}\n{}", relay.log_tail());
        assert_eq!(answer.written(), [samples as u64, 0, 0], "{answer:?}");
    }
}

/// Real VictoriaMetrics and a real Prometheus receiver, and a relay forwarding to both.
async fn relay_to_victoria_metrics_and_prometheus() -> (VictoriaMetrics, Prometheus, Relay) {
    let (vm, prometheus) = tokio::join!(
        Peers::victoria_metrics().start(),
        Peers::prometheus_receiver().start()
    );
    let relay = Relay::with_storages(&[vm.remote_write_url(), prometheus.remote_write_url()])
        .start()
        .await;
    (vm, prometheus, relay)
}

#[tokio::test]
async fn remote_write_2_0_reaches_victoria_metrics_and_prometheus_exactly() {
    let (vm, prometheus, relay) = relay_to_victoria_metrics_and_prometheus().await;
    let pushes = Pushes::new("rw2_fanout", 40, 25);

    push_all_as_v2(&relay, &pushes).await;

    let expected = pushes.expected();
    let at_vm = vm
        .export_at_least(pushes.metric(), pushes.sample_count())
        .await;
    assert_holds_exactly("victoria-metrics", &at_vm, &expected);
    let at_prometheus = prometheus
        .raw_samples_at_least(pushes.metric(), pushes.sample_count())
        .await;
    assert_holds_exactly("prometheus", &at_prometheus, &expected);
    for queue in relay.wait_until_drained().await {
        assert_eq!(queue["sent_samples_total"], 40 * 25, "{queue}");
        assert_eq!(queue["rejected_blocks_total"], 0, "{queue}");
    }
}

#[tokio::test]
async fn labels_with_any_text_reach_victoria_metrics_and_prometheus_as_sent() {
    let (vm, prometheus, relay) = relay_to_victoria_metrics_and_prometheus().await;
    let now = common::now_ms();
    let mut v2 = V2::new();
    let labels = [
        Label::new("__name__", "rw2_text"),
        Label::new("city", "Zürich"),
        Label::new("path", "/a b/\"quoted\"\\"),
        Label::new("zone", "東京"),
    ];
    let labels_refs = v2.refs(&labels);
    v2.req().timeseries.push(proto::TimeSeries {
        labels_refs,
        samples: vec![proto::Sample {
            value: -1.5e-3,
            timestamp: now,
            start_timestamp: now - 3_600_000,
        }],
        ..Default::default()
    });

    let answer = post(&relay, v2.snappy(), &V2_HEADERS).await;

    assert_eq!(
        (answer.status, answer.written()),
        (204, [1, 0, 0]),
        "{answer:?}"
    );
    let expected = vec![common::Series {
        labels: labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect(),
        samples: vec![(now, -1.5e-3)],
    }];
    let at_vm = vm.export_at_least("rw2_text", 1).await;
    assert_holds_exactly("victoria-metrics", &at_vm, &expected);
    let at_prometheus = prometheus.raw_samples_at_least("rw2_text", 1).await;
    assert_holds_exactly("prometheus", &at_prometheus, &expected);
}

#[tokio::test]
async fn histograms_exemplars_and_metadata_arrive_as_1_0() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let mut v2 = V2::new();
    let labels = [
        Label::new("__name__", "rw2_latency_seconds"),
        Label::new("job", "api"),
    ];
    let labels_refs = v2.refs(&labels);
    let (help_ref, unit_ref) = (v2.sym("Request latency."), v2.sym("seconds"));
    let exemplar_refs = v2.refs(&[Label::new("trace_id", "4bf92f3577b34da6")]);
    v2.req().timeseries.push(proto::TimeSeries {
        labels_refs,
        histograms: vec![proto::Histogram {
            count: Some(proto::histogram::Count::CountInt(4)),
            sum: 1.25,
            schema: 1,
            zero_threshold: 1e-128,
            zero_count: Some(proto::histogram::ZeroCount::ZeroCountInt(1)),
            positive_spans: vec![proto::BucketSpan {
                offset: 0,
                length: 2,
            }],
            positive_deltas: vec![2, -1],
            timestamp: 1_700_000_000_000,
            ..Default::default()
        }],
        exemplars: vec![proto::Exemplar {
            labels_refs: exemplar_refs,
            value: 0.3,
            timestamp: 1_700_000_000_000,
        }],
        metadata: Some(proto::Metadata {
            r#type: proto::metadata::MetricType::Histogram as i32,
            help_ref,
            unit_ref,
        }),
        ..Default::default()
    });

    let answer = post(&relay, v2.snappy(), &V2_HEADERS).await;

    assert_eq!(
        (answer.status, answer.written()),
        (204, [0, 1, 1]),
        "{answer:?}"
    );
    let received = common::eventually(
        "the fake storage to receive the push",
        std::time::Duration::from_secs(10),
        || async {
            storage
                .accepted_requests()
                .pop()
                .ok_or_else(|| "nothing yet".to_owned())
        },
    )
    .await;
    let ts = &received.timeseries[0];
    assert_eq!(ts.labels, labels);
    let h = &ts.histograms[0];
    assert_eq!((h.schema, h.sum, h.timestamp), (1, 1.25, 1_700_000_000_000));
    assert_eq!(h.positive_deltas, vec![2, -1]);
    assert_eq!(
        ts.exemplars[0].labels,
        vec![Label::new("trace_id", "4bf92f3577b34da6")]
    );
    let m = &received.metadata[0];
    assert_eq!(
        (
            m.metric_family_name.as_str(),
            m.help.as_str(),
            m.unit.as_str()
        ),
        ("rw2_latency_seconds", "Request latency.", "seconds")
    );
}

#[tokio::test]
async fn custom_bucket_histograms_are_dropped_counted_and_left_out_of_the_headers() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let mut v2 = V2::from_v1(&Pushes::new("rw2_nhcb_floats", 1, 2).request(0));
    let labels_refs = v2.refs(&[Label::new("__name__", "rw2_nhcb")]);
    v2.req().timeseries.push(proto::TimeSeries {
        labels_refs,
        histograms: vec![proto::Histogram {
            schema: -53,
            custom_values: vec![0.1, 1.0],
            positive_spans: vec![proto::BucketSpan {
                offset: 0,
                length: 3,
            }],
            positive_deltas: vec![1, 1, 0],
            count: Some(proto::histogram::Count::CountInt(5)),
            timestamp: common::now_ms(),
            ..Default::default()
        }],
        ..Default::default()
    });

    let answer = post(&relay, v2.snappy(), &V2_HEADERS).await;

    assert_eq!(
        (answer.status, answer.written()),
        (204, [2, 0, 0]),
        "{answer:?}"
    );
    storage.samples_at_least("rw2_nhcb_floats", 2).await;
    let received = storage.accepted_requests();
    assert!(
        received
            .iter()
            .flat_map(|r| &r.timeseries)
            .all(|t| t.histograms.is_empty()),
        "{received:?}"
    );
    let (_, metrics) = relay.get("/metrics").await;
    assert!(
        metrics.contains(
            "promrelay_ingest_dropped_samples_total{reason=\"custom_buckets_histogram\"} 1\n"
        ),
        "{metrics}"
    );
    assert!(
        relay.log().contains("rw2_nhcb"),
        "the log names the series:\n{}",
        relay.log_tail()
    );
}

#[tokio::test]
async fn zstd_and_gzip_2_0_bodies_are_converted_too() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let pushes = Pushes::new("rw2_zstd", 2, 3);
    let bodies = [
        (
            "zstd",
            zstd::encode_all(&V2::from_v1(&pushes.request(0)).protobuf()[..], 3).expect("zstd"),
        ),
        ("gzip", {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&V2::from_v1(&pushes.request(1)).protobuf())
                .expect("gzip");
            gz.finish().expect("gzip")
        }),
    ];

    for (encoding, body) in bodies {
        let headers = [
            ("Content-Encoding", encoding),
            ("Content-Type", V2_CONTENT_TYPE),
        ];
        let answer = post(&relay, body, &headers).await;
        assert_eq!(
            (answer.status, answer.written()),
            (204, [3, 0, 0]),
            "{encoding}: {answer:?}"
        );
    }

    let held = storage
        .samples_at_least(pushes.metric(), pushes.sample_count())
        .await;
    assert_holds_exactly("the fake storage", &held, &pushes.expected());
}

#[tokio::test]
async fn a_2_0_push_to_a_tenant_path_keeps_its_tenant() {
    let vminsert = FakeStorage::new().start().await;
    let relay = Relay::with_storages::<&str>(&[])
        .multitenant_storage(&vminsert.base_url())
        .start()
        .await;
    let pushes = Pushes::new("rw2_tenant", 1, 4);
    let body = V2::from_v1(&pushes.request(0)).snappy();

    let answer = post_to(
        &relay,
        "/insert/3:4/prometheus/api/v1/write",
        body,
        &V2_HEADERS,
    )
    .await;

    assert_eq!(
        (answer.status, answer.written()),
        (204, [4, 0, 0]),
        "{answer:?}"
    );
    let by_path = common::eventually(
        "the tenant's samples at the fake vminsert",
        std::time::Duration::from_secs(10),
        || async {
            let by_path = vminsert.series_by_path(pushes.metric());
            if by_path.is_empty() {
                Err("nothing yet".to_owned())
            } else {
                Ok(by_path)
            }
        },
    )
    .await;
    assert_eq!(
        by_path.keys().collect::<Vec<_>>(),
        ["/insert/3:4/prometheus/api/v1/write"]
    );
    assert_holds_exactly(
        "the tenant",
        &by_path["/insert/3:4/prometheus/api/v1/write"],
        &pushes.expected(),
    );
}

/// Sends `body` as 2.0 with `headers`, expects `status` with zero `-Written` headers and a
/// one-line reason, and shows nothing was queued: the queue is empty and a good push sent
/// afterwards is the only thing the storage receives.
async fn assert_refused_and_nothing_queued(
    relay_flags: &[&str],
    body: Vec<u8>,
    headers: &[(&str, &str)],
    status: u16,
) -> String {
    let storage = FakeStorage::new().start().await;
    let mut relay = Relay::with_storages(&[storage.url()]);
    for flag in relay_flags {
        relay = relay.arg(*flag);
    }
    let relay = relay.start().await;

    let answer = post(&relay, body, headers).await;

    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.written(), [0, 0, 0], "{answer:?}");
    assert_eq!(answer.body.trim_end().lines().count(), 1, "{answer:?}");
    let queue = relay.queue(0).await;
    assert_eq!(queue["pending_blocks"], 0, "{queue}");
    let sentinel = Pushes::new("rw2_sentinel", 1, 1);
    push_all_as_v2(&relay, &sentinel).await;
    storage
        .samples_at_least(sentinel.metric(), sentinel.sample_count())
        .await;
    assert_eq!(storage.requests().len(), 1, "only the good push arrived");
    answer.body
}

fn one_series() -> V2 {
    V2::from_v1(&Pushes::new("rw2_refused", 1, 2).request(0))
}

#[tokio::test]
async fn a_label_ref_out_of_range_is_refused_with_400() {
    let mut v2 = one_series();
    v2.last().labels_refs[3] = 10_000;
    let reason = assert_refused_and_nothing_queued(&[], v2.snappy(), &V2_HEADERS, 400).await;
    assert!(
        reason.contains("series 1") && reason.contains("10000"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_odd_number_of_label_refs_is_refused_with_400() {
    let mut v2 = one_series();
    v2.last().labels_refs.pop();
    assert_refused_and_nothing_queued(&[], v2.snappy(), &V2_HEADERS, 400).await;
}

#[tokio::test]
async fn a_first_symbol_that_is_not_empty_is_refused_with_400() {
    let mut v2 = one_series();
    v2.req().symbols[0] = "x".into();
    assert_refused_and_nothing_queued(&[], v2.snappy(), &V2_HEADERS, 400).await;
}

#[tokio::test]
async fn undecodable_2_0_protobuf_is_refused_with_400() {
    let mut bytes = one_series().protobuf();
    bytes.truncate(bytes.len() - 2);
    let body = prompb::compress(&bytes);
    assert_refused_and_nothing_queued(&[], body, &V2_HEADERS, 400).await;
}

#[tokio::test]
async fn a_request_whose_1_0_form_is_over_the_limit_is_refused_with_413() {
    // 2 KiB of refs to one 16 KiB symbol: about 16 MiB once labels are resolved.
    let mut v2 = V2::new();
    let big = v2.sym(&"v".repeat(16 << 10));
    let name = v2.sym("n");
    v2.req().timeseries.push(proto::TimeSeries {
        labels_refs: [name, big].repeat(1000),
        samples: vec![proto::Sample::default()],
        ..Default::default()
    });
    let body = v2.snappy();
    assert!(body.len() < 64 << 10);
    assert_refused_and_nothing_queued(&["--max-request-bytes", "1MiB"], body, &V2_HEADERS, 413)
        .await;
}

#[tokio::test]
async fn an_unknown_encoding_of_a_2_0_body_is_refused_with_415_and_the_headers() {
    let headers = [
        ("Content-Encoding", "br"),
        ("Content-Type", V2_CONTENT_TYPE),
    ];
    assert_refused_and_nothing_queued(&[], one_series().snappy(), &headers, 415).await;
}

#[tokio::test]
async fn an_unknown_proto_message_is_refused_with_415_naming_what_is_accepted() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let headers = [
        ("Content-Encoding", "snappy"),
        (
            "Content-Type",
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        ),
    ];
    let answer = post(&relay, one_series().snappy(), &headers).await;
    assert_eq!(answer.status, 415, "{answer:?}");
    assert!(
        answer.body.contains("io.prometheus.write.v2.Request"),
        "{answer:?}"
    );
}
