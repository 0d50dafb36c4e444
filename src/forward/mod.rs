//! Forwarding: per storage, its disk queue and its sender.
//!
//! # Owns
//! One [`Storage`] per configured remote-write URL: its queue (`<data-dir>/queues/<id>/`), its
//! HTTP client, its sender task(s) and their counters. A multitenant storage (a vminsert cluster)
//! is one such [`Storage`] per [`Tenant`], each with its own queue
//! (`<data-dir>/queues/<id>-tenant-<account>-<project>/`) and sender, opened on the tenant's first
//! push and found again on restart (`tenant_queues.rs`). [`Fanout`] is the single entry through
//! which ingest (and the scraper) hand data, with its tenant, to every storage.
//!
//! # Guarantees
//! - [`Fanout::push`] returns `Ok` only when the block is in every storage's queue (written to the
//!   OS; fsynced too under `--fsync=always`): the durability contract of design.md.
//! - Storages are independent: each has its own queue, sender and retry loop, so a slow or dead one
//!   grows only its own backlog. So are the tenants of a multitenant storage.
//! - Tenants: an ordinary storage gets every push whatever its tenant; a multitenant storage puts
//!   a push in the queue of its tenant (`0:0` when it came without one, as vmagent does). At most
//!   `max_tenants` tenant queues per storage: a push for a new tenant past that is refused
//!   ([`PushError::TooManyTenants`]) before anything is queued anywhere.
//! - Sender semantics of design.md: 2xx advances; 429, 5xx, timeouts and connection errors retry the
//!   same request with exponential backoff and jitter, honouring `Retry-After`; other 4xx drop the
//!   data, count it and log the storage's answer (at most once per 10 s). A merged request refused
//!   with a 4xx is retried block by block, so only the refused push is dropped.
//! - Per-series order: with the default concurrency of 1, blocks are sent strictly in queue order
//!   and the queue advances only after the storage acknowledged them. Concurrency above 1 sends
//!   consecutive batches in parallel and can reorder samples of one series across batches: it is
//!   for storages that accept out-of-order samples (VictoriaMetrics), and unsafe for Prometheus,
//!   Mimir and Thanos (documented in the README).
//!
//! # Must not
//! Share a queue or a retry loop between storages; decode what it only forwards (merging
//! concatenates the queued snappy blocks under one new length header, without decompressing).

mod sender;
pub mod status;
mod tenant;
mod tenant_queues;

pub use status::{SenderState, StorageStatus};
pub use tenant::{Tenant, TenantError};
use tenant_queues::TenantQueues;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, FsyncMode, QueueFull, StorageConfig};
use crate::outbound::ClientError;
use crate::queue::{FullPolicy, Options, Queue, QueueError, SyncPolicy};
use crate::relabel::RelabelError;
use crate::util::now_ms;

/// Errors opening the storages.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A storage's queue could not be opened (lock held, directory not writable...).
    #[error("storage {id} ({url}): {source}")]
    Queue {
        id: String,
        url: String,
        #[source]
        source: QueueError,
    },
    /// The HTTP client for a storage could not be built (bad CA or client certificate file,
    /// a header that is not valid...).
    #[error("storage {id} ({url}): {source}")]
    Client {
        id: String,
        url: String,
        #[source]
        source: ClientError,
    },
    /// A storage's `write_relabel_configs` do not compile (loading checks them, so only a
    /// config built in code gets here).
    #[error("storage {id} ({url}): write_relabel_configs: {source}")]
    Relabel {
        id: String,
        url: String,
        #[source]
        source: RelabelError,
    },
    /// The data directory could not be listed to find a multitenant storage's tenant queues.
    #[error("storage {id} ({url}): listing {} for tenant queues: {source}", dir.display())]
    ListTenants {
        id: String,
        url: String,
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a push could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A storage's queue refused or failed the append; the caller answers 503 (the sender retries).
    /// Storages before it in the list may already hold the block: delivery stays at-least-once.
    #[error("storage {id} cannot take data: {source}")]
    Queue {
        id: String,
        #[source]
        source: QueueError,
    },
    /// The block is larger than a queue accepts (the caller answers 413).
    #[error("block of {len} bytes is larger than the queue accepts")]
    TooLarge { len: usize },
    /// The thread appending to a storage's queue (`--fsync=always`, several storages) panicked:
    /// whether the block reached that queue is unknown, so the push is refused (the caller
    /// answers 503, the sender retries; delivery stays at-least-once).
    #[error("appending to the queue of storage {id} panicked: {message}")]
    AppendPanicked { id: String, message: String },
    /// The blocking task doing the appends panicked or was cancelled (the runtime is shutting
    /// down): whether the block reached the queues is unknown, so the push is refused.
    #[error("the task appending to the queues did not finish: {0}")]
    AppendTask(#[source] tokio::task::JoinError),
    /// A multitenant storage already has `max_tenants` tenant queues and the push is for another
    /// tenant: refused (the caller answers 503; nothing was queued anywhere; existing tenants
    /// keep working). The operator raises `max_tenants`.
    #[error(
        "storage {id} already has its maximum of {max} tenant queues (max_tenants); tenant {tenant} is refused until the bound is raised"
    )]
    TooManyTenants {
        id: String,
        tenant: Tenant,
        max: u32,
    },
    /// A new tenant's queue could not be opened (disk full, permissions); the caller answers 503.
    #[error("opening the queue of tenant {tenant}: {source}")]
    TenantOpen {
        tenant: Tenant,
        #[source]
        source: ForwardError,
    },
    /// The blocking task opening a new tenant's queue panicked or was cancelled.
    #[error("the task opening the queue of tenant {tenant} did not finish: {source}")]
    TenantOpenTask {
        tenant: Tenant,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Counters a storage's sender keeps (the queue keeps its own).
#[derive(Debug, Default)]
pub(crate) struct SenderCounters {
    pub sent_blocks: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub sent_samples: AtomicU64,
    pub requests: AtomicU64,
    pub rejected_blocks: AtomicU64,
    pub rejected_samples: AtomicU64,
    pub retries: AtomicU64,
    pub retrying: AtomicU64,
    /// Last time blocks were dropped (refused by the storage, or by the queue's cap as seen by
    /// `status()`).
    pub last_drop_ms: AtomicU64,
    pub cap_drops_seen: AtomicU64,
    pub last_success_ms: AtomicU64,
    pub last_error: Mutex<Option<(String, u64)>>,
}

impl SenderCounters {
    pub(crate) fn set_error(&self, msg: String) {
        let mut e = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *e = Some((msg, now_ms()));
    }
}

/// One destination storage: its queue, client and counters.
pub struct Storage {
    id: String,
    /// The tenant this queue holds, for one tenant's queue of a multitenant storage.
    tenant: Option<Tenant>,
    name: Option<String>,
    redacted_url: String,
    cfg: StorageConfig,
    queue: Queue,
    counters: SenderCounters,
    /// Compiled `write_relabel_configs`; empty means the storage gets bodies as received.
    relabel: Vec<crate::relabel::CompiledRelabel>,
}

impl Storage {
    /// Opens the storage's queue under `data_dir`.
    pub fn open(
        data_dir: &Path,
        cfg: &StorageConfig,
        fsync: FsyncMode,
    ) -> Result<Storage, ForwardError> {
        let id = cfg.id();
        let dir = data_dir.join("queues").join(&id);
        Storage::open_in(&dir, id, None, cfg, fsync)
    }

    /// Opens the queue in `dir` for `cfg`, named `id` (and `tenant`) in status and logs.
    fn open_in(
        dir: &Path,
        id: String,
        tenant: Option<Tenant>,
        cfg: &StorageConfig,
        fsync: FsyncMode,
    ) -> Result<Storage, ForwardError> {
        let opts = Options {
            max_bytes: (cfg.queue_max_bytes > 0).then_some(cfg.queue_max_bytes),
            full_policy: match cfg.queue_full {
                QueueFull::DropOldest => FullPolicy::DropOldest,
                QueueFull::Reject => FullPolicy::Reject,
            },
            sync: match fsync {
                FsyncMode::Always => SyncPolicy::Always,
                FsyncMode::Interval => SyncPolicy::Interval(std::time::Duration::from_secs(1)),
                FsyncMode::Never => SyncPolicy::Never,
            },
            ..Options::default()
        };
        let relabel =
            crate::relabel::compile_all(&cfg.write_relabel_configs).map_err(|source| {
                ForwardError::Relabel {
                    id: id.clone(),
                    url: cfg.redacted_url(),
                    source,
                }
            })?;
        let queue = Queue::open(dir, opts).map_err(|source| ForwardError::Queue {
            id: id.clone(),
            url: cfg.redacted_url(),
            source,
        })?;
        Ok(Storage {
            tenant,
            name: cfg.name.clone(),
            redacted_url: cfg.redacted_url(),
            id,
            cfg: cfg.clone(),
            queue,
            counters: SenderCounters::default(),
            relabel,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tenant of this queue when it is one tenant's queue of a multitenant storage.
    pub fn tenant(&self) -> Option<Tenant> {
        self.tenant
    }

    /// The storage's queue (for tests and tools; the sender is its only reader).
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// A snapshot of the storage's figures.
    pub fn status(&self) -> StorageStatus {
        let q = self.queue.stats();
        let c = &self.counters;
        let now = now_ms();
        if q.dropped_blocks > c.cap_drops_seen.swap(q.dropped_blocks, Ordering::Relaxed) {
            c.last_drop_ms.store(now, Ordering::Relaxed);
        }
        let last_drop = c.last_drop_ms.load(Ordering::Relaxed);
        let state = if c.retrying.load(Ordering::Relaxed) > 0 {
            SenderState::Retrying
        } else if last_drop > 0 && now.saturating_sub(last_drop) < 60_000 {
            SenderState::Dropping
        } else {
            SenderState::Ok
        };
        let last_error = c
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let rejected_blocks = c.rejected_blocks.load(Ordering::Relaxed);
        let last_success = c.last_success_ms.load(Ordering::Relaxed);
        StorageStatus {
            id: self.id.clone(),
            name: self.name.clone(),
            tenant: self.tenant.map(|t| t.to_string()),
            url: self.redacted_url.clone(),
            state,
            pending_bytes: q.pending_bytes,
            pending_blocks: q.pending_blocks,
            oldest_pending_age_seconds: q
                .oldest_pending_unix_ms
                .map(|t| now.saturating_sub(t) as f64 / 1000.0)
                .unwrap_or(0.0),
            sent_blocks_total: c.sent_blocks.load(Ordering::Relaxed),
            sent_bytes_total: c.sent_bytes.load(Ordering::Relaxed),
            sent_samples_total: c.sent_samples.load(Ordering::Relaxed),
            requests_total: c.requests.load(Ordering::Relaxed),
            dropped_blocks_total: rejected_blocks + q.dropped_blocks,
            dropped_samples_total: c.rejected_samples.load(Ordering::Relaxed) + q.dropped_items,
            rejected_blocks_total: rejected_blocks,
            cap_dropped_blocks_total: q.dropped_blocks,
            cap_dropped_bytes_total: q.dropped_bytes,
            corrupt_blocks_skipped_total: q.corrupt_blocks_skipped,
            retries_total: c.retries.load(Ordering::Relaxed),
            queue_write_errors_total: q.write_errors + q.sync_errors,
            last_error: last_error.as_ref().map(|(m, _)| m.clone()),
            last_error_unix_ms: last_error.map(|(_, t)| t),
            last_success_unix_ms: (last_success > 0).then_some(last_success),
        }
    }
}

/// All storages, and the one entry through which data reaches their queues.
pub struct Fanout {
    /// Ordinary storages: every push goes to each.
    storages: Vec<Arc<Storage>>,
    /// Multitenant storages: a push goes to its tenant's queue in each.
    multitenant: Vec<Arc<TenantQueues>>,
    /// Appends wait for an fsync (`--fsync=always`): do them side by side, one thread per storage.
    /// Otherwise they are page-cache writes, cheaper one after another than a thread each.
    parallel_appends: bool,
}

/// Largest block [`Fanout::push`] appends on the calling task when no storage relabels and every
/// queue says the append is quick ([`crate::queue::Queue::append_is_quick`]: no fsync, rollover or
/// cap drop): copying it into the page cache takes microseconds. Everything else goes to a
/// blocking thread.
const INLINE_APPEND_BYTES: usize = 256 << 10;

impl Fanout {
    /// Opens every storage's queue (`<data-dir>/queues/<id>/`), and every tenant queue a
    /// multitenant storage left there.
    pub fn open(cfg: &Config) -> Result<Fanout, ForwardError> {
        let mut storages = Vec::new();
        let mut multitenant = Vec::new();
        for s in &cfg.storages {
            if s.multitenant {
                multitenant.push(Arc::new(TenantQueues::open(&cfg.data_dir, s, cfg.fsync)?));
            } else {
                storages.push(Arc::new(Storage::open(&cfg.data_dir, s, cfg.fsync)?));
            }
        }
        Ok(Fanout {
            storages,
            multitenant,
            parallel_appends: cfg.fsync == FsyncMode::Always,
        })
    }

    /// Every queue: the ordinary storages in configured order, then each multitenant storage's
    /// tenant queues by tenant.
    pub fn storages(&self) -> Vec<Arc<Storage>> {
        let mut all = self.storages.clone();
        for mt in &self.multitenant {
            all.extend(mt.queues());
        }
        all
    }

    /// Queues one block (a snappy-compressed remote-write body, as received) for every storage:
    /// each ordinary storage, and in each multitenant storage the queue of `tenant` (`0:0` when
    /// `None`), opened on first use. `samples` is stored with it for the drop counters.
    pub async fn push(
        &self,
        block: Bytes,
        samples: u32,
        tenant: Option<Tenant>,
    ) -> Result<(), PushError> {
        if self.multitenant.is_empty() {
            return self.push_to(&self.storages, block, samples).await;
        }
        let tenant = tenant.unwrap_or_default();
        let mut targets = Vec::with_capacity(self.storages.len() + self.multitenant.len());
        targets.extend(self.storages.iter().cloned());
        for mt in &self.multitenant {
            targets.push(mt.queue_for(tenant).await?);
        }
        self.push_to(&targets, block, samples).await
    }

    async fn push_to(
        &self,
        storages: &[Arc<Storage>],
        block: Bytes,
        samples: u32,
    ) -> Result<(), PushError> {
        // Refuse up front when a `reject` queue is full, so a refused push leaves the others alone.
        if let Some(st) = storages
            .iter()
            .find(|st| !st.queue.would_accept(block.len()))
        {
            let stats = st.queue.stats();
            return Err(PushError::Queue {
                id: st.id.clone(),
                source: QueueError::Full {
                    pending_bytes: stats.pending_bytes,
                    max_bytes: st.cfg.queue_max_bytes,
                },
            });
        }
        if block.len() <= INLINE_APPEND_BYTES
            && storages
                .iter()
                .all(|s| s.relabel.is_empty() && s.queue.append_is_quick(block.len()))
        {
            // Page-cache writes of a small block: cheaper here than handing the block to a
            // blocking thread and back (two thread switches per push).
            return append_each(storages, &block, samples, &[]);
        }
        let storages = storages.to_vec();
        let parallel = self.parallel_appends && storages.len() > 1;
        let appended = tokio::task::spawn_blocking(move || {
            let relabelled = relabel_for(&storages, &block);
            if !parallel {
                return append_each(&storages, &block, samples, &relabelled);
            }
            let own = |i: usize| relabelled.iter().find(|r| r.0 == i).map(|r| &r.1);
            std::thread::scope(|s| {
                let handles: Vec<_> = storages
                    .iter()
                    .enumerate()
                    .map(|(i, st)| {
                        let (block, own) = (&block, own(i));
                        (st, s.spawn(move || append(st, block, samples, own)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(st, h)| {
                        h.join().unwrap_or_else(|panic| {
                            Err(PushError::AppendPanicked {
                                id: st.id.clone(),
                                message: panic_message(panic.as_ref()),
                            })
                        })
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .collect()
            })
        })
        .await;
        appended.unwrap_or_else(|e| Err(PushError::AppendTask(e)))
    }

    /// Starts every storage's sender; they stop when `shutdown` is cancelled. A tenant queue
    /// opened later gets its sender when it opens (see [`Fanout::take_tenant_senders`]).
    pub fn spawn_senders(
        &self,
        shutdown: CancellationToken,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, ForwardError> {
        let mut handles = Vec::new();
        for st in &self.storages {
            let client = sender::build_client(&st.cfg).map_err(|source| ForwardError::Client {
                id: st.id.clone(),
                url: st.redacted_url.clone(),
                source,
            })?;
            handles.extend(sender::spawn(Arc::clone(st), client, shutdown.clone()));
        }
        for mt in &self.multitenant {
            handles.extend(mt.start_senders(shutdown.clone())?);
        }
        Ok(handles)
    }

    /// The sender tasks of tenant queues opened since [`Fanout::spawn_senders`], for shutdown to
    /// wait for after cancelling them.
    pub fn take_tenant_senders(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.multitenant
            .iter()
            .flat_map(|mt| mt.take_late_senders())
            .collect()
    }

    /// Flushes every queue (fsync per policy, persist positions).
    pub fn flush(&self) {
        for st in &self.storages() {
            if let Err(e) = st.queue.flush() {
                tracing::warn!(storage = %st.id, error = %e, "flushing queue failed");
            }
        }
    }
}

/// What a panic said, if it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// A storage's own copy of a push after its `write_relabel_configs`: the re-encoded block and its
/// sample count, or `None` when relabeling dropped every series.
type Relabelled = Option<(Vec<u8>, u32)>;

/// Relabels a push for every storage that has `write_relabel_configs` (by index). The push is
/// decoded once for all of them. It was validated, so a decode failure is not expected; such a push
/// goes on unchanged (logged).
fn relabel_for(storages: &[Arc<Storage>], block: &[u8]) -> Vec<(usize, Relabelled)> {
    if storages.iter().all(|s| s.relabel.is_empty()) {
        return Vec::new();
    }
    let decoded = crate::prompb::decompress_bounded(block, usize::MAX)
        .and_then(|raw| crate::prompb::decode_write_request(&raw));
    let req = match decoded {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot decode a push for relabeling; forwarding it unchanged");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, st) in storages.iter().enumerate() {
        if st.relabel.is_empty() {
            continue;
        }
        let mut own = req.clone();
        own.timeseries
            .retain_mut(|ts| crate::relabel::process(&mut ts.labels, &st.relabel));
        if own.timeseries.is_empty() && own.metadata.is_empty() {
            out.push((i, None));
            continue;
        }
        let samples: usize = own
            .timeseries
            .iter()
            .map(|ts| ts.samples.len() + ts.histograms.len())
            .sum();
        let raw = prost::Message::encode_to_vec(&own);
        let n = u32::try_from(samples).unwrap_or(u32::MAX);
        out.push((i, Some((crate::prompb::compress(&raw), n))));
    }
    out
}

/// Appends the block to every storage's queue in turn (its relabelled copy where `relabelled`
/// has one). Every storage gets the push even when one fails: all are tried before the first
/// error is returned.
fn append_each(
    storages: &[Arc<Storage>],
    block: &[u8],
    samples: u32,
    relabelled: &[(usize, Relabelled)],
) -> Result<(), PushError> {
    let own = |i: usize| relabelled.iter().find(|r| r.0 == i).map(|r| &r.1);
    storages
        .iter()
        .enumerate()
        .map(|(i, st)| append(st, block, samples, own(i)))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

fn append(
    st: &Storage,
    block: &[u8],
    samples: u32,
    relabelled: Option<&Relabelled>,
) -> Result<(), PushError> {
    let (block, samples) = match relabelled {
        None => (block, samples),
        Some(None) => return Ok(()),
        Some(Some((own, n))) => (&own[..], *n),
    };
    st.queue
        .append(block, samples)
        .map_err(|source| match source {
            QueueError::BlockTooLarge { len, .. } => PushError::TooLarge { len },
            source => PushError::Queue {
                id: st.id.clone(),
                source,
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{self, Label, Sample, TimeSeries, WriteRequest};

    fn config(dir: &Path) -> Config {
        let mut cfg = Config::from_args([
            "promrelay",
            "--data-dir",
            dir.to_str().unwrap(),
            "--remote-write-url",
            "http://127.0.0.1:1/plain",
            "--remote-write-url",
            "http://127.0.0.1:1/relabelled",
        ])
        .unwrap();
        let rule: crate::relabel::RelabelConfig = serde_json::from_str(
            r#"{"source_labels": ["__name__"], "regex": "drop_me", "action": "drop"}"#,
        )
        .unwrap();
        cfg.storages[1].write_relabel_configs = vec![rule];
        cfg
    }

    fn series(name: &str) -> TimeSeries {
        TimeSeries {
            labels: vec![Label::new("__name__", name)],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1,
            }],
            ..Default::default()
        }
    }

    fn queued_names(st: &Storage) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        while let Some(b) = st.queue().read().unwrap() {
            let raw = prompb::decompress_bounded(&b.payload, usize::MAX).unwrap();
            let req = prompb::decode_write_request(&raw).unwrap();
            out.push(
                req.timeseries
                    .iter()
                    .map(|t| t.labels[0].value.clone())
                    .collect(),
            );
        }
        out
    }

    #[tokio::test]
    async fn write_relabel_configs_apply_only_to_their_storage() {
        let dir = tempfile::tempdir().unwrap();
        let fanout = Fanout::open(&config(dir.path())).unwrap();
        let req = WriteRequest {
            timeseries: vec![series("keep_me"), series("drop_me")],
            metadata: vec![],
        };
        let body = prompb::compress(&prost::Message::encode_to_vec(&req));
        fanout
            .push(Bytes::from(body.clone()), 2, None)
            .await
            .unwrap();
        let all = fanout.storages();
        let (plain, relabelled) = (&all[0], &all[1]);
        // The storage without rules gets the body exactly as received.
        let b = plain.queue().read().unwrap().unwrap();
        assert_eq!(&b.payload[..], &body[..]);
        assert_eq!(queued_names(relabelled), vec![vec!["keep_me".to_string()]]);
    }

    #[tokio::test]
    async fn push_whose_series_are_all_relabelled_away_queues_nothing_for_that_storage() {
        let dir = tempfile::tempdir().unwrap();
        let fanout = Fanout::open(&config(dir.path())).unwrap();
        let req = WriteRequest {
            timeseries: vec![series("drop_me")],
            metadata: vec![],
        };
        let body = prompb::compress(&prost::Message::encode_to_vec(&req));
        fanout.push(Bytes::from(body), 1, None).await.unwrap();
        assert_eq!(fanout.storages()[0].queue().stats().pending_blocks, 1);
        assert_eq!(fanout.storages()[1].queue().stats().pending_blocks, 0);
    }
}
