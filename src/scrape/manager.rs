//! The scraper: owns the scrape config, discovery, each job's HTTP client and one loop per target
//! this instance owns. Re-syncs the loops when discovery changes and on reload.
//!
//! Guarantees: a target keeps its loop (and its health and series memory) as long as it stays
//! (same identity); removed targets get stale markers for their series; a reload that fails to load
//! leaves the running configuration untouched and says why; on reload a target whose job changed
//! gets a new loop that inherits its series memory (no false stale markers). On shutdown loops stop
//! without stale markers (a restart continues the series within Prometheus' 5 minute staleness).
//! A discovery change is applied at once after a quiet spell; while changes keep coming (a watch
//! storm) the next re-sync waits `SYNC_SHARE_INVERSE` times as long as the last one took (at most
//! `MAX_SYNC_WAIT`, Prometheus' own interval), so rebuilding every target stays a bounded share
//! of a core.
//!
//! Must not: write to queues except through the fan-out the relay uses.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::cache::ScrapeCache;
use super::client::{authorization, tls_options};
use super::config::{self, JobConfig, ScrapeConfig};
use super::discovery::http::HttpSd;
use super::discovery::{Discovery, DiscoveryOptions, ProviderContext};
use super::outbox::Outbox;
use super::scrape_loop::{self, JobRuntime, LoopHandle, StopMode, TargetHealth};
use super::targets::{DroppedTarget, Target, build_targets_listing};
use crate::config::ClusterConfig;
use crate::forward::Fanout;
use crate::outbound::{self, ClientError, ClientOptions};
use crate::prompb::Label;
use crate::stats::IngestMetrics;

/// After a re-sync that took `d`, the next waits `d` times this (a fifth of a core at most):
/// with 10,000 pods a re-sync relabels ~50,000 discovered targets in about half a second.
const SYNC_SHARE_INVERSE: u32 = 4;

/// The longest a discovery change waits for its re-sync (Prometheus applies changes every 5 s).
const MAX_SYNC_WAIT: Duration = Duration::from_secs(5);

/// Errors starting the scraper (and, inside [`ReloadError`], loading a new config).
#[derive(Debug, thiserror::Error)]
pub enum ScraperError {
    /// The scrape config file could not be loaded.
    #[error(transparent)]
    Config(#[from] config::ScrapeConfigError),
    /// The task loading the scrape config file at start panicked or was cancelled.
    #[error("loading the scrape config did not finish: {0}")]
    LoadTask(#[source] tokio::task::JoinError),
    /// A job's HTTP client or `Authorization` header could not be built (TLS files, credentials).
    #[error("scrape job {job}: {source}")]
    Client {
        job: String,
        #[source]
        source: ClientError,
    },
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
    /// Dropped targets listed (at most `--scrape-max-dropped-targets` per job).
    pub dropped: Vec<DroppedTarget>,
    /// Dropped targets per job, listed or not.
    pub dropped_total: BTreeMap<String, usize>,
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
    file: ScrapeConfig,
    jobs: HashMap<String, Arc<JobRuntime>>,
    /// Where every loop's batches go; its flusher stops with the scraper.
    outbox: Arc<Outbox>,
    flusher_stop: CancellationToken,
    flusher: Option<tokio::task::JoinHandle<()>>,
    discovery: Discovery,
    /// What discovery providers share (their counters, the DNS server), kept for reloads.
    providers: ProviderContext,
    /// Dropped targets listed per job; the others are counted.
    max_dropped_targets: usize,
    loops: HashMap<u64, LoopHandle>,
    view: Arc<Mutex<Arc<TargetsView>>>,
}

impl Scraper {
    /// Loads `path`, starts discovery (its providers with `providers`) and the loops.
    pub async fn start(
        path: PathBuf,
        cluster: ClusterConfig,
        fanout: Arc<Fanout>,
        metrics: Arc<IngestMetrics>,
        providers: ProviderContext,
        max_dropped_targets: usize,
    ) -> Result<Scraper, ScraperError> {
        let load_path = path.clone();
        let file = tokio::task::spawn_blocking(move || config::load(&load_path))
            .await
            .map_err(ScraperError::LoadTask)??;
        let outbox = Arc::new(Outbox::for_this_machine(
            Arc::clone(&fanout),
            Arc::clone(&metrics),
        ));
        let jobs = runtimes(&file, &outbox, &HashMap::new())?;
        check_discovery_clients(&file)?;
        let flusher_stop = CancellationToken::new();
        let flusher = Some(outbox.spawn_flusher(flusher_stop.clone()));
        let discovery =
            Discovery::start_with_context(&file.jobs, DiscoveryOptions::default(), &providers);
        let view = Arc::new(Mutex::new(Arc::new(TargetsView::default())));
        let mut state = State {
            path,
            cluster,
            file,
            jobs,
            outbox,
            flusher_stop,
            flusher,
            discovery,
            providers,
            max_dropped_targets,
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
        // A change seen and not yet applied, and the earliest its re-sync may start.
        let mut pending = false;
        let mut next_sync = Instant::now();
        loop {
            tokio::select! {
                changed = changes.changed(), if !pending => {
                    if changed.is_err() {
                        // Discovery was replaced by a reload: follow the new one.
                        changes = self.discovery.subscribe();
                        continue;
                    }
                    pending = true;
                }
                _ = tokio::time::sleep_until(next_sync), if pending => {
                    pending = false;
                    let started = Instant::now();
                    // Reads the latest snapshot: changes that came while waiting are in it.
                    self.sync(HashMap::new()).await;
                    let wait = (started.elapsed() * SYNC_SHARE_INVERSE).min(MAX_SYNC_WAIT);
                    next_sync = Instant::now() + wait;
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Reload(reply)) => {
                        let res = self.reload().await;
                        changes = self.discovery.subscribe();
                        // A reload that loaded re-synced; one that failed leaves a pending
                        // change pending.
                        pending &= res.is_err();
                        let _ = reply.send(res);
                    }
                    Some(Command::Stop(reply)) => {
                        for (_, l) in self.loops.drain() {
                            l.stop(StopMode::HandOver).await;
                        }
                        // The loops' last batches reach the queues before the senders stop.
                        self.flusher_stop.cancel();
                        if let Some(flusher) = self.flusher.take() {
                            let _ = flusher.await;
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
        let jobs = runtimes(&file, &self.outbox, &self.jobs)?;
        check_discovery_clients(&file)?;
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
        self.discovery =
            Discovery::start_with_context(&file.jobs, DiscoveryOptions::default(), &self.providers);
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
        let mut dropped_total = BTreeMap::new();
        for jg in snapshot.iter() {
            let Some(job) = self.jobs.get(&jg.job) else {
                continue;
            };
            let set = build_targets_listing(
                &job.cfg,
                jg.all(),
                &self.file.global,
                &self.cluster,
                self.max_dropped_targets,
            );
            for t in set.active {
                desired.entry(t.id()).or_insert_with(|| Arc::new(t));
            }
            dropped.extend(set.dropped);
            *dropped_total.entry(jg.job.clone()).or_default() += set.dropped_total;
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
            if let Some(running) = self.loops.get_mut(&id) {
                // Same final labels and URL: the loop goes on. The pages show the discovered
                // labels of the latest discovery, as Prometheus 3 does (a pod label that no
                // relabel rule uses can change without restarting its targets' loops).
                running.target = t;
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
        for (id, memory) in handed_over {
            scrape_loop::push_all_stale(&self.outbox, id, &memory).await;
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
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(TargetsView {
            active,
            dropped,
            dropped_total,
        });
    }
}

/// Builds every `http_sd_config`'s client once, so a TLS file that is not PEM or credentials
/// that cannot be a header refuse the config (at start or reload) rather than leave a job
/// without targets.
fn check_discovery_clients(file: &ScrapeConfig) -> Result<(), ScraperError> {
    for job in &file.jobs {
        for sd in &job.http_sd_configs {
            HttpSd::new(sd).map_err(|source| ScraperError::Client {
                job: job.job_name.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

/// A runtime (client, auth) per job; jobs whose config did not change keep their runtime.
fn runtimes(
    file: &ScrapeConfig,
    outbox: &Arc<Outbox>,
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
        let err = |source: ClientError| ScraperError::Client {
            job: job.job_name.clone(),
            source,
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
                outbox: Arc::clone(outbox),
            }),
        );
    }
    Ok(out)
}

/// The job's reqwest client (for https targets, redirects and proxies from the environment).
fn client(job: &JobConfig) -> Result<reqwest::Client, ClientError> {
    outbound::build_client(&ClientOptions {
        tls: tls_options(&job.tls),
        pool_idle_timeout: Duration::from_secs(90),
        pool_max_idle_per_host: Some(4),
        // Each scrape sets its own timeout (the target's `scrape_timeout`).
        ..ClientOptions::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Pem;

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

    #[test]
    fn tls_config_reaches_the_client_options() {
        let job = job_with_tls(
            "{min_version: TLS12, max_version: TLS13, insecure_skip_verify: true, ca: \"PEM\"}",
        );
        let opts = tls_options(&job.tls);
        assert_eq!(opts.min_version.as_deref(), Some("TLS12"));
        assert_eq!(opts.max_version.as_deref(), Some("TLS13"));
        assert!(opts.insecure_skip_verify);
        assert!(matches!(opts.ca, Some(Pem::Inline(ref s)) if s.expose() == "PEM"));
        assert!(opts.cert.is_none() && opts.key.is_none());
        client(&job_with_tls("{min_version: TLS13}")).expect("client builds");
    }
}
