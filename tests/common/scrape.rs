//! The built-in scraper's side of the end-to-end vocabulary: targets to scrape, scrape config
//! files, and a relay that scrapes.
//!
//! ```ignore
//! let target = TargetServer::serving("app_requests_total 7\n").await;
//! let config = ScrapeConfig::new(&[Job::new("app").target(target.address())]);
//! let storage = FakeStorage::new().start().await;
//! let relay = Relay::with_storages(&[storage.url()]).scraping(&config).start().await;
//! storage.samples_at_least("app_requests_total", 2).await;
//! config.rewrite(&[]);
//! relay.reload_scrape_config().await.expect("the new config is valid");
//! ```
//!
//! - [`TargetServer`] is an in-process HTTP server on one or many free loopback ports, each
//!   serving the same exposition on `/metrics`. The exposition can be changed while it runs,
//!   every port counts the scrapes it answered, and `stop` closes every port (connection refused
//!   from then on), as a target that went away.
//! - [`Job`] and [`ScrapeConfig`] write Prometheus scrape config files (every job scrapes every
//!   second with a one-second timeout unless told otherwise) into a temporary directory of their
//!   own, replacing files atomically so that a reload or a `file_sd` poll never reads half a file.
//! - [`ScrapingRelay`] makes a `RelayBuilder` scrape, alone or as a cluster member; [`RelayScrape`]
//!   reloads a running relay's scrape config with SIGHUP and reads its `/api/v1/targets`.
//! - [`export_with_stale_markers`] reads VictoriaMetrics' export, where a stale marker is `null`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::relay::{Relay, RelayBuilder};
use super::{
    EVENTUALLY_TIMEOUT, Labels, VictoriaMetrics, eventually, log_tail, send_signal,
    serve_until_stopped, spawn_logged,
};

/// The value Prometheus writes to mark a series stale: a NaN with exactly these bits.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `value` is a stale marker (not just any NaN).
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// The content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

struct TargetShared {
    body: Mutex<Arc<str>>,
    /// Scrapes answered, per port in the order of [`TargetServer::addresses`].
    hits: Vec<AtomicUsize>,
}

/// One port's server and how to stop it.
struct Listening {
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

/// An in-process scrape target on one or more loopback ports; see the module documentation.
pub struct TargetServer {
    shared: Arc<TargetShared>,
    ports: Vec<u16>,
    servers: Vec<Listening>,
}

impl TargetServer {
    /// A target on one free port serving `exposition` on `/metrics`.
    pub async fn serving(exposition: &str) -> TargetServer {
        Self::on_ports(1, exposition).await
    }

    /// `count` targets, one per free port, all serving `exposition` on `/metrics`.
    pub async fn on_ports(count: usize, exposition: &str) -> TargetServer {
        let shared = Arc::new(TargetShared {
            body: Mutex::new(Arc::from(exposition)),
            hits: (0..count).map(|_| AtomicUsize::new(0)).collect(),
        });
        let mut ports = Vec::with_capacity(count);
        let mut servers = Vec::with_capacity(count);
        for index in 0..count {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port for a scrape target");
            ports.push(listener.local_addr().expect("bound").port());
            let router = Router::new()
                .route("/metrics", get(serve_exposition))
                .with_state((Arc::clone(&shared), index));
            let (shutdown, server) = serve_until_stopped(listener, router, "scrape target");
            servers.push(Listening { shutdown, server });
        }
        TargetServer {
            shared,
            ports,
            servers,
        }
    }

    /// `127.0.0.1:<port>` of the first (or only) port, as a scrape config names a target.
    pub fn address(&self) -> String {
        self.addresses()
            .into_iter()
            .next()
            .expect("a target server has a port")
    }

    /// `127.0.0.1:<port>` of every port, in the order they were opened.
    pub fn addresses(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// Serves `exposition` from the next scrape on.
    pub fn set_exposition(&self, exposition: &str) {
        *self.shared.body.lock().expect("not poisoned") = Arc::from(exposition);
    }

    /// Scrapes answered on the port of `address`.
    pub fn scrapes_of(&self, address: &str) -> usize {
        let index = self
            .addresses()
            .iter()
            .position(|a| a == address)
            .unwrap_or_else(|| panic!("{address} is not one of this target server's ports"));
        self.shared.hits[index].load(Ordering::SeqCst)
    }

    /// Scrapes answered on all ports together.
    pub fn scrapes(&self) -> usize {
        self.shared
            .hits
            .iter()
            .map(|h| h.load(Ordering::SeqCst))
            .sum()
    }

    /// Closes every port: from now on scrapes get "connection refused".
    pub async fn stop(&mut self) {
        for listening in self.servers.drain(..) {
            let _ = listening.shutdown.send(());
            // Graceful shutdown closes idle keep-alive connections at once; a scrape in
            // flight is a few microseconds of work.
            tokio::time::timeout(Duration::from_secs(10), listening.server)
                .await
                .expect("a scrape target stops within 10s")
                .expect("the scrape target's server ends cleanly");
        }
    }
}

async fn serve_exposition(
    State((shared, index)): State<(Arc<TargetShared>, usize)>,
) -> impl IntoResponse {
    shared.hits[index].fetch_add(1, Ordering::SeqCst);
    let body = Arc::clone(&shared.body.lock().expect("not poisoned"));
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], body.to_string())
}

/// One `scrape_configs` entry: scrapes every second with a one-second timeout unless a setting
/// says otherwise.
#[derive(Debug, Clone)]
pub struct Job {
    name: String,
    targets: Vec<String>,
    file_sd: Vec<String>,
    settings: Vec<String>,
}

impl Job {
    pub fn new(name: &str) -> Job {
        Job {
            name: name.to_owned(),
            targets: Vec::new(),
            file_sd: Vec::new(),
            settings: Vec::new(),
        }
    }

    /// Adds a static target (`host:port`).
    pub fn target(mut self, address: impl Into<String>) -> Job {
        self.targets.push(address.into());
        self
    }

    /// Adds static targets.
    pub fn targets<S: AsRef<str>>(mut self, addresses: &[S]) -> Job {
        self.targets
            .extend(addresses.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds a `file_sd_configs` entry reading `pattern` (relative to the config's directory).
    pub fn file_sd(mut self, pattern: &str) -> Job {
        self.file_sd.push(pattern.to_owned());
        self
    }

    /// Adds YAML to the job, as written at the job's indentation, for example
    /// `"honor_labels: true"` or `"metric_relabel_configs:\n  - action: drop\n ..."`.
    pub fn setting(mut self, yaml: &str) -> Job {
        self.settings.push(yaml.to_owned());
        self
    }

    fn yaml(&self) -> String {
        let mut yaml = format!("  - job_name: {}\n", quoted(&self.name));
        let sets_interval = self
            .settings
            .iter()
            .any(|s| s.starts_with("scrape_interval:"));
        let sets_timeout = self
            .settings
            .iter()
            .any(|s| s.starts_with("scrape_timeout:"));
        if !sets_interval {
            yaml.push_str("    scrape_interval: 1s\n");
        }
        if !sets_timeout {
            yaml.push_str("    scrape_timeout: 1s\n");
        }
        for setting in &self.settings {
            for line in setting.lines() {
                yaml.push_str("    ");
                yaml.push_str(line);
                yaml.push('\n');
            }
        }
        if !self.targets.is_empty() {
            let targets: Vec<String> = self.targets.iter().map(|t| quoted(t)).collect();
            yaml.push_str(&format!(
                "    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ));
        }
        if !self.file_sd.is_empty() {
            let files: Vec<String> = self.file_sd.iter().map(|f| quoted(f)).collect();
            yaml.push_str(&format!(
                "    file_sd_configs:\n      - files: [{}]\n",
                files.join(", ")
            ));
        }
        yaml
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialise")
}

/// The YAML of a scrape config file holding `jobs`.
pub fn scrape_config_yaml(jobs: &[Job]) -> String {
    let mut yaml = String::from("scrape_configs:\n");
    if jobs.is_empty() {
        yaml = String::from("scrape_configs: []\n");
    }
    for job in jobs {
        yaml.push_str(&job.yaml());
    }
    yaml
}

/// A scrape config file (`prometheus.yml`) in a temporary directory of its own, next to which
/// `file_sd` files can be written.
pub struct ScrapeConfig {
    dir: TempDir,
}

impl ScrapeConfig {
    /// A config file holding `jobs`.
    pub fn new(jobs: &[Job]) -> ScrapeConfig {
        Self::from_yaml(&scrape_config_yaml(jobs))
    }

    /// A config file holding exactly `yaml`.
    pub fn from_yaml(yaml: &str) -> ScrapeConfig {
        let dir = tempfile::Builder::new()
            .prefix("promrelay-scrape-config-")
            .tempdir()
            .expect("create a temporary directory for the scrape config");
        let config = ScrapeConfig { dir };
        config.write_file("prometheus.yml", yaml);
        config
    }

    /// The config file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("prometheus.yml")
    }

    /// The directory of the config file: relative `file_sd` patterns start here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the config file with one holding `jobs` (a reload is still needed).
    pub fn rewrite(&self, jobs: &[Job]) {
        self.rewrite_yaml(&scrape_config_yaml(jobs));
    }

    /// Replaces the config file with exactly `yaml` (a reload is still needed).
    pub fn rewrite_yaml(&self, yaml: &str) {
        self.write_file("prometheus.yml", yaml);
    }

    /// Writes `content` to `name` in the config's directory (creating sub-directories) in one
    /// step: written beside it, then renamed over it.
    pub fn write_file(&self, name: &str, content: &str) {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create the directory of a scrape config file");
        }
        let temporary = path.with_extension("tmp-write");
        fs::write(&temporary, content).expect("write a scrape config file");
        fs::rename(&temporary, &path).expect("rename a scrape config file into place");
    }
}

/// A `file_sd` file (JSON) naming `targets` with `labels`.
pub fn file_sd_json(targets: &[String], labels: &[(&str, &str)]) -> String {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(n, v)| ((*n).to_owned(), serde_json::Value::from(*v)))
        .collect();
    serde_json::json!([{ "targets": targets, "labels": labels }]).to_string()
}

/// A relay about to start that scrapes.
pub trait ScrapingRelay {
    /// Scrapes what `config` says (`--scrape-config`).
    fn scraping(self, config: &ScrapeConfig) -> Self;
    /// Scrapes only its share as member `member` of `members` with replication factor
    /// `replication`.
    fn cluster_member(self, members: u32, member: u32, replication: u32) -> Self;
}

impl ScrapingRelay for RelayBuilder {
    fn scraping(self, config: &ScrapeConfig) -> Self {
        self.arg("--scrape-config")
            .arg(config.path().display().to_string())
    }

    fn cluster_member(self, members: u32, member: u32, replication: u32) -> Self {
        self.arg("--cluster-members-count")
            .arg(members.to_string())
            .arg("--cluster-member-num")
            .arg(member.to_string())
            .arg("--cluster-replication-factor")
            .arg(replication.to_string())
    }
}

/// One entry of `activeTargets` in `/api/v1/targets`.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    pub scrape_pool: String,
    pub labels: Labels,
    pub discovered_labels: Labels,
    pub scrape_url: String,
    pub health: String,
    pub last_error: String,
    /// The raw JSON object, for what the fields above leave out.
    pub json: serde_json::Value,
}

impl ActiveTarget {
    /// `__address__` as discovered: how a target is named in the config.
    pub fn address(&self) -> &str {
        self.discovered_labels
            .get("__address__")
            .map_or("", String::as_str)
    }
}

/// A scraping relay, running.
pub trait RelayScrape {
    /// Sends SIGHUP and waits for the relay to log the outcome: `Ok` when it reloaded, `Err`
    /// with the log line when it kept the old config.
    async fn reload_scrape_config(&self) -> Result<(), String>;
    /// `GET /api/v1/targets`, parsed.
    async fn targets_json(&self) -> serde_json::Value;
    /// `activeTargets` of `/api/v1/targets`.
    async fn active_targets(&self) -> Vec<ActiveTarget>;
    /// The discovered `__address__` of every active target.
    async fn active_addresses(&self) -> BTreeSet<String>;
    /// `(discovered __address__, reason)` of every entry of `droppedTargets`.
    async fn dropped_targets(&self) -> Vec<(String, String)>;
}

const RELOADED: &str = "SIGHUP: scrape config reloaded";
const NOT_RELOADED: &str = "SIGHUP: scrape config not reloaded";

impl RelayScrape for Relay {
    async fn reload_scrape_config(&self) -> Result<(), String> {
        let outcomes = |log: &str| {
            log.lines()
                .filter(|l| l.contains(RELOADED) || l.contains(NOT_RELOADED))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let before = outcomes(&self.log()).len();
        send_signal(self.pid(), "HUP");
        let line = eventually(
            "the relay to log the outcome of SIGHUP",
            EVENTUALLY_TIMEOUT,
            || async {
                outcomes(&self.log())
                    .into_iter()
                    .nth(before)
                    .ok_or_else(|| self.log_tail())
            },
        )
        .await;
        if line.contains(RELOADED) {
            Ok(())
        } else {
            Err(line)
        }
    }

    async fn targets_json(&self) -> serde_json::Value {
        let (status, body) = self.get("/api/v1/targets").await;
        assert_eq!(status, 200, "/api/v1/targets: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/api/v1/targets is not JSON ({e}): {body}"))
    }

    async fn active_targets(&self) -> Vec<ActiveTarget> {
        let json = self.targets_json().await;
        let active = json["data"]["activeTargets"]
            .as_array()
            .unwrap_or_else(|| panic!("/api/v1/targets without data.activeTargets: {json}"));
        active
            .iter()
            .map(|t| ActiveTarget {
                scrape_pool: t["scrapePool"].as_str().unwrap_or_default().to_owned(),
                labels: labels_of(&t["labels"]),
                discovered_labels: labels_of(&t["discoveredLabels"]),
                scrape_url: t["scrapeUrl"].as_str().unwrap_or_default().to_owned(),
                health: t["health"].as_str().unwrap_or_default().to_owned(),
                last_error: t["lastError"].as_str().unwrap_or_default().to_owned(),
                json: t.clone(),
            })
            .collect()
    }

    async fn active_addresses(&self) -> BTreeSet<String> {
        self.active_targets()
            .await
            .iter()
            .map(|t| t.address().to_owned())
            .collect()
    }

    async fn dropped_targets(&self) -> Vec<(String, String)> {
        let json = self.targets_json().await;
        let dropped = json["data"]["droppedTargets"]
            .as_array()
            .unwrap_or_else(|| panic!("/api/v1/targets without data.droppedTargets: {json}"));
        dropped
            .iter()
            .map(|t| {
                (
                    t["discoveredLabels"]["__address__"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    t["reason"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

fn labels_of(json: &serde_json::Value) -> Labels {
    json.as_object()
        .map(|object| {
            object
                .iter()
                .map(|(n, v)| (n.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// One series of VictoriaMetrics' export with its samples; a stale marker (exported as `null`)
/// is `None`.
#[derive(Debug, Clone)]
pub struct ExportedSeries {
    pub labels: Labels,
    /// `(timestamp in milliseconds, value or None for a stale marker)`, in time order.
    pub samples: Vec<(i64, Option<f64>)>,
}

impl ExportedSeries {
    pub fn name(&self) -> &str {
        self.labels.get("__name__").map_or("", String::as_str)
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// Whether the last sample is a stale marker.
    pub fn ends_stale(&self) -> bool {
        self.samples.last().is_some_and(|(_, v)| v.is_none())
    }

    /// The values that are not stale markers.
    pub fn values(&self) -> Vec<f64> {
        self.samples.iter().filter_map(|(_, v)| *v).collect()
    }
}

/// Flushes VictoriaMetrics and exports every series `selector` matches, keeping stale markers
/// (which VictoriaMetrics exports as `null`, and which the common export helper refuses).
pub async fn export_with_stale_markers(
    vm: &VictoriaMetrics,
    selector: &str,
) -> Vec<ExportedSeries> {
    vm.flush().await;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("match[]", selector);
    let (status, body) = vm
        .post(
            "/api/v1/export",
            "application/x-www-form-urlencoded",
            form.finish(),
        )
        .await;
    assert_eq!(status, 200, "export {selector}: {body}");
    let mut series: Vec<ExportedSeries> = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_export_line)
        .collect();
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    series
}

/// Waits until `done` holds for the export of `selector`, and returns that export.
pub async fn export_until(
    vm: &VictoriaMetrics,
    selector: &str,
    what: &str,
    done: impl Fn(&[ExportedSeries]) -> bool,
) -> Vec<ExportedSeries> {
    eventually(what, EVENTUALLY_TIMEOUT, || async {
        let series = export_with_stale_markers(vm, selector).await;
        if done(&series) {
            Ok(series)
        } else {
            Err(summary(&series))
        }
    })
    .await
}

/// A few lines about `series`, for failure messages.
pub fn summary(series: &[ExportedSeries]) -> String {
    let shown: Vec<String> = series
        .iter()
        .take(5)
        .map(|s| {
            let tail: Vec<_> = s.samples.iter().rev().take(4).rev().collect();
            format!("{:?} last samples {tail:?}", s.labels)
        })
        .collect();
    format!("{} series; first: {}", series.len(), shown.join("; "))
}

/// `{"metric":{...},"values":[1,null,NaN],"timestamps":[...]}`.
fn parse_export_line(line: &str) -> ExportedSeries {
    // Bare NaN and infinities are not JSON; quote them (they never occur inside label values
    // of the series these tests export, and quoting a string's content would be harmless).
    let quoted = line
        .replace("NaN", "\"NaN\"")
        .replace("+Inf", "\"+Inf\"")
        .replace("-Inf", "\"-Inf\"");
    let json: serde_json::Value = serde_json::from_str(&quoted)
        .unwrap_or_else(|e| panic!("export line is not JSON ({e}): {line}"));
    let labels = labels_of(&json["metric"]);
    let values = json["values"].as_array().cloned().unwrap_or_default();
    let timestamps = json["timestamps"].as_array().cloned().unwrap_or_default();
    assert_eq!(values.len(), timestamps.len(), "export line: {line}");
    let mut samples: Vec<(i64, Option<f64>)> = timestamps
        .iter()
        .zip(&values)
        .map(|(t, v)| {
            let t = t
                .as_i64()
                .unwrap_or_else(|| panic!("export timestamp {t}: {line}"));
            let v = match v {
                serde_json::Value::Null => None,
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => Some(match s.as_str() {
                    "NaN" => f64::NAN,
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    other => other
                        .parse()
                        .unwrap_or_else(|e| panic!("export value {other:?}: {e}")),
                }),
                other => panic!("export value {other}: {line}"),
            };
            (t, v)
        })
        .collect();
    samples.sort_by_key(|(t, _)| *t);
    ExportedSeries { labels, samples }
}

/// One real vmagent as a member of a scraping cluster, to compare assignments with: it scrapes
/// the config at a path and remote-writes to a closed port (its queue is irrelevant). Killed
/// when dropped.
pub struct VmagentMember {
    member: u32,
    binary: PathBuf,
    /// Every flag but the listen address.
    args: Vec<String>,
    dir: TempDir,
    /// The port and process, behind a lock so that reading the targets needs only `&self`; both
    /// change when vmagent found its probed port taken and was started again on another.
    running: Mutex<(u16, tokio::process::Child)>,
    http: reqwest::Client,
}

impl VmagentMember {
    /// Starts `.peers/bin/vmagent` on the scrape config at `config` as member `member` of
    /// `members` with replication factor `replication`; returns at once (use
    /// [`VmagentMember::active_targets`] to wait).
    pub fn start(config: &Path, members: u32, member: u32, replication: u32) -> Self {
        let binary = super::peer_binary("vmagent");
        let dir = tempfile::Builder::new()
            .prefix("promrelay-peer-vmagent-")
            .tempdir()
            .expect("create a temporary directory for vmagent");
        let args = vec![
            format!("-promscrape.config={}", config.display()),
            "-remoteWrite.url=http://127.0.0.1:1/api/v1/write".to_owned(),
            format!(
                "-remoteWrite.tmpDataPath={}",
                dir.path().join("queue").display()
            ),
            format!("-promscrape.cluster.membersCount={members}"),
            format!("-promscrape.cluster.memberNum={member}"),
            format!("-promscrape.cluster.replicationFactor={replication}"),
        ];
        let running = Self::spawn(&binary, &args, dir.path());
        VmagentMember {
            member,
            binary,
            args,
            dir,
            running: Mutex::new(running),
            http: super::http_client(),
        }
    }

    /// Starts vmagent with `args` on a port that was free a moment ago, logging into `dir`.
    fn spawn(binary: &Path, args: &[String], dir: &Path) -> (u16, tokio::process::Child) {
        let port = super::free_port();
        let mut command = tokio::process::Command::new(binary);
        command
            .args(args)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"));
        let child = spawn_logged(
            &mut command,
            &dir.join("peer.log"),
            &binary.display().to_string(),
        );
        (port, child)
    }

    /// The port it listens on; starts it again on another port if it exited because the one
    /// it was given was taken between the probe and its bind. Panics if it exited otherwise.
    fn port(&self) -> u16 {
        let mut running = self.running.lock().expect("not poisoned");
        if let Ok(Some(status)) = running.1.try_wait() {
            let log = fs::read_to_string(self.dir.path().join("peer.log")).unwrap_or_default();
            let this_start = log.rsplit(super::START_BANNER).next().unwrap_or_default();
            if !this_start.contains("address already in use") {
                panic!(
                    "vmagent member {} exited ({status}):\n{}",
                    self.member,
                    self.log_tail()
                );
            }
            *running = Self::spawn(&self.binary, &self.args, self.dir.path());
        }
        running.0
    }

    /// Its `/api/v1/targets` (active and dropped targets with their discovered labels), or
    /// `None` while it does not answer yet. Panics with its log if it exited.
    pub async fn targets_json(&self) -> Option<serde_json::Value> {
        let port = self.port();
        let response = self
            .http
            .get(format!("http://127.0.0.1:{port}/api/v1/targets"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.text().await.ok()?;
        serde_json::from_str(&body).ok()
    }

    /// `(scrapePool, discovered __address__)` of every target it scrapes, or `None` while it
    /// does not answer yet. Panics with its log if it exited.
    pub async fn active_targets(&self) -> Option<BTreeSet<(String, String)>> {
        let json = self.targets_json().await?;
        json["data"]["activeTargets"]
            .as_array()?
            .iter()
            .map(|t| {
                Some((
                    t["scrapePool"].as_str()?.to_owned(),
                    t["discoveredLabels"]["__address__"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("peer.log"))
    }
}
