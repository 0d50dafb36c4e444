//! The relay between real peers: Prometheus and VictoriaMetrics as storages, a Prometheus agent
//! as the client.

mod common;

use common::Peers;
use common::relay::{Pushes, Relay, assert_holds_exactly};

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
