//! `kubernetes_sd_configs` end to end against the fake API server (`common::fake_kube`): the
//! provider on its own (what it publishes as the cluster changes, what it asks the server, how
//! it survives 410 Gone, dropped watches and refusals, how it connects in-cluster and through
//! a kubeconfig), and a relay scraping what it discovers (stale markers for vanished pods).

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use common::fake_kube::{FakeKube, Resource};
use common::relay::{FakeStorage, Relay};
use common::scrape::{Job, RelayScrape, ScrapeConfig, ScrapingRelay, TargetServer};
use common::{EVENTUALLY_TIMEOUT, Series, eventually};
use promrelay::scrape::config::{KubernetesSdConfig, parse};
use promrelay::scrape::discovery::TargetGroup;
use promrelay::scrape::discovery::kubernetes::{InCluster, run};

/// One `kubernetes_sd_config` from `yaml` (the entry's keys), resolved as from a config file in
/// `dir`.
fn sd_config(dir: &Path, yaml: &str) -> KubernetesSdConfig {
    let body: String = yaml.lines().map(|l| format!("        {l}\n")).collect();
    let text =
        format!("scrape_configs:\n  - job_name: k8s\n    kubernetes_sd_configs:\n      -\n{body}");
    let mut config = parse(&dir.join("prometheus.yml"), &text)
        .unwrap_or_else(|e| panic!("config should load: {e}\n{text}"));
    config.jobs.remove(0).kubernetes_sd_configs.remove(0)
}

/// A provider running on its own; every publication arrives on `published`.
struct Provider {
    published: mpsc::UnboundedReceiver<Vec<TargetGroup>>,
    task: JoinHandle<()>,
}

impl Provider {
    fn start(config: KubernetesSdConfig, in_cluster: InCluster) -> Provider {
        let (tx, published) = mpsc::unbounded_channel();
        // Each group's labels in one map, so the tests read every label in `labels`.
        let task = tokio::spawn(run("k8s".to_owned(), config, in_cluster, move |groups| {
            tx.send(groups.into_iter().map(TargetGroup::flattened).collect())
                .is_ok()
        }));
        Provider { published, task }
    }

    fn api_server(kube: &FakeKube, yaml: &str) -> Provider {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = sd_config(dir.path(), &format!("api_server: {}\n{yaml}", kube.url()));
        Provider::start(config, no_cluster())
    }

    /// Waits for a publication for which `done` holds and returns it.
    async fn until(
        &mut self,
        what: &str,
        done: impl Fn(&[TargetGroup]) -> bool,
    ) -> Vec<TargetGroup> {
        let deadline = tokio::time::Instant::now() + EVENTUALLY_TIMEOUT;
        let mut last = None;
        loop {
            match tokio::time::timeout_at(deadline, self.published.recv()).await {
                Ok(Some(groups)) if done(&groups) => return groups,
                Ok(Some(groups)) => last = Some(groups),
                Ok(None) => panic!("the provider stopped while waiting for {what}"),
                Err(_) => panic!(
                    "no publication with {what} within {EVENTUALLY_TIMEOUT:?}; last: {last:#?}"
                ),
            }
        }
    }

    /// Asserts nothing is published for `quiet`.
    async fn publishes_nothing_for(&mut self, quiet: Duration) {
        if let Ok(Some(groups)) = tokio::time::timeout(quiet, self.published.recv()).await {
            panic!("expected no publication, got {groups:#?}");
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn no_cluster() -> InCluster {
    InCluster {
        host: None,
        port: None,
        dir: "/nonexistent".into(),
    }
}

/// The `__address__` of every group.
fn addresses(groups: &[TargetGroup]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| g.targets.iter().cloned())
        .collect()
}

fn pod(namespace: &str, name: &str, ip: &str, port: u16, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "app:1",
            "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_appear_change_and_vanish_as_the_cluster_changes() {
    let kube = FakeKube::start().await;
    kube.add(pod("default", "a", "10.1.0.1", 8080, json!({"app": "web"})));
    let mut provider = Provider::api_server(&kube, "role: pod");
    let groups = provider
        .until("pod a", |g| addresses(g) == ["10.1.0.1:8080"])
        .await;
    assert_eq!(groups[0].source, "pod/default/a");
    assert_eq!(groups[0].labels["__meta_kubernetes_pod_label_app"], "web");
    assert!(groups[0].file.is_none());

    kube.add(pod("default", "b", "10.1.0.2", 8080, json!({})));
    provider
        .until("pods a and b", |g| {
            addresses(g) == ["10.1.0.1:8080", "10.1.0.2:8080"]
        })
        .await;

    kube.modify_with(Resource::Pods, "default", "a", |p| {
        p["metadata"]["labels"]["app"] = json!("api")
    });
    provider
        .until("pod a relabelled", |g| {
            g.iter().any(|g| {
                g.labels
                    .get("__meta_kubernetes_pod_label_app")
                    .map(String::as_str)
                    == Some("api")
            })
        })
        .await;

    kube.delete(Resource::Pods, "default", "a");
    provider
        .until("pod a gone", |g| addresses(g) == ["10.1.0.2:8080"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_after_410_gone_drops_pods_deleted_meanwhile() {
    let kube = FakeKube::start().await;
    kube.add(pod("default", "a", "10.1.0.1", 8080, json!({})));
    kube.add(pod("default", "b", "10.1.0.2", 8080, json!({})));
    let mut provider = Provider::api_server(&kube, "role: pod");
    provider.until("both pods", |g| g.len() == 2).await;

    // The watch is cut; while it is down, a pod goes and the history is compacted, so the
    // resumed watch gets 410 Gone and the provider must list again.
    kube.compact();
    kube.drop_watches();
    kube.delete(Resource::Pods, "default", "a");
    kube.compact();
    provider
        .until("pod a gone after the re-list", |g| {
            addresses(g) == ["10.1.0.2:8080"]
        })
        .await;
    let lists = kube
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/pods" && !r.is_watch())
        .count();
    assert!(lists >= 2, "listed again: {:#?}", kube.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_reconnects_and_keeps_the_targets_meanwhile() {
    let kube = FakeKube::start().await;
    kube.add(pod("default", "a", "10.1.0.1", 8080, json!({})));
    let mut provider = Provider::api_server(&kube, "role: pod");
    provider.until("pod a", |g| g.len() == 1).await;

    let watches_before = kube.requests().iter().filter(|r| r.is_watch()).count();
    kube.drop_watches();
    provider
        .publishes_nothing_for(Duration::from_millis(1500))
        .await;
    kube.add(pod("default", "b", "10.1.0.2", 8080, json!({})));
    provider
        .until("pod b after reconnecting", |g| g.len() == 2)
        .await;
    assert!(kube.requests().iter().filter(|r| r.is_watch()).count() > watches_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_and_selectors_are_sent_to_the_api_server() {
    let kube = FakeKube::start().await;
    kube.add(pod("prod", "a", "10.1.0.1", 8080, json!({"app": "web"})));
    kube.add(pod("prod", "b", "10.1.0.2", 8080, json!({"app": "db"})));
    kube.add(pod("dev", "c", "10.1.0.3", 8080, json!({"app": "web"})));
    let mut provider = Provider::api_server(
        &kube,
        "role: pod\nnamespaces: {names: [prod]}\nselectors:\n  - {role: pod, label: 'app=web', field: 'status.phase=Running'}",
    );
    provider
        .until("only prod's web pod", |g| addresses(g) == ["10.1.0.1:8080"])
        .await;
    let list = kube
        .wait_for_request("listing prod's pods", EVENTUALLY_TIMEOUT, |r| {
            r.path == "/api/v1/namespaces/prod/pods"
        })
        .await;
    assert_eq!(list.param("labelSelector").as_deref(), Some("app=web"));
    assert_eq!(
        list.param("fieldSelector").as_deref(),
        Some("status.phase=Running")
    );
    assert!(
        kube.requests()
            .iter()
            .all(|r| !r.path.contains("/namespaces/dev/") && r.path != "/api/v1/pods"),
        "{:#?}",
        kube.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_reaches_the_api_server_and_a_wrong_one_publishes_nothing() {
    let kube = FakeKube::builder().bearer_token("s3cret").start().await;
    kube.add(pod("default", "a", "10.1.0.1", 8080, json!({})));
    let mut good = Provider::api_server(&kube, "role: pod\nauthorization: {credentials: s3cret}");
    good.until("pod a with the right token", |g| g.len() == 1)
        .await;

    let mut refused = Provider::api_server(&kube, "role: pod\nauthorization: {credentials: wrong}");
    kube.wait_for_request("a refused request", EVENTUALLY_TIMEOUT, |r| {
        r.authorization.as_deref() == Some("Bearer wrong")
    })
    .await;
    refused.publishes_nothing_for(Duration::from_secs(2)).await;
    assert!(!refused.task.is_finished(), "keeps retrying, never panics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_starts_refusing_leaves_the_last_targets_in_place() {
    let open = FakeKube::start().await;
    let addr = open.addr();
    open.add(pod("default", "a", "10.1.0.1", 8080, json!({})));
    let mut provider = Provider::api_server(&open, "role: pod");
    provider.until("pod a", |g| g.len() == 1).await;

    drop(open);
    // The old server's listener closes as its task ends.
    eventually(
        "the old server's port to be free",
        EVENTUALLY_TIMEOUT,
        || async {
            std::net::TcpListener::bind(addr)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let refusing = FakeKube::builder()
        .listen(addr)
        .bearer_token("other")
        .start()
        .await;
    refusing
        .wait_for_request(
            "the provider's retry, refused with 401",
            EVENTUALLY_TIMEOUT,
            |_| true,
        )
        .await;
    provider.publishes_nothing_for(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpointslices_carry_service_and_pod_labels_from_their_own_watches() {
    let kube = FakeKube::start().await;
    kube.load_all_fixtures();
    let mut provider = Provider::api_server(&kube, "role: endpointslice");
    let groups = provider
        .until("endpointslice targets with pod labels", |g| {
            g.iter()
                .any(|g| g.labels.contains_key("__meta_kubernetes_pod_name"))
                && g.iter()
                    .any(|g| g.labels.contains_key("__meta_kubernetes_service_name"))
        })
        .await;
    assert!(
        groups
            .iter()
            .all(|g| g.source.starts_with("endpointslice/"))
    );
    for path in [
        "/apis/discovery.k8s.io/v1/endpointslices",
        "/api/v1/services",
        "/api/v1/pods",
    ] {
        kube.wait_for_request(path, EVENTUALLY_TIMEOUT, |r| r.path == path)
            .await;
    }
}

/// Writes `name` into `dir` and returns its path as text.
fn write(dir: &Path, name: &str, content: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write test file");
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_uses_the_service_host_token_ca_and_own_namespace() {
    let pki = common::pki::Pki::new();
    let ca = pki.ca("cluster-ca");
    let server = pki.leaf(&ca, "kubernetes", 2);
    let kube = FakeKube::builder()
        .tls(&server.cert, &server.key)
        .bearer_token("sa-token")
        .start()
        .await;
    kube.add(pod("mine", "a", "10.1.0.1", 8080, json!({})));
    kube.add(pod("other", "b", "10.1.0.2", 8080, json!({})));
    let sa = tempfile::tempdir().expect("temp dir");
    write(sa.path(), "token", b"sa-token\n");
    write(sa.path(), "ca.crt", &std::fs::read(&ca.cert).expect("ca"));
    write(sa.path(), "namespace", b"mine");
    let in_cluster = InCluster {
        host: Some(kube.addr().ip().to_string()),
        port: Some(kube.addr().port().to_string()),
        dir: sa.path().to_path_buf(),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut provider = Provider::start(
        sd_config(dir.path(), "role: pod\nnamespaces: {own_namespace: true}"),
        in_cluster,
    );
    provider
        .until("the pod of its own namespace", |g| {
            addresses(g) == ["10.1.0.1:8080"]
        })
        .await;
    let request = kube
        .wait_for_request("a namespaced list", EVENTUALLY_TIMEOUT, |r| {
            r.path == "/api/v1/namespaces/mine/pods"
        })
        .await;
    assert_eq!(request.authorization.as_deref(), Some("Bearer sa-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_file_gives_server_and_credentials() {
    let kube = FakeKube::builder().basic_auth("admin", "pw").start().await;
    kube.add(pod("default", "a", "10.1.0.1", 8080, json!({})));
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: admin\n  user:\n    username: admin\n    password: pw\ncontexts:\n- name: test\n  context:\n    cluster: fake\n    user: admin\n",
        kube.url()
    );
    write(dir.path(), "kubeconfig", kubeconfig.as_bytes());
    let mut provider = Provider::start(
        sd_config(dir.path(), "role: pod\nkubeconfig_file: kubeconfig"),
        no_cluster(),
    );
    provider
        .until("pod a through the kubeconfig", |g| g.len() == 1)
        .await;
}

/// A pod serving `port` on loopback, as the fake cluster shows it.
fn loopback_pod(name: &str, port: u16) -> Value {
    pod("default", name, "127.0.0.1", port, json!({"app": "web"}))
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{address} has a port"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_no_longer_scraped_and_its_series_go_stale() {
    let targets = TargetServer::on_ports(2, "k8s_metric 1\n").await;
    let [kept, removed] = <[String; 2]>::try_from(targets.addresses()).expect("two ports");
    let kube = FakeKube::start().await;
    kube.add(loopback_pod("kept", port_of(&kept)));
    kube.add(loopback_pod("removed", port_of(&removed)));
    let config = ScrapeConfig::new(&[Job::new("pods").setting(&format!(
        "kubernetes_sd_configs:\n  - role: pod\n    api_server: {}\nrelabel_configs:\n  - source_labels: [__meta_kubernetes_pod_name]\n    target_label: pod",
        kube.url()
    ))]);
    let storage = FakeStorage::new().start().await;
    let _relay = Relay::with_storages(&[storage.url()])
        .scraping(&config)
        .start()
        .await;
    let of_pod = |pod: &str| -> Vec<Series> {
        storage
            .series("k8s_metric")
            .into_iter()
            .filter(|s| s.label("pod") == Some(pod))
            .collect()
    };
    eventually("both pods scraped", EVENTUALLY_TIMEOUT, || async {
        if !of_pod("kept").is_empty() && !of_pod("removed").is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", storage.series("k8s_metric")))
        }
    })
    .await;

    kube.delete(Resource::Pods, "default", "removed");
    eventually(
        "the deleted pod's series to end with a stale marker",
        EVENTUALLY_TIMEOUT,
        || async {
            let series = of_pod("removed");
            let stale = series.iter().all(|s| {
                s.samples
                    .last()
                    .is_some_and(|(_, v)| common::scrape::is_stale_marker(*v))
            });
            if !series.is_empty() && stale {
                Ok(())
            } else {
                Err(format!("{series:?}"))
            }
        },
    )
    .await;
    let removed_scrapes = targets.scrapes_of(&removed);
    let kept_before = of_pod("kept")[0].samples.len();
    eventually(
        "the kept pod scraped twice more",
        EVENTUALLY_TIMEOUT,
        || async {
            let n = of_pod("kept")[0].samples.len();
            if n >= kept_before + 2 {
                Ok(())
            } else {
                Err(format!("{n} samples"))
            }
        },
    )
    .await;
    assert!(
        targets.scrapes_of(&removed) <= removed_scrapes + 1,
        "the deleted pod is no longer scraped"
    );
    assert!(
        of_pod("kept")[0]
            .samples
            .iter()
            .all(|(_, v)| !common::scrape::is_stale_marker(*v)),
        "the kept pod got no stale marker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_label_no_rule_uses_updates_the_discovered_labels_and_keeps_the_loop() {
    let targets = TargetServer::on_ports(1, "k8s_metric 1\n").await;
    let address = targets.addresses().remove(0);
    let kube = FakeKube::start().await;
    kube.add(loopback_pod("web-1", port_of(&address)));
    let config = ScrapeConfig::new(&[Job::new("pods").setting(&format!(
        "kubernetes_sd_configs:\n  - role: pod\n    api_server: {}",
        kube.url()
    ))]);
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()])
        .scraping(&config)
        .start()
        .await;
    let app_label = || async {
        let json = relay.targets_json().await;
        json["data"]["activeTargets"]
            .as_array()
            .and_then(|active| active.first())
            .and_then(|t| t["discoveredLabels"]["__meta_kubernetes_pod_label_app"].as_str())
            .map(str::to_owned)
    };
    eventually(
        "the pod listed with app=web",
        EVENTUALLY_TIMEOUT,
        || async {
            match app_label().await.as_deref() {
                Some("web") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    kube.modify_with(Resource::Pods, "default", "web-1", |pod| {
        pod["metadata"]["labels"]["app"] = json!("web-canary");
    });
    eventually(
        "the new label on the targets page",
        EVENTUALLY_TIMEOUT,
        || async {
            match app_label().await.as_deref() {
                Some("web-canary") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let before = targets.scrapes_of(&address);
    eventually("the target scraped again", EVENTUALLY_TIMEOUT, || async {
        let n = targets.scrapes_of(&address);
        if n > before {
            Ok(())
        } else {
            Err(format!("{n} scrapes"))
        }
    })
    .await;
    let series = storage.series("k8s_metric");
    assert!(
        series.iter().all(|s| s
            .samples
            .iter()
            .all(|(_, v)| !common::scrape::is_stale_marker(*v))),
        "the loop went on (no stale marker in between): {series:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_targets_past_the_flag_are_counted_but_not_listed() {
    let kube = FakeKube::start().await;
    for k in 0..5 {
        kube.add(loopback_pod(&format!("web-{k}"), 20_000 + k));
    }
    // Every pod but web-0 is dropped by relabeling.
    let config = ScrapeConfig::new(&[Job::new("pods").setting(&format!(
        "kubernetes_sd_configs:\n  - role: pod\n    api_server: {}\nrelabel_configs:\n  - source_labels: [__meta_kubernetes_pod_name]\n    regex: web-0\n    action: keep",
        kube.url()
    ))]);
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()])
        .scraping(&config)
        .arg("--scrape-max-dropped-targets=2")
        .start()
        .await;
    let json = eventually("four pods dropped", EVENTUALLY_TIMEOUT, || async {
        let json = relay.targets_json().await;
        if json["data"]["droppedTargetCounts"]["pods"] == 4 {
            Ok(json)
        } else {
            Err(json["data"]["droppedTargetCounts"].to_string())
        }
    })
    .await;
    let listed = json["data"]["droppedTargets"].as_array().map(Vec::len);
    assert_eq!(listed, Some(2), "{json}");
    assert_eq!(
        json["data"]["activeTargets"].as_array().map(Vec::len),
        Some(1)
    );
}
