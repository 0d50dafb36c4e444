//! One target's scrape loop: fetch on a stable offset within the interval, parse, build the batch
//! (scraped series, the five series Prometheus adds per scrape, stale markers for series that
//! vanished) straight into the scraper's [`Outbox`], which queues many scrapes as one block. An
//! `http://` target is fetched through the loop's own [`http::Client`] (one keep-alive
//! connection, the body read straight into the scrape's buffer); `https://`, redirects and a
//! proxy from the environment go through the job's reqwest client.
//!
//! Guarantees: one scrape at a time per target, never longer than its timeout; a failed scrape
//! (HTTP error, timeout, body over `body_size_limit`, parse error, `sample_limit` or `label_limit`
//! exceeded) sends no scraped sample, `up` 0, and stale markers for every series of the previous
//! scrape, as Prometheus does. When the loop is stopped for good (target gone), every remembered
//! series gets a stale marker; when it is handed over to a new loop (reload), the memory goes with it.
//!
//! Must not: write to queues except through the [`Outbox`].

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::cache::{CacheFull, ScrapeCache, TextKey};
use super::config::JobConfig;
use super::outbox::Outbox;
use super::targets::Target;
use crate::exposition::parse::{Format, Item, ParseError, Parser, format_from_content_type};
use crate::exposition::series::{Added, SeriesError, SeriesOptions, encode_series_labels};
use crate::outbound::http1 as http;
use crate::prompb::{Label, WriteRequestEncoder, encode_labels_into};
use crate::util::{error_chain, now_ms};

/// What Prometheus offers: OpenMetrics first, then the text format.
const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// Why a scrape failed. `Display` is what the targets page and API show as `lastError`.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The loop's own HTTP/1.1 client could not fetch the target (connect, status, framing,
    /// body limit, timeout...).
    #[error(transparent)]
    Fetch(#[from] http::Error),
    /// reqwest (https targets, redirects, proxies) could not fetch the target. Shown with its
    /// causes on one line, which is why they are not also its `source`.
    #[error("{}", error_chain(.0))]
    Request(reqwest::Error),
    /// reqwest got an answer that is neither 2xx nor a redirect it followed.
    #[error("server returned HTTP status {0}")]
    Status(reqwest::StatusCode),
    /// The body read through reqwest is larger than `body_size_limit`.
    #[error("body size limit exceeded ({0} bytes)")]
    BodyLimit(u64),
    /// The body is not valid exposition text.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A series broke a label rule or `label_limit`.
    #[error(transparent)]
    Series(#[from] SeriesError),
    /// The target's series hold more labels than the cache can address.
    #[error(transparent)]
    CacheFull(#[from] CacheFull),
    /// More samples than `sample_limit` after metric relabeling.
    #[error("sample_limit exceeded ({0})")]
    SampleLimit(u64),
}

/// Health of a target, as the targets API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Unknown,
    Up,
    Down,
}

/// What the last scrape of a target did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetHealth {
    pub health: Health,
    pub last_scrape_unix_ms: Option<u64>,
    pub last_scrape_duration: Duration,
    pub last_error: String,
    /// Samples after metric relabeling in the last successful scrape.
    pub last_samples: u64,
}

/// Everything a job's loops share: its config, HTTP client, and the process-wide parts.
pub struct JobRuntime {
    pub cfg: JobConfig,
    /// For what the loops' own [`http::Client`] does not fetch: TLS, redirects, env proxies.
    pub client: reqwest::Client,
    /// `Authorization` for every scrape of the job, if it has credentials.
    pub authorization: Option<HeaderValue>,
    pub external_labels: Vec<Label>,
    /// Where the loops build their batches; shared by every job.
    pub outbox: Arc<Outbox>,
}

/// How a loop ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// The target is gone: stale markers for every remembered series.
    Gone,
    /// A new loop takes over (reload): hand the memory over, no stale markers.
    HandOver,
}

/// A running loop and how to stop it.
pub struct LoopHandle {
    pub target: Arc<Target>,
    pub health: Arc<Mutex<TargetHealth>>,
    stop: CancellationToken,
    mode: Arc<Mutex<StopMode>>,
    task: tokio::task::JoinHandle<ScrapeCache>,
}

impl LoopHandle {
    /// Stops the loop and returns its memory of the last scrape's series (what a loop taking
    /// over may keep, for [`StopMode::HandOver`]).
    pub async fn stop(self, mode: StopMode) -> ScrapeCache {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// How long to wait before the first scrape so each target keeps the same offset within its
/// interval across restarts and instances (spreads many targets over the interval).
pub fn first_delay(target_id: u64, interval: Duration, now_unix_ms: i64) -> Duration {
    let interval_ms = interval.as_millis().max(1) as u64;
    let offset = target_id % interval_ms;
    let phase = (now_unix_ms.max(0) as u64) % interval_ms;
    Duration::from_millis((offset + interval_ms - phase) % interval_ms)
}

/// Starts the loop of `target`, continuing from `memory` (empty for a new target).
pub fn spawn(target: Arc<Target>, job: Arc<JobRuntime>, memory: ScrapeCache) -> LoopHandle {
    let health = Arc::new(Mutex::new(TargetHealth::default()));
    let stop = CancellationToken::new();
    let mode = Arc::new(Mutex::new(StopMode::Gone));
    let task = tokio::spawn(run(
        Arc::clone(&target),
        job,
        memory,
        Arc::clone(&health),
        stop.clone(),
        Arc::clone(&mode),
    ));
    LoopHandle {
        target,
        health,
        stop,
        mode,
        task,
    }
}

async fn run(
    target: Arc<Target>,
    job: Arc<JobRuntime>,
    mut cache: ScrapeCache,
    health: Arc<Mutex<TargetHealth>>,
    stop: CancellationToken,
    mode: Arc<Mutex<StopMode>>,
) -> ScrapeCache {
    let delay = first_delay(target.id(), target.interval, now_ms() as i64);
    let timeout_header = HeaderValue::from_str(&format!("{}", target.timeout.as_secs_f64()))
        .unwrap_or_else(|_| HeaderValue::from_static("10"));
    let mut http = http_client(&target, &job, &timeout_header);
    let shared = shared_fields(&target, &job);
    if cache.share_labels(&shared).is_err() {
        // A handed-over cache too large to rewrite: start afresh (an empty one always fits).
        cache = ScrapeCache::default();
        let _ = cache.share_labels(&shared);
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + delay, target.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let started = Instant::now();
        let ts = now_ms() as i64;
        let mut body = buffers::take_body();
        let fetched = tokio::select! {
            r = fetch(&target, &job, &timeout_header, http.as_mut(), &mut body) => r,
            _ = stop.cancelled() => {
                buffers::put_body(body);
                break;
            }
        };
        let scrape = job
            .outbox
            .add(target.id(), |batch| {
                scrape_batch(
                    &target, &job, &mut cache, fetched, &body, ts, started, batch,
                )
            })
            .await;
        buffers::put_body(body);
        let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
        h.health = if scrape.error.is_empty() {
            Health::Up
        } else {
            Health::Down
        };
        h.last_scrape_unix_ms = Some(ts as u64);
        h.last_scrape_duration = scrape.duration;
        if scrape.error.is_empty() {
            h.last_samples = scrape.post as u64;
        }
        h.last_error = scrape.error;
    }
    let mode = *mode.lock().unwrap_or_else(|p| p.into_inner());
    match mode {
        StopMode::Gone => {
            push_all_stale(&job.outbox, target.id(), &cache).await;
            ScrapeCache::default()
        }
        StopMode::HandOver => cache.hand_over(),
    }
}

/// What one scrape produced (its series are in the outbox).
struct Scrape {
    /// Samples after metric relabeling.
    post: usize,
    duration: Duration,
    /// Why the scrape failed; empty when it succeeded.
    error: String,
}

/// Appends one scrape's batch to `batch` (the outbox's pending block): scraped series, report
/// series, stale markers; on a failed scrape only the report series and stale markers.
#[expect(
    clippy::too_many_arguments,
    reason = "the hot path passes what it borrows instead of building a struct per scrape"
)]
fn scrape_batch(
    target: &Target,
    job: &JobRuntime,
    cache: &mut ScrapeCache,
    fetched: Result<Option<String>, ScrapeError>,
    body: &[u8],
    ts: i64,
    started: Instant,
    batch: &mut WriteRequestEncoder,
) -> Scrape {
    cache.begin();
    let (mark_len, mark_series) = (batch.as_bytes().len(), batch.series());
    let outcome = fetched.and_then(|content_type| {
        build(target, job, body, content_type.as_deref(), ts, cache, batch)
    });
    let duration = started.elapsed();
    let (up, scraped, post, error) = match outcome {
        Ok((scraped, post)) => (1.0, scraped, post, String::new()),
        Err(e) => {
            batch.truncate(mark_len, mark_series);
            cache.abort();
            debug!(target = %target.scrape_url, error = %e, "scrape failed");
            (0.0, 0, 0, e.to_string())
        }
    };
    let added = cache.added();
    report(
        cache,
        batch,
        target,
        job,
        ts,
        [
            ("up", up),
            ("scrape_duration_seconds", duration.as_secs_f64()),
            ("scrape_samples_scraped", scraped as f64),
            ("scrape_samples_post_metric_relabeling", post as f64),
            ("scrape_series_added", added as f64),
        ],
    );
    cache.finish(batch, ts);
    Scrape {
        post,
        duration,
        error,
    }
}

/// The label fields every series of the target carries: its target labels and the external
/// labels, sorted by name (the cache keeps them once, see [`ScrapeCache::share_labels`]).
fn shared_fields(target: &Target, job: &JobRuntime) -> Vec<u8> {
    let mut pairs: Vec<(&str, &str)> = target
        .labels
        .iter()
        .chain(&job.external_labels)
        .map(Label::as_pair)
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut fields = Vec::new();
    encode_labels_into(pairs, &mut fields);
    fields
}

/// The loop's own client for `http://` targets (see [`http`]); `None` keeps every scrape of the
/// target on the job's reqwest client: `https://`, or a proxy set in the environment, which
/// reqwest applies.
fn http_client(
    target: &Target,
    job: &JobRuntime,
    timeout_header: &HeaderValue,
) -> Option<http::Client> {
    if target.scrape_url.scheme() != "http" || http::proxy_from_env() {
        return None;
    }
    let mut headers: Vec<(&str, &[u8])> = vec![
        ("Accept", ACCEPT_HEADER.as_bytes()),
        (
            "X-Prometheus-Scrape-Timeout-Seconds",
            timeout_header.as_bytes(),
        ),
    ];
    if let Some(auth) = &job.authorization {
        headers.push(("Authorization", auth.as_bytes()));
    }
    http::Client::new(
        &target.scrape_url,
        &headers,
        target.timeout,
        job.cfg.body_size_limit,
    )
}

/// Fetches the target into `body`; returns the response's Content-Type. Through the loop's own
/// client when it has one, through reqwest for what that client does not do (redirects).
async fn fetch(
    target: &Target,
    job: &JobRuntime,
    timeout_header: &HeaderValue,
    http: Option<&mut http::Client>,
    body: &mut Vec<u8>,
) -> Result<Option<String>, ScrapeError> {
    let started = Instant::now();
    if let Some(client) = http {
        match client.fetch(body).await {
            Ok(http::Response::Body { content_type }) => return Ok(content_type),
            Ok(http::Response::Redirect(status)) => {
                debug!(target = %target.scrape_url, %status, "redirected: fetching through reqwest");
            }
            Err(e) => return Err(e.into()),
        }
    }
    // The scrape as a whole stays within the timeout, redirect or not.
    let timeout = target.timeout.saturating_sub(started.elapsed());
    fetch_reqwest(target, job, timeout_header, timeout, body).await
}

/// [`fetch`] through the job's reqwest client, which follows redirects and speaks TLS.
async fn fetch_reqwest(
    target: &Target,
    job: &JobRuntime,
    timeout_header: &HeaderValue,
    timeout: Duration,
    body: &mut Vec<u8>,
) -> Result<Option<String>, ScrapeError> {
    body.clear();
    let mut req = job
        .client
        .get(target.scrape_url.clone())
        .header(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER))
        .header(
            "x-prometheus-scrape-timeout-seconds",
            timeout_header.clone(),
        )
        .timeout(timeout);
    if let Some(auth) = &job.authorization {
        req = req.header(reqwest::header::AUTHORIZATION, auth.clone());
    }
    let mut resp = req.send().await.map_err(ScrapeError::Request)?;
    if !resp.status().is_success() {
        return Err(ScrapeError::Status(resp.status()));
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let limit = job.cfg.body_size_limit;
    while let Some(chunk) = resp.chunk().await.map_err(ScrapeError::Request)? {
        if limit > 0 && (body.len() + chunk.len()) as u64 > limit {
            return Err(ScrapeError::BodyLimit(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(content_type)
}

/// Parses `body` into `batch` through the target's cache; returns (samples scraped, samples
/// after metric relabeling).
fn build(
    target: &Target,
    job: &JobRuntime,
    body: &[u8],
    content_type: Option<&str>,
    ts: i64,
    cache: &mut ScrapeCache,
    batch: &mut WriteRequestEncoder,
) -> Result<(usize, usize), ScrapeError> {
    let cfg = &job.cfg;
    let opts = SeriesOptions {
        target_labels: &target.labels,
        honor_labels: cfg.honor_labels,
        metric_relabel: cfg.metric_relabel_configs.compiled(),
        external_labels: &job.external_labels,
        label_limit: usize::try_from(cfg.label_limit).unwrap_or(usize::MAX),
    };
    let limits = BatchLimits {
        honor_timestamps: cfg.honor_timestamps,
        sample_limit: cfg.sample_limit,
    };
    let format = format_from_content_type(content_type);
    build_batch(body, format, &opts, limits, ts, cache, batch)
}

/// A job's settings [`build_batch`] needs besides the labels.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub honor_timestamps: bool,
    /// Most samples after metric relabeling; 0 = no limit.
    pub sample_limit: u64,
}

/// One scrape's samples from `body` into `batch`, through the target's `cache` (which the
/// caller has [`ScrapeCache::begin`]-ed); samples without a timestamp (or all, unless
/// `honor_timestamps`) get `ts`. Returns (samples scraped, samples after metric relabeling), or
/// why the scrape fails. Public for the benchmarks.
pub fn build_batch(
    body: &[u8],
    format: Format,
    opts: &SeriesOptions<'_>,
    limits: BatchLimits,
    ts: i64,
    cache: &mut ScrapeCache,
    batch: &mut WriteRequestEncoder,
) -> Result<(usize, usize), ScrapeError> {
    let (mut scraped, mut post) = (0usize, 0usize);
    let mut labels = Vec::new();
    let mut parser = Parser::new(body, format).without_semantic_checks();
    while let Some(item) =
        parser.next_with(|series| cache.lookup(TextKey::of_series(series.as_bytes())))
    {
        let (idx, value, timestamp_ms) = match item? {
            Item::Known {
                key,
                value,
                timestamp_ms,
            } => (key, value, timestamp_ms),
            Item::Sample(s) => {
                let text = TextKey::of_series(s.series.as_bytes());
                let idx = entry(cache, text, s.name, s.labels.iter(), opts, &mut labels)?;
                (idx, s.value, s.timestamp_ms)
            }
        };
        scraped += 1;
        let t = match timestamp_ms {
            Some(t) if limits.honor_timestamps => t,
            _ => ts,
        };
        if cache.write(idx, value, t, batch) == Added::Series {
            post += 1;
            if limits.sample_limit > 0 && post as u64 > limits.sample_limit {
                return Err(ScrapeError::SampleLimit(limits.sample_limit));
            }
        }
    }
    Ok((scraped, post))
}

/// The series Prometheus adds for every scrape (not subject to metric relabeling).
fn report(
    cache: &mut ScrapeCache,
    batch: &mut WriteRequestEncoder,
    target: &Target,
    job: &JobRuntime,
    ts: i64,
    values: [(&'static str, f64); 5],
) {
    let opts = SeriesOptions {
        target_labels: &target.labels,
        honor_labels: false,
        metric_relabel: &[],
        external_labels: &job.external_labels,
        label_limit: 0,
    };
    let mut labels = Vec::new();
    for (name, value) in values {
        let text = TextKey::of_report(name);
        // Cannot fail: no scraped labels, no relabeling, no limit.
        if let Ok(idx) = entry(cache, text, name, std::iter::empty(), &opts, &mut labels) {
            cache.write(idx, value, ts, batch);
        }
    }
}

/// The cache's entry for a series text, its labels computed (into `scratch`) the first time.
fn entry<'a, I>(
    cache: &mut ScrapeCache,
    text: TextKey,
    name: &'a str,
    labels: I,
    opts: &SeriesOptions<'a>,
    scratch: &mut Vec<u8>,
) -> Result<u32, ScrapeError>
where
    I: IntoIterator<Item = (&'a str, Cow<'a, str>)>,
{
    if let Some(idx) = cache.lookup(text) {
        return Ok(idx);
    }
    let kept = encode_series_labels(name, labels, opts, scratch)?;
    Ok(cache.insert(text, kept.then_some(&scratch[..]))?)
}

/// Queues stale markers for every series of a gone target's last batch (`cache`), behind the
/// target's last scrape.
pub async fn push_all_stale(outbox: &Outbox, target_id: u64, cache: &ScrapeCache) {
    let ts = now_ms() as i64;
    outbox
        .add(target_id, |batch| cache.all_stale_into(ts, batch))
        .await;
}

/// Bodies shared by all loops instead of kept per target: a scrape needs its body only until
/// its batch is built, so a few bodies serve any number of targets.
mod buffers {
    use std::sync::Mutex;

    /// Bodies kept for reuse, and the largest kept (a huge one is freed after use).
    const KEEP_BODIES: usize = 64;
    const KEEP_BYTES: usize = 16 << 20;

    static BODIES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    pub fn take_body() -> Vec<u8> {
        BODIES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    pub fn put_body(mut body: Vec<u8>) {
        if body.capacity() > KEEP_BYTES {
            return;
        }
        body.clear();
        let mut bodies = BODIES.lock().unwrap_or_else(|p| p.into_inner());
        if bodies.len() < KEEP_BODIES {
            bodies.push(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_delay_keeps_a_stable_offset_within_the_interval() {
        let interval = Duration::from_secs(10);
        // The scrape lands at the same phase (id % interval) whenever the loop starts.
        for now in [0i64, 1_234, 9_999, 1_700_000_003_210] {
            let d = first_delay(4_321, interval, now);
            assert!(d < interval);
            assert_eq!((now as u64 + d.as_millis() as u64) % 10_000, 4_321);
        }
    }
}
