//! The scraper: owns the scrape config, discovery, each job's HTTP client and one loop per target
//! this instance owns. Re-syncs the loops when discovery changes and on reload.
//!
//! Guarantees: a target keeps its loop (and its health and series memory) as long as it stays
//! (same identity); removed targets get stale markers for their series; a reload that fails to load
//! leaves the running configuration untouched and says why; on reload a target whose job changed
//! gets a new loop that inherits its series memory (no false stale markers). On shutdown loops stop
//! without stale markers (a restart continues the series within Prometheus' 5 minute staleness).
//!
//! Must not: write to queues except through the fan-out the relay uses.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::cache::ScrapeCache;
use super::config::{self, JobConfig, ScrapeAuth, ScrapeConfig, ScrapeTls};
use super::discovery::Discovery;
use super::scrape_loop::{self, JobRuntime, LoopHandle, StopMode, TargetHealth};
use super::targets::{DroppedTarget, Target, build_targets};
use crate::config::ClusterConfig;
use crate::forward::Fanout;
use crate::prompb::Label;
use crate::stats::IngestMetrics;

/// Errors starting the scraper.
#[derive(Debug, thiserror::Error)]
pub enum ScraperError {
    /// The scrape config file could not be loaded.
    #[error(transparent)]
    Config(#[from] config::ScrapeConfigError),
    /// A job's HTTP client could not be built (TLS files).
    #[error("scrape job {job}: {reason}")]
    Client { job: String, reason: String },
}

/// Why a reload of the scrape config was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The scraper has stopped (shutdown under way), so there is nothing to reload.
    #[error("the scraper has stopped")]
    Stopped,
    /// The task loading the file panicked or was cancelled.
    #[error("loading the scrape config failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The new file could not be loaded, or a job's HTTP client could not be built.
    #[error(transparent)]
    Scraper(#[from] ScraperError),
}

/// One active target as the pages see it.
#[derive(Clone)]
pub struct ActiveTarget {
    pub target: Arc<Target>,
    pub health: Arc<Mutex<TargetHealth>>,
}

/// What the scraper scrapes and does not, for `/api/v1/targets` and `/targets`.
#[derive(Clone, Default)]
pub struct TargetsView {
    pub active: Vec<ActiveTarget>,
    pub dropped: Vec<DroppedTarget>,
}

enum Command {
    Reload(oneshot::Sender<Result<(), ReloadError>>),
    Stop(oneshot::Sender<()>),
}

/// The running scraper.
pub struct Scraper {
    commands: mpsc::Sender<Command>,
    view: Arc<Mutex<Arc<TargetsView>>>,
}

struct State {
    path: PathBuf,
    cluster: ClusterConfig,
    fanout: Arc<Fanout>,
    metrics: Arc<IngestMetrics>,
    file: ScrapeConfig,
    jobs: HashMap<String, Arc<JobRuntime>>,
    discovery: Discovery,
    loops: HashMap<u64, LoopHandle>,
    view: Arc<Mutex<Arc<TargetsView>>>,
}

impl Scraper {
    /// Loads `path`, starts discovery and the loops.
    pub async fn start(
        path: PathBuf,
        cluster: ClusterConfig,
        fanout: Arc<Fanout>,
        metrics: Arc<IngestMetrics>,
    ) -> Result<Scraper, ScraperError> {
        let load_path = path.clone();
        let file = tokio::task::spawn_blocking(move || config::load(&load_path))
            .await
            .map_err(|e| ScraperError::Client {
                job: String::new(),
                reason: e.to_string(),
            })??;
        let jobs = runtimes(&file, &fanout, &metrics, &HashMap::new())?;
        let discovery = Discovery::start(&file.jobs);
        let view = Arc::new(Mutex::new(Arc::new(TargetsView::default())));
        let mut state = State {
            path,
            cluster,
            fanout,
            metrics,
            file,
            jobs,
            discovery,
            loops: HashMap::new(),
            view: Arc::clone(&view),
        };
        state.sync(HashMap::new()).await;
        let (commands, rx) = mpsc::channel(4);
        tokio::spawn(state.run(rx));
        Ok(Scraper { commands, view })
    }

    /// Re-reads the scrape config file. On error the running configuration stays.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reload(tx))
            .await
            .map_err(|_| ReloadError::Stopped)?;
        rx.await.map_err(|_| ReloadError::Stopped)?
    }

    /// Stops every loop (without stale markers).
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The current targets.
    pub fn view(&self) -> Arc<TargetsView> {
        Arc::clone(&self.view.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl State {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut changes = self.discovery.subscribe();
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        // Discovery was replaced by a reload: follow the new one.
                        changes = self.discovery.subscribe();
                        continue;
                    }
                    self.sync(HashMap::new()).await;
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Reload(reply)) => {
                        let res = self.reload().await;
                        changes = self.discovery.subscribe();
                        let _ = reply.send(res);
                    }
                    Some(Command::Stop(reply)) => {
                        for (_, l) in self.loops.drain() {
                            l.stop(StopMode::HandOver).await;
                        }
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
            }
        }
    }

    async fn reload(&mut self) -> Result<(), ReloadError> {
        let path = self.path.clone();
        let file = tokio::task::spawn_blocking(move || config::load(&path))
            .await?
            .map_err(ScraperError::from)?;
        let jobs = runtimes(&file, &self.fanout, &self.metrics, &self.jobs)?;
        // Loops of jobs whose settings changed restart with the new settings, keeping memory.
        let mut handed_over = HashMap::new();
        let changed: Vec<u64> = self
            .loops
            .iter()
            .filter(
                |(_, l)| match (self.jobs.get(&l.target.job), jobs.get(&l.target.job)) {
                    (Some(old), Some(new)) => !Arc::ptr_eq(old, new),
                    _ => true,
                },
            )
            .map(|(id, _)| *id)
            .collect();
        for id in changed {
            if let Some(l) = self.loops.remove(&id) {
                handed_over.insert(id, l.stop(StopMode::HandOver).await);
            }
        }
        self.discovery = Discovery::start(&file.jobs);
        self.file = file;
        self.jobs = jobs;
        self.sync(handed_over).await;
        info!(file = %self.path.display(), jobs = self.jobs.len(), targets = self.loops.len(), "scrape config reloaded");
        Ok(())
    }

    /// Makes the loops match the discovered targets.
    async fn sync(&mut self, mut handed_over: HashMap<u64, ScrapeCache>) {
        let snapshot = self.discovery.current();
        let mut desired: HashMap<u64, Arc<Target>> = HashMap::new();
        let mut dropped = Vec::new();
        for jg in snapshot.iter() {
            let Some(job) = self.jobs.get(&jg.job) else {
                continue;
            };
            let set = build_targets(&job.cfg, &jg.groups, &self.file.global, &self.cluster);
            for t in set.active {
                desired.entry(t.id()).or_insert_with(|| Arc::new(t));
            }
            dropped.extend(set.dropped);
        }
        let gone: Vec<u64> = self
            .loops
            .keys()
            .filter(|id| !desired.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(l) = self.loops.remove(&id) {
                l.stop(StopMode::Gone).await;
            }
        }
        for (id, t) in desired {
            if self.loops.contains_key(&id) {
                continue;
            }
            let Some(job) = self.jobs.get(&t.job) else {
                continue;
            };
            let memory = handed_over.remove(&id).unwrap_or_default();
            self.loops
                .insert(id, scrape_loop::spawn(t, Arc::clone(job), memory));
        }
        // Memory handed over for targets that did not come back: they are gone.
        for memory in handed_over.into_values() {
            if let Err(e) = scrape_loop::push_all_stale(&self.fanout, &self.metrics, &memory).await
            {
                warn!(error = %e, "stale markers for removed targets could not be queued");
            }
        }
        let mut active: Vec<ActiveTarget> = self
            .loops
            .values()
            .map(|l| ActiveTarget {
                target: Arc::clone(&l.target),
                health: Arc::clone(&l.health),
            })
            .collect();
        active.sort_by(|a, b| {
            (a.target.job.as_str(), a.target.scrape_url.as_str())
                .cmp(&(b.target.job.as_str(), b.target.scrape_url.as_str()))
        });
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(TargetsView { active, dropped });
    }
}

/// A runtime (client, auth) per job; jobs whose config did not change keep their runtime.
fn runtimes(
    file: &ScrapeConfig,
    fanout: &Arc<Fanout>,
    metrics: &Arc<IngestMetrics>,
    previous: &HashMap<String, Arc<JobRuntime>>,
) -> Result<HashMap<String, Arc<JobRuntime>>, ScraperError> {
    let external_labels: Vec<Label> = file
        .global
        .external_labels
        .iter()
        .map(|(n, v)| Label::new(n, v))
        .collect();
    let mut out = HashMap::new();
    for job in &file.jobs {
        if let Some(old) = previous.get(&job.job_name)
            && old.cfg == *job
            && old.external_labels == external_labels
        {
            out.insert(job.job_name.clone(), Arc::clone(old));
            continue;
        }
        let err = |reason: String| ScraperError::Client {
            job: job.job_name.clone(),
            reason,
        };
        let client = client(job).map_err(err)?;
        let authorization = authorization(&job.auth).map_err(err)?;
        out.insert(
            job.job_name.clone(),
            Arc::new(JobRuntime {
                cfg: job.clone(),
                client,
                authorization,
                external_labels: external_labels.clone(),
                fanout: Arc::clone(fanout),
                metrics: Arc::clone(metrics),
            }),
        );
    }
    Ok(out)
}

fn client(job: &JobConfig) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls: &ScrapeTls = &job.tls;
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("promrelay/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(4);
    let mut ca_pem = Vec::new();
    if let Some(f) = &tls.ca_file {
        ca_pem =
            std::fs::read(f).map_err(|e| format!("tls_config.ca_file {}: {e}", f.display()))?;
    } else if let Some(ca) = &tls.ca {
        ca_pem = ca.as_bytes().to_vec();
    }
    if !ca_pem.is_empty() {
        for cert in reqwest::Certificate::from_pem_bundle(&ca_pem)
            .map_err(|e| format!("tls_config CA: {e}"))?
        {
            b = b.add_root_certificate(cert);
        }
    }
    let cert = match (&tls.cert_file, &tls.cert) {
        (Some(f), _) => Some(
            std::fs::read(f).map_err(|e| format!("tls_config.cert_file {}: {e}", f.display()))?,
        ),
        (None, Some(c)) => Some(c.as_bytes().to_vec()),
        _ => None,
    };
    let key = match (&tls.key_file, &tls.key) {
        (Some(f), _) => Some(
            std::fs::read(f).map_err(|e| format!("tls_config.key_file {}: {e}", f.display()))?,
        ),
        (None, Some(k)) => Some(k.expose().as_bytes().to_vec()),
        _ => None,
    };
    if let (Some(mut pem), Some(key)) = (cert, key) {
        pem.extend(key);
        b = b.identity(
            reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("tls_config client cert: {e}"))?,
        );
    }
    if tls.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    // rustls speaks TLS 1.2 and 1.3 only: a minimum below 1.2 leaves both on, and the loader
    // refuses a maximum below 1.2 (it would leave no version).
    if let Some(v) = &tls.min_version {
        b = b.tls_version_min(tls_version(v)?);
    }
    if let Some(v) = &tls.max_version {
        b = b.tls_version_max(tls_version(v)?);
    }
    b.build().map_err(|e| format!("building HTTP client: {e}"))
}

/// reqwest's version for a `tls_config` `min_version`/`max_version` (checked at load).
fn tls_version(name: &str) -> Result<reqwest::tls::Version, String> {
    use reqwest::tls::Version;
    match name {
        "TLS10" => Ok(Version::TLS_1_0),
        "TLS11" => Ok(Version::TLS_1_1),
        "TLS12" => Ok(Version::TLS_1_2),
        "TLS13" => Ok(Version::TLS_1_3),
        other => Err(format!("tls_config: unknown TLS version {other:?}")),
    }
}

fn authorization(auth: &ScrapeAuth) -> Result<Option<HeaderValue>, String> {
    let text = match auth {
        ScrapeAuth::None => return Ok(None),
        ScrapeAuth::Basic { username, password } => {
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose()));
            format!("Basic {token}")
        }
        ScrapeAuth::Authorization { kind, credentials } => {
            format!("{kind} {}", credentials.expose())
        }
    };
    let mut v =
        HeaderValue::from_str(&text).map_err(|_| "credentials are not valid in a header")?;
    v.set_sensitive(true);
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The job of a one-job scrape config whose `tls_config` holds `tls` (YAML flow mapping).
    fn job_with_tls(tls: &str) -> JobConfig {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prometheus.yml");
        let yaml = format!(
            "scrape_configs:\n  - job_name: secure\n    scheme: https\n    tls_config: {tls}\n"
        );
        std::fs::write(&path, yaml).expect("write the config");
        let file = config::load(&path).unwrap_or_else(|e| panic!("config loads: {e}"));
        file.jobs.into_iter().next().expect("one job")
    }

    /// The TLS versions (`0x0303` is 1.2, `0x0304` is 1.3) that `client` offers in its
    /// ClientHello, read by a TCP server that answers nothing and closes.
    async fn offered_tls_versions(client: reqwest::Client) -> Vec<u16> {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/metrics", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut header = [0u8; 5];
            socket.read_exact(&mut header).await.unwrap();
            assert_eq!(header[0], 22, "a TLS handshake record");
            let mut hello = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
            socket.read_exact(&mut hello).await.unwrap();
            hello
        });
        let _ = client.get(url).send().await; // fails: the server never answers
        let hello = server.await.unwrap();
        client_hello_versions(&hello)
    }

    /// The versions of a ClientHello's supported_versions extension (TLS 1.3 clients), or its
    /// legacy version field when it has none (a TLS 1.2-only client).
    fn client_hello_versions(hello: &[u8]) -> Vec<u16> {
        let u16_at = |i: usize| u16::from_be_bytes([hello[i], hello[i + 1]]);
        assert_eq!(hello[0], 1, "a ClientHello");
        let legacy_version = u16_at(4);
        let mut at = 4 + 2 + 32; // handshake header, legacy version, random
        at += 1 + usize::from(hello[at]); // session id
        at += 2 + usize::from(u16_at(at)); // cipher suites
        at += 1 + usize::from(hello[at]); // compression methods
        let end = at + 2 + usize::from(u16_at(at));
        at += 2;
        while at < end {
            let (kind, len) = (u16_at(at), usize::from(u16_at(at + 2)));
            if kind == 43 {
                let list = &hello[at + 5..at + 4 + len];
                return list
                    .chunks(2)
                    .map(|v| u16::from_be_bytes([v[0], v[1]]))
                    .collect();
            }
            at += 4 + len;
        }
        vec![legacy_version]
    }

    #[tokio::test]
    async fn tls_min_and_max_version_limit_what_the_client_offers() {
        const TLS12: u16 = 0x0303;
        const TLS13: u16 = 0x0304;
        let offered = |tls: &str| {
            let job = job_with_tls(tls);
            async move { offered_tls_versions(client(&job).expect("client builds")).await }
        };
        assert_eq!(offered("{}").await, [TLS13, TLS12], "by default");
        assert_eq!(offered("{min_version: TLS12}").await, [TLS13, TLS12]);
        // rustls has nothing older than TLS 1.2 to add.
        assert_eq!(offered("{min_version: TLS10}").await, [TLS13, TLS12]);
        assert_eq!(offered("{min_version: TLS13}").await, [TLS13]);
        assert_eq!(offered("{max_version: TLS12}").await, [TLS12]);
        assert_eq!(
            offered("{min_version: TLS12, max_version: TLS12}").await,
            [TLS12]
        );
    }

    #[test]
    fn bearer_authorization_is_a_sensitive_header() {
        let auth = ScrapeAuth::Authorization {
            kind: "Bearer".into(),
            credentials: crate::config::Secret::new("tok"),
        };
        let v = authorization(&auth).unwrap().unwrap();
        assert_eq!(v, "Bearer tok");
        assert!(v.is_sensitive());
    }
}
