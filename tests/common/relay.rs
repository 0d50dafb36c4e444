//! The relay under test and the storages it forwards to, for end-to-end tests that read as a
//! story:
//!
//! ```ignore
//! let storage = FakeStorage::new().fail_first(3).start().await;
//! let relay = Relay::with_storages(&[storage.url()]).start().await;
//! let pushes = Pushes::new("story_metric", 10, 5);
//! relay.push_all_accepted(&pushes).await;
//! assert_eq!(storage.samples_at_least("story_metric", pushes.sample_count()).await, pushes.expected());
//! ```
//!
//! - [`Relay`] runs the real `promrelay` binary on a loopback port it binds itself
//!   (`--listen 127.0.0.1:0`; the port is read from its "promrelay starting" log line, so no
//!   other process can take it between a probe and the bind), with a data directory,
//!   config file and `relay.log` in a temporary directory of its own that survives
//!   [`Relay::kill`] and [`Relay::terminate`], so [`Relay::start_again`] finds its queues. Every
//!   storage gets short backoffs (10ms to 200ms) so retries happen within a test's patience.
//!   When a test panics, the directory is kept and the tail of `relay.log` is printed.
//! - [`FakeStorage`] is an in-process remote-write receiver that records every request (headers,
//!   decoded `WriteRequest`, the status it answered) and can misbehave on purpose: fail the first
//!   requests, refuse pushes that carry a marked series, answer slowly, go down and come back.
//! - [`Pushes`] generates pushes of known series whose timestamps end about now, each push one
//!   second newer than the one before, and says what a storage should hold afterwards.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use promrelay::prompb::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{
    EVENTUALLY_TIMEOUT, Labels, READY_POLL_INTERVAL, START_BANNER, Series, eventually, free_port,
    http_client, kill_and_reap, now_ms, send_signal, spawn_logged, wait_until_ready,
};

/// How long the relay may take to answer `/-/ready`.
const RELAY_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `terminate` waits for the relay to exit after SIGTERM before it gives up.
const TERMINATE_WAIT: Duration = Duration::from_secs(30);
/// Largest request body the fake storage decodes.
const FAKE_STORAGE_MAX_BODY: usize = 64 << 20;

/// The headers a remote-write 1.0 client sends with every push.
pub const REMOTE_WRITE_HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// The label that makes [`FakeStorage`] refuse a push when built with
/// [`FakeStorageBuilder::refuse_marked_series`]; [`mark_for_refusal`] adds it.
pub const REFUSAL_MARK: (&str, &str) = ("reject", "yes");

/// A loopback port nothing listens on (a moment ago): a storage URL on it fails to connect.
pub fn unused_port() -> u16 {
    free_port()
}

/// A `WriteRequest` as a remote-write body: protobuf, then one snappy block.
pub fn encode(request: &WriteRequest) -> Vec<u8> {
    promrelay::prompb::compress(&request.encode_to_vec())
}

/// Marks every series of `request` with [`REFUSAL_MARK`] (keeping labels sorted by name), so a
/// storage built with `refuse_marked_series` answers 400 to any request that carries it.
pub fn mark_for_refusal(request: &mut WriteRequest) {
    for series in &mut request.timeseries {
        series
            .labels
            .push(Label::new(REFUSAL_MARK.0, REFUSAL_MARK.1));
        series.labels.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// The samples of `expected` that are missing from `received`, one line each; empty when every
/// expected sample arrived at least once (at-least-once delivery allows duplicates).
pub fn missing_samples(expected: &[Series], received: &[Series]) -> Vec<String> {
    let mut missing = Vec::new();
    for want in expected {
        let got = received.iter().find(|s| s.labels == want.labels);
        for &(timestamp, value) in &want.samples {
            let arrived = got.is_some_and(|s| {
                s.samples
                    .iter()
                    .any(|&(t, v)| t == timestamp && v.to_bits() == value.to_bits())
            });
            if !arrived {
                missing.push(format!("{:?} @{timestamp} = {value}", want.labels));
            }
        }
    }
    missing
}

/// Asserts both real storages hold exactly what `pushes` pushed, waiting until they hold as many
/// samples.
pub async fn assert_both_hold_exactly(
    vm: &super::VictoriaMetrics,
    prometheus: &super::Prometheus,
    pushes: &Pushes,
) {
    let expected = pushes.expected();
    let at_vm = vm
        .export_at_least(pushes.metric(), pushes.sample_count())
        .await;
    assert_holds_exactly("victoria-metrics", &at_vm, &expected);
    let at_prometheus = prometheus
        .raw_samples_at_least(pushes.metric(), pushes.sample_count())
        .await;
    assert_holds_exactly("prometheus", &at_prometheus, &expected);
}

/// Asserts `storage` holds exactly `expected` (same series, same samples in the same order),
/// and otherwise says briefly how it differs: the full series would be thousands of lines.
pub fn assert_holds_exactly(storage: &str, held: &[Series], expected: &[Series]) {
    if held == expected {
        return;
    }
    let missing = missing_samples(expected, held);
    let unexpected = missing_samples(held, expected);
    // Samples held beyond the expected ones that arrived: copies sent more than once.
    let copies = super::sample_count(held) as i64
        - super::sample_count(expected) as i64
        - unexpected.len() as i64
        + missing.len() as i64;
    panic!(
        "{storage} holds {} series with {} samples, expected {} series with {} samples; \
         {} missing (first: {:?}), {} unexpected (first: {:?}), {copies} extra copies (when all counts are 0, the order differs)",
        held.len(),
        super::sample_count(held),
        expected.len(),
        super::sample_count(expected),
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        unexpected.len(),
        unexpected.iter().take(5).collect::<Vec<_>>(),
    );
}

/// Pushes of known series: push `i` holds one sample of each of `series` series
/// `{__name__="<metric>", series="sNNN"}`, at `start_ms + i` seconds, with value
/// `i * series + s`. The last push is about now, so even Prometheus' receiver (which refuses
/// old samples) takes all of them, and every series' timestamps strictly increase push by push.
#[derive(Debug, Clone)]
pub struct Pushes {
    metric: String,
    count: usize,
    series: usize,
    start_ms: i64,
}

impl Pushes {
    pub fn new(metric: &str, count: usize, series: usize) -> Self {
        let count_i64 = i64::try_from(count).expect("push count fits in i64");
        Self {
            metric: metric.to_owned(),
            count,
            series,
            start_ms: (now_ms() / 1000 - count_i64) * 1000,
        }
    }

    pub fn metric(&self) -> &str {
        &self.metric
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Samples in all pushes together.
    pub fn sample_count(&self) -> usize {
        self.count * self.series
    }

    /// Push number `i` (from 0).
    pub fn request(&self, i: usize) -> WriteRequest {
        assert!(i < self.count, "push {i} of {}", self.count);
        let timeseries = (0..self.series)
            .map(|s| {
                let (timestamp, value) = self.sample(i, s);
                TimeSeries {
                    labels: self
                        .labels(s)
                        .into_iter()
                        .map(|(name, value)| Label::new(name, value))
                        .collect(),
                    samples: vec![Sample { value, timestamp }],
                    ..TimeSeries::default()
                }
            })
            .collect();
        WriteRequest {
            timeseries,
            metadata: Vec::new(),
        }
    }

    /// Every push, in order.
    pub fn requests(&self) -> Vec<WriteRequest> {
        (0..self.count).map(|i| self.request(i)).collect()
    }

    /// What a storage holds once it got every push exactly once: each series with its samples
    /// in time order, series sorted by labels (as the peers' and the fake storage's readers
    /// return them).
    pub fn expected(&self) -> Vec<Series> {
        self.expected_without(&[])
    }

    /// As [`Pushes::expected`], without the pushes numbered in `left_out`.
    pub fn expected_without(&self, left_out: &[usize]) -> Vec<Series> {
        let mut series: Vec<Series> = (0..self.series)
            .map(|s| Series {
                labels: self.labels(s),
                samples: (0..self.count)
                    .filter(|i| !left_out.contains(i))
                    .map(|i| self.sample(i, s))
                    .collect(),
            })
            .filter(|series| !series.samples.is_empty())
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }

    fn labels(&self, s: usize) -> Labels {
        Labels::from([
            ("__name__".to_owned(), self.metric.clone()),
            ("series".to_owned(), format!("s{s:03}")),
        ])
    }

    fn sample(&self, i: usize, s: usize) -> (i64, f64) {
        let i64_i = i64::try_from(i).expect("push index fits in i64");
        (self.start_ms + i64_i * 1000, (i * self.series + s) as f64)
    }
}

/// The relay about to start: storages, flags and per-storage settings.
pub struct RelayBuilder {
    storages: Vec<String>,
    /// Base URLs of vminsert clusters (`multitenant_url`), after the ordinary storages.
    multitenant: Vec<String>,
    storages_on_command_line: bool,
    storage_settings: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
}

impl RelayBuilder {
    /// Keeps the queues in `dir` (for example a small filesystem of the test's own) instead of
    /// `data/` in the relay's directory.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// Adds a command-line flag or value, for example `.arg("--fsync").arg("always")`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds a vminsert cluster at `base_url` (`multitenant_url`), with the same short backoffs
    /// and settings as the other storages.
    pub fn multitenant_storage(mut self, base_url: &str) -> Self {
        self.multitenant.push(base_url.to_owned());
        self
    }

    /// Adds a YAML setting to every storage in the config file, for example
    /// `.storage_setting("max_block_bytes: 1KiB")`.
    pub fn storage_setting(mut self, yaml: &str) -> Self {
        self.storage_settings.push(yaml.to_owned());
        self
    }

    /// Names the storages with `--remote-write-url` flags (default settings, default backoffs)
    /// instead of in the config file.
    pub fn storages_on_command_line(mut self) -> Self {
        self.storages_on_command_line = true;
        self
    }

    /// Sets an environment variable for the relay, for example `RUST_LOG=debug`.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the relay and waits until `/-/ready` answers 200.
    pub async fn start(self) -> Relay {
        let dir = tempfile::Builder::new()
            .prefix("promrelay-relay-")
            .tempdir()
            .expect("create a temporary directory for the relay");
        let mut args = vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--data-dir".to_owned(),
            self.data_dir
                .unwrap_or_else(|| dir.path().join("data"))
                .display()
                .to_string(),
        ];
        if self.storages_on_command_line {
            assert!(
                self.storage_settings.is_empty(),
                "storage settings need the config file"
            );
            for url in &self.storages {
                args.extend(["--remote-write-url".to_owned(), url.clone()]);
            }
            for url in &self.multitenant {
                args.extend(["--remote-write-multitenant-url".to_owned(), url.clone()]);
            }
        } else {
            let config = dir.path().join("promrelay.yml");
            fs::write(
                &config,
                relay_config(&self.storages, &self.multitenant, &self.storage_settings),
            )
            .expect("write the relay's config");
            args.extend(["--config".to_owned(), config.display().to_string()]);
        }
        args.extend(self.args);
        let mut relay = Relay {
            port: 0,
            dir,
            args,
            env: self.env,
            child: None,
            http: http_client(),
        };
        relay.launch().await;
        relay
    }
}

/// The config file: every storage with short backoffs plus the builder's settings.
fn relay_config(storages: &[String], multitenant: &[String], settings: &[String]) -> String {
    let mut yaml = String::from("storages:\n");
    let entries = storages
        .iter()
        .map(|u| ("url", u))
        .chain(multitenant.iter().map(|u| ("multitenant_url", u)));
    for (key, url) in entries {
        let url = serde_json::to_string(url).expect("strings serialise");
        yaml.push_str(&format!(
            "  - {key}: {url}\n    min_backoff: 10ms\n    max_backoff: 200ms\n"
        ));
        for setting in settings {
            yaml.push_str(&format!("    {setting}\n"));
        }
    }
    yaml
}

/// The `promrelay` binary, running or stopped, with its port and directory.
pub struct Relay {
    /// 0 until the first start has bound one; later starts listen on it again.
    port: u16,
    dir: TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Relay {
    /// A relay forwarding to the remote-write `urls`, each with backoffs of 10ms to 200ms.
    pub fn with_storages<S: AsRef<str>>(urls: &[S]) -> RelayBuilder {
        RelayBuilder {
            storages: urls.iter().map(|u| u.as_ref().to_owned()).collect(),
            multitenant: Vec::new(),
            storages_on_command_line: false,
            storage_settings: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            data_dir: None,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where Prometheus-style clients push.
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    /// The relay's own directory: `data/`, `promrelay.yml` and `relay.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the relay logged, across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        super::log_tail(&self.log_path())
    }

    /// Pushes `request` as a remote-write client does; returns the status and body.
    pub async fn push(&self, request: &WriteRequest) -> (u16, String) {
        self.push_raw(encode(request), &REMOTE_WRITE_HEADERS).await
    }

    /// Pushes `request` and asserts the relay acknowledged it with 204.
    pub async fn push_accepted(&self, request: &WriteRequest) {
        let (status, body) = self.push(request).await;
        assert_eq!(
            status,
            204,
            "push refused: {body}\nrelay log tail:\n{}",
            self.log_tail()
        );
    }

    /// Pushes every push of `pushes`, one after another, each acknowledged with 204.
    pub async fn push_all_accepted(&self, pushes: &Pushes) {
        for request in pushes.requests() {
            self.push_accepted(&request).await;
        }
    }

    /// POSTs `body` with exactly `headers` to `/api/v1/write`; returns the status and body.
    pub async fn push_raw(
        &self,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        self.push_raw_to("/api/v1/write", body, headers).await
    }

    /// POSTs `body` with exactly `headers` to `path`; returns the status and body.
    pub async fn push_raw_to(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut request = self.http.post(format!("{}{path}", self.url())).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("push to the relay: {e}\n{}", self.log_tail()));
        super::read_response(response).await
    }

    /// GETs `path` from the relay; returns the status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.url()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} from the relay: {e}\n{}", self.log_tail()));
        super::read_response(response).await
    }

    /// `GET /api/v1/queues`: one object per storage, in the order the storages were given.
    pub async fn queues(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.get("/api/v1/queues").await;
        assert_eq!(status, 200, "/api/v1/queues: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/api/v1/queues is not a JSON array ({e}): {body}"))
    }

    /// The queue of storage number `index` (from 0, in the order given).
    pub async fn queue(&self, index: usize) -> serde_json::Value {
        let queues = self.queues().await;
        queues
            .get(index)
            .cloned()
            .unwrap_or_else(|| panic!("no queue {index} among {queues:#?}"))
    }

    /// Waits until the queue of storage `index` satisfies `condition` (described by `what`) and
    /// returns it.
    pub async fn wait_for_queue(
        &self,
        index: usize,
        what: &str,
        condition: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let what = format!("queue {index}: {what}");
        eventually(&what, EVENTUALLY_TIMEOUT, || async {
            let queue = self.queue(index).await;
            if condition(&queue) {
                Ok(queue)
            } else {
                Err(queue.to_string())
            }
        })
        .await
    }

    /// Waits until every queue has nothing pending, and returns the queues.
    pub async fn wait_until_drained(&self) -> Vec<serde_json::Value> {
        eventually("every queue to drain", EVENTUALLY_TIMEOUT, || async {
            let queues = self.queues().await;
            if queues.iter().all(|q| q["pending_blocks"] == 0) {
                Ok(queues)
            } else {
                Err(serde_json::Value::Array(queues).to_string())
            }
        })
        .await
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id of the running relay, to send it signals.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("the relay is running")
    }

    /// SIGKILL, as a crash or an OOM kill would. The directory stays for `start_again`.
    pub async fn kill(&mut self) {
        let mut child = self.running_child();
        child.kill().await.expect("SIGKILL the relay");
    }

    /// SIGTERM, then waits for the relay to exit and returns how it exited.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.running_child();
        send_signal(child.id().expect("a running child has a pid"), "TERM");
        match tokio::time::timeout(TERMINATE_WAIT, child.wait()).await {
            Ok(status) => status.expect("wait for the relay"),
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "relay did not exit within {TERMINATE_WAIT:?} of SIGTERM; log tail:\n{}",
                    self.log_tail()
                );
            }
        }
    }

    /// Starts the relay again with the same port, flags and data directory, and waits until it
    /// is ready.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the relay is already running");
        self.launch().await;
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("relay.log")
    }

    fn running_child(&mut self) -> Child {
        self.child.take().expect("the relay is not running")
    }

    async fn launch(&mut self) {
        let binary = env!("CARGO_BIN_EXE_promrelay");
        let mut command = Command::new(binary);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path());
        // The banner without the arguments: storage URLs may hold passwords, and tests search
        // the log for leaked ones.
        let log = self.log_path();
        self.child = Some(spawn_logged(&mut command, &log, binary));
        if self.port == 0 {
            self.port = self.bound_port().await;
            let listen = self
                .args
                .iter()
                .position(|a| a == "--listen")
                .expect("start() passes --listen")
                + 1;
            self.args[listen] = format!("127.0.0.1:{}", self.port);
        }
        let url = format!("{}/-/ready", self.url());
        wait_until_ready(
            "relay",
            &mut self.child,
            &self.http,
            &url,
            RELAY_READY_TIMEOUT,
            &log,
        )
        .await;
    }
}

impl Relay {
    /// The port this start of the relay bound, from its `promrelay starting listen=...` log
    /// line. Panics with the log tail if the relay exits first or does not log it in time.
    async fn bound_port(&mut self) -> u16 {
        let deadline = Instant::now() + RELAY_READY_TIMEOUT;
        loop {
            let log = self.log();
            // The log is appended across starts; only this start's lines count.
            let this_start = log.rsplit(START_BANNER).next().unwrap_or_default();
            if let Some(port) = this_start.lines().find_map(logged_listen_port) {
                return port;
            }
            let child = self.child.as_mut().expect("launched");
            if let Some(status) = child.try_wait().expect("poll the relay") {
                self.child = None;
                panic!(
                    "relay exited ({status}) before it logged its port; log tail:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "relay did not log its port within {RELAY_READY_TIMEOUT:?}; log tail:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }
}

/// The port in a `promrelay starting listen=127.0.0.1:<port> ...` log line.
fn logged_listen_port(line: &str) -> Option<u16> {
    let (_, after) = line.split_once("promrelay starting")?;
    let (_, address) = after.split_once("127.0.0.1:")?;
    let digits = address.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok().filter(|&port| port != 0)
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_reap(child);
        }
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "relay kept its data and relay.log in {}; log tail:\n{}",
                self.dir.path().display(),
                self.log_tail()
            );
        }
    }
}

/// One request as the fake storage received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// When the request arrived.
    pub at: Instant,
    /// The request's path: `/api/v1/write`, or `/insert/<tenant>/prometheus/api/v1/write` when
    /// it acts as a vminsert cluster.
    pub path: String,
    pub headers: HeaderMap,
    /// The decoded body, or why it could not be decoded.
    pub request: Result<WriteRequest, String>,
    /// What the fake storage answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How a fake storage answers.
#[derive(Debug, Clone)]
struct Behaviour {
    fail_first: usize,
    fail_status: u16,
    retry_after: Option<String>,
    refuse_marked_series: bool,
    delay: Duration,
    /// Paths answered with the failure status while they are listed.
    failing_paths: Arc<Mutex<Vec<String>>>,
}

/// A fake storage about to start.
pub struct FakeStorageBuilder {
    behaviour: Behaviour,
}

impl FakeStorageBuilder {
    /// Answers the first `n` requests with the failure status (503 unless `failing_with`).
    pub fn fail_first(mut self, n: usize) -> Self {
        self.behaviour.fail_first = n;
        self
    }

    /// The status of the failures `fail_first` asks for.
    pub fn failing_with(mut self, status: u16) -> Self {
        self.behaviour.fail_status = status;
        self
    }

    /// Sends `Retry-After: <value>` with each failure.
    pub fn retry_after(mut self, value: &str) -> Self {
        self.behaviour.retry_after = Some(value.to_owned());
        self
    }

    /// Answers 400 to any request that holds a series marked with [`REFUSAL_MARK`], as a strict
    /// storage refuses an out-of-order or invalid sample.
    pub fn refuse_marked_series(mut self) -> Self {
        self.behaviour.refuse_marked_series = true;
        self
    }

    /// Answers every request on `path` with the failure status (503 unless `failing_with`) until
    /// [`FakeStorage::heal`], as one tenant of a cluster that is down.
    pub fn failing_on(self, path: &str) -> Self {
        self.behaviour
            .failing_paths
            .lock()
            .expect("not poisoned")
            .push(path.to_owned());
        self
    }

    /// Waits `delay` before answering each request.
    pub fn answering_after(mut self, delay: Duration) -> Self {
        self.behaviour.delay = delay;
        self
    }

    pub async fn start(self) -> FakeStorage {
        let shared = Arc::new(Shared {
            behaviour: self.behaviour,
            requests: Mutex::new(Vec::new()),
            seen: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake storage");
        let port = listener.local_addr().expect("bound").port();
        let mut storage = FakeStorage {
            shared,
            port,
            server: None,
        };
        storage.serve(listener);
        storage
    }
}

struct Shared {
    behaviour: Behaviour,
    requests: Mutex<Vec<Received>>,
    /// Requests seen so far, to count the first failures.
    seen: AtomicUsize,
}

/// An in-process remote-write receiver on a loopback port; see the module documentation.
pub struct FakeStorage {
    shared: Arc<Shared>,
    port: u16,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl FakeStorage {
    /// A storage that accepts everything (204) at once; the builder's methods make it misbehave.
    #[expect(
        clippy::new_ret_no_self,
        reason = "FakeStorage::new().fail_first(3).start() reads as the story it sets up"
    )]
    pub fn new() -> FakeStorageBuilder {
        FakeStorageBuilder {
            behaviour: Behaviour {
                fail_first: 0,
                fail_status: 503,
                retry_after: None,
                refuse_marked_series: false,
                delay: Duration::ZERO,
                failing_paths: Arc::default(),
            },
        }
    }

    /// Its remote-write URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// Its remote-write URL with `user:password@` in it.
    pub fn url_with_credentials(&self, user: &str, password: &str) -> String {
        format!(
            "http://{user}:{password}@127.0.0.1:{}/api/v1/write",
            self.port
        )
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().expect("not poisoned").clone()
    }

    /// The requests it acknowledged, decoded, in arrival order.
    pub fn accepted_requests(&self) -> Vec<WriteRequest> {
        self.requests()
            .into_iter()
            .filter(Received::accepted)
            .filter_map(|r| r.request.ok())
            .collect()
    }

    /// Its base URL, `http://127.0.0.1:<port>`: as a vminsert cluster it takes
    /// `/insert/<tenant>/prometheus/api/v1/write` under it.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The series of `metric` it acknowledged, by request path, as [`FakeStorage::series`] gives them.
    pub fn series_by_path(&self, metric: &str) -> BTreeMap<String, Vec<Series>> {
        let mut paths: BTreeMap<String, Vec<WriteRequest>> = BTreeMap::new();
        for r in self.requests().into_iter().filter(Received::accepted) {
            if let Ok(request) = r.request {
                paths.entry(r.path).or_default().push(request);
            }
        }
        paths
            .into_iter()
            .map(|(path, requests)| (path, series_of(requests, metric)))
            .filter(|(_, series)| !series.is_empty())
            .collect()
    }

    /// The series of `metric` it acknowledged, each with its samples in arrival order (duplicates
    /// kept), sorted by labels.
    pub fn series(&self, metric: &str) -> Vec<Series> {
        series_of(self.accepted_requests(), metric)
    }

    /// Waits until it acknowledged at least `samples` samples of `metric`, and returns the series.
    pub async fn samples_at_least(&self, metric: &str, samples: usize) -> Vec<Series> {
        let what = format!("the fake storage to hold {samples} samples of {metric}");
        eventually(&what, EVENTUALLY_TIMEOUT, || async {
            let series = self.series(metric);
            if super::sample_count(&series) >= samples {
                Ok(series)
            } else {
                Err(format!(
                    "{} samples in {} requests",
                    super::sample_count(&series),
                    self.requests().len()
                ))
            }
        })
        .await
    }

    /// Waits until every sample of `expected` arrived at least once (duplicates allowed, as
    /// after a crash), and returns the series of their metric.
    pub async fn every_sample_of(&self, expected: &[Series]) -> Vec<Series> {
        let metric = expected
            .first()
            .map(|s| s.name().to_owned())
            .expect("some series to wait for");
        let what = format!("the fake storage to hold every expected sample of {metric}");
        eventually(&what, EVENTUALLY_TIMEOUT, || async {
            let series = self.series(&metric);
            let missing = missing_samples(expected, &series);
            if missing.is_empty() {
                Ok(series)
            } else {
                Err(format!(
                    "{} missing, first {:?}",
                    missing.len(),
                    missing.first()
                ))
            }
        })
        .await
    }

    /// Stops failing the paths given to [`FakeStorageBuilder::failing_on`].
    pub fn heal(&self) {
        self.shared
            .behaviour
            .failing_paths
            .lock()
            .expect("not poisoned")
            .clear();
    }

    /// Goes down: stops listening and closes its connections, so senders get connection errors.
    pub async fn stop(&mut self) {
        let (shutdown, server) = self.server.take().expect("the fake storage is not running");
        let _ = shutdown.send(());
        server
            .await
            .expect("the fake storage's server ends cleanly");
    }

    /// Comes back on the same port with the same records.
    pub async fn start_again(&mut self) {
        assert!(self.server.is_none(), "the fake storage is already running");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the fake storage's port again");
        self.serve(listener);
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let router = Router::new()
            .route("/api/v1/write", post(receive))
            .route("/insert/{tenant}/prometheus/api/v1/write", post(receive))
            .layer(DefaultBodyLimit::max(FAKE_STORAGE_MAX_BODY))
            .with_state(Arc::clone(&self.shared));
        self.server = Some(super::serve_until_stopped(listener, router, "fake storage"));
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let behaviour = &shared.behaviour;
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    let request = promrelay::prompb::decompress_bounded(&body, FAKE_STORAGE_MAX_BODY)
        .map_err(|e| format!("snappy: {e}"))
        .and_then(|raw| WriteRequest::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}")));
    let nth = shared.seen.fetch_add(1, Ordering::SeqCst);
    let marked = request.as_ref().is_ok_and(|r| {
        r.timeseries.iter().any(|ts| {
            ts.labels
                .iter()
                .any(|l| l.name == REFUSAL_MARK.0 && l.value == REFUSAL_MARK.1)
        })
    });
    let failing_path = behaviour
        .failing_paths
        .lock()
        .expect("not poisoned")
        .iter()
        .any(|p| p == uri.path());
    let (status, message) = if nth < behaviour.fail_first || failing_path {
        (behaviour.fail_status, "failing on purpose")
    } else if request.is_err() {
        (400, "cannot decode the request")
    } else if behaviour.refuse_marked_series && marked {
        (400, "refusing a marked series")
    } else {
        (204, "")
    };
    shared
        .requests
        .lock()
        .expect("not poisoned")
        .push(Received {
            at,
            path: uri.path().to_owned(),
            headers,
            request,
            status,
        });
    let status_code = StatusCode::from_u16(status).expect("a valid status");
    let mut response = (status_code, message.to_owned()).into_response();
    if (status_code.is_client_error() || status_code.is_server_error())
        && let Some(retry_after) = &behaviour.retry_after
    {
        response.headers_mut().insert(
            "retry-after",
            retry_after.parse().expect("a valid header value"),
        );
    }
    response
}

/// The series of `metric` in `requests`, each with its samples in request order (duplicates
/// kept), sorted by labels.
fn series_of(requests: impl IntoIterator<Item = WriteRequest>, metric: &str) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for request in requests {
        for ts in request.timeseries {
            let labels: Labels = ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
            if labels.get("__name__").map(String::as_str) != Some(metric) {
                continue;
            }
            let samples = ts.samples.iter().map(|s| (s.timestamp, s.value));
            match series.iter_mut().find(|s| s.labels == labels) {
                Some(known) => known.samples.extend(samples),
                None => series.push(Series {
                    labels,
                    samples: samples.collect(),
                }),
            }
        }
    }
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    series
}
