//! Realistic, deterministic remote-write requests for tests, benchmarks and load generation.

use super::{Label, Sample, TimeSeries, WriteRequest};

const METRICS: &[&str] = &[
    "http_requests_total",
    "http_request_duration_seconds_count",
    "grpc_server_handled_total",
    "apiserver_request_total",
    "nginx_ingress_controller_requests",
];
const CLUSTERS: &[&str] = &["eu-west-1-prod", "us-east-1-prod", "ap-south-1-staging"];
const ENVS: &[&str] = &["production", "staging"];
const HANDLERS: &[&str] = &[
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/write",
    "/api/v1/series",
    "/api/v1/labels",
    "/metrics",
    "/healthz",
    "/checkout/cart",
];
const JOBS: &[&str] = &[
    "api-gateway",
    "checkout",
    "payments",
    "frontend",
    "kube-apiserver",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
const NAMESPACES: &[&str] = &["default", "monitoring", "shop", "kube-system"];
const STATUSES: &[&str] = &[
    "200", "201", "204", "301", "400", "404", "429", "500", "502", "503",
];

/// A realistic remote-write request: `series` distinct series of 10 labels each, shaped like what
/// Prometheus sends for HTTP counters (`http_requests_total{cluster, env, handler, instance, job,
/// method, namespace, pod, status}`), each with `samples_per_series` float samples 15 s apart from
/// `t0_ms` (milliseconds since the Unix epoch) on.
///
/// Deterministic (same arguments, same bytes), labels sorted by name as Prometheus sends them,
/// every series' label set unique, values increasing like counters. No exemplars, histograms or
/// metadata. 1,000 series of 10 samples encode to about 0.5 MB of protobuf.
pub fn example_write_request(series: usize, samples_per_series: usize, t0_ms: i64) -> WriteRequest {
    let timeseries = (0..series)
        .map(|i| {
            let pick = |list: &[&'static str], stride: usize| list[(i / stride) % list.len()];
            let job = pick(JOBS, 1);
            let labels = vec![
                Label::new("__name__", pick(METRICS, 7)),
                Label::new("cluster", pick(CLUSTERS, 11)),
                Label::new("env", pick(ENVS, 13)),
                Label::new("handler", pick(HANDLERS, 3)),
                Label::new(
                    "instance",
                    format!("10.{}.{}.{}:8080", (i >> 16) & 255, (i >> 8) & 255, i & 255),
                ),
                Label::new("job", job),
                Label::new("method", pick(METHODS, 5)),
                Label::new("namespace", pick(NAMESPACES, 17)),
                Label::new(
                    "pod",
                    format!(
                        "{job}-{:08x}-{:05}",
                        (i as u32).wrapping_mul(2_654_435_761),
                        i
                    ),
                ),
                Label::new("status", pick(STATUSES, 2)),
            ];
            let rate = 1.0 + (i % 23) as f64 * 0.75;
            let samples = (0..samples_per_series)
                .map(|j| Sample {
                    value: (i * 1000) as f64 + j as f64 * rate,
                    timestamp: t0_ms + j as i64 * 15_000,
                })
                .collect();
            TimeSeries {
                labels,
                samples,
                ..TimeSeries::default()
            }
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn example_request_has_the_asked_shape() {
        let req = example_write_request(1000, 10, 1_700_000_000_000);
        assert_eq!(req.timeseries.len(), 1000);
        for ts in &req.timeseries {
            assert_eq!(ts.labels.len(), 10);
            assert_eq!(ts.samples.len(), 10);
            assert_eq!(ts.samples[1].timestamp - ts.samples[0].timestamp, 15_000);
        }
        assert_eq!(req.timeseries[0].samples[0].timestamp, 1_700_000_000_000);
    }

    #[test]
    fn example_series_are_unique_with_sorted_labels() {
        let req = example_write_request(5000, 1, 0);
        let mut seen = HashSet::new();
        for ts in &req.timeseries {
            assert!(ts.labels.windows(2).all(|w| w[0].name < w[1].name));
            assert!(seen.insert(ts.labels.clone()), "duplicate series");
        }
    }

    #[test]
    fn example_request_is_deterministic() {
        assert_eq!(
            example_write_request(50, 3, 1000),
            example_write_request(50, 3, 1000)
        );
    }

    #[test]
    fn example_samples_increase_like_counters() {
        let req = example_write_request(30, 5, 0);
        for ts in &req.timeseries {
            assert!(ts.samples.windows(2).all(|w| w[0].value < w[1].value));
        }
    }
}
