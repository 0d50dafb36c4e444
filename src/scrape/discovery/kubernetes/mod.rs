//! `kubernetes_sd_configs`: targets from a Kubernetes API server, watched, with every
//! `__meta_kubernetes_*` label Prometheus' current `discovery/kubernetes` sets for the roles
//! `pod`, `service`, `endpoints`, `endpointslice`, `node` and `ingress`.
//!
//! # How it runs
//! One provider task per config entry ([`run`]). It builds its client ([`client`]), then runs
//! one `kube::runtime::watcher` per (kind, namespace) it needs: the role's own kind, plus pods
//! and services for `endpoints`/`endpointslice`, plus nodes with `attach_metadata.node`. Each
//! watcher lists then watches, with bookmarks, re-lists on 410 Gone, and reconnects with
//! kube's default backoff; label and field `selectors` are sent to the API server. Watchers
//! turn each object into a trimmed struct (a few fields: no managed fields, no spec beyond
//! what labels need) at once, so the objects themselves are never kept.
//!
//! The provider publishes its **whole** group list: first when every watcher has listed once,
//! then at most once per [`PUBLISH_INTERVAL`] while changes arrive (a watch storm costs one
//! rebuild per interval, not one per event; when a rebuild takes long, as with tens of thousands
//! of targets, the next waits nine times as long, so rebuilding stays near a tenth of a core). Groups are rebuilt from the trimmed stores, so a
//! change of a pod, service or node reaches every endpoint target that shows it.
//!
//! # Guarantees
//! - Labels, target addresses and group sources (`pod/<ns>/<name>`, `svc/<ns>/<name>`,
//!   `endpoints/<ns>/<name>`, `endpointslice/<ns>/<name>`, `node/<name>`,
//!   `ingress/<ns>/<name>`) are Prometheus'. Each Prometheus target becomes one
//!   [`TargetGroup`] holding its group's and its own labels (a target's own win, as in
//!   Prometheus), so what promrelay's target builder sees is what Prometheus' sees. Groups are
//!   ordered by watcher, then namespace and name, then as Prometheus lists the targets.
//! - An API server that cannot be reached, or refuses (401, 403), is logged (at most every
//!   [`ERROR_LOG_INTERVAL`] per watcher) and retried with backoff; the job keeps the groups
//!   it last published. Nothing here panics on what the server sends.
//!
//! # Where vmagent 1.79.5 differs, and promrelay follows Prometheus
//! (Checked against vmagent on the same fake API server: `tests/scrape_kubernetes_vmagent.rs`.)
//! - Pod targets carry `__meta_kubernetes_pod_container_image` and `_id`; endpoint and
//!   endpointslice targets backed by a pod carry `_container_image` and `_container_init`.
//!   vmagent sets none of them.
//! - An `endpoints` target whose port number a container port shares reports the endpoint
//!   port's protocol in `__meta_kubernetes_pod_container_port_protocol` (a UDP endpoint port
//!   meeting a TCP container port: `UDP`); vmagent reports the container port's (`TCP`). For
//!   `endpointslice`, Prometheus itself reports the container port's, and so does promrelay.
//! - Ports of init containers that no endpoint port covers become endpoint targets too.
//! - Labels vmagent 1.79.5 does not have yet: `endpointslice_endpoint_conditions_serving`,
//!   `_terminating`, `endpointslice_endpoint_zone`, `_node_name`, `service_port_number`,
//!   `service_loadbalancer_ip`, and on node targets `node_condition_<type>`.
//! - Endpoint and endpointslice targets carry the service's name, labels and annotations, not
//!   its cluster IP and type (vmagent adds those two).
//!
//! # Not supported
//! `attach_metadata` `namespace`, `deployment`, `job`, `cronjob` (refused at load time), and
//! the HTTP client keys `oauth2`, `proxy_*`, `http_headers`; a `tls_config` `min_version` or
//! `max_version` that would narrow TLS 1.2 and 1.3 (refused at load time: the client cannot).
//!
//! # Layout
//! - `client`: the kube client from the config (api_server, kubeconfig, in-cluster).
//! - `labels`: shared metadata, label names, one-target groups.
//! - `pod`, `service`, `node`, `endpoints`, `endpointslice`, `ingress`: per role, the trimmed
//!   object and the targets built from it.

pub mod client;
mod endpoints;
mod endpointslice;
mod ingress;
mod labels;
mod node;
mod pod;
mod service;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::TargetGroup;
use crate::scrape::config::{KubernetesRole, KubernetesSdConfig};
use crate::util::{LogThrottle, error_chain};
pub use client::{InCluster, KubeClientError, SERVICE_ACCOUNT_DIR};
use endpoints::EndpointsInfo;
use endpointslice::SliceInfo;
use ingress::IngressInfo;
use node::NodeInfo;
use pod::PodInfo;
use service::ServiceInfo;

/// The shortest time between two publications of one provider's groups.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// A publication waits at least this many times as long as building the last one took, so
/// rebuilding a very large group list in a watch storm stays near a tenth of a core.
const BUILD_SHARE_INVERSE: u32 = 9;

/// At most one log line per watcher (or per failing client build) in this interval.
pub const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// The longest wait before building a failed client again.
const CLIENT_RETRY_MAX: Duration = Duration::from_secs(30);

/// Changes queued from the watchers to the provider before watchers wait.
const CHANGE_QUEUE: usize = 1024;

/// A change to the stores, made by a watcher task, applied by the provider.
type Change = Box<dyn FnOnce(&mut Stores) + Send>;

/// Objects of one kind, per watcher (one watcher per namespace).
#[derive(Debug)]
struct Store<T> {
    watchers: Vec<WatcherState<T>>,
}

#[derive(Debug)]
struct WatcherState<T> {
    objects: BTreeMap<String, T>,
    /// The objects of a (re-)list in progress; they replace `objects` when it completes, so
    /// objects deleted while the watch was down vanish then.
    relisting: Option<BTreeMap<String, T>>,
    /// Whether a first list completed.
    synced: bool,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            watchers: Vec::new(),
        }
    }
}

impl<T> Store<T> {
    /// Adds a watcher; returns its index.
    fn add_watcher(&mut self) -> usize {
        self.watchers.push(WatcherState {
            objects: BTreeMap::new(),
            relisting: None,
            synced: false,
        });
        self.watchers.len() - 1
    }

    fn apply(&mut self, event: StoreEvent<T>, watcher: usize) {
        let Some(w) = self.watchers.get_mut(watcher) else {
            return;
        };
        match event {
            StoreEvent::Apply(key, object) => {
                w.objects.insert(key, object);
            }
            StoreEvent::Delete(key) => {
                w.objects.remove(&key);
            }
            StoreEvent::Init => w.relisting = Some(BTreeMap::new()),
            StoreEvent::InitApply(key, object) => {
                w.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key, object);
            }
            StoreEvent::InitDone => {
                w.objects = w.relisting.take().unwrap_or_default();
                w.synced = true;
            }
        }
    }

    fn synced(&self) -> bool {
        self.watchers.iter().all(|w| w.synced)
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.watchers.iter().flat_map(|w| w.objects.values())
    }

    fn get(&self, key: &str) -> Option<&T> {
        self.watchers.iter().find_map(|w| w.objects.get(key))
    }

    fn len(&self) -> usize {
        self.watchers.iter().map(|w| w.objects.len()).sum()
    }
}

/// A watcher event with the object already trimmed.
enum StoreEvent<T> {
    Apply(String, T),
    Delete(String),
    Init,
    InitApply(String, T),
    InitDone,
}

/// Everything the provider's watchers keep, trimmed.
#[derive(Debug, Default)]
pub(super) struct Stores {
    attach_node_metadata: bool,
    pods: Store<PodInfo>,
    services: Store<ServiceInfo>,
    nodes: Store<NodeInfo>,
    endpoints: Store<EndpointsInfo>,
    slices: Store<SliceInfo>,
    ingresses: Store<IngressInfo>,
}

impl Stores {
    fn pod(&self, namespace: &str, name: &str) -> Option<&PodInfo> {
        self.pods.get(&labels::key(namespace, name))
    }

    fn service(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.services.get(&labels::key(namespace, name))
    }

    fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    fn synced(&self) -> bool {
        self.pods.synced()
            && self.services.synced()
            && self.nodes.synced()
            && self.endpoints.synced()
            && self.slices.synced()
            && self.ingresses.synced()
    }

    /// Objects kept, all kinds together.
    fn objects(&self) -> usize {
        self.pods.len()
            + self.services.len()
            + self.nodes.len()
            + self.endpoints.len()
            + self.slices.len()
            + self.ingresses.len()
    }

    /// Every target of `role`, as Prometheus would build them from these objects.
    fn groups(&self, role: KubernetesRole) -> Vec<TargetGroup> {
        let mut out = Vec::new();
        match role {
            KubernetesRole::Pod => {
                for p in self.pods.values() {
                    let node = self.attach_node_metadata.then(|| self.node(&p.node_name));
                    pod::targets(p, node, &mut out);
                }
            }
            KubernetesRole::Service => {
                for s in self.services.values() {
                    service::targets(s, &mut out);
                }
            }
            KubernetesRole::Node => {
                for n in self.nodes.values() {
                    node::targets(n, &mut out);
                }
            }
            KubernetesRole::Endpoints => {
                for e in self.endpoints.values() {
                    endpoints::targets(e, self, &mut out);
                }
            }
            KubernetesRole::EndpointSlice => {
                for s in self.slices.values() {
                    endpointslice::targets(s, self, &mut out);
                }
            }
            KubernetesRole::Ingress => {
                for i in self.ingresses.values() {
                    ingress::targets(i, &mut out);
                }
            }
        }
        out
    }
}

/// A Kubernetes kind a provider watches, with its trimmed form and its store.
trait Watched: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static {
    type Trimmed: Send + 'static;
    /// The role whose `selectors` entry applies to this kind.
    const SELECTOR_ROLE: KubernetesRole;
    fn trim(self) -> Self::Trimmed;
    fn store(stores: &mut Stores) -> &mut Store<Self::Trimmed>;
}

macro_rules! watched {
    ($kind:ty, $trimmed:ty, $role:ident, $field:ident) => {
        impl Watched for $kind {
            type Trimmed = $trimmed;
            const SELECTOR_ROLE: KubernetesRole = KubernetesRole::$role;
            fn trim(self) -> $trimmed {
                <$trimmed>::from_api(self)
            }
            fn store(stores: &mut Stores) -> &mut Store<$trimmed> {
                &mut stores.$field
            }
        }
    };
}

watched!(Pod, PodInfo, Pod, pods);
watched!(Service, ServiceInfo, Service, services);
watched!(Node, NodeInfo, Node, nodes);
watched!(Endpoints, EndpointsInfo, Endpoints, endpoints);
watched!(EndpointSlice, SliceInfo, EndpointSlice, slices);
watched!(Ingress, IngressInfo, Ingress, ingresses);

/// Where the provider's watchers run and report.
struct Watchers<'a> {
    client: kube::Client,
    config: &'a KubernetesSdConfig,
    job: &'a str,
    /// The namespaces to watch; `None` is all of them.
    namespaces: Option<Vec<String>>,
    stores: &'a mut Stores,
    tasks: &'a mut JoinSet<()>,
    tx: mpsc::Sender<Change>,
}

impl Watchers<'_> {
    /// One watcher of `K` per namespace (or one for all).
    fn namespaced<K>(&mut self)
    where
        K: Watched + Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match self.namespaces.clone() {
            None => self.start::<K>(Api::all(self.client.clone()), "all namespaces"),
            Some(namespaces) => {
                for ns in namespaces {
                    self.start::<K>(Api::namespaced(self.client.clone(), &ns), &ns);
                }
            }
        }
    }

    /// One watcher of cluster-wide `K`.
    fn cluster<K: Watched>(&mut self) {
        self.start::<K>(Api::all(self.client.clone()), "cluster");
    }

    fn start<K: Watched>(&mut self, api: Api<K>, scope: &str) {
        let index = K::store(self.stores).add_watcher();
        let mut config = watcher::Config::default();
        if let Some(s) = self.config.selector(K::SELECTOR_ROLE) {
            if !s.label.is_empty() {
                config = config.labels(&s.label);
            }
            if !s.field.is_empty() {
                config = config.fields(&s.field);
            }
        }
        let what = format!("{} in {scope}", K::plural(&()));
        let job = self.job.to_owned();
        self.tasks
            .spawn(watch::<K>(api, config, index, self.tx.clone(), job, what));
    }
}

/// Runs one watcher, sending each event (object trimmed) to the provider.
async fn watch<K: Watched>(
    api: Api<K>,
    config: watcher::Config,
    index: usize,
    tx: mpsc::Sender<Change>,
    job: String,
    what: String,
) {
    let throttle = LogThrottle::new(ERROR_LOG_INTERVAL);
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(Event::Apply(k)) => StoreEvent::Apply(object_key(&k), k.trim()),
            Ok(Event::Delete(k)) => StoreEvent::Delete(object_key(&k)),
            Ok(Event::Init) => StoreEvent::Init,
            Ok(Event::InitApply(k)) => StoreEvent::InitApply(object_key(&k), k.trim()),
            Ok(Event::InitDone) => StoreEvent::InitDone,
            Err(e) => {
                if throttle.due() {
                    tracing::warn!(
                        job = %job,
                        watch = %what,
                        "kubernetes_sd: watch failed, keeping the last targets and retrying: {}",
                        error_chain(&e)
                    );
                }
                continue;
            }
        };
        let change: Change = Box::new(move |stores| K::store(stores).apply(event, index));
        if tx.send(change).await.is_err() {
            return;
        }
    }
}

fn object_key<K: Resource>(k: &K) -> String {
    labels::key(&k.namespace().unwrap_or_default(), &k.name_any())
}

/// Runs the `kubernetes_sd_config` `config` of job `job` until `publish` returns false (its
/// receiver is gone) or the task is aborted: builds the client (retrying with backoff while it
/// fails), starts the watchers, and publishes the whole group list as described in the module
/// doc.
pub async fn run(
    job: String,
    config: KubernetesSdConfig,
    in_cluster: InCluster,
    mut publish: impl FnMut(Vec<TargetGroup>) -> bool + Send,
) {
    let throttle = LogThrottle::new(ERROR_LOG_INTERVAL);
    let mut wait = Duration::from_secs(1);
    let (client, own_namespace) = loop {
        let own = if config.own_namespace {
            in_cluster.own_namespace().map(Some)
        } else {
            Ok(None)
        };
        let built = match own {
            Ok(own) => client::client(&config.connection, &in_cluster)
                .await
                .map(|c| (c, own)),
            Err(e) => Err(e),
        };
        match built {
            Ok(built) => break built,
            Err(e) => {
                if throttle.due() {
                    tracing::error!(
                        job = %job,
                        "kubernetes_sd: cannot build the Kubernetes client, retrying: {}",
                        error_chain(&e)
                    );
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(CLIENT_RETRY_MAX);
            }
        }
    };

    let mut namespaces = config.namespaces.clone();
    namespaces.extend(own_namespace);
    let namespaces = (!namespaces.is_empty()).then_some(namespaces);
    let mut stores = Stores {
        attach_node_metadata: config.attach_node_metadata,
        ..Stores::default()
    };
    let mut tasks = JoinSet::new();
    let (tx, mut rx) = mpsc::channel::<Change>(CHANGE_QUEUE);
    {
        let mut w = Watchers {
            client,
            config: &config,
            job: &job,
            namespaces,
            stores: &mut stores,
            tasks: &mut tasks,
            tx,
        };
        match config.role {
            KubernetesRole::Pod => w.namespaced::<Pod>(),
            KubernetesRole::Service => w.namespaced::<Service>(),
            KubernetesRole::Node => w.cluster::<Node>(),
            KubernetesRole::Endpoints => {
                w.namespaced::<Endpoints>();
                w.namespaced::<Service>();
                w.namespaced::<Pod>();
            }
            KubernetesRole::EndpointSlice => {
                w.namespaced::<EndpointSlice>();
                w.namespaced::<Service>();
                w.namespaced::<Pod>();
            }
            KubernetesRole::Ingress => w.namespaced::<Ingress>(),
        }
        let needs_nodes = config.attach_node_metadata
            && matches!(
                config.role,
                KubernetesRole::Pod | KubernetesRole::Endpoints | KubernetesRole::EndpointSlice
            );
        if needs_nodes {
            w.cluster::<Node>();
        }
    }

    let mut dirty = false;
    let mut published_once = false;
    let mut next_publish = Instant::now();
    loop {
        let due = dirty && stores.synced();
        tokio::select! {
            change = rx.recv() => match change {
                Some(change) => {
                    change(&mut stores);
                    dirty = true;
                }
                // Every watcher ended: only when the runtime shuts down.
                None => return,
            },
            _ = tokio::time::sleep_until(next_publish), if due => {
                let started = Instant::now();
                let groups = stores.groups(config.role);
                tracing::debug!(
                    job = %job,
                    objects = stores.objects(),
                    groups = groups.len(),
                    first = !published_once,
                    "kubernetes_sd: publishing"
                );
                if !publish(groups) {
                    return;
                }
                published_once = true;
                dirty = false;
                // Building is O(targets): with tens of thousands of them, keep it to about a
                // tenth of a core by waiting longer than the interval when it takes long.
                let took = started.elapsed();
                next_publish = Instant::now() + PUBLISH_INTERVAL.max(took * BUILD_SHARE_INVERSE);
            }
        }
    }
}
