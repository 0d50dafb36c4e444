//! How the relay's senders talk to a storage: what they retry, what they drop, what they send.
//! The storage is a `FakeStorage` that misbehaves on purpose and records every request.

mod common;

use std::time::Duration;

use base64::Engine;
use common::relay::{FakeStorage, Pushes, Relay, mark_for_refusal, unused_port};
use common::{EVENTUALLY_TIMEOUT, eventually};

#[tokio::test]
async fn storage_refusing_some_blocks_drops_only_those() {
    let storage = FakeStorage::new().refuse_marked_series().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let pushes = Pushes::new("relay_refused", 10, 5);
    let refused = [3, 7];

    for i in 0..pushes.count() {
        let mut request = pushes.request(i);
        if refused.contains(&i) {
            mark_for_refusal(&mut request);
        }
        relay.push_accepted(&request).await;
    }
    let expected = pushes.expected_without(&refused);
    storage.samples_at_least(pushes.metric(), 8 * 5).await;
    let queue = relay
        .wait_for_queue(0, "both refused blocks dropped and the rest sent", |q| {
            q["pending_blocks"] == 0 && q["rejected_blocks_total"] == 2
        })
        .await;

    assert_eq!(storage.series(pushes.metric()), expected);
    assert_eq!(queue["dropped_blocks_total"], 2, "{queue}");
    assert_eq!(queue["dropped_samples_total"], 10, "{queue}");
    assert_eq!(queue["sent_blocks_total"], 8, "{queue}");
    assert_eq!(queue["state"], "dropping", "{queue}");
    // No endless retry: well after the last backoff (200ms), the storage hears nothing new.
    let requests_then = storage.requests().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(storage.requests().len(), requests_then);
}

#[tokio::test]
async fn retryable_errors_are_retried_until_success() {
    let storage = FakeStorage::new()
        .fail_first(3)
        .failing_with(503)
        .start()
        .await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let pushes = Pushes::new("relay_retried", 1, 5);

    relay.push_all_accepted(&pushes).await;
    let series = storage
        .samples_at_least(pushes.metric(), pushes.sample_count())
        .await;
    let queue = relay
        .wait_for_queue(0, "sent and ok", |q| {
            q["pending_blocks"] == 0 && q["state"] == "ok"
        })
        .await;

    assert_eq!(series, pushes.expected(), "the data arrived once");
    let statuses: Vec<u16> = storage.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 503, 204]);
    assert!(queue["retries_total"].as_u64() >= Some(3), "{queue}");
    assert_eq!(queue["sent_blocks_total"], 1, "{queue}");
    assert_eq!(queue["dropped_blocks_total"], 0, "{queue}");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let storage = FakeStorage::new()
        .fail_first(1)
        .failing_with(429)
        .retry_after("1")
        .start()
        .await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let pushes = Pushes::new("relay_retry_after", 1, 2);

    relay.push_all_accepted(&pushes).await;
    storage
        .samples_at_least(pushes.metric(), pushes.sample_count())
        .await;

    let requests = storage.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let waited = requests[1].at - requests[0].at;
    // The configured backoff is 10ms; only Retry-After explains a wait of a second.
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?} despite Retry-After: 1"
    );
}

#[tokio::test]
async fn sent_requests_carry_remote_write_headers() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let pushes = Pushes::new("relay_headers", 3, 2);

    relay.push_all_accepted(&pushes).await;
    storage
        .samples_at_least(pushes.metric(), pushes.sample_count())
        .await;

    for request in storage.requests() {
        assert_eq!(request.header("content-encoding"), Some("snappy"));
        assert_eq!(
            request.header("content-type"),
            Some("application/x-protobuf")
        );
        assert_eq!(
            request.header("x-prometheus-remote-write-version"),
            Some("0.1.0")
        );
        let user_agent = request.header("user-agent").unwrap_or_default();
        assert!(
            user_agent.starts_with("promrelay/"),
            "User-Agent {user_agent:?}"
        );
        assert!(request.request.is_ok(), "{:?}", request.request);
    }
}

#[tokio::test]
async fn credentials_never_appear_in_queues_json_or_logs() {
    const PASSWORD: &str = "hunter2-Sup3rSecret";
    let storage = FakeStorage::new()
        .fail_first(2)
        .failing_with(500)
        .start()
        .await;
    // Nothing listens there: every send fails with a connection error that names the storage.
    let unreachable = format!(
        "http://relay:{PASSWORD}@127.0.0.1:{}/api/v1/write",
        unused_port()
    );
    let relay =
        Relay::with_storages(&[storage.url_with_credentials("relay", PASSWORD), unreachable])
            .storages_on_command_line()
            .env("RUST_LOG", "debug")
            .start()
            .await;
    let pushes = Pushes::new("relay_credentials", 2, 2);

    relay.push_all_accepted(&pushes).await;
    storage
        .samples_at_least(pushes.metric(), pushes.sample_count())
        .await;
    relay
        .wait_for_queue(1, "failing with a recorded error", |q| {
            q["retries_total"].as_u64() >= Some(2) && !q["last_error"].is_null()
        })
        .await;

    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("relay:{PASSWORD}"))
    );
    let last = storage.requests().pop().expect("requests arrived");
    assert_eq!(last.header("authorization"), Some(expected_auth.as_str()));
    let (_, queues) = relay.get("/api/v1/queues").await;
    let (metrics_status, metrics) = relay.get("/metrics").await;
    let (index_status, index) = relay.get("/").await;
    assert_eq!(metrics_status, 200, "/metrics: {metrics}");
    assert_eq!(index_status, 200, "/: {index}");
    for (what, text) in [
        ("/api/v1/queues", &queues),
        ("/metrics", &metrics),
        ("/", &index),
        ("relay.log", &relay.log()),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "{what} shows the password:\n{text}"
        );
    }
    assert!(
        queues.contains("127.0.0.1"),
        "queues name the storages: {queues}"
    );
}

#[tokio::test]
async fn storage_failing_without_end_keeps_the_block_queued() {
    let storage = FakeStorage::new()
        .fail_first(usize::MAX)
        .failing_with(503)
        .start()
        .await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let pushes = Pushes::new("relay_failing", 1, 1);

    relay.push_all_accepted(&pushes).await;
    eventually("five attempts", EVENTUALLY_TIMEOUT, || async {
        let seen = storage.requests().len();
        if seen >= 5 {
            Ok(())
        } else {
            Err(format!("{seen}"))
        }
    })
    .await;
    let queue = relay.queue(0).await;

    assert_eq!(queue["state"], "retrying", "{queue}");
    assert_eq!(queue["pending_blocks"], 1, "{queue}");
    assert_eq!(queue["dropped_blocks_total"], 0, "{queue}");
    assert!(
        queue["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{queue}"
    );
}

/// A storage that refuses every request with a 400 whose chunked body never ends, counting the
/// body bytes it managed to write. Returns its URL.
async fn storage_refusing_with_an_endless_body(
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> String {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!(
        "http://{}/api/v1/write",
        listener.local_addr().expect("bound")
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let written = std::sync::Arc::clone(&written);
            tokio::spawn(async move {
                // The request's head is enough: the answer does not depend on the body.
                let mut request = vec![0u8; 64 << 10];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 64 << 10, "e".repeat(64 << 10));
                while socket.write_all(chunk.as_bytes()).await.is_ok() {
                    written.fetch_add(64 << 10, Ordering::SeqCst);
                }
            });
        }
    });
    url
}

// Before: the sender read a refusal's body whole, so a storage streaming an endless error body
// kept the block (and growing memory) until the request timed out, then retried it for ever.
#[tokio::test]
async fn endless_refusal_body_is_read_only_in_part_and_the_block_dropped() {
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let url = storage_refusing_with_an_endless_body(std::sync::Arc::clone(&written)).await;
    let relay = Relay::with_storages(&[url]).start().await;
    let pushes = Pushes::new("relay_endless_refusal", 1, 1);

    relay.push_all_accepted(&pushes).await;
    let queue = relay
        .wait_for_queue(0, "the refused block dropped", |q| {
            q["pending_blocks"] == 0 && q["rejected_blocks_total"] == 1
        })
        .await;

    let error = queue["last_error"].as_str().unwrap_or_default();
    assert!(error.starts_with("HTTP 400: eeee"), "{queue}");
    let sent = written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        sent < 64 << 20,
        "{sent} bytes of error body written: read whole?"
    );
}
