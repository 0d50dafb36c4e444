//! The fake API server's state: the current objects, a global resourceVersion counter, and the
//! retained history of changes that watches replay and paged lists read their snapshot from.
//!
//! It mirrors etcd plus the API server's watch cache as far as a client can see:
//! - every change takes the next resourceVersion (one counter for all resources, as etcd's
//!   revision) and writes it into the object's `metadata.resourceVersion`;
//! - objects are kept in key order (`namespace/name`), the order lists return;
//! - the history keeps the last `history_limit` changes; a watch or a paged list that needs an
//!   older revision gets 410 Gone, as after an etcd compaction;
//! - live changes are broadcast while the store's lock is held, so a watch that replayed the
//!   history under the same lock misses nothing and sees nothing twice.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// A resource the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Pods,
    Services,
    Endpoints,
    Nodes,
    EndpointSlices,
    Ingresses,
}

impl Resource {
    pub const ALL: [Resource; 6] = [
        Resource::Pods,
        Resource::Services,
        Resource::Endpoints,
        Resource::Nodes,
        Resource::EndpointSlices,
        Resource::Ingresses,
    ];

    /// The plural name in URL paths.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::Services => "services",
            Resource::Endpoints => "endpoints",
            Resource::Nodes => "nodes",
            Resource::EndpointSlices => "endpointslices",
            Resource::Ingresses => "ingresses",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::Services => "Service",
            Resource::Endpoints => "Endpoints",
            Resource::Nodes => "Node",
            Resource::EndpointSlices => "EndpointSlice",
            Resource::Ingresses => "Ingress",
        }
    }

    /// `v1` for the core group, `group/version` otherwise (an object's `apiVersion`).
    pub fn api_version(self) -> &'static str {
        match self {
            Resource::EndpointSlices => "discovery.k8s.io/v1",
            Resource::Ingresses => "networking.k8s.io/v1",
            _ => "v1",
        }
    }

    pub fn namespaced(self) -> bool {
        self != Resource::Nodes
    }

    pub fn from_kind(kind: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.kind() == kind)
    }

    /// The resource at `plural` under `api_version` (`v1` or `group/version`).
    pub fn from_path(api_version: &str, plural: &str) -> Option<Resource> {
        Resource::ALL
            .into_iter()
            .find(|r| r.api_version() == api_version && r.plural() == plural)
    }
}

/// What a change did, as a watch event's `type` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as the watch cache keeps it: the object after the change (for a deletion, the
/// last state with the deletion's resourceVersion) and the object before it.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub resource: Resource,
    pub namespace: String,
    pub name: String,
    pub kind: EventType,
    pub object: Arc<Value>,
    pub previous: Option<Arc<Value>>,
}

/// What open watches are told: a change, a bookmark at a resourceVersion, or to drop their
/// connection without a clean end (as when the API server or a proxy in between goes away).
#[derive(Clone, Debug)]
pub enum Broadcast {
    Change(Arc<Change>),
    Bookmark(u64),
    DropConnections,
}

/// A change the fake was asked to make that it cannot.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object has no `kind` the fake serves.
    #[error("unknown or missing kind in {0}")]
    UnknownKind(String),
    /// The object has no `metadata.name`.
    #[error("object without metadata.name: {0}")]
    NoName(String),
    /// `add` of an object that exists already.
    #[error("{0} exists already")]
    Exists(String),
    /// `modify` or `delete` of an object that does not exist.
    #[error("{0} not found")]
    NotFound(String),
}

type Key = (String, String);

/// The objects of one resource, in key order.
type Objects = BTreeMap<Key, Arc<Value>>;

/// Where a list or watch starts, or why it cannot.
pub enum Snapshot {
    /// The objects as of `rv`.
    At { rv: u64, objects: Vec<Arc<Value>> },
    /// `rv` is older than the retained history (410 Gone / Expired).
    Expired { oldest: u64 },
}

pub struct Store {
    rv: u64,
    objects: BTreeMap<Resource, Objects>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Revisions at or below this are compacted away: the history holds every change after it.
    compacted: u64,
    events: broadcast::Sender<Broadcast>,
}

/// How many broadcasts a watch may fall behind before it is cut (and must resume from its
/// last resourceVersion), as the API server closes watchers that do not keep up.
pub const WATCH_BUFFER: usize = 16_384;

impl Store {
    pub fn new(history_limit: usize) -> Store {
        // Start above zero, as a real cluster's revision is: resourceVersion "0" means "any".
        let rv = 100;
        Store {
            rv,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: rv,
            events: broadcast::channel(WATCH_BUFFER).0,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Broadcast> {
        self.events.subscribe()
    }

    pub fn broadcast(&self, message: Broadcast) {
        // No receiver is not an error: nobody watches.
        let _ = self.events.send(message);
    }

    pub fn len(&self, resource: Resource) -> usize {
        self.objects.get(&resource).map_or(0, BTreeMap::len)
    }

    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(&resource)?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Adds `object` (its `kind` says the resource); returns its resourceVersion.
    pub fn add(&mut self, object: Value) -> Result<u64, StoreError> {
        self.apply(object, EventType::Added)
    }

    /// Replaces the object with `object`'s kind, namespace and name.
    pub fn modify(&mut self, object: Value) -> Result<u64, StoreError> {
        self.apply(object, EventType::Modified)
    }

    pub fn delete(
        &mut self,
        resource: Resource,
        namespace: &str,
        name: &str,
    ) -> Result<u64, StoreError> {
        let key = (namespace.to_owned(), name.to_owned());
        let previous = self
            .objects
            .entry(resource)
            .or_default()
            .remove(&key)
            .ok_or_else(|| {
                StoreError::NotFound(format!("{}/{namespace}/{name}", resource.plural()))
            })?;
        self.rv += 1;
        let mut object = (*previous).clone();
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(Change {
            rv: self.rv,
            resource,
            namespace: key.0,
            name: key.1,
            kind: EventType::Deleted,
            object: Arc::new(object),
            previous: Some(previous),
        });
        Ok(self.rv)
    }

    fn apply(&mut self, mut object: Value, kind: EventType) -> Result<u64, StoreError> {
        let resource = object["kind"]
            .as_str()
            .and_then(Resource::from_kind)
            .ok_or_else(|| StoreError::UnknownKind(brief(&object)))?;
        object["apiVersion"] = json!(resource.api_version());
        let name = object["metadata"]["name"]
            .as_str()
            .ok_or_else(|| StoreError::NoName(brief(&object)))?
            .to_owned();
        let namespace = if resource.namespaced() {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned();
            object["metadata"]["namespace"] = json!(ns);
            ns
        } else {
            String::new()
        };
        let key = (namespace.clone(), name.clone());
        let objects = self.objects.entry(resource).or_default();
        let previous = objects.get(&key).cloned();
        let what = || format!("{}/{namespace}/{name}", resource.plural());
        match (kind, &previous) {
            (EventType::Added, Some(_)) => return Err(StoreError::Exists(what())),
            (EventType::Modified, None) => return Err(StoreError::NotFound(what())),
            _ => {}
        }
        self.rv += 1;
        let meta = &mut object["metadata"];
        meta["resourceVersion"] = json!(self.rv.to_string());
        if meta.get("uid").is_none() {
            meta["uid"] = json!(uid(self.rv));
        }
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] = json!("2026-12-01T10:00:00Z");
        }
        let object = Arc::new(object);
        objects.insert(key, Arc::clone(&object));
        self.record(Change {
            rv: self.rv,
            resource,
            namespace,
            name,
            kind,
            object,
            previous,
        });
        Ok(self.rv)
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(Arc::clone(&change));
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        self.broadcast(Broadcast::Change(change));
    }

    /// Forgets the whole history, as an etcd compaction at the current revision: a watch or a
    /// paged list from any earlier resourceVersion gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// The retained changes of `resource` after `rv`, or `None` if some are compacted away.
    pub fn changes_since(&self, resource: Resource, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.compacted {
            return None;
        }
        Some(
            self.history
                .iter()
                .filter(|c| c.rv > rv && c.resource == resource)
                .cloned()
                .collect(),
        )
    }

    pub fn oldest(&self) -> u64 {
        self.compacted
    }

    /// The objects of `resource` as they were at `rv` (`None`: now), rebuilt by undoing the
    /// retained changes after it.
    pub fn snapshot(&self, resource: Resource, rv: Option<u64>) -> Snapshot {
        let current = self.objects.get(&resource).cloned().unwrap_or_default();
        let Some(rv) = rv.filter(|rv| *rv < self.rv) else {
            return Snapshot::At {
                rv: self.rv,
                objects: current.into_values().collect(),
            };
        };
        let Some(changes) = self.changes_since(resource, rv) else {
            return Snapshot::Expired {
                oldest: self.compacted,
            };
        };
        let mut objects = current;
        for change in changes.iter().rev() {
            let key = (change.namespace.clone(), change.name.clone());
            match &change.previous {
                Some(previous) => objects.insert(key, Arc::clone(previous)),
                None => objects.remove(&key),
            };
        }
        Snapshot::At {
            rv,
            objects: objects.into_values().collect(),
        }
    }
}

/// A uid shaped as the API server's (a UUID), unique per resourceVersion.
fn uid(rv: u64) -> String {
    let hex = format!("{rv:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The start of an object's JSON, for error messages.
fn brief(object: &Value) -> String {
    object.to_string().chars().take(120).collect()
}
