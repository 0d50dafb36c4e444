//! Admin: the read-only HTTP view of the process.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the status page a person reads (`page.rs`) |
//! | `GET /api/v1/queues` | JSON array, one [`StorageStatus`] per storage, design.md's field names |
//! | `GET /api/v1/history` | JSON, the last 15 minutes the page's charts show (`history.rs`, README) |
//! | `GET /metrics` | Prometheus text format 0.0.4 (`metrics.rs`, process figures from `process.rs`) |
//! | `GET /-/healthy` | `200 OK` while the process runs |
//! | `GET /-/ready` | `200` once every queue is open, `503` before |
//! | `GET /api/v1/targets` | the scraper's targets in Prometheus' JSON shape, empty when off (`targets_api.rs`) |
//! | `GET /targets` | the targets grouped by job, with a filter box (`targets.rs`) |
//! | `POST /-/reload` | re-read the scrape config; 500 with the reason when the new one is refused |
//!
//! Read routes answer GET and HEAD only, `/-/reload` POST only: any other method gets 405 with
//! `Allow` (axum's method routing), so a state change never hides behind a GET a link or a
//! crawler could trigger.
//!
//! # Owns
//! How what the other parts report through [`StatusSource`] looks over HTTP: names, formats,
//! escaping, the send rates of the page (from earlier snapshots it keeps, `rates.rs`), and the
//! last 15 minutes of its charts (`history.rs`, drawn by `charts.rs`, with the backlog's time to
//! drain from `drain.rs`), sampled every 5 s by a task [`router`] starts, which ends when the
//! router is dropped.
//!
//! # Guarantees
//! - Names are design.md's "Observability names": the JSON fields are `StorageStatus`'s serde
//!   names, and `/metrics` exports each of them as `promrelay_<name>{storage="<id>"}`.
//! - Text from the config or a storage (ids, names, URLs, error texts) is escaped for where it
//!   goes: label values per the exposition format, HTML on the page.
//! - A figure that cannot be read (a `/proc` file) is left out; no route answers 500 for it.
//!
//! # Must not
//! Mutate queues or senders: it only reads snapshots, and holds no lock of theirs while rendering.

mod charts;
mod drain;
mod history;
mod metrics;
mod page;
mod process;
mod rates;
mod targets;
mod targets_api;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json};
use axum::routing::{get, post};

use crate::forward::StorageStatus;
use crate::scrape::manager::{ReloadError, TargetsView};
use crate::stats::{DiscoverySnapshot, IngestSnapshot, ListenerSnapshot};
use process::ProcessStats;

/// What the admin endpoints read. The application implements it; tests implement it with fixed data.
pub trait StatusSource: Send + Sync + 'static {
    fn storages(&self) -> Vec<StorageStatus>;
    fn ingest(&self) -> IngestSnapshot;
    /// The listener's counters (failed handshakes, 401, 429); zero when nothing counts them.
    fn listener(&self) -> ListenerSnapshot {
        ListenerSnapshot::default()
    }
    /// The discovery counters; zero when nothing counts them.
    fn discovery(&self) -> DiscoverySnapshot {
        DiscoverySnapshot::default()
    }
    /// True once every queue is open (the process serves `/-/ready` 200 from then on).
    fn ready(&self) -> bool;
    /// The scraper's targets; `None` when scraping is off (no `--scrape-config`).
    fn targets(&self) -> Option<Arc<TargetsView>> {
        None
    }
    /// Starts a reload of the scrape config and says how it went; `None` when there is nothing
    /// to reload.
    fn reload(&self) -> Option<tokio::sync::oneshot::Receiver<Result<(), ReloadError>>> {
        None
    }
}

/// Why each field exists.
struct Admin {
    source: Arc<dyn StatusSource>,
    /// Earlier sent counters, so the page can show send rates without the browser keeping state.
    rates: Mutex<rates::RateHistory>,
    /// The last 15 minutes for the charts, written by [`sample_history`] alone.
    history: Mutex<history::History>,
    /// Length of the last `/metrics` body: the next one starts with that capacity, so rendering
    /// grows its `String` once, not a dozen times.
    metrics_len: AtomicUsize,
}

type Shared = Arc<Admin>;

/// Browsers and proxies must not show a stale status.
const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

/// The admin routes, to be merged with the ingest routes into one server. Must be called inside
/// a Tokio runtime: it starts the task that samples the charts' history, which ends once the
/// router (every clone of it) is dropped.
pub fn router(source: Arc<dyn StatusSource>) -> Router {
    let admin = Arc::new(Admin {
        source,
        rates: Mutex::new(rates::RateHistory::default()),
        history: Mutex::new(history::History::default()),
        metrics_len: AtomicUsize::new(0),
    });
    tokio::spawn(sample_history(Arc::downgrade(&admin)));
    Router::new()
        .route("/", get(status_page))
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/history", get(history_json))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(ready))
        .route("/api/v1/targets", get(targets_json))
        .route("/targets", get(targets_page))
        .route("/-/reload", post(reload))
        .with_state(admin)
}

/// Records a point of history now and every [`history::INTERVAL`] after, until the admin state
/// is gone. Holds the state only while it records, so it never keeps it alive.
async fn sample_history(admin: Weak<Admin>) {
    let mut tick = tokio::time::interval(history::INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(a) = admin.upgrade() else {
            return;
        };
        let storages = a.source.storages();
        let ingest = a.source.ingest();
        a.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(Instant::now(), crate::util::now_ms(), &storages, &ingest);
    }
}

async fn history_json(State(a): State<Shared>) -> impl IntoResponse {
    let json = a
        .history
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .to_json();
    ([NO_STORE], Json(json))
}

async fn queues(State(a): State<Shared>) -> impl IntoResponse {
    ([NO_STORE], Json(a.source.storages()))
}

async fn metrics(State(a): State<Shared>) -> impl IntoResponse {
    let storages = a.source.storages();
    let ingest = a.source.ingest();
    let process = ProcessStats::read();
    let mut body = String::with_capacity(a.metrics_len.load(Ordering::Relaxed) + 1024);
    metrics::render(&mut body, &storages, &ingest, &process);
    metrics::render_listener(&mut body, &a.source.listener());
    if let Some(view) = a.source.targets() {
        metrics::render_scrape(&mut body, &metrics::scrape_figures(&view));
    }
    metrics::render_discovery(&mut body, &a.source.discovery());
    a.metrics_len.store(body.len(), Ordering::Relaxed);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body)
}

async fn status_page(State(a): State<Shared>) -> impl IntoResponse {
    let storages = a.source.storages();
    let ingest = a.source.ingest();
    let ready = a.source.ready();
    let rates = a
        .rates
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .observe(Instant::now(), &storages);
    let now_unix_ms = crate::util::now_ms();
    // Rendered under the history's lock: the sampler takes it for a moment every 5 s, and a
    // copy of every ring per view would cost more than the wait.
    let history = a.history.lock().unwrap_or_else(PoisonError::into_inner);
    let html = page::render(&page::PageView {
        storages: &storages,
        ingest: &ingest,
        rates: &rates,
        ready,
        history: &history,
        now_unix_ms,
    });
    drop(history);
    ([NO_STORE], Html(html))
}

async fn ready(State(a): State<Shared>) -> impl IntoResponse {
    if a.source.ready() {
        (StatusCode::OK, "OK\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: queues are being opened\n",
        )
    }
}

async fn targets_json(State(a): State<Shared>) -> axum::response::Response {
    let view = a.source.targets();
    // Written straight from the view (no JSON tree in between): see `targets_api::render`.
    match serde_json::to_vec(&targets_api::render(view.as_deref())) {
        Ok(body) => ([NO_STORE, (header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing the targets as JSON: {e}\n"),
        )
            .into_response(),
    }
}

async fn targets_page(State(a): State<Shared>) -> impl IntoResponse {
    let view = a.source.targets();
    ([NO_STORE], Html(targets::render(view.as_deref())))
}

async fn reload(State(a): State<Shared>) -> impl IntoResponse {
    let Some(done) = a.source.reload() else {
        return (
            StatusCode::OK,
            "nothing to reload: no --scrape-config\n".to_string(),
        );
    };
    match done.await {
        Ok(Ok(())) => (StatusCode::OK, "OK\n".to_string()),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload refused, the old configuration keeps running: {e}\n"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the scraper is stopping\n".to_string(),
        ),
    }
}
