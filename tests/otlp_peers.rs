//! OTLP end to end with a real client: the OpenTelemetry Python SDK and its OTLP/HTTP exporter
//! (tests/otlp/push.py, in the virtualenv scripts/fetch-python-tools.sh makes) pushes counters,
//! gauges with units, a histogram, an exponential histogram and a summary through promrelay into
//! VictoriaMetrics and a Prometheus receiver. Every series name, label and value is checked by
//! querying them back. Fails (never skips) when the virtualenv or a peer is missing.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::relay::Relay;
use common::{EVENTUALLY_TIMEOUT, Labels, Peers, eventually};

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".peers/python/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/fetch-python-tools.sh",
        python.display()
    );
    python
}

/// Runs the Python client against the relay; panics with its output unless it succeeded.
async fn push_with_the_python_sdk(relay: &Relay) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/push.py");
    let run = tokio::process::Command::new(python())
        .arg(&script)
        .arg(relay.url())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the Python client finishes within 2 minutes")
        .expect("the Python client starts");
    assert!(
        output.status.success(),
        "the Python client failed ({}):\n{}\n{}\nrelay log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        relay.log_tail()
    );
}

fn labels(name: &str, extra: &[(&str, &str)]) -> Labels {
    let mut l: Labels = [
        ("__name__", name),
        ("job", "shop/shop-api"),
        ("instance", "i-1"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    l.retain(|_, v| !v.is_empty());
    l
}

/// Every float series the client's pushes become, with its last value: names as Prometheus 3
/// translates them (unit suffixes, `_total`, `_ratio`, `_bucket{le}`, `quantile`), `job` and
/// `instance` from the service attributes, the other resource attributes on `target_info`.
fn expected_float_series() -> BTreeMap<Labels, f64> {
    let sdk_info = [
        ("deployment_environment", "e2e"),
        ("telemetry_sdk_language", "python"),
        ("telemetry_sdk_name", "opentelemetry"),
        ("telemetry_sdk_version", "1.45.2"),
    ];
    [
        (labels("app_requests_total", &[("http_method", "GET")]), 7.0),
        (labels("app_sent_bytes_total", &[]), 1024.0),
        (labels("app_queue_size", &[]), 3.0),
        (labels("app_temperature_celsius", &[("room", "lab")]), 21.5),
        (labels("app_cpu_utilization_ratio", &[]), 0.25),
        (
            labels("app_duration_milliseconds_bucket", &[("le", "10")]),
            1.0,
        ),
        (
            labels("app_duration_milliseconds_bucket", &[("le", "100")]),
            2.0,
        ),
        (
            labels("app_duration_milliseconds_bucket", &[("le", "+Inf")]),
            3.0,
        ),
        (labels("app_duration_milliseconds_sum", &[]), 555.0),
        (labels("app_duration_milliseconds_count", &[]), 3.0),
        (
            labels("app_rpc_duration_seconds", &[("quantile", "0.5")]),
            0.4,
        ),
        (
            labels("app_rpc_duration_seconds", &[("quantile", "0.99")]),
            0.9,
        ),
        (labels("app_rpc_duration_seconds_sum", &[]), 2.0),
        (labels("app_rpc_duration_seconds_count", &[]), 4.0),
        (labels("app_json_gauge_meters", &[]), 17.0),
        (labels("target_info", &sdk_info), 1.0),
        (
            labels("target_info", &[("deployment_environment", "e2e")]),
            1.0,
        ),
    ]
    .into_iter()
    .collect()
}

#[tokio::test]
async fn the_python_sdk_pushes_every_kind_through_the_relay_into_victoria_metrics_and_prometheus() {
    let python = python();
    assert!(python.exists());
    let vm = Peers::victoria_metrics().start().await;
    let prometheus = Peers::prometheus_receiver()
        .arg("--enable-feature=native-histograms")
        .start()
        .await;
    let relay = Relay::with_storages(&[vm.remote_write_url(), prometheus.remote_write_url()])
        .start()
        .await;

    push_with_the_python_sdk(&relay).await;

    let expected = expected_float_series();
    let selector = r#"{job="shop/shop-api"}"#;
    let held = vm.export_at_least(selector, expected.len()).await;
    let got: BTreeMap<Labels, f64> = held
        .iter()
        .map(|s| (s.labels.clone(), *s.values().last().expect("a sample")))
        .collect();
    assert_eq!(got, expected, "VictoriaMetrics holds exactly these series");

    // The exponential histogram is a native histogram: Prometheus (with native histograms
    // on) holds it with the SDK's count and sum.
    let histogram = eventually(
        "prometheus to hold app_latency_seconds",
        EVENTUALLY_TIMEOUT,
        || async {
            let (status, body) = prometheus
                .get("/api/v1/query?query=app_latency_seconds")
                .await;
            let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            match json["data"]["result"].as_array() {
                Some(r) if status == 200 && r.len() == 1 => Ok(r[0].clone()),
                _ => Err(body),
            }
        },
    )
    .await;
    assert_eq!(histogram["metric"]["job"], "shop/shop-api");
    assert_eq!(histogram["metric"]["instance"], "i-1");
    let h = &histogram["histogram"][1];
    assert_eq!(h["count"], "3", "{histogram}");
    assert_eq!(h["sum"], "7", "{histogram}");
    let buckets = h["buckets"].as_array().expect("buckets");
    let in_buckets: f64 = buckets
        .iter()
        .map(|b| b[3].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(in_buckets, 3.0, "{histogram}");
    // And a float series made it to Prometheus as well, with the same labels.
    let counter = prometheus
        .raw_samples_at_least("app_requests_total", 1)
        .await;
    assert_eq!(
        counter[0].labels,
        labels("app_requests_total", &[("http_method", "GET")])
    );
}
