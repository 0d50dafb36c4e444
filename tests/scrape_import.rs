//! `POST /api/v1/import/prometheus`: a text exposition pushed to the relay is forwarded like a
//! scrape, and a body with a bad line is refused whole, naming the line.

mod common;

use common::relay::{FakeStorage, Relay};
use common::{Peers, now_ms};

const IMPORT_PATH: &str = "/api/v1/import/prometheus";
const TEXT: [(&str, &str); 1] = [("Content-Type", "text/plain; version=0.0.4")];

#[tokio::test]
async fn import_prometheus_text_reaches_storage() {
    let vm = Peers::victoria_metrics().start().await;
    let relay = Relay::with_storages(&[vm.remote_write_url()]).start().await;
    let at = now_ms() / 1000 * 1000 - 60_000;
    let body = format!(
        "# HELP imported_requests_total Requests.\n\
         # TYPE imported_requests_total counter\n\
         imported_requests_total{{path=\"/a\"}} 10 {at}\n\
         imported_requests_total{{path=\"/b\"}} 20.5 {at}\n\
         imported_temperature_celsius -3\n"
    );
    let before = now_ms();

    let (status, answer) = relay.push_raw_to(IMPORT_PATH, body, &TEXT).await;

    assert_eq!(status, 204, "{answer}");
    let requests = vm.export_at_least("imported_requests_total", 2).await;
    let got: Vec<_> = requests
        .iter()
        .map(|s| (s.label("path").unwrap_or_default(), s.samples.clone()))
        .collect();
    assert_eq!(got, [("/a", vec![(at, 10.0)]), ("/b", vec![(at, 20.5)])]);
    assert!(requests.iter().all(|s| s.labels.len() == 2), "{requests:?}");
    let temperature = vm.export_at_least("imported_temperature_celsius", 1).await;
    let (stamped, value) = temperature[0].samples[0];
    assert_eq!(value, -3.0);
    assert!(
        stamped >= before - 1000 && stamped <= now_ms(),
        "a sample without a timestamp gets the time of the import: {stamped}, import at {before}"
    );
}

#[tokio::test]
async fn import_with_bad_line_is_400_naming_the_line_and_queues_nothing() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let body = "import_before_bad_line 1\n\
                import_before_bad_line{n=\"2\"} 2\n\
                import_broken{n=\"3\" 3\n\
                import_after_bad_line 4\n";

    let (status, answer) = relay.push_raw_to(IMPORT_PATH, body, &TEXT).await;

    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("line 3"),
        "the answer names line 3: {answer}"
    );
    let queue = relay.queue(0).await;
    assert_eq!(queue["pending_blocks"], 0, "{queue}");
    assert_eq!(queue["pending_bytes"], 0, "{queue}");
    // The sender keeps order: anything queued by the bad import would arrive before this.
    let (status, answer) = relay
        .push_raw_to(IMPORT_PATH, "import_sentinel 1\n", &TEXT)
        .await;
    assert_eq!(status, 204, "{answer}");
    storage.samples_at_least("import_sentinel", 1).await;
    for metric in [
        "import_before_bad_line",
        "import_broken",
        "import_after_bad_line",
    ] {
        assert!(storage.series(metric).is_empty(), "{metric} was forwarded");
    }
    assert_eq!(storage.requests().len(), 1, "only the sentinel's block");
}
