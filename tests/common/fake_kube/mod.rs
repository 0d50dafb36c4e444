//! A fake Kubernetes API server on loopback that serves list and watch as the real one does,
//! for testing Kubernetes discovery (promrelay's and vmagent's) without a cluster.
//!
//! ```ignore
//! let kube = FakeKube::builder().bearer_token("s3cret").start().await;
//! kube.load_fixture("pods.json");
//! // point a client at kube.url(); then change the cluster under it:
//! kube.modify_with(Resource::Pods, "default", "web-0", |pod| pod["status"]["phase"] = "Failed".into());
//! kube.compact();         // the next watch from an older resourceVersion gets 410 Gone
//! kube.drop_watches();    // every open watch connection is cut mid-stream
//! ```
//!
//! What it serves, as the real API server does:
//! - `GET /api/v1/{pods,services,endpoints,nodes}`, `/apis/discovery.k8s.io/v1/endpointslices`,
//!   `/apis/networking.k8s.io/v1/ingresses`, each also under `/namespaces/{ns}/` (not nodes),
//!   and single objects at `.../{name}`;
//! - lists: `{kind: PodList, apiVersion, metadata: {resourceVersion}, items}` with items in key
//!   order and without their own `kind`/`apiVersion`; `limit` pages with `metadata.continue`
//!   and `remainingItemCount`, every page from the first page's snapshot (an expired continue
//!   token gets 410 Expired); `resourceVersion=N` with `resourceVersionMatch=Exact` lists the
//!   snapshot at N;
//! - watches (`watch=1` or `watch=true`): a chunked `application/json` stream of one event per
//!   line, `{type: ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, object}`. Without a resourceVersion
//!   (or with "0") it starts with an ADDED per existing object; from `resourceVersion=N` it
//!   replays the retained changes after N; from a compacted N it sends one ERROR event with a
//!   `Status` of code 410 (reason Expired) and ends. Selectors apply to watches as the watch
//!   cache applies them: an object that stops matching is sent as DELETED (its previous state),
//!   one that starts matching as ADDED. BOOKMARK events (only with `allowWatchBookmarks=true`)
//!   carry nothing but the resourceVersion; `timeoutSeconds` ends the stream cleanly;
//! - `labelSelector` and `fieldSelector` (see [`selector`]); unsupported fields get 400;
//! - a bearer token or basic auth when configured (401 with a `Status` otherwise), optionally
//!   over TLS;
//! - `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}` discovery documents.
//!
//! Every request is logged ([`FakeKube::requests`]) so tests can check what a client asked for.
//! The module is self-contained (no `super::` outside it), so the standalone server
//! (`examples/fake_kube_apiserver.rs`) includes it with `#[path]`.

#![allow(
    dead_code,
    reason = "tests and the example binary each use a different part of it"
)]

pub mod fixtures;
pub mod selector;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use selector::Selector;
pub use store::Resource;
use store::{Broadcast, Change, EventType, Snapshot, Store};

/// How requests must authenticate.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    #[default]
    None,
    Bearer(String),
    Basic {
        username: String,
        password: String,
    },
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
}

impl LoggedRequest {
    /// The value of query parameter `name`, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch").as_deref(), Some("1" | "true"))
    }
}

struct Shared {
    store: Mutex<Store>,
    auth: Auth,
    requests: Mutex<Vec<LoggedRequest>>,
    open_watches: AtomicUsize,
    /// Set when the server is dropped: a watch that still reaches it (the client reconnecting
    /// while the listener closes) is cut at once instead of staying open on a dead server.
    stopped: std::sync::atomic::AtomicBool,
    /// Whether to log requests (the benchmark server turns it off).
    log_requests: bool,
    /// Whether to print each request on stderr (the standalone server).
    print_requests: bool,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .expect("the fake's store lock is not poisoned")
    }
}

/// Sets up a [`FakeKube`].
pub struct FakeKubeBuilder {
    auth: Auth,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    history_limit: usize,
    log_requests: bool,
    print_requests: bool,
    listen: SocketAddr,
}

impl FakeKubeBuilder {
    pub fn bearer_token(mut self, token: &str) -> Self {
        self.auth = Auth::Bearer(token.to_owned());
        self
    }

    pub fn basic_auth(mut self, username: &str, password: &str) -> Self {
        self.auth = Auth::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self
    }

    /// Serves HTTPS with the PEM certificate chain and key at these paths.
    pub fn tls(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some((cert.to_owned(), key.to_owned()));
        self
    }

    /// How many changes the history keeps (default 10,000) before older resourceVersions
    /// get 410 Gone.
    pub fn history_limit(mut self, changes: usize) -> Self {
        self.history_limit = changes;
        self
    }

    /// Keeps no request log (for long runs with many requests).
    pub fn without_request_log(mut self) -> Self {
        self.log_requests = false;
        self
    }

    /// Prints each request's method, path and query on stderr.
    pub fn print_requests(mut self) -> Self {
        self.print_requests = true;
        self
    }

    /// Listens on `addr` instead of a free loopback port.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    pub async fn start(self) -> FakeKube {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(self.history_limit)),
            auth: self.auth,
            requests: Mutex::new(Vec::new()),
            open_watches: AtomicUsize::new(0),
            stopped: std::sync::atomic::AtomicBool::new(false),
            log_requests: self.log_requests,
            print_requests: self.print_requests,
        });
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .expect("bind the fake API server's listener");
        let addr = listener.local_addr().expect("listener address");
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let server = match self.tls {
            None => tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .await
                    .expect("serve the fake API server");
            }),
            Some((cert, key)) => {
                let listener = tls::TlsListener::new(listener, &cert, &key);
                tokio::spawn(async move {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(stopped)
                        .await
                        .expect("serve the fake API server over TLS");
                })
            }
        };
        FakeKube {
            shared,
            url: format!("{scheme}://{addr}"),
            addr,
            _shutdown: shutdown,
            _server: server,
        }
    }
}

/// A running fake API server; stops when dropped.
pub struct FakeKube {
    shared: Arc<Shared>,
    url: String,
    addr: SocketAddr,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        // Cut the watches too: a graceful shutdown would wait for them to end.
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.store().broadcast(Broadcast::DropConnections);
        self._server.abort();
    }
}

impl FakeKube {
    pub fn builder() -> FakeKubeBuilder {
        FakeKubeBuilder {
            auth: Auth::None,
            tls: None,
            history_limit: 10_000,
            log_requests: true,
            print_requests: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// A fake without auth or TLS on a free loopback port.
    pub async fn start() -> FakeKube {
        FakeKube::builder().start().await
    }

    /// `http://127.0.0.1:PORT` (or https), for `api_server`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current (last given) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version()
    }

    /// Adds an object (its `kind` says which resource); panics if it exists.
    pub fn add(&self, object: Value) -> u64 {
        self.shared
            .store()
            .add(object)
            .unwrap_or_else(|e| panic!("fake API server: add: {e}"))
    }

    /// Replaces an existing object by one with the same kind, namespace and name.
    pub fn modify(&self, object: Value) -> u64 {
        self.shared
            .store()
            .modify(object)
            .unwrap_or_else(|e| panic!("fake API server: modify: {e}"))
    }

    /// Changes an existing object in place with `edit`.
    pub fn modify_with(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> u64 {
        let mut store = self.shared.store();
        let mut object = store
            .get(resource, namespace, name)
            .map(|o| (*o).clone())
            .unwrap_or_else(|| {
                panic!(
                    "fake API server: no {} {namespace}/{name}",
                    resource.plural()
                )
            });
        edit(&mut object);
        store
            .modify(object)
            .unwrap_or_else(|e| panic!("fake API server: modify: {e}"))
    }

    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> u64 {
        self.shared
            .store()
            .delete(resource, namespace, name)
            .unwrap_or_else(|e| panic!("fake API server: delete: {e}"))
    }

    /// The object as stored now.
    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .store()
            .get(resource, namespace, name)
            .map(|o| (*o).clone())
    }

    pub fn count(&self, resource: Resource) -> usize {
        self.shared.store().len(resource)
    }

    /// Adds every item of `tests/fixtures/kubernetes/<name>`.
    pub fn load_fixture(&self, name: &str) {
        for object in fixtures::load(name) {
            self.add(object);
        }
    }

    /// Adds every fixture file's items.
    pub fn load_all_fixtures(&self) {
        for name in fixtures::FILES {
            self.load_fixture(name);
        }
    }

    /// Sends a BOOKMARK at the current resourceVersion to every open watch that asked for them.
    pub fn bookmark(&self) {
        let store = self.shared.store();
        store.broadcast(Broadcast::Bookmark(store.resource_version()));
    }

    /// Forgets the history: the next watch or paged list from an older resourceVersion gets
    /// 410 Gone.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// Cuts every open watch connection mid-stream (no clean end of the chunked body).
    pub fn drop_watches(&self) {
        self.shared.store().broadcast(Broadcast::DropConnections);
    }

    /// Watches open now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared
            .requests
            .lock()
            .expect("the request log lock is not poisoned")
            .clone()
    }

    /// Waits until `pred` holds for the request log, or panics after `timeout` with the log.
    pub async fn wait_for_request(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&LoggedRequest) -> bool,
    ) -> LoggedRequest {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.requests().into_iter().find(|r| pred(r)) {
                return found;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "no request {what} within {timeout:?}; got {:#?}",
                    self.requests()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A `Status` object, as the API server sends with every error.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    })
}

fn status_response(code: StatusCode, reason: &str, message: &str) -> Response {
    json_response(code, &status(code, reason, message))
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn authorized(auth: &Auth, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth {
        Auth::None => true,
        Auth::Bearer(token) => given == Some(format!("Bearer {token}").as_str()),
        Auth::Basic { username, password } => {
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            given == Some(format!("Basic {expected}").as_str())
        }
    }
}

/// What a path names.
enum Target {
    Collection {
        resource: Resource,
        namespace: Option<String>,
    },
    Object {
        resource: Resource,
        namespace: String,
        name: String,
    },
    Document(Value),
}

fn route(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest): (String, &[&str]) = match parts.as_slice() {
        ["version"] => return Some(Target::Document(discovery::version())),
        ["api"] => return Some(Target::Document(discovery::api_versions())),
        ["apis"] => return Some(Target::Document(discovery::api_groups())),
        ["api", "v1"] => return Some(Target::Document(discovery::resources("v1"))),
        ["apis", group, version] => {
            let doc = discovery::resources(&format!("{group}/{version}"));
            return doc["resources"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
                .then_some(Target::Document(doc));
        }
        ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let namespaced =
        |plural: &str| Resource::from_path(&api_version, plural).filter(|r| r.namespaced());
    match rest {
        [plural] => Some(Target::Collection {
            resource: Resource::from_path(&api_version, plural)?,
            namespace: None,
        }),
        [plural, name] => {
            let resource = Resource::from_path(&api_version, plural).filter(|r| !r.namespaced())?;
            Some(Target::Object {
                resource,
                namespace: String::new(),
                name: (*name).to_owned(),
            })
        }
        ["namespaces", ns, plural] => Some(Target::Collection {
            resource: namespaced(plural)?,
            namespace: Some((*ns).to_owned()),
        }),
        ["namespaces", ns, plural, name] => Some(Target::Object {
            resource: namespaced(plural)?,
            namespace: (*ns).to_owned(),
            name: (*name).to_owned(),
        }),
        _ => None,
    }
}

/// The query parameters of a list or watch.
struct Query {
    watch: bool,
    resource_version: Option<String>,
    exact: bool,
    limit: Option<usize>,
    continue_token: Option<String>,
    labels: Selector,
    fields: Selector,
    timeout: Option<Duration>,
    bookmarks: bool,
}

fn parse_query(raw: &str, resource: Resource) -> Result<Query, String> {
    let mut q = Query {
        watch: false,
        resource_version: None,
        exact: false,
        limit: None,
        continue_token: None,
        labels: Selector::default(),
        fields: Selector::default(),
        timeout: None,
        bookmarks: false,
    };
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "watch" => q.watch = value == "1" || value == "true",
            "resourceVersion" if !value.is_empty() => q.resource_version = Some(value),
            "resourceVersionMatch" => q.exact = value == "Exact",
            "limit" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| format!("limit: not a number: {value:?}"))?;
                q.limit = (n > 0).then_some(n);
            }
            "continue" if !value.is_empty() => q.continue_token = Some(value),
            "labelSelector" => q.labels = Selector::labels(&value)?,
            "fieldSelector" => q.fields = Selector::fields(&value, resource)?,
            "timeoutSeconds" => {
                let s: u64 = value
                    .parse()
                    .map_err(|_| format!("timeoutSeconds: not a number: {value:?}"))?;
                q.timeout = Some(Duration::from_secs(s));
            }
            "allowWatchBookmarks" => q.bookmarks = value == "true" || value == "1",
            _ => {}
        }
    }
    Ok(q)
}

impl Query {
    fn selects(&self, namespace: Option<&str>, object: &Value) -> bool {
        namespace.is_none_or(|ns| object["metadata"]["namespace"].as_str() == Some(ns))
            && self.labels.matches_labels(object)
            && self.fields.matches_fields(object)
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let query = uri.query().unwrap_or("").to_owned();
    if shared.print_requests {
        eprintln!("fake-kube: {method} {} {query}", uri.path());
    }
    if shared.log_requests {
        let header = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        shared
            .requests
            .lock()
            .expect("the request log lock is not poisoned")
            .push(LoggedRequest {
                method: method.to_string(),
                path: uri.path().to_owned(),
                query: query.clone(),
                authorization: header(header::AUTHORIZATION),
                user_agent: header(header::USER_AGENT),
            });
    }
    if !authorized(&shared.auth, &headers) {
        return status_response(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let Some(target) = route(uri.path()) else {
        return status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    if method != Method::GET {
        return status_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the fake API server only serves GET",
        );
    }
    match target {
        Target::Document(doc) => json_response(StatusCode::OK, &doc),
        Target::Object {
            resource,
            namespace,
            name,
        } => match shared.store().get(resource, &namespace, &name) {
            Some(object) => json_response(StatusCode::OK, &object),
            None => status_response(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{} {name:?} not found", resource.plural()),
            ),
        },
        Target::Collection {
            resource,
            namespace,
        } => {
            let q = match parse_query(&query, resource) {
                Ok(q) => q,
                Err(message) => {
                    return status_response(StatusCode::BAD_REQUEST, "BadRequest", &message);
                }
            };
            if q.watch {
                watch(shared, resource, namespace, q)
            } else {
                list(&shared, resource, namespace.as_deref(), &q)
            }
        }
    }
}

/// What a continue token holds, as the real one: the snapshot's resourceVersion and the key
/// to start after.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

fn list(shared: &Shared, resource: Resource, namespace: Option<&str>, q: &Query) -> Response {
    let bad = |m: &str| status_response(StatusCode::BAD_REQUEST, "BadRequest", m);
    let (at, start_after) = match &q.continue_token {
        Some(token) => {
            let Some(token) = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| serde_json::from_slice::<ContinueToken>(&b).ok())
            else {
                return bad("continue key is not valid");
            };
            (Some(token.rv), Some(token.start))
        }
        None => {
            let rv = match q.resource_version.as_deref() {
                Some(rv) if q.exact => match rv.parse::<u64>() {
                    Ok(rv) => Some(rv),
                    Err(_) => return bad("resourceVersion: not a number"),
                },
                _ => None,
            };
            (rv, None)
        }
    };
    let (rv, objects) = match shared.store().snapshot(resource, at) {
        Snapshot::At { rv, objects } => (rv, objects),
        Snapshot::Expired { oldest } => {
            let message = if q.continue_token.is_some() {
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".to_owned()
            } else {
                format!(
                    "too old resource version: {} ({oldest})",
                    at.unwrap_or_default()
                )
            };
            return status_response(StatusCode::GONE, "Expired", &message);
        }
    };
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o["metadata"]["namespace"].as_str().unwrap_or(""),
            o["metadata"]["name"].as_str().unwrap_or("")
        )
    };
    let mut selected = objects
        .iter()
        .filter(|o| q.selects(namespace, o))
        .filter(|o| start_after.as_ref().is_none_or(|s| key(o) > *s))
        .peekable();
    let mut items = Vec::new();
    let mut last = None;
    while let Some(object) = selected.next() {
        if q.limit.is_some_and(|limit| items.len() == limit) {
            break;
        }
        let mut item = (**object).clone();
        if let Some(map) = item.as_object_mut() {
            map.remove("kind");
            map.remove("apiVersion");
        }
        last = Some(key(object));
        items.push(item);
        if q.limit.is_some_and(|limit| items.len() == limit) && selected.peek().is_some() {
            break;
        }
    }
    let remaining = selected.count();
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if remaining > 0 {
        let token = ContinueToken {
            v: "meta.k8s.io/v1".to_owned(),
            rv,
            start: last.unwrap_or_default(),
        };
        let token = serde_json::to_vec(&token).expect("a continue token serializes");
        metadata["continue"] =
            json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
        metadata["remainingItemCount"] = json!(remaining);
    }
    json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", resource.kind()),
            "apiVersion": resource.api_version(),
            "metadata": metadata,
            "items": items,
        }),
    )
}

/// One watch event line.
fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object}))
        .expect("a watch event serializes");
    line.push(b'\n');
    Bytes::from(line)
}

/// The bookmark object the real server sends: an empty object of the watched kind with only
/// its resourceVersion set.
fn bookmark_object(resource: Resource, rv: u64) -> Value {
    let mut object = json!({
        "kind": resource.kind(),
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": rv.to_string(), "creationTimestamp": null},
    });
    if resource == Resource::Pods {
        object["spec"] = json!({"containers": null});
        object["status"] = json!({});
    }
    object
}

/// The event a change is for a watch with these selectors, as the watch cache converts it.
fn convert(change: &Change, namespace: Option<&str>, q: &Query) -> Option<Bytes> {
    let now = change.kind != EventType::Deleted && q.selects(namespace, &change.object);
    let before = change
        .previous
        .as_ref()
        .is_some_and(|p| q.selects(namespace, p));
    match (before, now) {
        (false, true) => Some(event_line("ADDED", &change.object)),
        (true, true) => Some(event_line("MODIFIED", &change.object)),
        (true, false) => {
            // The previous state, with the change's resourceVersion.
            let mut object = change
                .previous
                .as_deref()
                .cloned()
                .expect("before implies a previous state");
            object["metadata"]["resourceVersion"] = json!(change.rv.to_string());
            Some(event_line(EventType::Deleted.as_str(), &object))
        }
        (false, false) => None,
    }
}

/// Decrements the open-watch count when the watch's task ends, however it ends.
struct WatchGuard(Arc<Shared>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

fn watch(shared: Arc<Shared>, resource: Resource, namespace: Option<String>, q: Query) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    // Under one lock: the replayed start and the subscription, so nothing is missed or doubled.
    let (start, mut live) = {
        let store = shared.store();
        let from = q
            .resource_version
            .as_deref()
            .filter(|rv| *rv != "0")
            .map(str::parse::<u64>);
        let start: Result<Vec<Bytes>, Bytes> = match from {
            Some(Err(_)) => {
                return status_response(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "resourceVersion: not a number",
                );
            }
            None => match store.snapshot(resource, None) {
                Snapshot::At { objects, .. } => Ok(objects
                    .iter()
                    .filter(|o| q.selects(namespace.as_deref(), o))
                    .map(|o| event_line("ADDED", o))
                    .collect()),
                Snapshot::Expired { .. } => unreachable!("the current snapshot never expires"),
            },
            Some(Ok(rv)) => match store.changes_since(resource, rv) {
                Some(changes) => Ok(changes
                    .iter()
                    .filter_map(|c| convert(c, namespace.as_deref(), &q))
                    .collect()),
                None => Err(event_line(
                    "ERROR",
                    &status(
                        StatusCode::GONE,
                        "Expired",
                        &format!("too old resource version: {rv} ({})", store.oldest()),
                    ),
                )),
            },
        };
        (start, store.subscribe())
    };
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    let guard = WatchGuard(Arc::clone(&shared));
    tokio::spawn(async move {
        let _guard = guard;
        if _guard.0.stopped.load(Ordering::SeqCst) {
            let _ = tx
                .send(Err(std::io::Error::other("the server was stopped")))
                .await;
            return;
        }
        let lines = match start {
            Ok(lines) => lines,
            Err(gone) => {
                let _ = tx.send(Ok(gone)).await;
                return;
            }
        };
        for line in lines {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let deadline = q.timeout.map(|t| tokio::time::Instant::now() + t);
        let timeout = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timeout);
        loop {
            let message = tokio::select! {
                () = &mut timeout => return,
                () = tx.closed() => return,
                m = live.recv() => m,
            };
            let line = match message {
                Ok(Broadcast::Change(change)) if change.resource == resource => {
                    convert(&change, namespace.as_deref(), &q)
                }
                Ok(Broadcast::Change(_)) => None,
                Ok(Broadcast::Bookmark(rv)) => q
                    .bookmarks
                    .then(|| event_line("BOOKMARK", &bookmark_object(resource, rv))),
                Ok(Broadcast::DropConnections) => {
                    let _ = tx
                        .send(Err(std::io::Error::other("connection dropped by the test")))
                        .await;
                    return;
                }
                // Too far behind: the real server closes such a watcher; the client resumes.
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if let Some(line) = line
                && tx.send(Ok(line)).await.is_err()
            {
                return;
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .expect("a watch response builds")
}

/// The discovery documents (`/version`, `/api`, `/apis`, resource lists).
mod discovery {
    use serde_json::{Value, json};

    use super::Resource;

    pub fn version() -> Value {
        json!({
            "major": "1", "minor": "30", "gitVersion": "v1.30.4",
            "gitCommit": "a51b3b711150f57ffc1f526a640ec058514ed596", "gitTreeState": "clean",
            "buildDate": "2024-08-14T19:02:46Z", "goVersion": "go1.22.5",
            "compiler": "gc", "platform": "linux/amd64"
        })
    }

    pub fn api_versions() -> Value {
        json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]
        })
    }

    pub fn api_groups() -> Value {
        let groups: Vec<Value> = ["discovery.k8s.io/v1", "networking.k8s.io/v1"]
            .iter()
            .map(|gv| {
                let (group, version) = gv.split_once('/').expect("group/version");
                json!({
                    "name": group,
                    "versions": [{"groupVersion": gv, "version": version}],
                    "preferredVersion": {"groupVersion": gv, "version": version},
                })
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    pub fn resources(group_version: &str) -> Value {
        let resources: Vec<Value> = Resource::ALL
            .iter()
            .filter(|r| r.api_version() == group_version)
            .map(|r| {
                json!({
                    "name": r.plural(), "singularName": r.kind().to_lowercase(),
                    "namespaced": r.namespaced(), "kind": r.kind(),
                    "verbs": ["get", "list", "watch"],
                })
            })
            .collect();
        json!({
            "kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": group_version, "resources": resources,
        })
    }
}

/// HTTPS for the fake: a listener that completes the TLS handshake before handing a
/// connection to axum.
mod tls {
    use std::io;
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::server::TlsStream;

    pub struct TlsListener {
        tcp: TcpListener,
        acceptor: TlsAcceptor,
    }

    impl TlsListener {
        pub fn new(tcp: TcpListener, cert: &Path, key: &Path) -> TlsListener {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .expect("read the fake API server's certificate")
                .collect::<Result<_, _>>()
                .expect("PEM certificates");
            let key = PrivateKeyDer::from_pem_file(key).expect("read the fake's key");
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("default TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a usable certificate and key");
            TlsListener {
                tcp,
                acceptor: TlsAcceptor::from(Arc::new(config)),
            }
        }
    }

    impl axum::serve::Listener for TlsListener {
        type Io = TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok((tcp, addr)) = self.tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                // A client that fails or stalls its handshake is dropped, not waited for.
                let handshake = self.acceptor.accept(tcp);
                if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                    return (tls, addr);
                }
            }
        }

        fn local_addr(&self) -> io::Result<Self::Addr> {
            self.tcp.local_addr()
        }
    }
}
