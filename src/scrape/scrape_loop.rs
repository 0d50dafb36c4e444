//! One target's scrape loop: fetch on a stable offset within the interval, parse, build the batch
//! (scraped series, the five series Prometheus adds per scrape, stale markers for series that
//! vanished), and hand it to the fan-out.
//!
//! Guarantees: one scrape at a time per target, never longer than its timeout; a failed scrape
//! (HTTP error, timeout, body over `body_size_limit`, parse error, `sample_limit` or `label_limit`
//! exceeded) sends no scraped sample, `up` 0, and stale markers for every series of the previous
//! scrape, as Prometheus does. When the loop is stopped for good (target gone), every remembered
//! series gets a stale marker; when it is handed over to a new loop (reload), the memory goes with it.
//!
//! Must not: write to queues except through [`Fanout::push`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::config::JobConfig;
use super::parse::{Entry, Parser, format_from_content_type};
use super::series::{Added, SeriesBuilder, SeriesMemory, SeriesOptions, all_stale};
use super::targets::Target;
use crate::forward::{Fanout, error_chain};
use crate::ingest::{IngestMetrics, Source};
use crate::prompb::Label;

/// What Prometheus offers: OpenMetrics first, then the text format.
const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

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
    pub client: reqwest::Client,
    /// `Authorization` for every scrape of the job, if it has credentials.
    pub authorization: Option<HeaderValue>,
    pub external_labels: Vec<Label>,
    pub fanout: Arc<Fanout>,
    pub metrics: Arc<IngestMetrics>,
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
    task: tokio::task::JoinHandle<SeriesMemory>,
}

impl LoopHandle {
    /// Stops the loop and returns its memory of the last scrape's series.
    pub async fn stop(self, mode: StopMode) -> SeriesMemory {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
pub fn spawn(target: Arc<Target>, job: Arc<JobRuntime>, memory: SeriesMemory) -> LoopHandle {
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
    mut memory: SeriesMemory,
    health: Arc<Mutex<TargetHealth>>,
    stop: CancellationToken,
    mode: Arc<Mutex<StopMode>>,
) -> SeriesMemory {
    let delay = first_delay(target.id(), target.interval, now_ms());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + delay, target.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut builder = SeriesBuilder::new();
    let mut body = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let started = Instant::now();
        let ts = now_ms();
        let fetched = tokio::select! {
            r = fetch(&target, &job, &mut body) => r,
            _ = stop.cancelled() => break,
        };
        let outcome = fetched.and_then(|content_type| {
            build(
                &target,
                &job,
                &body,
                content_type.as_deref(),
                ts,
                &mut builder,
            )
        });
        let duration = started.elapsed();
        let (up, scraped, post, err) = match outcome {
            Ok((scraped, post)) => (1.0, scraped, post, String::new()),
            Err(e) => {
                builder.clear();
                debug!(target = %target.scrape_url, error = %e, "scrape failed");
                (0.0, 0, 0, e)
            }
        };
        let added = builder.count_new(&memory);
        report(
            &mut builder,
            &target,
            &job,
            ts,
            [
                ("up", up),
                ("scrape_duration_seconds", duration.as_secs_f64()),
                ("scrape_samples_scraped", scraped as f64),
                ("scrape_samples_post_metric_relabeling", post as f64),
                ("scrape_series_added", added as f64),
            ],
        );
        builder.mark_vanished_stale(&memory, ts);
        send(&job, builder.as_bytes(), builder.series()).await;
        builder.remember(&mut memory);
        if body.capacity() > (64 << 20) {
            body = Vec::new();
        }
        let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
        h.health = if up == 1.0 { Health::Up } else { Health::Down };
        h.last_scrape_unix_ms = Some(ts as u64);
        h.last_scrape_duration = duration;
        h.last_error = err;
        if up == 1.0 {
            h.last_samples = post as u64;
        }
    }
    let mode = *mode.lock().unwrap_or_else(|p| p.into_inner());
    if mode == StopMode::Gone && !memory.is_empty() {
        let enc = all_stale(&memory, now_ms());
        send(&job, enc.as_bytes(), enc.series()).await;
        memory = SeriesMemory::default();
    }
    memory
}

/// Fetches the target into `body`; returns the response's Content-Type.
async fn fetch(
    target: &Target,
    job: &JobRuntime,
    body: &mut Vec<u8>,
) -> Result<Option<String>, String> {
    body.clear();
    let mut req = job
        .client
        .get(target.scrape_url.clone())
        .header(ACCEPT, ACCEPT_HEADER)
        .header(
            "x-prometheus-scrape-timeout-seconds",
            format!("{}", target.timeout.as_secs_f64()),
        )
        .timeout(target.timeout);
    if let Some(auth) = &job.authorization {
        req = req.header(reqwest::header::AUTHORIZATION, auth.clone());
    }
    let mut resp = req.send().await.map_err(|e| error_chain(&e))?;
    if !resp.status().is_success() {
        return Err(format!("server returned HTTP status {}", resp.status()));
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let limit = job.cfg.body_size_limit;
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if limit > 0 && (body.len() + chunk.len()) as u64 > limit {
            return Err(format!("body size limit exceeded ({limit} bytes)"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(content_type)
}

/// Parses `body` into `builder`; returns (samples scraped, samples after metric relabeling).
fn build(
    target: &Target,
    job: &JobRuntime,
    body: &[u8],
    content_type: Option<&str>,
    ts: i64,
    builder: &mut SeriesBuilder,
) -> Result<(usize, usize), String> {
    builder.clear();
    let cfg = &job.cfg;
    let opts = SeriesOptions {
        target_labels: &target.labels,
        honor_labels: cfg.honor_labels,
        metric_relabel: cfg.metric_relabel_configs.compiled(),
        external_labels: &job.external_labels,
        label_limit: usize::try_from(cfg.label_limit).unwrap_or(usize::MAX),
    };
    let (mut scraped, mut post) = (0usize, 0usize);
    let parser =
        Parser::new(body, format_from_content_type(content_type)).without_semantic_checks();
    for entry in parser {
        let Entry::Sample(s) = entry.map_err(|e| e.to_string())? else {
            continue;
        };
        scraped += 1;
        let t = match s.timestamp_ms {
            Some(t) if cfg.honor_timestamps => t,
            _ => ts,
        };
        if builder
            .add(s.name, s.labels.iter(), s.value, t, &opts)
            .map_err(|e| e.to_string())?
            == Added::Series
        {
            post += 1;
            if cfg.sample_limit > 0 && post as u64 > cfg.sample_limit {
                return Err(format!("sample_limit exceeded ({})", cfg.sample_limit));
            }
        }
    }
    Ok((scraped, post))
}

/// The series Prometheus adds for every scrape (not subject to metric relabeling).
fn report(
    builder: &mut SeriesBuilder,
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
    for (name, value) in values {
        // Cannot fail: no scraped labels, no limit.
        let _ = builder.add(name, std::iter::empty(), value, ts, &opts);
    }
}

async fn send(job: &JobRuntime, raw: &[u8], series: usize) {
    if series == 0 {
        return;
    }
    let body = Bytes::from(crate::prompb::compress(raw));
    let samples = u32::try_from(series).unwrap_or(u32::MAX);
    match job.fanout.push(body, samples).await {
        Ok(()) => job.metrics.accepted(Source::Scrape, series as u64),
        Err(e) => warn!(job = %job.cfg.job_name, error = %e, "scraped samples could not be queued"),
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
