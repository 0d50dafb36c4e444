//! `kubernetes_sd_configs` loading: Prometheus' checks, one test per rule.

use std::fs;
use std::path::PathBuf;

use super::*;

/// A temporary directory holding `prometheus.yml` and the files a test adds.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().expect("temp dir"))
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        fs::write(&path, text).expect("write test file");
        path
    }

    /// The first kubernetes_sd_config of a job whose entry is `sd` (indented as a list item).
    fn load(&self, sd: &str) -> KubernetesSdConfig {
        let path = self.write("prometheus.yml", &config(sd));
        let mut config = load(&path).unwrap_or_else(|e| panic!("config should load: {e}"));
        config.jobs.remove(0).kubernetes_sd_configs.remove(0)
    }

    fn error(&self, sd: &str) -> String {
        let path = self.write("prometheus.yml", &config(sd));
        match load(&path) {
            Ok(config) => panic!("config should be refused: {config:?}"),
            Err(e) => {
                let text = e.to_string();
                assert!(!text.contains('\n'), "one line: {text}");
                text
            }
        }
    }
}

fn config(sd: &str) -> String {
    let body: String = sd.lines().map(|l| format!("        {l}\n")).collect();
    format!("scrape_configs:\n  - job_name: k8s\n    kubernetes_sd_configs:\n      -\n{body}")
}

#[test]
fn role_alone_means_in_cluster_all_namespaces() {
    let sd = Dir::new().load("role: pod");
    assert_eq!(sd.role, KubernetesRole::Pod);
    assert_eq!(sd.connection, KubernetesConnection::InCluster);
    assert!(sd.namespaces.is_empty() && !sd.own_namespace);
    assert!(sd.selectors.is_empty());
    assert!(!sd.attach_node_metadata);
}

#[test]
fn every_prometheus_role_is_read() {
    for role in KubernetesRole::ALL {
        let sd = Dir::new().load(&format!("role: {}", role.as_str()));
        assert_eq!(sd.role, role);
    }
}

#[test]
fn missing_role_is_refused_naming_job_and_key() {
    let err = Dir::new().error("api_server: http://127.0.0.1:1");
    assert!(
        err.contains("scrape_configs[0].kubernetes_sd_configs[0].role"),
        "{err}"
    );
    assert!(err.contains("role missing"), "{err}");
}

#[test]
fn unknown_role_is_refused_with_its_line() {
    let err = Dir::new().error("role: pods");
    assert!(err.contains("prometheus.yml:5:"), "{err}");
    assert!(err.contains("unknown Kubernetes SD role \"pods\""), "{err}");
}

#[test]
fn api_server_with_auth_and_tls_is_read() {
    let dir = Dir::new();
    dir.write("ca.pem", "not checked here");
    let sd = dir.load(
        "role: node\napi_server: https://10.0.0.1:6443\nbasic_auth: {username: u, password: p}\ntls_config: {ca_file: ca.pem, server_name: kubernetes}",
    );
    let KubernetesConnection::ApiServer(api) = sd.connection else {
        panic!("api_server connection expected");
    };
    let ApiServerConfig { url, auth, tls } = *api;
    assert_eq!(url.as_str(), "https://10.0.0.1:6443/");
    assert!(matches!(auth, ScrapeAuth::Basic { ref username, .. } if username == "u"));
    assert_eq!(tls.server_name.as_deref(), Some("kubernetes"));
    assert_eq!(tls.ca_file, Some(dir.0.path().join("ca.pem")));
}

#[test]
fn bearer_token_file_is_read_at_load_time() {
    let dir = Dir::new();
    dir.write("token", "s3cret\n");
    let sd = dir.load("role: pod\napi_server: http://127.0.0.1:1\nbearer_token_file: token");
    let KubernetesConnection::ApiServer(api) = sd.connection else {
        panic!("api_server connection expected");
    };
    let ScrapeAuth::Authorization { kind, credentials } = api.auth else {
        panic!("authorization expected");
    };
    assert_eq!(kind, "Bearer");
    assert_eq!(credentials.expose(), "s3cret");
}

#[test]
fn api_server_that_is_not_an_http_url_is_refused() {
    let err = Dir::new().error("role: pod\napi_server: 10.0.0.1:6443");
    assert!(err.contains("kubernetes_sd_configs[0].api_server"), "{err}");
    assert!(err.contains("not an http or https URL"), "{err}");
}

#[test]
fn api_server_and_kubeconfig_file_are_exclusive() {
    let dir = Dir::new();
    dir.write("kubeconfig", "apiVersion: v1\n");
    let err = dir.error("role: pod\napi_server: http://a:1\nkubeconfig_file: kubeconfig");
    assert!(
        err.contains("cannot use 'kubeconfig_file' and 'api_server' simultaneously"),
        "{err}"
    );
}

#[test]
fn kubeconfig_file_is_resolved_against_the_config_directory() {
    let dir = Dir::new();
    let written = dir.write("kubeconfig", "apiVersion: v1\n");
    let sd = dir.load("role: pod\nkubeconfig_file: kubeconfig");
    assert_eq!(sd.connection, KubernetesConnection::Kubeconfig(written));
}

#[test]
fn missing_kubeconfig_file_is_refused_at_load_time() {
    let err = Dir::new().error("role: pod\nkubeconfig_file: nowhere");
    assert!(
        err.contains("kubernetes_sd_configs[0].kubeconfig_file"),
        "{err}"
    );
}

#[test]
fn http_client_keys_with_kubeconfig_file_are_refused() {
    let dir = Dir::new();
    dir.write("kubeconfig", "apiVersion: v1\n");
    let err = dir.error("role: pod\nkubeconfig_file: kubeconfig\nbearer_token: t");
    assert!(
        err.contains("custom HTTP client configuration together with 'kubeconfig_file'"),
        "{err}"
    );
}

#[test]
fn http_client_keys_without_api_server_are_refused() {
    let err = Dir::new().error("role: pod\ntls_config: {insecure_skip_verify: true}");
    assert!(err.contains("kubernetes_sd_configs[0].tls_config"), "{err}");
    assert!(
        err.contains("provide the 'api_server' URL explicitly"),
        "{err}"
    );
}

#[test]
fn own_namespace_is_in_cluster_only() {
    let sd = Dir::new().load("role: pod\nnamespaces: {own_namespace: true, names: [a, b]}");
    assert!(sd.own_namespace);
    assert_eq!(sd.namespaces, ["a", "b"]);
    let err =
        Dir::new().error("role: pod\napi_server: http://a:1\nnamespaces: {own_namespace: true}");
    assert!(
        err.contains("cannot use 'api_server' and 'namespaces.own_namespace' simultaneously"),
        "{err}"
    );
}

#[test]
fn selectors_are_kept_per_role() {
    let sd = Dir::new().load(
        "role: endpoints\nselectors:\n  - {role: pod, label: 'app=web'}\n  - {role: endpoints, field: 'metadata.name=x'}",
    );
    let pod = sd.selector(KubernetesRole::Pod).expect("pod selector");
    assert_eq!((pod.label.as_str(), pod.field.as_str()), ("app=web", ""));
    let eps = sd
        .selector(KubernetesRole::Endpoints)
        .expect("endpoints selector");
    assert_eq!(eps.field, "metadata.name=x");
    assert!(sd.selector(KubernetesRole::Service).is_none());
}

#[test]
fn selector_of_a_kind_the_role_does_not_watch_is_refused() {
    let err = Dir::new().error("role: pod\nselectors:\n  - {role: service, label: 'a=b'}");
    assert!(
        err.contains("kubernetes_sd_configs[0].selectors[0].role"),
        "{err}"
    );
    assert!(
        err.contains("pod role supports only pod, node selectors"),
        "{err}"
    );
}

#[test]
fn duplicated_selector_role_is_refused() {
    let err = Dir::new().error(
        "role: node\nselectors:\n  - {role: node, label: 'a=b'}\n  - {role: node, field: 'c=d'}",
    );
    assert!(err.contains("selectors[1].role"), "{err}");
    assert!(err.contains("duplicated selector role: node"), "{err}");
}

#[test]
fn selector_with_an_empty_term_is_refused() {
    let err = Dir::new().error("role: pod\nselectors:\n  - {role: pod, label: 'a=b,,c=d'}");
    assert!(err.contains("selectors[0].label"), "{err}");
    assert!(err.contains("empty term"), "{err}");
}

#[test]
fn attach_metadata_node_is_read_and_other_kinds_refused() {
    let sd = Dir::new().load("role: pod\nattach_metadata: {node: true}");
    assert!(sd.attach_node_metadata);
    let err = Dir::new().error("role: pod\nattach_metadata: {namespace: true}");
    assert!(err.contains("attach_metadata.namespace"), "{err}");
    assert!(err.contains("only node metadata"), "{err}");
}

#[test]
fn unsupported_http_client_key_is_an_unknown_field() {
    let err = Dir::new().error("role: pod\napi_server: http://a:1\nproxy_url: http://p:1");
    assert!(err.contains("unknown field `proxy_url`"), "{err}");
}

#[test]
fn other_discoveries_stay_refused() {
    let dir = Dir::new();
    let path = dir.write(
        "prometheus.yml",
        "scrape_configs:\n  - job_name: c\n    consul_sd_configs: [{server: 'a:1'}]\n",
    );
    let err = load(&path)
        .expect_err("consul_sd_configs is not supported")
        .to_string();
    assert!(
        err.contains("does not support `consul_sd_configs`"),
        "{err}"
    );
}

#[test]
fn tls_version_the_client_cannot_keep_is_refused() {
    let err =
        Dir::new().error("role: pod\napi_server: https://a:1\ntls_config: {min_version: TLS13}");
    assert!(
        err.contains("kubernetes_sd_configs[0].tls_config.min_version"),
        "{err}"
    );
    let sd =
        Dir::new().load("role: pod\napi_server: https://a:1\ntls_config: {min_version: TLS12}");
    assert!(matches!(sd.connection, KubernetesConnection::ApiServer(_)));
}
