//! Real peers for end-to-end tests: VictoriaMetrics, Prometheus (remote-write receiver or agent)
//! and node_exporter, run from the binaries that `scripts/fetch-peers.sh` unpacks into
//! `.peers/bin/`.
//!
//! A test reads as a story:
//!
//! ```ignore
//! let vm = Peers::victoria_metrics().start().await;
//! let relay = Relay::with_storages(&[vm.remote_write_url()]).start().await;
//! ...
//! let series = vm.export_at_least("up", 3).await;
//! ```
//!
//! What every peer guarantees:
//! - it listens on a free loopback port of its own and keeps its data, config and `peer.log`
//!   (stdout and stderr) in a temporary directory of its own;
//! - `start()` returns only once the peer answers its readiness endpoint, and panics with the
//!   tail of `peer.log` if it exits or is not ready in time;
//! - `stop()` ends it gracefully, `kill()` abruptly (a crash), and `start_again()` brings it back
//!   on the same port with the same data, which is how tests make a storage outage;
//! - dropping it kills the process; when the test is panicking its directory is kept and its
//!   path printed, so the log can be read;
//! - a missing binary fails the test with a hint to run `scripts/fetch-peers.sh`: a test never
//!   skips itself silently.

#![allow(
    dead_code,
    reason = "each test file uses a different part of this vocabulary"
)]

use std::collections::BTreeMap;
use std::fs;
use std::future::Future;
use std::io::Write;
use std::marker::PhantomData;
use std::net::TcpListener;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::process::{Child, Command};

/// How long a peer may take to answer its readiness endpoint. Generous: the machine has two
/// cores shared with compilers and other tests.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a starting process' readiness endpoint is asked: short, since every test waits
/// for a relay or a peer to start.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long `stop()` waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long the `*_at_least` helpers wait for data to become visible.
pub const EVENTUALLY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Starts the line [`spawn_logged`] writes into a log before each start of its process.
const START_BANNER: &str = "=== starting ";
/// Lines of a process' log that failure messages show.
const LOG_TAIL_LINES: usize = 60;

/// Labels of a series, `__name__` included, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// One series as a storage returns it: its labels and its raw samples in storage order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    /// `(timestamp in milliseconds, value)`.
    pub samples: Vec<(i64, f64)>,
}

impl Series {
    pub fn name(&self) -> &str {
        self.labels.get("__name__").map_or("", String::as_str)
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    pub fn values(&self) -> Vec<f64> {
        self.samples.iter().map(|&(_, value)| value).collect()
    }

    pub fn timestamps(&self) -> Vec<i64> {
        self.samples
            .iter()
            .map(|&(timestamp, _)| timestamp)
            .collect()
    }
}

/// Samples in all the given series together.
pub fn sample_count(series: &[Series]) -> usize {
    series.iter().map(|s| s.samples.len()).sum()
}

/// Milliseconds since the Unix epoch, as remote-write timestamps are.
pub fn now_ms() -> i64 {
    i64::try_from(promrelay::util::now_ms()).expect("timestamp fits in i64")
}

/// Polls `attempt` until it returns `Ok`, and panics after `timeout` with `what` and the last
/// `Err`, which should say what was seen instead.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last saw: {seen}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Where peers come from: one constructor per kind of peer.
pub struct Peers;

impl Peers {
    /// Single-node VictoriaMetrics, a remote-write storage. Keeps 100 years of data, so tests may
    /// write old fixed timestamps, and serves queries without latency offset or cache.
    pub fn victoria_metrics() -> PeerBuilder<VictoriaMetrics> {
        PeerBuilder::new(Spec {
            binary: "victoria-metrics",
            ready_path: "/health",
            config: None,
            args: |address, dir| {
                vec![
                    format!("-httpListenAddr={address}"),
                    format!("-storageDataPath={}", dir.join("data").display()),
                    "-retentionPeriod=100y".into(),
                    "-search.latencyOffset=0s".into(),
                    "-search.disableCache".into(),
                ]
            },
        })
    }

    /// Prometheus in server mode with its remote-write receiver on: a storage that rejects
    /// out-of-order samples, as the strict storages do.
    pub fn prometheus_receiver() -> PeerBuilder<Prometheus> {
        PeerBuilder::new(Spec {
            binary: "prometheus",
            ready_path: "/-/ready",
            config: Some("global:\n  scrape_interval: 1s\n".into()),
            args: |address, dir| {
                vec![
                    format!("--config.file={}", dir.join(PROMETHEUS_CONFIG).display()),
                    format!("--storage.tsdb.path={}", dir.join("data").display()),
                    format!("--web.listen-address={address}"),
                    "--web.enable-remote-write-receiver".into(),
                    "--storage.remote.flush-deadline=2s".into(),
                ]
            },
        })
    }

    /// Prometheus in agent mode: scrapes `scrape_targets` (`host:port`) every second under job
    /// `agent` and remote-writes to `remote_write_url`, sending batches within a second and
    /// retrying quickly. Debian's Prometheus 2.42 spells agent mode `--enable-feature=agent`.
    pub fn prometheus_agent(
        scrape_targets: &[String],
        remote_write_url: &str,
    ) -> PeerBuilder<Prometheus> {
        Peers::prometheus_agent_with(scrape_targets, remote_write_url, "")
    }

    /// [`Peers::prometheus_agent`] with more settings for its `remote_write` entry, each line
    /// indented as a key of it, for example `"    basic_auth:\n      username: u\n"`.
    pub fn prometheus_agent_with(
        scrape_targets: &[String],
        remote_write_url: &str,
        remote_write_settings: &str,
    ) -> PeerBuilder<Prometheus> {
        let targets = serde_json::to_string(scrape_targets).expect("strings serialise");
        let url = serde_json::to_string(remote_write_url).expect("strings serialise");
        let config = format!(
            "global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: agent
    static_configs:
      - targets: {targets}
remote_write:
  - url: {url}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
{remote_write_settings}"
        );
        PeerBuilder::new(Spec {
            binary: "prometheus",
            ready_path: "/-/ready",
            config: Some(config),
            args: |address, dir| {
                vec![
                    "--enable-feature=agent".into(),
                    format!("--config.file={}", dir.join(PROMETHEUS_CONFIG).display()),
                    format!("--storage.agent.path={}", dir.join("data").display()),
                    format!("--web.listen-address={address}"),
                    "--storage.remote.flush-deadline=2s".into(),
                ]
            },
        })
    }

    /// vmagent as a receiving relay, sending what it gets within 100ms. Give it its
    /// destination with `.arg("-remoteWrite.url=...")` or `.arg("-remoteWrite.multitenantURL=...")`
    /// (then it takes `/insert/<tenant>/...` pushes itself).
    pub fn vmagent() -> PeerBuilder<Vmagent> {
        PeerBuilder::new(Spec {
            binary: "vmagent",
            ready_path: "/health",
            config: None,
            args: |address, dir| {
                vec![
                    format!("-httpListenAddr={address}"),
                    format!("-remoteWrite.tmpDataPath={}", dir.join("queue").display()),
                    "-remoteWrite.flushInterval=100ms".into(),
                ]
            },
        })
    }

    /// node_exporter with its default collectors: a scrape target with real, varied metrics.
    pub fn node_exporter() -> PeerBuilder<NodeExporter> {
        PeerBuilder::new(Spec {
            binary: "node_exporter",
            ready_path: "/metrics",
            config: None,
            args: |address, _dir| vec![format!("--web.listen-address={address}")],
        })
    }
}

const PROMETHEUS_CONFIG: &str = "prometheus.yml";

/// How to run one kind of peer.
struct Spec {
    /// File name under `.peers/bin/`.
    binary: &'static str,
    /// Answers 200 once the peer serves requests.
    ready_path: &'static str,
    /// Written to `prometheus.yml` in the peer's directory before the first start.
    config: Option<String>,
    /// Command-line arguments, from the listen address and the peer's directory.
    args: fn(&str, &Path) -> Vec<String>,
}

/// A peer about to start; `arg` adds command-line flags to the defaults.
pub struct PeerBuilder<P> {
    spec: Spec,
    extra_args: Vec<String>,
    kind: PhantomData<fn() -> P>,
}

impl<P: FromPeer> PeerBuilder<P> {
    fn new(spec: Spec) -> Self {
        Self {
            spec,
            extra_args: Vec::new(),
            kind: PhantomData,
        }
    }

    /// Adds a flag, for example `.arg("-dedup.minScrapeInterval=1s")`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Starts the peer and waits until it is ready.
    pub async fn start(self) -> P {
        let binary = peer_binary(self.spec.binary);
        let dir = tempfile::Builder::new()
            .prefix(&format!("promrelay-peer-{}-", self.spec.binary))
            .tempdir()
            .expect("create a temporary directory for the peer");
        if let Some(config) = &self.spec.config {
            fs::write(dir.path().join(PROMETHEUS_CONFIG), config).expect("write the peer's config");
        }
        let mut peer = Peer {
            name: self.spec.binary,
            binary,
            args: Vec::new(),
            ready_path: self.spec.ready_path,
            port: 0,
            dir,
            child: None,
            http: http_client(),
        };
        // A peer takes its address as a flag, so the port is probed, released, then bound by
        // the peer: another process may take it in between. Then the peer exits with "address
        // already in use", and it is started again on another port.
        for _ in 0..BIND_ATTEMPTS {
            peer.port = free_port();
            peer.args = (self.spec.args)(&peer.address(), peer.dir());
            peer.args.extend(self.extra_args.iter().cloned());
            match peer.try_launch().await {
                Ok(()) => return P::from_peer(peer),
                Err(exit) if exit.address_in_use => continue,
                Err(exit) => peer.exited_before_ready(&exit),
            }
        }
        panic!(
            "{} found its port taken {BIND_ATTEMPTS} times; log tail:\n{}",
            peer.name,
            peer.log_tail()
        );
    }
}

/// The typed wrappers around a [`Peer`].
pub trait FromPeer {
    fn from_peer(peer: Peer) -> Self;
}

/// `.peers/bin/<name>`, or a panic that says how to get it.
pub fn peer_binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".peers/bin")
        .join(name);
    assert!(
        path.exists(),
        "peer binary {} is missing: run scripts/fetch-peers.sh",
        path.display()
    );
    path
}

/// How often a peer is started on a fresh port when the one probed was taken meanwhile.
const BIND_ATTEMPTS: usize = 3;

/// A port that was free a moment ago. A peer binds it shortly after; another process could
/// take it in between, and then [`PeerBuilder::start`] tries another one.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// The last lines of the log file at `path` (empty when there is none), for failure messages.
pub fn log_tail(path: &Path) -> String {
    let log = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Sends `signal` (`"TERM"`, `"HUP"`...) to process `pid`, with the shell's builtin kill: no
/// signal crate needed, and present on slim images.
pub fn send_signal(pid: u32, signal: &str) {
    let signalled = std::process::Command::new("sh")
        .args([
            "-c",
            "kill -s \"$1\" \"$2\"",
            "sh",
            signal,
            &pid.to_string(),
        ])
        .status()
        .unwrap_or_else(|e| panic!("run sh to send SIG{signal}: {e}"));
    assert!(signalled.success(), "could not send SIG{signal} to {pid}");
}

/// Starts `command` with no stdin and its stdout and stderr appended to the log file at `log`,
/// after a line `=== starting <banner>` that marks where this start begins (a process started
/// again appends to the same log). Proxies from the environment are removed: loopback traffic
/// must never go through one. The process is killed when its `Child` is dropped.
fn spawn_logged(command: &mut Command, log: &Path, banner: &str) -> Child {
    let mut log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    writeln!(log_file, "{START_BANNER}{banner}").expect("write the log");
    command
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("share the log file"))
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {banner}: {e}"))
}

/// Sends SIGKILL and waits (blocking, at most 5 s) until the process is gone, so that it stops
/// writing before its directory is removed. For `Drop`, which cannot await; blocking is fine
/// there, it is a few milliseconds after SIGKILL.
fn kill_and_reap(mut child: Child) {
    let _ = child.start_kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        #[expect(
            clippy::disallowed_methods,
            reason = "Drop cannot await; this waits milliseconds for a SIGKILLed child"
        )]
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How a process ended that exited before it was ready.
struct EarlyExit {
    status: std::process::ExitStatus,
    url: String,
    /// Its log since this start says its address was taken.
    address_in_use: bool,
}

/// Polls `url` until it answers 2xx. Panics with the tail of the log at `log` when the process
/// in `child` (named `name` in messages) exits first, leaving `child` empty, or when it is not
/// ready within `timeout`.
async fn wait_until_ready(
    name: &str,
    child: &mut Option<Child>,
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
    log: &Path,
) {
    if let Err(exit) = wait_until_ready_or_exit(name, child, http, url, timeout, log).await {
        panic!(
            "{name} exited ({}) before it was ready at {}; log tail:\n{}",
            exit.status,
            exit.url,
            log_tail(log)
        );
    }
}

/// [`wait_until_ready`], except that a process exiting first is returned, not a panic.
async fn wait_until_ready_or_exit(
    name: &str,
    child: &mut Option<Child>,
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
    log: &Path,
) -> Result<(), EarlyExit> {
    let deadline = Instant::now() + timeout;
    loop {
        let process = child.as_mut().expect("launched");
        if let Some(status) = process.try_wait().expect("poll the process") {
            *child = None;
            let log = fs::read_to_string(log).unwrap_or_default();
            let this_start = log.rsplit(START_BANNER).next().unwrap_or_default();
            return Err(EarlyExit {
                status,
                url: url.to_owned(),
                address_in_use: this_start.contains("address already in use"),
            });
        }
        let probe = http.get(url).timeout(Duration::from_secs(2)).send().await;
        if probe.is_ok_and(|response| response.status().is_success()) {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "{name} was not ready at {url} within {timeout:?}; log tail:\n{}",
            log_tail(log)
        );
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
}

/// A client for talking to peers directly.
pub fn http_client() -> reqwest::Client {
    // reqwest built with `rustls-no-provider` refuses to build any client, even a plain-HTTP
    // one, until a process-wide crypto provider is installed. Err means one already is.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Loopback traffic must never go through a proxy from the environment.
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build an HTTP client")
}

/// One running (or stopped) peer process with its port and directory.
pub struct Peer {
    name: &'static str,
    binary: PathBuf,
    args: Vec<String>,
    ready_path: &'static str,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Peer {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    /// `127.0.0.1:<port>`, as a scrape target is written.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The peer's own directory: `data/`, its config and `peer.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the peer printed, across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the peer gracefully (SIGTERM, then SIGKILL after a grace period), so it flushes
    /// what it holds in memory. Its port and data stay for `start_again`.
    pub async fn stop(&mut self) {
        let mut child = self.running_child();
        if let Some(pid) = child.id() {
            send_signal(pid, "TERM");
        }
        if tokio::time::timeout(STOP_GRACE, child.wait())
            .await
            .is_err()
        {
            child
                .kill()
                .await
                .expect("SIGKILL a peer that ignored SIGTERM");
        }
    }

    /// Kills the peer with SIGKILL, as a crash would. Its port and data stay for `start_again`.
    pub async fn kill(&mut self) {
        let mut child = self.running_child();
        child.kill().await.expect("SIGKILL the peer");
    }

    /// Starts the stopped peer again on the same port with the same data, and waits until it is
    /// ready.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.launch().await;
    }

    /// GETs `path` and returns the status code and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.url()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} from {}: {e}", self.name));
        read_response(response).await
    }

    /// POSTs `body` to `path` and returns the status code and body.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.url()))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} to {}: {e}", self.name));
        read_response(response).await
    }

    /// The last lines of the peer's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("peer.log")
    }

    fn running_child(&mut self) -> Child {
        self.child
            .take()
            .unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    async fn launch(&mut self) {
        if let Err(exit) = self.try_launch().await {
            self.exited_before_ready(&exit);
        }
    }

    /// Starts the process and waits until it is ready, or returns how it exited first.
    async fn try_launch(&mut self) -> Result<(), EarlyExit> {
        let banner = format!("{} {}", self.binary.display(), self.args.join(" "));
        let mut command = Command::new(&self.binary);
        command.args(&self.args).current_dir(self.dir.path());
        let log = self.log_path();
        self.child = Some(spawn_logged(&mut command, &log, &banner));
        let url = format!("{}{}", self.url(), self.ready_path);
        wait_until_ready_or_exit(
            self.name,
            &mut self.child,
            &self.http,
            &url,
            READY_TIMEOUT,
            &log,
        )
        .await
    }

    fn exited_before_ready(&self, exit: &EarlyExit) -> ! {
        panic!(
            "{} exited ({}) before it was ready at {}; log tail:\n{}",
            self.name,
            exit.status,
            exit.url,
            self.log_tail()
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_reap(child);
        }
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "{} kept its data and peer.log in {}",
                self.name,
                self.dir.path().display()
            );
        }
    }
}

async fn read_response(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body = response.text().await.expect("read the response body");
    (status, body)
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        form.append_pair(key, value);
    }
    form.finish()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Single-node VictoriaMetrics.
pub struct VictoriaMetrics {
    peer: Peer,
}

impl FromPeer for VictoriaMetrics {
    fn from_peer(peer: Peer) -> Self {
        Self { peer }
    }
}

impl Deref for VictoriaMetrics {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.peer
    }
}

impl DerefMut for VictoriaMetrics {
    fn deref_mut(&mut self) -> &mut Peer {
        &mut self.peer
    }
}

impl VictoriaMetrics {
    /// Prometheus remote-write endpoint (snappy-compressed protobuf).
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    /// Prometheus text exposition import endpoint.
    pub fn import_url(&self) -> String {
        format!("{}/api/v1/import/prometheus", self.url())
    }

    /// Imports Prometheus text exposition lines (`name{labels} value [timestamp_ms]`) through
    /// VictoriaMetrics' own import, bypassing the relay.
    pub async fn import_prometheus_text(&self, text: &str) {
        let (status, body) = self
            .post("/api/v1/import/prometheus", "text/plain", text.to_owned())
            .await;
        assert_eq!(status, 204, "import into victoria-metrics: {body}");
    }

    /// Asks VictoriaMetrics to make what it received searchable now rather than within a few
    /// seconds. Even so, fresh series show up about a second later: use `export_at_least` to
    /// wait for data.
    pub async fn flush(&self) {
        let (status, body) = self.get("/internal/force_flush").await;
        assert_eq!(status, 200, "force_flush: {body}");
    }

    /// Flushes, then returns the raw samples of every series `selector` matches (a series
    /// selector such as `up` or `{__name__=~"node_.*", job="x"}`), sorted by labels.
    pub async fn export(&self, selector: &str) -> Vec<Series> {
        self.flush().await;
        let (status, body) = self
            .post("/api/v1/export", FORM, form(&[("match[]", selector)]))
            .await;
        assert_eq!(status, 200, "export {selector}: {body}");
        let mut series: Vec<Series> = body
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(parse_export_line)
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }

    /// Waits until `selector` matches at least `samples` samples in all, and returns them.
    pub async fn export_at_least(&self, selector: &str, samples: usize) -> Vec<Series> {
        let what = format!("victoria-metrics to hold {samples} samples of {selector}");
        eventually(&what, EVENTUALLY_TIMEOUT, || async {
            let series = self.export(selector).await;
            if sample_count(&series) >= samples {
                Ok(series)
            } else {
                Err(format!("{} samples: {series:?}", sample_count(&series)))
            }
        })
        .await
    }
}

/// One line of `/api/v1/export`:
/// `{"metric":{"__name__":"up",...},"values":[1,NaN],"timestamps":[1700000000000,...]}`.
fn parse_export_line(line: &str) -> Series {
    let json: serde_json::Value = serde_json::from_str(&quote_special_floats(line))
        .unwrap_or_else(|e| panic!("export line is not JSON ({e}): {line}"));
    let labels = json["metric"]
        .as_object()
        .unwrap_or_else(|| panic!("export line without metric: {line}"))
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
        .collect();
    let values = json["values"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let timestamps = json["timestamps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    assert_eq!(values.len(), timestamps.len(), "export line: {line}");
    let samples = timestamps
        .iter()
        .zip(values)
        .map(|(timestamp, value)| {
            let timestamp = timestamp
                .as_i64()
                .unwrap_or_else(|| panic!("export timestamp {timestamp}: {line}"));
            (timestamp, json_float(value))
        })
        .collect();
    Series { labels, samples }
}

/// VictoriaMetrics writes NaN and infinities as bare `NaN`, `+Inf` and `-Inf`, which JSON does
/// not allow; this quotes them wherever they stand outside a string.
fn quote_special_floats(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if let Some(token) = ["NaN", "+Inf", "-Inf", "Inf"]
            .into_iter()
            .find(|token| rest.starts_with(token))
        {
            out.push('"');
            out.push_str(token);
            out.push('"');
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A sample value: a JSON number, or a string as Prometheus writes all values and as
/// `quote_special_floats` leaves NaN and infinities, or `null`, which VictoriaMetrics' export
/// writes for some NaNs (a node_exporter test once panicked on one).
fn json_float(value: &serde_json::Value) -> f64 {
    match value {
        serde_json::Value::Null => f64::NAN,
        serde_json::Value::Number(number) => number.as_f64().expect("a JSON number is a float"),
        serde_json::Value::String(text) => match text.as_str() {
            "NaN" => f64::NAN,
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|e| panic!("sample value {other:?}: {e}")),
        },
        other => panic!("sample value {other} is neither number nor string"),
    }
}

/// Prometheus, as a remote-write receiver or as an agent.
pub struct Prometheus {
    peer: Peer,
}

impl FromPeer for Prometheus {
    fn from_peer(peer: Peer) -> Self {
        Self { peer }
    }
}

impl Deref for Prometheus {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.peer
    }
}

impl DerefMut for Prometheus {
    fn deref_mut(&mut self) -> &mut Peer {
        &mut self.peer
    }
}

impl Prometheus {
    /// The remote-write receiver (server mode only; an agent has none).
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    /// The raw samples of every series `selector` matches from the last year up to a minute
    /// ahead, sorted by labels: an instant query for the range selector `selector[1y]` returns
    /// samples as stored, not evaluated on steps.
    pub async fn raw_samples(&self, selector: &str) -> Vec<Series> {
        let query = format!("{selector}[1y]");
        let at = format!("{:.3}", (now_ms() + 60_000) as f64 / 1000.0);
        let (status, body) = self
            .post(
                "/api/v1/query",
                FORM,
                form(&[("query", &query), ("time", &at)]),
            )
            .await;
        assert_eq!(status, 200, "query {query}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("query answer is not JSON ({e}): {body}"));
        assert_eq!(
            json["data"]["resultType"], "matrix",
            "query {query}: {body}"
        );
        let results = json["data"]["result"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut series: Vec<Series> = results.iter().map(parse_matrix_series).collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }

    /// Waits until `selector` matches at least `samples` samples in all, and returns them.
    pub async fn raw_samples_at_least(&self, selector: &str, samples: usize) -> Vec<Series> {
        let what = format!("prometheus to hold {samples} samples of {selector}");
        eventually(&what, EVENTUALLY_TIMEOUT, || async {
            let series = self.raw_samples(selector).await;
            if sample_count(&series) >= samples {
                Ok(series)
            } else {
                Err(format!("{} samples: {series:?}", sample_count(&series)))
            }
        })
        .await
    }
}

/// One series of a matrix: `{"metric":{...},"values":[[1700000000.123,"1"],...]}`.
fn parse_matrix_series(json: &serde_json::Value) -> Series {
    let labels = json["metric"]
        .as_object()
        .map(|metric| {
            metric
                .iter()
                .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let samples = json["values"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|pair| {
            let seconds = pair[0]
                .as_f64()
                .unwrap_or_else(|| panic!("matrix timestamp in {pair}"));
            ((seconds * 1000.0).round() as i64, json_float(&pair[1]))
        })
        .collect();
    Series { labels, samples }
}

/// node_exporter, a scrape target.
pub struct NodeExporter {
    peer: Peer,
}

impl FromPeer for NodeExporter {
    fn from_peer(peer: Peer) -> Self {
        Self { peer }
    }
}

impl Deref for NodeExporter {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.peer
    }
}

impl DerefMut for NodeExporter {
    fn deref_mut(&mut self) -> &mut Peer {
        &mut self.peer
    }
}

impl NodeExporter {
    /// `127.0.0.1:<port>`, for a scrape config's targets.
    pub fn target(&self) -> String {
        self.address()
    }

    /// One scrape of `/metrics`, in the text exposition format.
    pub async fn metrics_text(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "node_exporter /metrics: {body}");
        body
    }
}

/// Serves `router` on `listener` in a task until the returned sender is used or dropped; `what`
/// names the server in the panic if serving fails.
pub fn serve_until_stopped(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    what: &'static str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap_or_else(|e| panic!("serve the {what}: {e}"));
    });
    (shutdown, server)
}

/// A fake Kubernetes API server (list, watch, selectors, 410 Gone) and its object fixtures.
pub mod fake_kube;

/// Certificates made by openssl, and TLS clients that use them.
pub mod pki;

/// dnsmasq serving a test's DNS records on a loopback port.
pub mod dnsmasq;

/// The relay under test, the fake storage and pushes of known series.
pub mod relay;

/// Scrape targets, scrape config files and a relay that scrapes.
pub mod scrape;

/// vmagent receiving pushes and forwarding them.
pub struct Vmagent {
    peer: Peer,
}

impl FromPeer for Vmagent {
    fn from_peer(peer: Peer) -> Self {
        Self { peer }
    }
}

impl Deref for Vmagent {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.peer
    }
}

impl Vmagent {
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
            .unwrap_or_else(|e| panic!("push to vmagent: {e}\n{}", self.log_tail()));
        read_response(response).await
    }
}
