//! A multitenant storage (a vminsert cluster): one [`Storage`] (queue and sender) per tenant.
//!
//! A tenant's queue lives in `<data-dir>/queues/<storage-id>-tenant-<account>-<project>/`
//! ([`Tenant::queue_dir_name`]), beside the ordinary storages' queues, so the offline tools see
//! it as one more queue. It is opened on the tenant's first push, and on start-up every such
//! directory of the storage is opened again, so a backlog drains without waiting for a push.
//! Its sender posts to [`StorageConfig::tenant_url`]; everything else (headers, auth, TLS, size
//! cap, backoff, relabeling) is the storage's.
//!
//! Lock order: `opening`, then `tenants`. The push path takes only `tenants` (read) when the
//! tenant is known; opening a new tenant happens on a blocking thread under `opening`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{ForwardError, PushError, Storage, Tenant, sender};
use crate::config::{FsyncMode, StorageConfig};

/// One multitenant storage's tenant queues.
pub(super) struct TenantQueues {
    /// The storage as configured: `url` is the cluster's base URL.
    cfg: StorageConfig,
    id: String,
    /// `<data-dir>/queues`, where the tenant queue directories are.
    queues_dir: PathBuf,
    fsync: FsyncMode,
    tenants: RwLock<BTreeMap<Tenant, Arc<Storage>>>,
    /// Held while a tenant queue is opened or senders are started, so each queue gets exactly
    /// one sender whichever comes first.
    opening: Mutex<Opening>,
}

#[derive(Default)]
struct Opening {
    /// Set once senders run: what a newly opened tenant's sender needs.
    senders: Option<(reqwest::Client, CancellationToken)>,
    /// Sender tasks of tenants opened after the senders started.
    late: Vec<JoinHandle<()>>,
}

impl TenantQueues {
    /// Finds and opens the tenant queues `cfg`'s storage left under `data_dir` (all of them,
    /// even past `max_tenants`: their data is never stranded).
    pub(super) fn open(
        data_dir: &Path,
        cfg: &StorageConfig,
        fsync: FsyncMode,
    ) -> Result<TenantQueues, ForwardError> {
        let id = cfg.id();
        let queues_dir = data_dir.join("queues");
        let list_error = |source| ForwardError::ListTenants {
            id: id.clone(),
            url: cfg.redacted_url(),
            dir: queues_dir.clone(),
            source,
        };
        let mut found = Vec::new();
        match std::fs::read_dir(&queues_dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(list_error)?;
                    let name = entry.file_name();
                    if let Some(t) = name
                        .to_str()
                        .and_then(|n| Tenant::from_queue_dir_name(&id, n))
                    {
                        found.push(t);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(list_error(e)),
        }
        let queues = TenantQueues {
            cfg: cfg.clone(),
            id,
            queues_dir,
            fsync,
            tenants: RwLock::new(BTreeMap::new()),
            opening: Mutex::new(Opening::default()),
        };
        let mut tenants = BTreeMap::new();
        for t in found {
            tenants.insert(t, Arc::new(queues.open_queue(t)?));
        }
        if tenants.len() > queues.max() {
            warn!(storage = %queues.id, tenants = tenants.len(), max_tenants = queues.cfg.max_tenants,
                "more tenant queues on disk than max_tenants: all are kept and drain; new tenants are refused");
        }
        *queues
            .tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner) = tenants;
        Ok(queues)
    }

    fn max(&self) -> usize {
        usize::try_from(self.cfg.max_tenants).unwrap_or(usize::MAX)
    }

    fn open_queue(&self, tenant: Tenant) -> Result<Storage, ForwardError> {
        let mut cfg = self.cfg.clone();
        cfg.url = self.cfg.tenant_url(tenant.account_id, tenant.project_id);
        cfg.multitenant = false;
        let dir = self.queues_dir.join(tenant.queue_dir_name(&self.id));
        Storage::open_in(&dir, self.id.clone(), Some(tenant), &cfg, self.fsync)
    }

    fn known(&self, tenant: Tenant) -> Option<Arc<Storage>> {
        self.tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tenant)
            .cloned()
    }

    /// Every tenant queue, by tenant.
    pub(super) fn queues(&self) -> Vec<Arc<Storage>> {
        self.tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The queue of `tenant`, opened (on a blocking thread) if this is its first push.
    pub(super) async fn queue_for(
        self: &Arc<Self>,
        tenant: Tenant,
    ) -> Result<Arc<Storage>, PushError> {
        if let Some(st) = self.known(tenant) {
            return Ok(st);
        }
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || me.open_tenant(tenant))
            .await
            .unwrap_or_else(|source| Err(PushError::TenantOpenTask { tenant, source }))
    }

    /// Opens a new tenant's queue within the bound and starts its sender if senders run.
    fn open_tenant(&self, tenant: Tenant) -> Result<Arc<Storage>, PushError> {
        let mut opening = self.opening.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(st) = self.known(tenant) {
            return Ok(st);
        }
        let count = self
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        if count >= self.max() {
            return Err(PushError::TooManyTenants {
                id: self.id.clone(),
                tenant,
                max: self.cfg.max_tenants,
            });
        }
        let st = Arc::new(
            self.open_queue(tenant)
                .map_err(|source| PushError::TenantOpen { tenant, source })?,
        );
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant, Arc::clone(&st));
        if let Some((client, shutdown)) = &opening.senders {
            let handles = sender::spawn(Arc::clone(&st), client.clone(), shutdown.clone());
            opening.late.extend(handles);
        }
        info!(storage = %self.id, tenant = %tenant, tenants = count + 1, "opened a tenant queue");
        Ok(st)
    }

    /// Starts the senders of the tenant queues open now; tenants opened later start their own.
    pub(super) fn start_senders(
        &self,
        shutdown: CancellationToken,
    ) -> Result<Vec<JoinHandle<()>>, ForwardError> {
        let client = sender::build_client(&self.cfg).map_err(|source| ForwardError::Client {
            id: self.id.clone(),
            url: self.cfg.redacted_url(),
            source,
        })?;
        let mut opening = self.opening.lock().unwrap_or_else(PoisonError::into_inner);
        let handles = self
            .queues()
            .into_iter()
            .flat_map(|st| sender::spawn(st, client.clone(), shutdown.clone()))
            .collect();
        opening.senders = Some((client, shutdown));
        Ok(handles)
    }

    /// The sender tasks of tenants opened after [`TenantQueues::start_senders`].
    pub(super) fn take_late_senders(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(
            &mut self
                .opening
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .late,
        )
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::config::Config;
    use crate::forward::Fanout;
    use crate::prompb;

    fn config(dir: &Path, max_tenants: &str) -> Config {
        Config::from_args([
            "promrelay",
            "--data-dir",
            dir.to_str().expect("a UTF-8 temporary path"),
            "--remote-write-url",
            "http://127.0.0.1:1/plain",
            "--remote-write-multitenant-url",
            "http://127.0.0.1:1/cluster",
            "--max-tenants",
            max_tenants,
        ])
        .expect("valid flags")
    }

    fn block() -> Bytes {
        let req = prompb::example_write_request(2, 1, 1_700_000_000_000);
        Bytes::from(prompb::compress(&prost::Message::encode_to_vec(&req)))
    }

    /// `(tenant, pending blocks)` of every queue, ordinary storages with `None`.
    fn pending(fanout: &Fanout) -> Vec<(Option<String>, u64)> {
        fanout
            .storages()
            .iter()
            .map(|s| {
                let st = s.status();
                (st.tenant, st.pending_blocks)
            })
            .collect()
    }

    fn t(s: &str) -> Option<Tenant> {
        Some(s.parse().expect("a valid tenant"))
    }

    #[tokio::test]
    async fn each_tenant_gets_its_own_queue_and_the_plain_storage_gets_every_push() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fanout = Fanout::open(&config(dir.path(), "10")).expect("open");
        for tenant in [t("1:2"), t("1:2"), t("7"), None] {
            fanout.push(block(), 2, tenant).await.expect("queued");
        }
        assert_eq!(
            pending(&fanout),
            vec![
                (None, 4),
                (Some("0:0".to_owned()), 1),
                (Some("1:2".to_owned()), 2),
                (Some("7:0".to_owned()), 1),
            ]
        );
    }

    #[tokio::test]
    async fn a_tenant_queue_posts_to_its_insert_path_under_the_base_url() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cfg = config(dir.path(), "10");
        let fanout = Fanout::open(&cfg).expect("open");
        fanout.push(block(), 2, t("3:4")).await.expect("queued");
        let all = fanout.storages();
        assert_eq!(
            all[1].cfg.endpoint().as_str(),
            "http://127.0.0.1:1/cluster/insert/3:4/prometheus/api/v1/write"
        );
        let id = cfg.storages[1].id();
        assert_eq!(all[1].id(), id, "a tenant queue carries its storage's id");
        let queue_dir = dir.path().join("queues").join(format!("{id}-tenant-3-4"));
        assert_eq!(all[1].queue().dir(), queue_dir);
    }

    #[tokio::test]
    async fn a_new_tenant_past_the_bound_is_refused_and_nothing_is_queued() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fanout = Fanout::open(&config(dir.path(), "2")).expect("open");
        fanout.push(block(), 2, t("1")).await.expect("first tenant");
        fanout
            .push(block(), 2, t("2"))
            .await
            .expect("second tenant");

        let refused = fanout.push(block(), 2, t("3")).await;

        assert!(
            matches!(refused, Err(PushError::TooManyTenants { max: 2, .. })),
            "{refused:?}"
        );
        assert_eq!(
            pending(&fanout),
            vec![
                (None, 2),
                (Some("1:0".to_owned()), 1),
                (Some("2:0".to_owned()), 1),
            ],
            "the refused push reached no queue"
        );
        fanout
            .push(block(), 2, t("2"))
            .await
            .expect("an existing tenant keeps working");
    }

    #[tokio::test]
    async fn tenant_queues_with_a_backlog_are_found_again_on_restart() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        {
            let fanout = Fanout::open(&config(dir.path(), "10")).expect("open");
            fanout.push(block(), 2, t("5:6")).await.expect("queued");
            fanout.push(block(), 2, t("8")).await.expect("queued");
            fanout.flush();
        }
        let fanout = Fanout::open(&config(dir.path(), "1")).expect("reopen");
        assert_eq!(
            pending(&fanout),
            vec![
                (None, 2),
                (Some("5:6".to_owned()), 1),
                (Some("8:0".to_owned()), 1),
            ],
            "both recovered, even past a lowered bound"
        );
        assert!(matches!(
            fanout.push(block(), 2, t("9")).await,
            Err(PushError::TooManyTenants { .. })
        ));
    }
}
