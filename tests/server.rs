//! `server::run` in-process on a port-0 listener, as the binary runs it: a push goes in, the sink
//! gets it, shutdown flushes. The real-peer stories live in `tests/relay_*.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use promrelay::config::Config;
use promrelay::prompb::{self, WriteRequest};

type Received = Arc<Mutex<Vec<(HeaderMap, WriteRequest)>>>;

/// A storage that records every request it accepts.
async fn sink() -> (String, Received) {
    let got: Received = Arc::default();
    let app = Router::new()
        .route(
            "/api/v1/write",
            post(
                |State(got): State<Received>, headers: HeaderMap, body: Bytes| async move {
                    let raw = prompb::decompress_bounded(&body, 64 << 20).expect("snappy");
                    let req = prompb::decode_write_request(&raw).expect("protobuf");
                    got.lock().expect("not poisoned").push((headers, req));
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(Arc::clone(&got));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener
        .local_addr()
        .expect("a bound socket has an address");
    let url = format!("http://{address}/api/v1/write");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Result<(), promrelay::server::ServerError>>,
}

async fn start(data_dir: &std::path::Path, storage: &str) -> Running {
    let cfg = Config::from_args([
        "promrelay",
        "--data-dir",
        data_dir.to_str().expect("a UTF-8 temporary path"),
        "--remote-write-url",
        storage,
    ])
    .expect("valid flags");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener
        .local_addr()
        .expect("a bound socket has an address");
    let base = format!("http://{address}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(promrelay::server::run(cfg, listener, async move {
        let _ = stopped.await;
    }));
    Running { base, stop, done }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn wait_ready(c: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(r) = c.get(format!("{base}/-/ready")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("relay never became ready");
}

#[tokio::test]
async fn push_reaches_the_storage_and_shutdown_returns_ok() {
    let (url, got) = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &url).await;
    let c = client();
    wait_ready(&c, &relay.base).await;

    let req = prompb::example_write_request(20, 5, 1_700_000_000_000);
    let body = prompb::compress(&prost::Message::encode_to_vec(&req));
    let resp = c
        .post(format!("{}/api/v1/write", relay.base))
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    for _ in 0..250 {
        if !got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, req);
        let ua = got[0].0.get("user-agent").unwrap().to_str().unwrap();
        assert!(ua.starts_with("promrelay/"), "{ua}");
    }

    relay.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), relay.done)
        .await
        .expect("shutdown within 10 s")
        .unwrap()
        .unwrap();
    // Shutdown persisted the position: nothing is pending for the next start.
    let queue_dir = dir
        .path()
        .join("queues")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let q = promrelay::queue::Queue::open(queue_dir, Default::default()).unwrap();
    assert_eq!(q.stats().pending_blocks, 0);
    assert!(q.read().unwrap().is_none());
}

#[tokio::test]
async fn garbage_body_is_refused_with_400_and_one_line() {
    let (url, got) = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &url).await;
    let c = client();
    wait_ready(&c, &relay.base).await;
    let resp = c
        .post(format!("{}/api/v1/write", relay.base))
        .header("content-encoding", "snappy")
        .body("this is not snappy")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert_eq!(text.trim_end().lines().count(), 1, "{text:?}");
    // Nothing was queued (below), so nothing can reach the storage later either.
    assert!(got.lock().unwrap().is_empty());
    let queues: serde_json::Value = serde_json::from_str(
        &c.get(format!("{}/api/v1/queues", relay.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(queues[0]["pending_blocks"], 0);
    assert_eq!(queues[0]["sent_blocks_total"], 0);
    relay.stop.send(()).unwrap();
    relay.done.await.unwrap().unwrap();
}
