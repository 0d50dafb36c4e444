//! Target discovery: the hub that keeps every job's target groups and tells the scrape manager
//! when they change, and the discovery mechanisms that feed it, one per file or directory:
//! static groups and `file_sd_configs` ([`file`](mod@file)), and the asynchronous providers
//! (`kubernetes_sd_configs`, `http_sd_configs`, `dns_sd_configs`) started by
//! [`spawn_providers`].
//!
//! # The contract with providers
//! Each `*_sd_configs` entry of a job that is not a file or static config runs as one task with
//! one [`GroupSink`] (a slot of its job). Whenever its view changes it publishes its **whole**
//! current list of groups with [`GroupSink::publish`]; the hub replaces the slot's groups. A
//! provider that fails keeps publishing nothing (its last groups stay) and retries on its own.
//! A provider ends when [`GroupSink::closed`] resolves (the hub is gone); it is also aborted when
//! its [`Discovery`] is dropped.
//!
//! # Guarantees
//! - A job's groups are, in order: static groups (config order), `file_sd` groups (by config
//!   entry, file name and position in the file), then each provider's groups (by config order
//!   of the providers, in the order it published them).
//! - Subscribers are woken only when some job's groups really changed, and at most once per
//!   [`DiscoveryOptions::min_publish_interval`]: a burst of updates (a watch storm) becomes one
//!   snapshot with the latest groups of every slot, never a stale one.
//! - Files are polled every [`DiscoveryOptions::poll_interval`] on the blocking thread pool.
//!
//! # Must not
//! Build targets or apply relabeling ([`targets`](super::targets) does), or block the async
//! runtime.
//!
//! # Use
//! ```no_run
//! # use promrelay::scrape::config::JobConfig;
//! # use promrelay::scrape::discovery::Discovery;
//! # async fn follow(jobs: &[JobConfig]) {
//! let discovery = Discovery::start(jobs);             // reads every file once, starts providers
//! let mut changes = discovery.subscribe();
//! loop {
//!     let snapshot = changes.borrow_and_update().clone(); // Arc<Vec<JobGroups>>
//!     // ... build targets from snapshot ...
//!     if changes.changed().await.is_err() { break }    // the Discovery was dropped
//! }
//! # }
//! ```

pub mod dns;
pub mod file;
pub mod http;
pub mod kubernetes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::config::JobConfig;
use crate::stats::DiscoveryMetrics;
pub use file::{Discoverer, SdFileError, wildcard_match};

/// How often file modification times are checked.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The shortest time between two snapshots sent to subscribers (the first is sent at once).
pub const DEFAULT_MIN_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// The label that names the file a `file_sd` group came from.
pub const META_FILEPATH: &str = "__meta_filepath";

/// Targets that share labels, as one `static_configs` entry or one entry of a `file_sd` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroup {
    /// Where the group came from: `static_configs[0]` or `<file path>:<index>`.
    pub source: String,
    /// The targets' addresses, each becoming a target's `__address__`, in the order written.
    pub targets: Vec<String>,
    /// Labels shared by the group's targets, `__meta_filepath` included for `file_sd` groups.
    pub labels: BTreeMap<String, String>,
    /// Labels this group shares with other groups, under [`TargetGroup::labels`] (a name in
    /// both takes `labels`' value): a Kubernetes object's labels, held once for each of its
    /// targets' groups rather than copied into each. `None` for the other discoveries.
    pub common: Option<Arc<BTreeMap<String, String>>>,
    /// The file a `file_sd` group came from; `None` for static groups.
    pub file: Option<SdFile>,
}

impl TargetGroup {
    /// Every label of the group, [`TargetGroup::common`]'s first, in the order later ones win.
    pub fn each_label(&self) -> impl Iterator<Item = (&String, &String)> {
        self.common
            .iter()
            .flat_map(|c| c.iter())
            .chain(self.labels.iter())
    }

    /// The group's labels in one map (`common` under `labels`).
    pub fn merged_labels(&self) -> BTreeMap<String, String> {
        match &self.common {
            None => self.labels.clone(),
            Some(common) => {
                let mut m = (**common).clone();
                m.extend(self.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                m
            }
        }
    }

    /// The same group with its labels in one map and no `common` (for comparisons in tests).
    pub fn flattened(mut self) -> TargetGroup {
        self.labels = self.merged_labels();
        self.common = None;
        self
    }
}

/// The file behind a `file_sd` group, in the two spellings the sharding key needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdFile {
    /// As in `__meta_filepath`: the pattern's directory (relative to where promrelay runs when
    /// the config file path was relative) joined with the file name.
    pub path: PathBuf,
    /// Absolute and lexically cleaned (vmagent's `__vm_filepath`).
    pub absolute: PathBuf,
}

/// The groups discovered for one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobGroups {
    /// The job's `job_name`.
    pub job: String,
    /// Static groups first (in config order), then `file_sd` groups by config entry, file
    /// name and position in the file.
    pub groups: Vec<TargetGroup>,
    /// Then each provider's groups (kubernetes, http, dns), in config order: shared with the
    /// hub rather than copied, since a large cluster's groups are most of discovery's memory.
    pub shared: Vec<Arc<Vec<TargetGroup>>>,
}

impl JobGroups {
    /// Every group of the job: [`JobGroups::groups`], then [`JobGroups::shared`].
    pub fn all(&self) -> impl Iterator<Item = &TargetGroup> {
        self.groups
            .iter()
            .chain(self.shared.iter().flat_map(|g| g.iter()))
    }
}

/// A snapshot of everything discovered, one entry per job in config order.
pub type Snapshot = Arc<Vec<JobGroups>>;

/// How the hub runs; [`Default`] is what promrelay uses.
#[derive(Clone, Copy, Debug)]
pub struct DiscoveryOptions {
    /// Time between checks of `file_sd` files' modification times.
    pub poll_interval: Duration,
    /// The shortest time between two snapshots; updates in between are coalesced.
    pub min_publish_interval: Duration,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            poll_interval: DEFAULT_POLL_INTERVAL,
            min_publish_interval: DEFAULT_MIN_PUBLISH_INTERVAL,
        }
    }
}

/// One provider's whole current view, sent to the hub.
#[derive(Debug)]
struct Update {
    job: usize,
    slot: usize,
    groups: Vec<TargetGroup>,
}

/// Where one provider (one `*_sd_configs` entry of one job) publishes its groups.
#[derive(Debug)]
pub struct GroupSink {
    job: usize,
    slot: usize,
    tx: mpsc::UnboundedSender<Update>,
}

impl GroupSink {
    /// Replaces this provider's groups with `groups`. Returns false when the hub is gone (the
    /// provider should stop).
    pub fn publish(&self, groups: Vec<TargetGroup>) -> bool {
        self.tx
            .send(Update {
                job: self.job,
                slot: self.slot,
                groups,
            })
            .is_ok()
    }

    /// Resolves when the hub is gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// Hands out the slots of one job's providers, in config order.
#[derive(Debug)]
pub struct SinkFactory {
    job: usize,
    slots: usize,
    tx: mpsc::UnboundedSender<Update>,
}

impl SinkFactory {
    /// The sink of the job's next provider slot.
    pub fn next_sink(&mut self) -> GroupSink {
        let sink = GroupSink {
            job: self.job,
            slot: self.slots,
            tx: self.tx.clone(),
        };
        self.slots += 1;
        sink
    }
}

/// What the asynchronous providers share with the rest of the process.
#[derive(Clone, Debug, Default)]
pub struct ProviderContext {
    /// Where failed refreshes are counted (`/metrics`).
    pub metrics: Arc<DiscoveryMetrics>,
    /// The one name server `dns_sd_configs` ask instead of `/etc/resolv.conf`'s
    /// (`--dns-sd-resolver`).
    pub dns_server: Option<SocketAddr>,
}

/// Starts the asynchronous providers of `job` (one task per `*_sd_configs` entry that is not a
/// file), each with its own sink from `sinks`, in config order. Returns their tasks.
pub fn spawn_providers(
    job: &JobConfig,
    sinks: &mut SinkFactory,
    context: &ProviderContext,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for c in &job.kubernetes_sd_configs {
        let sink = sinks.next_sink();
        tasks.push(tokio::spawn(kubernetes::run(
            job.job_name.clone(),
            c.clone(),
            kubernetes::InCluster::from_env(),
            move |groups| sink.publish(groups),
        )));
    }
    for config in &job.http_sd_configs {
        tasks.push(tokio::spawn(http::run(
            config.clone(),
            job.job_name.clone(),
            sinks.next_sink(),
            Arc::clone(&context.metrics),
        )));
    }
    for config in &job.dns_sd_configs {
        tasks.push(tokio::spawn(dns::run(
            config.clone(),
            job.job_name.clone(),
            sinks.next_sink(),
            context.clone(),
        )));
    }
    tasks
}

/// Discovery running in the background; see the module doc.
///
/// Dropping it stops the hub and every provider; subscribers then see their channel close.
#[derive(Debug)]
pub struct Discovery {
    changes: watch::Receiver<Snapshot>,
    tasks: Vec<JoinHandle<()>>,
}

impl Discovery {
    /// Reads every discovery file once (blocking the calling thread for that), starts the
    /// providers, publishes the first snapshot, and follows changes with the default options.
    ///
    /// Must be called within a tokio runtime.
    pub fn start(jobs: &[JobConfig]) -> Discovery {
        Discovery::start_with(jobs, DiscoveryOptions::default())
    }

    /// [`Discovery::start`] with other options.
    pub fn start_with(jobs: &[JobConfig], options: DiscoveryOptions) -> Discovery {
        Discovery::start_with_context(jobs, options, &ProviderContext::default())
    }

    /// [`Discovery::start_with`], the providers counting into and configured by `context`.
    pub fn start_with_context(
        jobs: &[JobConfig],
        options: DiscoveryOptions,
        context: &ProviderContext,
    ) -> Discovery {
        Discovery::start_with_providers(jobs, options, |job, sinks| {
            spawn_providers(job, sinks, context)
        })
    }

    /// [`Discovery::start_with`] with another way to start providers: `spawn` is called once
    /// per job, in order, with the job's sink factory. Tests use it to drive sinks by hand.
    pub fn start_with_providers(
        jobs: &[JobConfig],
        options: DiscoveryOptions,
        mut spawn: impl FnMut(&JobConfig, &mut SinkFactory) -> Vec<JoinHandle<()>>,
    ) -> Discovery {
        let mut files = Discoverer::new(jobs);
        files.refresh(Instant::now());
        let (tx, rx) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        let mut slots = Vec::with_capacity(jobs.len());
        for (index, job) in jobs.iter().enumerate() {
            let mut factory = SinkFactory {
                job: index,
                slots: 0,
                tx: tx.clone(),
            };
            tasks.extend(spawn(job, &mut factory));
            slots.push((0..factory.slots).map(|_| Arc::new(Vec::new())).collect());
        }
        // Only the sinks hold senders now: the hub's receiver ends when every provider is gone.
        drop(tx);
        let hub = Hub { files, slots };
        let (snapshots, changes) = watch::channel(Arc::new(hub.snapshot()));
        tasks.push(tokio::spawn(hub.run(rx, snapshots, options)));
        Discovery { changes, tasks }
    }

    /// What is known now.
    pub fn current(&self) -> Snapshot {
        self.changes.borrow().clone()
    }

    /// A receiver that is marked changed whenever the snapshot changes. Its current value is
    /// the latest snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.changes.clone()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The state behind the snapshots: the files' groups and every provider slot's groups.
#[derive(Debug)]
struct Hub {
    files: Discoverer,
    /// Per job, per provider slot, the groups last published.
    slots: Vec<Vec<Arc<Vec<TargetGroup>>>>,
}

impl Hub {
    /// Applies one update; returns whether the slot's groups changed.
    fn apply(&mut self, update: Update) -> bool {
        let Some(slot) = self
            .slots
            .get_mut(update.job)
            .and_then(|job| job.get_mut(update.slot))
        else {
            return false;
        };
        if **slot == update.groups {
            return false;
        }
        *slot = Arc::new(update.groups);
        true
    }

    fn snapshot(&self) -> Vec<JobGroups> {
        let mut jobs = self.files.snapshot();
        for (job, slots) in jobs.iter_mut().zip(&self.slots) {
            job.shared
                .extend(slots.iter().filter(|g| !g.is_empty()).cloned());
        }
        jobs
    }

    async fn run(
        mut self,
        mut updates: mpsc::UnboundedReceiver<Update>,
        snapshots: watch::Sender<Snapshot>,
        options: DiscoveryOptions,
    ) {
        let has_files = self.files.has_files();
        let mut ticker = tokio::time::interval(options.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is immediate; start-up already read the files
        let mut providers_open = true;
        // Something changed since the last snapshot was sent.
        let mut dirty = false;
        let mut last_sent: Option<Instant> = None;
        loop {
            let publish_at = last_sent
                .map(|t| t + options.min_publish_interval)
                .unwrap_or_else(Instant::now);
            tokio::select! {
                _ = tokio::time::sleep_until(publish_at.into()), if dirty => {
                    snapshots.send_replace(Arc::new(self.snapshot()));
                    last_sent = Some(Instant::now());
                    dirty = false;
                }
                update = updates.recv(), if providers_open => match update {
                    Some(update) => {
                        dirty |= self.apply(update);
                        // Take the rest of a burst at once.
                        while let Ok(update) = updates.try_recv() {
                            dirty |= self.apply(update);
                        }
                    }
                    None => providers_open = false,
                },
                _ = ticker.tick(), if has_files => {
                    let mut files = std::mem::replace(&mut self.files, Discoverer::new(&[]));
                    let polled = tokio::task::spawn_blocking(move || {
                        let changed = files.refresh(Instant::now());
                        (files, changed)
                    })
                    .await;
                    match polled {
                        Ok((files, changed)) => {
                            self.files = files;
                            dirty |= changed;
                        }
                        Err(e) => {
                            // Only a panic in the file reading could get here; the state went with it.
                            tracing::error!("file_sd watcher stopped: {e}");
                            return;
                        }
                    }
                }
                _ = snapshots.closed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests;
