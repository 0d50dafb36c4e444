//! The real peers the end-to-end tests stand on start, answer, and hold data as the helpers in
//! `common` say. When one of these fails, fix the peer set-up (`scripts/fetch-peers.sh`,
//! `tests/common/mod.rs`) before reading any other end-to-end failure.

mod common;

use common::{Peers, http_client, now_ms};

#[tokio::test]
async fn victoria_metrics_starts_and_answers_health() {
    let vm = Peers::victoria_metrics().start().await;

    let (status, body) = vm.get("/health").await;

    assert_eq!((status, body.trim()), (200, "OK"));
}

#[tokio::test]
async fn prometheus_receiver_starts_and_reports_ready() {
    let prometheus = Peers::prometheus_receiver().start().await;

    let (status, _) = prometheus.get("/-/ready").await;

    assert_eq!(status, 200);
}

#[tokio::test]
async fn node_exporter_serves_its_metrics() {
    let node_exporter = Peers::node_exporter().start().await;

    let metrics = node_exporter.metrics_text().await;

    assert!(
        metrics.contains("node_exporter_build_info{"),
        "no build info among {} bytes of metrics",
        metrics.len()
    );
}

#[tokio::test]
async fn victoria_metrics_export_returns_the_samples_of_its_own_import() {
    let vm = Peers::victoria_metrics().start().await;
    let t = now_ms() - 10_000;

    vm.import_prometheus_text(&format!(
        "peers_roundtrip{{case=\"import\"}} 42 {t}\npeers_roundtrip{{case=\"import\"}} 43.5 {}\n",
        t + 1000
    ))
    .await;
    let series = vm.export_at_least("peers_roundtrip", 2).await;

    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0].name(), "peers_roundtrip");
    assert_eq!(series[0].label("case"), Some("import"));
    assert_eq!(series[0].samples, vec![(t, 42.0), (t + 1000, 43.5)]);
}

#[tokio::test]
async fn victoria_metrics_export_reads_infinite_values() {
    let vm = Peers::victoria_metrics().start().await;
    let t = now_ms();

    vm.import_prometheus_text(&format!(
        "peers_infinity{{sign=\"plus\"}} +Inf {t}\npeers_infinity{{sign=\"minus\"}} -Inf {t}\n"
    ))
    .await;
    let series = vm.export_at_least("peers_infinity", 2).await;

    let values: Vec<(Option<&str>, Vec<f64>)> = series
        .iter()
        .map(|s| (s.label("sign"), s.values()))
        .collect();
    assert_eq!(
        values,
        vec![
            (Some("minus"), vec![f64::NEG_INFINITY]),
            (Some("plus"), vec![f64::INFINITY])
        ]
    );
}

#[tokio::test]
async fn victoria_metrics_keeps_its_data_and_port_across_stop_and_start_again() {
    let mut vm = Peers::victoria_metrics().start().await;
    let url_before = vm.url();
    let t = now_ms();
    vm.import_prometheus_text(&format!("peers_outage 1 {t}\n"))
        .await;
    vm.export_at_least("peers_outage", 1).await;

    vm.stop().await;
    let refused = http_client()
        .get(format!("{url_before}/health"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a stopped peer still answers: {refused:?}"
    );
    vm.start_again().await;

    assert_eq!(vm.url(), url_before);
    assert_eq!(vm.export("peers_outage").await[0].samples, vec![(t, 1.0)]);
}

#[tokio::test]
async fn prometheus_agent_scrapes_node_exporter_into_the_prometheus_receiver() {
    let node_exporter = Peers::node_exporter().start().await;
    let receiver = Peers::prometheus_receiver().start().await;

    let _agent = Peers::prometheus_agent(&[node_exporter.target()], &receiver.remote_write_url())
        .start()
        .await;
    let up = receiver.raw_samples_at_least("up", 2).await;

    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].label("job"), Some("agent"));
    assert_eq!(
        up[0].label("instance"),
        Some(node_exporter.target().as_str())
    );
    assert!(up[0].values().iter().all(|&v| v == 1.0), "{up:?}");
}
