//! The scrape loop's own HTTP client end to end: a relay process scraping in-process targets
//! over plain `http://`. It keeps one connection per target, inflates gzip, reports a failing
//! status as today's text, hands a redirect to reqwest, which follows it, skips interim (1xx)
//! answers, and never accepts a body cut short.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::serve::ListenerExt;

use common::relay::{FakeStorage, Relay};
use common::scrape::{Job, RelayScrape, ScrapeConfig, ScrapingRelay};
use common::{EVENTUALLY_TIMEOUT, Series, eventually};

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An in-process target with several paths, counting the TCP connections it accepted.
struct Target {
    address: String,
    connections: Arc<AtomicUsize>,
}

impl Target {
    async fn start() -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("bound").to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let listener = listener.tap_io(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let router = Router::new()
            .route("/plain", get(|| async { exposition("plain_metric") }))
            .route("/gzipped", get(gzipped))
            .route(
                "/moved",
                get(|| async { Redirect::permanent("/moved-here") }),
            )
            .route("/moved-here", get(|| async { exposition("moved_metric") }))
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Target {
            address,
            connections,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn exposition(metric: &str) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        format!("{metric}{{n=\"1\"}} 1\n{metric}{{n=\"2\"}} 2\n"),
    )
}

async fn gzipped() -> impl IntoResponse {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"gzipped_metric 7\n").expect("gzip in memory");
    (
        [
            (header::CONTENT_TYPE, TEXT_FORMAT),
            (header::CONTENT_ENCODING, "gzip"),
        ],
        gz.finish().expect("gzip in memory"),
    )
}

/// A relay scraping, per job, `path` of the target at `address` every second, forwarding into a
/// fake storage.
async fn scraping(address: &str, jobs: &[(&str, &str)]) -> (FakeStorage, Relay, ScrapeConfig) {
    let jobs: Vec<Job> = jobs
        .iter()
        .map(|(name, path)| {
            Job::new(name)
                .target(address)
                .setting(&format!("metrics_path: {path}"))
        })
        .collect();
    let config = ScrapeConfig::new(&jobs);
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()])
        .scraping(&config)
        .start()
        .await;
    (storage, relay, config)
}

/// Waits until the storage holds `up` of `job` with at least `scrapes` samples.
async fn up_of(storage: &FakeStorage, job: &str, scrapes: usize) -> Series {
    eventually(
        &format!("{scrapes} scrapes of job {job}"),
        EVENTUALLY_TIMEOUT,
        || async {
            storage
                .series("up")
                .into_iter()
                .find(|s| s.label("job") == Some(job) && s.samples.len() >= scrapes)
                .ok_or_else(|| format!("{:?}", storage.series("up")))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_of_a_target_share_one_keep_alive_connection() {
    let target = Target::start().await;
    let (storage, _relay, _config) = scraping(&target.address, &[("plain", "/plain")]).await;

    let up = up_of(&storage, "plain", 4).await;

    assert!(up.values().iter().all(|v| *v == 1.0), "{up:?}");
    assert_eq!(storage.series("plain_metric").len(), 2);
    assert_eq!(target.connections(), 1, "one connection for every scrape");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_body_is_inflated_and_parsed() {
    let target = Target::start().await;
    let (storage, _relay, _config) = scraping(&target.address, &[("gzipped", "/gzipped")]).await;

    let up = up_of(&storage, "gzipped", 2).await;

    assert!(up.values().iter().all(|v| *v == 1.0), "{up:?}");
    let series = storage.series("gzipped_metric");
    assert!(
        series.iter().any(|s| s.values().contains(&7.0)),
        "{series:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_target_is_followed_through_reqwest() {
    let target = Target::start().await;
    let (storage, _relay, _config) = scraping(&target.address, &[("moved", "/moved")]).await;

    let up = up_of(&storage, "moved", 2).await;

    assert!(up.values().iter().all(|v| *v == 1.0), "{up:?}");
    assert_eq!(storage.series("moved_metric").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_status_marks_the_target_down_with_the_status_text() {
    let target = Target::start().await;
    let (storage, relay, _config) = scraping(&target.address, &[("missing", "/missing")]).await;

    let up = up_of(&storage, "missing", 1).await;

    assert!(up.values().iter().all(|v| *v == 0.0), "{up:?}");
    let active = relay.active_targets().await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].health, "down");
    assert_eq!(
        active[0].last_error,
        "server returned HTTP status 404 Not Found"
    );
}

/// A target written on raw TCP, for answers an HTTP server library will not send: every request
/// for `path` gets `answer` (then the connection is closed if `close`).
async fn raw_target(answers: Vec<(&'static str, Vec<u8>, bool)>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("bound").to_string();
    let answers = Arc::new(answers);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answers = Arc::clone(&answers);
            tokio::spawn(async move {
                let mut request = Vec::new();
                loop {
                    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if matches!(socket.read_buf(&mut request).await, Ok(0) | Err(_)) {
                            return;
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&request[..end]).into_owned();
                    request.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or_default();
                    let Some((_, answer, close)) = answers.iter().find(|(p, _, _)| *p == path)
                    else {
                        return;
                    };
                    if socket.write_all(answer).await.is_err() || *close {
                        return;
                    }
                }
            });
        }
    });
    address
}

// Before: the client took `103 Early Hints` for the answer and every scrape failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_sending_early_hints_before_its_answer_is_scraped() {
    let body = "hinted_metric 3\n";
    let answer = format!(
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
         HTTP/1.1 100 Continue\r\n\r\n\
         HTTP/1.1 200 OK\r\nContent-Type: {TEXT_FORMAT}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let address = raw_target(vec![("/hinted", answer.into_bytes(), false)]).await;
    let (storage, _relay, _config) = scraping(&address, &[("hinted", "/hinted")]).await;

    let up = up_of(&storage, "hinted", 2).await;

    assert!(up.values().iter().all(|v| *v == 1.0), "{up:?}");
    let series = storage.series("hinted_metric");
    assert!(
        series.iter().any(|s| s.values().contains(&3.0)),
        "{series:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_cut_short_fails_the_scrape_and_sends_none_of_it() {
    // Two whole lines arrive, then the connection closes 100 bytes before the announced end.
    let body = "cut_metric{n=\"1\"} 1\ncut_metric{n=\"2\"} 2\n";
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {TEXT_FORMAT}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len() + 100
    );
    let address = raw_target(vec![("/cut", answer.into_bytes(), true)]).await;
    let (storage, relay, _config) = scraping(&address, &[("cut", "/cut")]).await;

    let up = up_of(&storage, "cut", 2).await;

    assert!(up.values().iter().all(|v| *v == 0.0), "{up:?}");
    assert!(storage.series("cut_metric").is_empty());
    let active = relay.active_targets().await;
    assert_eq!(
        active[0].last_error,
        "server closed the connection before the response ended"
    );
}
