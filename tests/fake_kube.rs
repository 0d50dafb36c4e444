//! The fake Kubernetes API server (tests/common/fake_kube/) behaves as the real one does, so
//! discovery tests built on it are worth something: lists with resourceVersion and paging,
//! watches as chunked JSON lines, 410 Gone after compaction, bookmarks, selectors, auth, TLS,
//! and dropped connections.

mod common;

use std::time::Duration;

use common::fake_kube::{FakeKube, Resource};
use common::http_client;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn get_json(url: &str) -> (u16, Value) {
    let response = http_client().get(url).send().await.expect("GET the fake");
    let status = response.status().as_u16();
    let body = response.text().await.expect("read the body");
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}")),
    )
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap_or(""),
                i["metadata"]["name"].as_str().expect("a name")
            )
        })
        .collect()
}

/// Reads a watch response line by line.
struct Watch {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

enum Next {
    Event(Value),
    /// The server ended the body cleanly.
    End,
    /// The connection broke mid-body.
    Broken,
}

impl Watch {
    async fn open(url: &str) -> Watch {
        let response = http_client().get(url).send().await.expect("open the watch");
        assert_eq!(response.status(), 200, "watch {url}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "watch content type"
        );
        Watch {
            response,
            buffer: Vec::new(),
        }
    }

    async fn next(&mut self) -> Next {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Next::Event(
                    serde_json::from_slice(&line).expect("an event is one JSON line"),
                );
            }
            match tokio::time::timeout(WAIT, self.response.chunk()).await {
                Err(_) => panic!("no watch event within {WAIT:?}"),
                Ok(Ok(Some(chunk))) => self.buffer.extend_from_slice(&chunk),
                Ok(Ok(None)) => {
                    assert!(self.buffer.is_empty(), "a partial event line at the end");
                    return Next::End;
                }
                Ok(Err(_)) => return Next::Broken,
            }
        }
    }

    async fn event(&mut self) -> Value {
        match self.next().await {
            Next::Event(e) => e,
            Next::End => panic!("the watch ended where an event was expected"),
            Next::Broken => panic!("the watch broke where an event was expected"),
        }
    }
}

fn summary(event: &Value) -> (String, String) {
    (
        event["type"].as_str().expect("type").to_owned(),
        event["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

fn ev(kind: &str, name: &str) -> (String, String) {
    (kind.to_owned(), name.to_owned())
}

#[tokio::test]
async fn list_returns_a_typed_list_with_its_resource_version_and_items_in_key_order() {
    let kube = FakeKube::start().await;
    kube.load_all_fixtures();
    let (status, list) = get_json(&format!("{}/api/v1/pods", kube.url())).await;
    assert_eq!(status, 200);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(
        list["metadata"]["resourceVersion"],
        kube.resource_version().to_string()
    );
    let got = names(&list);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted);
    assert_eq!(got.len(), kube.count(Resource::Pods));
    let item = &list["items"][0];
    assert!(
        item.get("kind").is_none() && item.get("apiVersion").is_none(),
        "{item}"
    );
    assert!(item["metadata"]["managedFields"].is_array());

    let (_, slices) = get_json(&format!(
        "{}/apis/discovery.k8s.io/v1/endpointslices",
        kube.url()
    ))
    .await;
    assert_eq!(slices["kind"], "EndpointSliceList");
    assert_eq!(slices["apiVersion"], "discovery.k8s.io/v1");
    let (_, ingresses) = get_json(&format!(
        "{}/apis/networking.k8s.io/v1/ingresses",
        kube.url()
    ))
    .await;
    assert_eq!(ingresses["kind"], "IngressList");
}

#[tokio::test]
async fn namespaced_path_lists_only_that_namespace() {
    let kube = FakeKube::start().await;
    kube.load_all_fixtures();
    let (_, list) = get_json(&format!("{}/api/v1/namespaces/monitoring/pods", kube.url())).await;
    let got = names(&list);
    assert!(!got.is_empty());
    assert!(got.iter().all(|n| n.starts_with("monitoring/")), "{got:?}");
    let (status, _) = get_json(&format!("{}/api/v1/namespaces/default/nodes", kube.url())).await;
    assert_eq!(status, 404, "nodes are not namespaced");
    let (status, pod) = get_json(&format!(
        "{}/api/v1/namespaces/default/pods/db-0",
        kube.url()
    ))
    .await;
    assert_eq!((status, pod["kind"].as_str()), (200, Some("Pod")));
}

#[tokio::test]
async fn limit_pages_with_continue_tokens_from_the_first_pages_snapshot() {
    let kube = FakeKube::start().await;
    kube.load_fixture("pods.json");
    let total = kube.count(Resource::Pods);
    let (_, first) = get_json(&format!("{}/api/v1/pods?limit=3", kube.url())).await;
    assert_eq!(names(&first).len(), 3);
    assert_eq!(first["metadata"]["remainingItemCount"], total - 3);
    let snapshot_rv = first["metadata"]["resourceVersion"].clone();
    // A change between pages: the later pages still show the first page's snapshot.
    kube.delete(Resource::Pods, "monitoring", "standalone");
    let mut all = names(&first);
    let mut token = first["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_owned();
    loop {
        let (status, page) = get_json(&format!(
            "{}/api/v1/pods?limit=3&continue={token}",
            kube.url()
        ))
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["metadata"]["resourceVersion"], snapshot_rv);
        all.extend(names(&page));
        match page["metadata"]["continue"].as_str() {
            Some(next) => token = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(all.len(), total);
    assert!(all.contains(&"monitoring/standalone".to_owned()));
}

#[tokio::test]
async fn continue_token_older_than_the_history_is_gone() {
    let kube = FakeKube::start().await;
    kube.load_fixture("pods.json");
    let (_, first) = get_json(&format!("{}/api/v1/pods?limit=2", kube.url())).await;
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("a token")
        .to_owned();
    kube.delete(Resource::Pods, "default", "db-0");
    kube.compact();
    let (status, body) = get_json(&format!(
        "{}/api/v1/pods?limit=2&continue={token}",
        kube.url()
    ))
    .await;
    assert_eq!(status, 410);
    assert_eq!(
        (body["kind"].as_str(), body["code"].as_u64()),
        (Some("Status"), Some(410))
    );
    assert_eq!(body["reason"], "Expired");
}

#[tokio::test]
async fn watch_from_a_list_resource_version_streams_each_later_change_once() {
    let kube = FakeKube::start().await;
    kube.load_fixture("pods.json");
    let (_, list) = get_json(&format!("{}/api/v1/pods", kube.url())).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    // One change before the watch opens (replayed from history), the rest after.
    kube.add(json!({"kind": "Pod", "metadata": {"name": "early", "namespace": "default"}}));
    let mut watch = Watch::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=60",
        kube.url()
    ))
    .await;
    assert_eq!(summary(&watch.event().await), ev("ADDED", "early"));
    let modified_rv = kube.modify_with(Resource::Pods, "default", "db-0", |pod| {
        pod["status"]["phase"] = json!("Failed");
    });
    let modified = watch.event().await;
    assert_eq!(summary(&modified), ev("MODIFIED", "db-0"));
    assert_eq!(modified["object"]["kind"], "Pod");
    assert_eq!(modified["object"]["status"]["phase"], "Failed");
    assert_eq!(
        modified["object"]["metadata"]["resourceVersion"],
        modified_rv.to_string()
    );
    let deleted_rv = kube.delete(Resource::Pods, "default", "early");
    let deleted = watch.event().await;
    assert_eq!(summary(&deleted), ev("DELETED", "early"));
    assert_eq!(
        deleted["object"]["metadata"]["resourceVersion"],
        deleted_rv.to_string()
    );
    // Other resources' changes are not in a pod watch.
    kube.load_fixture("nodes.json");
    kube.bookmark();
    assert_eq!(watch.event().await["type"], "BOOKMARK");
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_every_object_added() {
    let kube = FakeKube::start().await;
    kube.load_fixture("nodes.json");
    for rv in ["", "&resourceVersion=0"] {
        let mut watch = Watch::open(&format!("{}/api/v1/nodes?watch=true{rv}", kube.url())).await;
        assert_eq!(summary(&watch.event().await), ev("ADDED", "node-a"));
        assert_eq!(summary(&watch.event().await), ev("ADDED", "node-b"));
    }
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_gets_an_error_event_with_410() {
    let kube = FakeKube::start().await;
    kube.load_fixture("pods.json");
    let old = kube.resource_version();
    kube.delete(Resource::Pods, "default", "db-0");
    kube.compact();
    let mut watch = Watch::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={old}",
        kube.url()
    ))
    .await;
    let error = watch.event().await;
    assert_eq!(error["type"], "ERROR");
    let status = &error["object"];
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 410);
    assert_eq!(status["reason"], "Expired");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("too old resource version")),
        "{status}"
    );
    assert!(matches!(watch.next().await, Next::End));
}

#[tokio::test]
async fn history_limit_compacts_the_oldest_changes() {
    let kube = FakeKube::builder().history_limit(3).start().await;
    kube.load_fixture("pods.json");
    let rv = kube.resource_version();
    let mut watch = Watch::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={}",
        kube.url(),
        rv - 3
    ))
    .await;
    assert_eq!(
        watch.event().await["type"],
        "ADDED",
        "rv-3 is still retained"
    );
    let mut watch = Watch::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={}",
        kube.url(),
        rv - 4
    ))
    .await;
    assert_eq!(watch.event().await["object"]["code"], 410);
}

#[tokio::test]
async fn bookmarks_reach_only_watches_that_allow_them_and_carry_only_the_resource_version() {
    let kube = FakeKube::start().await;
    kube.load_fixture("pods.json");
    let rv = kube.resource_version();
    let url = format!("{}/api/v1/pods?watch=1&resourceVersion={rv}", kube.url());
    let mut with = Watch::open(&format!("{url}&allowWatchBookmarks=true")).await;
    let mut without = Watch::open(&url).await;
    kube.bookmark();
    let bookmark = with.event().await;
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(bookmark["object"]["kind"], "Pod");
    assert_eq!(
        bookmark["object"]["metadata"]["resourceVersion"],
        rv.to_string()
    );
    assert!(bookmark["object"]["metadata"].get("name").is_none());
    kube.delete(Resource::Pods, "default", "db-0");
    assert_eq!(summary(&without.event().await), ev("DELETED", "db-0"));
}

#[tokio::test]
async fn label_selectors_support_every_operator() {
    let kube = FakeKube::start().await;
    kube.load_fixture("pods.json");
    let select = |selector: &'static str| {
        let url = format!("{}/api/v1/pods", kube.url());
        async move {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("labelSelector", selector)
                .finish();
            let (status, list) = get_json(&format!("{url}?{query}")).await;
            assert_eq!(status, 200, "{selector}: {list}");
            let mut got = names(&list);
            got.sort();
            got
        }
    };
    let web = [
        "default/web-7d4b9c8f6-pending",
        "default/web-7d4b9c8f6-q8z7m",
        "default/web-7d4b9c8f6-x2x9k",
    ];
    assert_eq!(select("app=web").await, web);
    assert_eq!(select("app==web,tier=frontend").await, web);
    assert_eq!(select("app in (web, db)").await.len(), 4);
    assert_eq!(select("tier").await, web);
    let no_app = select("!app").await;
    assert!(
        no_app.contains(&"monitoring/standalone".to_owned()),
        "{no_app:?}"
    );
    assert!(!no_app.iter().any(|n| n.contains("web")));
    // != and notin match pods without the label, as the real server does.
    let not_web = select("app!=web").await;
    assert!(not_web.contains(&"monitoring/standalone".to_owned()));
    assert_eq!(not_web.len(), kube.count(Resource::Pods) - 3);
    assert_eq!(
        select("app notin (web,db)").await.len(),
        kube.count(Resource::Pods) - 4
    );
    assert_eq!(
        select("apps.kubernetes.io/pod-index>-1").await,
        ["default/db-0"]
    );
}

#[tokio::test]
async fn field_selectors_filter_and_unsupported_fields_are_refused() {
    let kube = FakeKube::start().await;
    kube.load_all_fixtures();
    let url = |q: &str| format!("{}/api/v1/pods?fieldSelector={q}", kube.url());
    let (_, on_a) = get_json(&url("spec.nodeName%3Dnode-a")).await;
    assert_eq!(names(&on_a).len(), 3);
    let (_, running) = get_json(&url(
        "status.phase%3DRunning,metadata.namespace%21%3Dmonitoring",
    ))
    .await;
    assert!(names(&running).iter().all(|n| n.starts_with("default/")));
    assert_eq!(names(&running).len(), 3);
    let (_, by_name) = get_json(&url("metadata.name%3D%3Ddb-0")).await;
    assert_eq!(names(&by_name), ["default/db-0"]);
    let (status, body) = get_json(&url("spec.containers%3Dx")).await;
    assert_eq!(status, 400);
    assert_eq!(body["reason"], "BadRequest");
    let (_, unschedulable) = get_json(&format!(
        "{}/api/v1/nodes?fieldSelector=spec.unschedulable%3Dfalse",
        kube.url()
    ))
    .await;
    assert_eq!(names(&unschedulable), ["/node-a"]);
}

#[tokio::test]
async fn watch_with_a_selector_sees_objects_leave_and_enter_it() {
    let kube = FakeKube::start().await;
    kube.load_fixture("pods.json");
    let rv = kube.resource_version();
    let mut watch = Watch::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={rv}&labelSelector=app%3Ddb",
        kube.url()
    ))
    .await;
    kube.modify_with(Resource::Pods, "default", "db-0", |pod| {
        pod["metadata"]["labels"]["app"] = json!("db-old");
    });
    let left = watch.event().await;
    assert_eq!(summary(&left), ev("DELETED", "db-0"));
    assert_eq!(
        left["object"]["metadata"]["labels"]["app"], "db",
        "the state before"
    );
    kube.modify_with(Resource::Pods, "monitoring", "standalone", |pod| {
        pod["metadata"]["labels"] = json!({"app": "db"});
    });
    assert_eq!(summary(&watch.event().await), ev("ADDED", "standalone"));
}

#[tokio::test]
async fn requests_without_the_configured_credentials_get_401() {
    let kube = FakeKube::builder().bearer_token("s3cret").start().await;
    let url = format!("{}/api/v1/pods", kube.url());
    let (status, body) = get_json(&url).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("Unauthorized"))
    );
    let ok = http_client()
        .get(&url)
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("GET");
    assert_eq!(ok.status(), 200);
    let wrong = http_client()
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), 401);
    let logged = kube.requests();
    assert_eq!(logged[1].authorization.as_deref(), Some("Bearer s3cret"));

    let kube = FakeKube::builder().basic_auth("admin", "pw").start().await;
    let url = format!("{}/api/v1/nodes", kube.url());
    let ok = http_client()
        .get(&url)
        .basic_auth("admin", Some("pw"))
        .send()
        .await
        .expect("GET");
    assert_eq!(ok.status(), 200);
    let wrong = http_client()
        .get(&url)
        .basic_auth("admin", Some("x"))
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn dropped_watches_break_mid_stream_and_timeouts_end_cleanly() {
    let kube = FakeKube::start().await;
    kube.load_fixture("nodes.json");
    let rv = kube.resource_version();
    let url = format!("{}/api/v1/nodes?watch=1&resourceVersion={rv}", kube.url());
    let mut watch = Watch::open(&url).await;
    common::eventually("the watch to be open", WAIT, || async {
        (kube.open_watches() == 1)
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    kube.drop_watches();
    assert!(matches!(watch.next().await, Next::Broken));
    common::eventually("the watch to be closed", WAIT, || async {
        (kube.open_watches() == 0)
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    let mut watch = Watch::open(&format!("{url}&timeoutSeconds=1")).await;
    assert!(matches!(watch.next().await, Next::End));
}

#[tokio::test]
async fn serves_https_with_the_given_certificate() {
    let pki = common::pki::Pki::new();
    let ca = pki.ca("kube-ca");
    let server = pki.leaf(&ca, "kubernetes", 2);
    let kube = FakeKube::builder()
        .tls(&server.cert, &server.key)
        .bearer_token("t")
        .start()
        .await;
    assert!(kube.url().starts_with("https://127.0.0.1:"));
    let client = common::pki::https_client(common::pki::client_config(&ca, None));
    let version = client
        .get(format!("{}/version", kube.url()))
        .bearer_auth("t")
        .send()
        .await
        .expect("GET /version over TLS")
        .text()
        .await
        .expect("a body");
    let version: Value = serde_json::from_str(&version).expect("JSON");
    assert_eq!(version["major"], "1");
}

#[tokio::test]
async fn discovery_documents_name_the_served_resources() {
    let kube = FakeKube::start().await;
    let (_, core) = get_json(&format!("{}/api/v1", kube.url())).await;
    let served: Vec<&str> = core["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(served, ["pods", "services", "endpoints", "nodes"]);
    let (_, groups) = get_json(&format!("{}/apis", kube.url())).await;
    assert_eq!(groups["kind"], "APIGroupList");
    let (status, _) = get_json(&format!("{}/apis/apps/v1", kube.url())).await;
    assert_eq!(status, 404);
}
