//! The relay between real peers: Prometheus and VictoriaMetrics as storages, a Prometheus agent
//! as the client.

mod common;

use std::io::Write;

use common::Peers;
use common::relay::{Pushes, Relay, assert_both_hold_exactly};
use prost::Message;

#[tokio::test]
async fn relay_fans_out_to_victoria_metrics_and_prometheus_exactly() {
    let (vm, prometheus) = tokio::join!(
        Peers::victoria_metrics().start(),
        Peers::prometheus_receiver().start()
    );
    let relay = Relay::with_storages(&[vm.remote_write_url(), prometheus.remote_write_url()])
        .start()
        .await;
    let pushes = Pushes::new("relay_fanout", 200, 50);

    relay.push_all_accepted(&pushes).await;

    assert_both_hold_exactly(&vm, &prometheus, &pushes).await;
    for queue in relay.wait_until_drained().await {
        assert_eq!(queue["sent_blocks_total"], 200, "{queue}");
        assert_eq!(queue["sent_samples_total"], 200 * 50, "{queue}");
        assert_eq!(queue["dropped_blocks_total"], 0, "{queue}");
        assert_eq!(queue["rejected_blocks_total"], 0, "{queue}");
    }
    let prometheus_log = prometheus.log().to_lowercase();
    for complaint in [
        "out of order",
        "out-of-order",
        "out of bounds",
        "duplicate sample",
    ] {
        assert!(
            !prometheus_log.contains(complaint),
            "prometheus complains of {complaint:?}:\n{}",
            prometheus.log_tail()
        );
    }
}

#[tokio::test]
async fn prometheus_agent_through_relay_reaches_victoria_metrics() {
    let (vm, node_exporter) = tokio::join!(
        Peers::victoria_metrics().start(),
        Peers::node_exporter().start()
    );
    let relay = Relay::with_storages(&[vm.remote_write_url()]).start().await;
    let _agent = Peers::prometheus_agent(&[node_exporter.target()], &relay.remote_write_url())
        .start()
        .await;

    let build_info = vm
        .export_at_least(r#"node_exporter_build_info{job="agent"}"#, 1)
        .await;

    assert_eq!(build_info.len(), 1, "{build_info:?}");
    assert_eq!(
        build_info[0].label("instance"),
        Some(node_exporter.target().as_str())
    );
    let up = vm.export_at_least(r#"up{job="agent"}"#, 1).await;
    assert!(up[0].values().iter().all(|&v| v == 1.0), "{up:?}");
    let queue = relay.queue(0).await;
    assert_eq!(queue["dropped_blocks_total"], 0, "{queue}");
}

/// vmagent sends zstd by default, other senders gzip: the relay takes both and the storages get
/// exactly what was pushed, as snappy remote-write 1.0.
#[tokio::test]
async fn zstd_and_gzip_pushes_reach_victoria_metrics_and_prometheus_exactly() {
    let (vm, prometheus) = tokio::join!(
        Peers::victoria_metrics().start(),
        Peers::prometheus_receiver().start()
    );
    let relay = Relay::with_storages(&[vm.remote_write_url(), prometheus.remote_write_url()])
        .start()
        .await;
    let pushes = Pushes::new("relay_zstd_gzip", 30, 40);

    for (i, request) in pushes.requests().iter().enumerate() {
        let protobuf = request.encode_to_vec();
        let (encoding, body) = match i % 3 {
            0 => (
                "zstd",
                zstd::bulk::compress(&protobuf, 3).expect("zstd in memory"),
            ),
            1 => ("gzip", gzip(&protobuf)),
            _ => ("snappy", promrelay::prompb::compress(&protobuf)),
        };
        let headers = [
            ("Content-Encoding", encoding),
            ("Content-Type", "application/x-protobuf"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ];
        let (status, reason) = relay.push_raw(body, &headers).await;
        assert_eq!(status, 204, "{encoding} push {i}: {reason}");
    }

    assert_both_hold_exactly(&vm, &prometheus, &pushes).await;
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("compress in memory");
    encoder.finish().expect("finish the gzip member")
}
