//! Bad pushes are refused with the right status and a one-line reason, and leave every queue
//! untouched: nothing is queued, and nothing reaches the storage.

mod common;

use std::io::Write;

use common::relay::{FakeStorage, Pushes, REMOTE_WRITE_HEADERS, Relay, encode};
use prost::Message;

/// Refuses `body` (sent with `headers`) with `status` and a one-line reason, then shows nothing
/// was queued: the queue is empty, and a good push sent afterwards is the only thing the storage
/// receives (the sender keeps order, so anything queued before it would arrive first).
async fn assert_refused_and_nothing_queued(
    relay_flags: &[&str],
    body: Vec<u8>,
    headers: &[(&str, &str)],
    status: u16,
) {
    let storage = FakeStorage::new().start().await;
    let mut relay = Relay::with_storages(&[storage.url()]);
    for flag in relay_flags {
        relay = relay.arg(*flag);
    }
    let relay = relay.start().await;

    let (answered, reason) = relay.push_raw(body, headers).await;

    assert_eq!(answered, status, "answer: {reason}");
    assert_eq!(
        reason.trim_end().lines().count(),
        1,
        "the reason is one line: {reason:?}"
    );
    assert!(!reason.trim().is_empty(), "the reason is not empty");
    let queue = relay.queue(0).await;
    assert_eq!(queue["pending_blocks"], 0, "{queue}");
    assert_eq!(queue["pending_bytes"], 0, "{queue}");
    let sentinel = Pushes::new("relay_ingest_sentinel", 1, 1);
    relay.push_accepted(&sentinel.request(0)).await;
    storage
        .samples_at_least(sentinel.metric(), sentinel.sample_count())
        .await;
    let received = storage.requests();
    assert_eq!(
        received.len(),
        1,
        "only the good push reached the storage: {received:#?}"
    );
    assert_eq!(storage.series(sentinel.metric()), sentinel.expected());
}

#[tokio::test]
async fn garbage_body_is_refused_with_400() {
    let garbage = b"\xffgarbage: neither snappy nor protobuf \x00\x01\x02".to_vec();

    assert_refused_and_nothing_queued(&[], garbage, &REMOTE_WRITE_HEADERS, 400).await;
}

#[tokio::test]
async fn framed_snappy_body_is_refused_with_400() {
    let protobuf = Pushes::new("relay_ingest_framed", 1, 3)
        .request(0)
        .encode_to_vec();
    let mut framed = snap::write::FrameEncoder::new(Vec::new());
    framed.write_all(&protobuf).expect("compress in memory");
    let framed = framed.into_inner().expect("finish the snappy stream");

    assert_refused_and_nothing_queued(&[], framed, &REMOTE_WRITE_HEADERS, 400).await;
}

#[tokio::test]
async fn valid_snappy_of_broken_protobuf_is_refused_with_400() {
    let mut protobuf = Pushes::new("relay_ingest_broken", 1, 3)
        .request(0)
        .encode_to_vec();
    // The last series' declared length now runs past the end of the message.
    protobuf.truncate(protobuf.len() - 3);
    let body = promrelay::prompb::compress(&protobuf);

    assert_refused_and_nothing_queued(&[], body, &REMOTE_WRITE_HEADERS, 400).await;
}

#[tokio::test]
async fn body_over_max_request_bytes_is_refused_with_413() {
    let big = encode(&Pushes::new("relay_ingest_big", 1, 1000).request(0));
    assert!(big.len() > 4096, "the push is {} bytes", big.len());

    assert_refused_and_nothing_queued(
        &["--max-request-bytes", "4KiB"],
        big,
        &REMOTE_WRITE_HEADERS,
        413,
    )
    .await;
}

/// Headers of a remote-write push whose body has `encoding`.
fn headers_for(encoding: &str) -> [(&str, &str); 3] {
    [
        ("Content-Encoding", encoding),
        ("Content-Type", "application/x-protobuf"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ]
}

#[tokio::test]
async fn unknown_content_encoding_is_refused_with_415() {
    let protobuf = Pushes::new("relay_ingest_br", 1, 3)
        .request(0)
        .encode_to_vec();

    assert_refused_and_nothing_queued(&[], protobuf, &headers_for("br"), 415).await;
}

#[tokio::test]
async fn uncompressed_remote_write_is_refused_with_415() {
    let protobuf = Pushes::new("relay_ingest_identity", 1, 3)
        .request(0)
        .encode_to_vec();

    assert_refused_and_nothing_queued(&[], protobuf, &headers_for("identity"), 415).await;
}

#[tokio::test]
async fn zstd_bomb_is_refused_with_413() {
    // 64 MiB of zeros in a frame that does not declare its size: a few KiB on the wire.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd encoder");
    encoder.include_contentsize(false).expect("zstd parameter");
    encoder
        .write_all(&vec![0u8; 64 << 20])
        .expect("compress in memory");
    let bomb = encoder.finish().expect("finish the zstd frame");
    assert!(bomb.len() < 64 << 10, "the bomb is small: {}", bomb.len());

    assert_refused_and_nothing_queued(
        &["--max-request-bytes", "1MiB"],
        bomb,
        &headers_for("zstd"),
        413,
    )
    .await;
}

#[tokio::test]
async fn gzip_bomb_is_refused_with_413() {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&vec![0u8; 64 << 20])
        .expect("compress in memory");
    let bomb = encoder.finish().expect("finish the gzip member");

    assert_refused_and_nothing_queued(
        &["--max-request-bytes", "1MiB"],
        bomb,
        &headers_for("gzip"),
        413,
    )
    .await;
}

#[tokio::test]
async fn truncated_zstd_body_is_refused_with_400() {
    let protobuf = Pushes::new("relay_ingest_zstd_cut", 1, 30)
        .request(0)
        .encode_to_vec();
    let mut body = zstd::bulk::compress(&protobuf, 3).expect("compress in memory");
    body.truncate(body.len() / 2);

    assert_refused_and_nothing_queued(&[], body, &headers_for("zstd"), 400).await;
}

#[tokio::test]
async fn zstd_of_broken_protobuf_is_refused_with_400() {
    let mut protobuf = Pushes::new("relay_ingest_zstd_broken", 1, 3)
        .request(0)
        .encode_to_vec();
    protobuf.truncate(protobuf.len() - 3);
    let body = zstd::bulk::compress(&protobuf, 3).expect("compress in memory");

    assert_refused_and_nothing_queued(&[], body, &headers_for("zstd"), 400).await;
}

#[tokio::test]
async fn json_content_type_is_refused_with_415() {
    let body = encode(&Pushes::new("relay_ingest_json", 1, 3).request(0));
    let headers = [
        ("Content-Encoding", "snappy"),
        ("Content-Type", "application/json"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];

    assert_refused_and_nothing_queued(&[], body, &headers, 415).await;
}

#[tokio::test]
async fn every_remote_write_path_accepts_pushes() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()]).start().await;
    let paths = ["/api/v1/write", "/api/v1/push", "/prometheus/api/v1/write"];
    let pushes = Pushes::new("relay_ingest_paths", paths.len(), 2);

    for (i, path) in paths.into_iter().enumerate() {
        let (status, body) = relay
            .push_raw_to(path, encode(&pushes.request(i)), &REMOTE_WRITE_HEADERS)
            .await;
        assert_eq!(status, 204, "{path}: {body}");
    }

    let received = storage
        .samples_at_least(pushes.metric(), pushes.sample_count())
        .await;
    assert_eq!(received, pushes.expected());
}
