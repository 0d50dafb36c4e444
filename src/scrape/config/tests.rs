//! Behaviour of the scrape config loader, one test per rule.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// A temporary directory holding `prometheus.yml` and whatever files a test adds.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().expect("temp dir"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, text).expect("write test file");
        path
    }

    fn load(&self, yaml: &str) -> ScrapeConfig {
        let path = self.write("prometheus.yml", yaml);
        load(&path).unwrap_or_else(|e| panic!("config should load: {e}"))
    }

    fn error(&self, yaml: &str) -> String {
        let path = self.write("prometheus.yml", yaml);
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

fn job<'a>(config: &'a ScrapeConfig, name: &str) -> &'a JobConfig {
    config
        .jobs
        .iter()
        .find(|j| j.job_name == name)
        .unwrap_or_else(|| panic!("no job {name} in {config:?}"))
}

#[test]
fn unknown_key_in_scrape_config_names_file_line_and_key() {
    let dir = Dir::new();
    let err = dir.error(
        "scrape_configs:\n  - job_name: node\n    scrape_intreval: 15s\n    static_configs:\n      - targets: [a:1]\n",
    );
    assert!(err.contains("prometheus.yml:3:"), "{err}");
    assert!(err.contains("scrape_configs[0].scrape_intreval"), "{err}");
    assert!(err.contains("unknown field `scrape_intreval`"), "{err}");
    assert!(
        err.contains("scrape_interval"),
        "lists the known keys: {err}"
    );
}

#[test]
fn unknown_key_in_static_config_names_file_line_and_key() {
    let dir = Dir::new();
    let err = dir.error(
        "scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [a:1]\n        label: {a: b}\n",
    );
    assert!(err.contains("prometheus.yml:5:"), "{err}");
    assert!(
        err.contains("scrape_configs[0].static_configs[0].label"),
        "{err}"
    );
    assert!(err.contains("unknown field `label`"), "{err}");
}

#[test]
fn duplicate_key_in_scrape_config_is_an_error() {
    let dir = Dir::new();
    let err = dir.error("scrape_configs:\n  - job_name: a\n    scheme: http\n    scheme: https\n");
    assert!(err.contains("prometheus.yml:4:"), "{err}");
    assert!(
        err.contains("scrape_configs[0]") && err.contains("`scheme`"),
        "{err}"
    );
}

#[test]
fn rule_files_section_is_ignored_with_a_warning() {
    let dir = Dir::new();
    let config = dir.load(
        "global:\n  evaluation_interval: 30s\nrule_files:\n  - rules/*.yml\nalerting:\n  alertmanagers: []\nremote_write:\n  - url: http://x/api/v1/write\nscrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['a:1']}]\n",
    );
    assert_eq!(config.jobs.len(), 1);
    assert_eq!(
        config.warnings.len(),
        1,
        "one warning: {:?}",
        config.warnings
    );
    let warning = &config.warnings[0];
    for part in [
        "rule_files",
        "alerting",
        "remote_write",
        "global.evaluation_interval",
    ] {
        assert!(warning.contains(part), "{part} in {warning}");
    }
}

#[test]
fn a_file_without_ignored_parts_has_no_warning() {
    let dir = Dir::new();
    let config = dir.load("scrape_configs:\n  - job_name: a\n");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn prometheus_job_keys_promrelay_does_not_use_are_named_in_the_warning() {
    let dir = Dir::new();
    let config = dir.load(
        "scrape_configs:\n  - job_name: a\n    follow_redirects: false\n    enable_http2: true\n",
    );
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0].contains("job \"a\": follow_redirects, enable_http2"),
        "{:?}",
        config.warnings
    );
}

#[test]
fn scrape_timeout_longer_than_interval_is_an_error() {
    let dir = Dir::new();
    let err = dir.error(
        "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
    );
    assert!(err.contains("prometheus.yml:4:"), "{err}");
    assert!(err.contains("scrape_configs[0].scrape_timeout"), "{err}");
    assert!(err.contains("10s is longer than"), "{err}");
}

#[test]
fn global_scrape_timeout_longer_than_global_interval_is_an_error() {
    let dir = Dir::new();
    let err = dir.error("global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n");
    assert!(err.contains("prometheus.yml:3:"), "{err}");
    assert!(err.contains("global.scrape_timeout"), "{err}");
}

#[test]
fn inherited_timeout_is_cut_to_a_shorter_job_interval() {
    let dir = Dir::new();
    let config = dir.load(
        "global:\n  scrape_interval: 30s\n  scrape_timeout: 20s\nscrape_configs:\n  - job_name: fast\n    scrape_interval: 5s\n  - job_name: slow\n",
    );
    assert_eq!(job(&config, "fast").scrape_timeout, Duration::from_secs(5));
    assert_eq!(
        job(&config, "slow").scrape_interval,
        Duration::from_secs(30)
    );
    assert_eq!(job(&config, "slow").scrape_timeout, Duration::from_secs(20));
}

#[test]
fn prometheus_defaults_apply_when_keys_are_absent() {
    let dir = Dir::new();
    let config = dir.load("scrape_configs:\n  - job_name: a\n");
    let a = job(&config, "a");
    assert_eq!(a.scrape_interval, Duration::from_secs(60));
    assert_eq!(a.scrape_timeout, Duration::from_secs(10));
    assert_eq!(a.metrics_path, "/metrics");
    assert_eq!(a.scheme, Scheme::Http);
    assert!(a.honor_timestamps);
    assert!(!a.honor_labels);
    assert_eq!(
        (a.sample_limit, a.label_limit, a.body_size_limit),
        (0, 0, 0)
    );
    assert_eq!(a.auth, ScrapeAuth::None);
    assert_eq!(config.global, GlobalConfig::default());
}

#[test]
fn duplicate_job_name_is_an_error_naming_both() {
    let dir = Dir::new();
    let err = dir.error("scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: a\n");
    assert!(err.contains("prometheus.yml:4:"), "{err}");
    assert!(err.contains("scrape_configs[2].job_name"), "{err}");
    assert!(err.contains("scrape_configs[0]"), "{err}");
}

#[test]
fn missing_job_name_is_an_error() {
    let dir = Dir::new();
    let err = dir.error("scrape_configs:\n  - scrape_interval: 5s\n");
    assert!(err.contains("scrape_configs[0]"), "{err}");
    assert!(err.contains("job_name"), "{err}");
}

#[test]
fn proxy_url_is_refused_rather_than_ignored() {
    let dir = Dir::new();
    let err = dir.error("scrape_configs:\n  - job_name: a\n    proxy_url: http://proxy:3128\n");
    assert!(err.contains("prometheus.yml:3:"), "{err}");
    assert!(err.contains("proxy_url"), "{err}");
}

#[test]
fn scrape_config_files_is_refused() {
    let dir = Dir::new();
    let err = dir.error("scrape_config_files: [more/*.yml]\n");
    assert!(err.contains("scrape_config_files"), "{err}");
}

#[test]
fn secrets_are_read_from_files_trimmed_and_never_shown_in_debug() {
    let dir = Dir::new();
    dir.write("password", "hunter2\n");
    dir.write("token", "  s3cr3t-token \n");
    let config = dir.load(
        "scrape_configs:\n  - job_name: a\n    basic_auth:\n      username: u\n      password_file: password\n  - job_name: b\n    authorization:\n      credentials_file: token\n  - job_name: c\n    bearer_token: plain-token\n    tls_config:\n      key: PRIVATE-KEY-TEXT\n      cert: CERT-TEXT\n",
    );
    match &job(&config, "a").auth {
        ScrapeAuth::Basic { username, password } => {
            assert_eq!(username, "u");
            assert_eq!(password.expose(), "hunter2");
        }
        other => panic!("expected basic auth, got {other:?}"),
    }
    match &job(&config, "b").auth {
        ScrapeAuth::Authorization { kind, credentials } => {
            assert_eq!(kind, "Bearer");
            assert_eq!(credentials.expose(), "s3cr3t-token");
        }
        other => panic!("expected authorization, got {other:?}"),
    }
    let debug = format!("{config:?}");
    for secret in ["hunter2", "s3cr3t-token", "plain-token", "PRIVATE-KEY-TEXT"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
}

#[test]
fn unreadable_password_file_names_the_key_and_the_file() {
    let dir = Dir::new();
    let err = dir.error(
        "scrape_configs:\n  - job_name: a\n    basic_auth:\n      username: u\n      password_file: missing-file\n",
    );
    assert!(err.contains("prometheus.yml:5:"), "{err}");
    assert!(
        err.contains("scrape_configs[0].basic_auth.password_file"),
        "{err}"
    );
    assert!(err.contains("missing-file"), "{err}");
}

#[test]
fn two_authentication_methods_are_an_error() {
    let dir = Dir::new();
    let err = dir.error(
        "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p}\n    bearer_token: t\n",
    );
    assert!(err.contains("basic_auth and bearer_token"), "{err}");
    assert!(
        !err.contains(": p") && !err.contains(" t "),
        "no secret shown: {err}"
    );
}

#[test]
fn body_size_limit_uses_prometheus_units() {
    let dir = Dir::new();
    let config = dir.load(
        "scrape_configs:\n  - job_name: a\n    body_size_limit: 10MB\n  - job_name: b\n    body_size_limit: 512KiB\n",
    );
    assert_eq!(job(&config, "a").body_size_limit, 10 << 20);
    assert_eq!(job(&config, "b").body_size_limit, 512 << 10);
    let err = dir.error("scrape_configs:\n  - job_name: a\n    body_size_limit: 10XB\n");
    assert!(err.contains("scrape_configs[0].body_size_limit"), "{err}");
    assert!(err.contains("prometheus.yml:3:"), "{err}");
}

#[test]
fn invalid_relabel_rule_names_file_line_and_key() {
    let dir = Dir::new();
    let err = dir.error(
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: hashmod\n        target_label: shard\n",
    );
    assert!(err.contains("prometheus.yml:"), "{err}");
    assert!(
        err.contains("scrape_configs[0].relabel_configs[0]"),
        "{err}"
    );
    assert!(err.contains("modulus"), "{err}");
}

#[test]
fn invalid_label_name_in_static_config_is_an_error() {
    let dir = Dir::new();
    let err = dir.error(
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [a:1]\n        labels: {bad-name: x}\n",
    );
    assert!(err.contains("prometheus.yml:5:"), "{err}");
    assert!(
        err.contains("scrape_configs[0].static_configs[0].labels"),
        "{err}"
    );
    assert!(err.contains("bad-name"), "{err}");
}

#[test]
fn static_target_with_a_path_is_an_error_without_relabel_configs() {
    let dir = Dir::new();
    let err = dir.error(
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://a:1/metrics']\n",
    );
    assert!(err.contains("prometheus.yml:4:"), "{err}");
    assert!(err.contains("not a valid host:port"), "{err}");
    // With relabel rules, a URL-like target can be rewritten (the blackbox exporter pattern).
    dir.load(
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://a:1/metrics']\n    relabel_configs:\n      - source_labels: [__address__]\n        target_label: __param_target\n",
    );
}

#[test]
fn file_sd_pattern_must_end_in_json_or_yaml() {
    let dir = Dir::new();
    let err = dir.error(
        "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: [targets/*.txt]\n",
    );
    assert!(
        err.contains("scrape_configs[0].file_sd_configs[0].files"),
        "{err}"
    );
    assert!(err.contains(".json, .yml or .yaml"), "{err}");
    let err = dir.error(
        "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['*/targets.json']\n",
    );
    assert!(err.contains("only in the file name"), "{err}");
}

#[test]
fn file_sd_paths_resolve_against_the_config_directory() {
    let dir = Dir::new();
    let config = dir.load(
        "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: [sd/../targets/*.json, /abs/x.yml]\n        refresh_interval: 1m\n  - job_name: b\n    file_sd_configs:\n      - files: [b.yaml]\n",
    );
    let sd = &job(&config, "a").file_sd_configs[0];
    assert_eq!(sd.refresh_interval, Duration::from_secs(60));
    let root = dir.0.path();
    assert_eq!(sd.files[0].path, clean_path(&root.join("targets/*.json")));
    assert_eq!(sd.files[1].path, PathBuf::from("/abs/x.yml"));
    assert!(sd.files[0].absolute.is_absolute());
    assert_eq!(
        job(&config, "b").file_sd_configs[0].refresh_interval,
        DEFAULT_FILE_SD_REFRESH_INTERVAL
    );
}

#[test]
fn clean_path_matches_go_filepath_clean() {
    for (input, want) in [
        ("a/b/../c", "a/c"),
        ("./a//b/.", "a/b"),
        ("/../a", "/a"),
        ("../a", "../a"),
        ("a/..", "."),
        ("", "."),
        ("/", "/"),
    ] {
        assert_eq!(clean_path(Path::new(input)), PathBuf::from(want), "{input}");
    }
}

#[test]
fn scalar_label_values_and_params_are_read_as_text() {
    let dir = Dir::new();
    let config = dir.load(
        "scrape_configs:\n  - job_name: a\n    params:\n      module: [http_2xx]\n      n: [5]\n    static_configs:\n      - targets: [a:1]\n        labels: {port: 9100, enabled: true}\n",
    );
    let a = job(&config, "a");
    assert_eq!(a.params["n"], vec!["5".to_owned()]);
    assert_eq!(a.static_configs[0].labels["port"], "9100");
    assert_eq!(a.static_configs[0].labels["enabled"], "true");
}

#[test]
fn a_typical_prometheus_config_loads() {
    let dir = Dir::new();
    dir.write("ca.pem", "not really a certificate, only checked readable");
    let config = dir.load(
        r#"# my global config
global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels:
    monitor: codelab
    region: eu-west-1

alerting:
  alertmanagers:
    - static_configs:
        - targets: ['alertmanager:9093']

rule_files:
  - "first_rules.yml"

scrape_configs:
  - job_name: "prometheus"
    static_configs:
      - targets: ["localhost:9090"]

  - job_name: node
    scrape_interval: 1m30s
    scrape_timeout: 30s
    scheme: https
    honor_labels: true
    honor_timestamps: false
    tls_config:
      ca_file: ca.pem
      insecure_skip_verify: false
      min_version: TLS12
    file_sd_configs:
      - files: ['targets/nodes-*.json', 'targets/*.yml']
    relabel_configs:
      - source_labels: [__meta_filepath]
        regex: '.*/nodes-(.*)\.json'
        target_label: group
      - action: labeldrop
        regex: tmp_.*
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'go_.*'
        action: drop
    sample_limit: 10000
    label_limit: 64

  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: [https://example.com, https://example.org]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: blackbox:9115
"#,
    );
    assert_eq!(config.jobs.len(), 3);
    assert_eq!(config.global.scrape_interval, Duration::from_secs(15));
    assert_eq!(config.global.external_labels["region"], "eu-west-1");
    let node = job(&config, "node");
    assert_eq!(node.scrape_interval, Duration::from_secs(90));
    assert_eq!(node.scheme, Scheme::Https);
    assert!(node.honor_labels && !node.honor_timestamps);
    assert_eq!(node.tls.min_version.as_deref(), Some("TLS12"));
    assert_eq!(node.tls.ca_file, Some(dir.path("ca.pem")));
    assert_eq!(node.relabel_configs.configs().len(), 2);
    assert_eq!(node.metric_relabel_configs.compiled().len(), 1);
    assert_eq!(node.sample_limit, 10_000);
    assert_eq!(
        job(&config, "prometheus").scrape_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(job(&config, "blackbox").params["module"], vec!["http_2xx"]);
    assert_eq!(config.warnings.len(), 1);
}

/// A job with `tls_config` holding `settings` (one `key: value` a line, six spaces in).
fn tls_job(settings: &str) -> String {
    format!(
        "scrape_configs:\n  - job_name: secure\n    scheme: https\n    tls_config:\n{settings}    static_configs:\n      - targets: [a:1]\n"
    )
}

#[test]
fn tls_min_and_max_version_are_read() {
    let dir = Dir::new();
    let config = dir.load(&tls_job(
        "      min_version: TLS12\n      max_version: TLS13\n",
    ));
    let tls = &job(&config, "secure").tls;
    assert_eq!(tls.min_version.as_deref(), Some("TLS12"));
    assert_eq!(tls.max_version.as_deref(), Some("TLS13"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn unknown_tls_version_names_file_line_and_key() {
    let dir = Dir::new();
    let err = dir.error(&tls_job("      min_version: TLS1.2\n"));
    assert!(err.contains("prometheus.yml:5:"), "{err}");
    assert!(
        err.contains("scrape_configs[0].tls_config.min_version"),
        "{err}"
    );
    assert!(err.contains("TLS12"), "names the valid spellings: {err}");
}

// rustls speaks TLS 1.2 and 1.3 only: a client capped at 1.1 could never connect, so the
// config is refused where it is written rather than failing every scrape.
#[test]
fn tls_max_version_older_than_tls12_is_refused() {
    let dir = Dir::new();
    let err = dir.error(&tls_job("      max_version: TLS11\n"));
    assert!(err.contains("prometheus.yml:5:"), "{err}");
    assert!(
        err.contains("scrape_configs[0].tls_config.max_version"),
        "{err}"
    );
    assert!(err.contains("TLS12 and TLS13"), "{err}");
}

#[test]
fn tls_max_version_older_than_min_version_is_refused() {
    let dir = Dir::new();
    let err = dir.error(&tls_job(
        "      min_version: TLS13\n      max_version: TLS12\n",
    ));
    assert!(err.contains("prometheus.yml:6:"), "{err}");
    assert!(
        err.contains("scrape_configs[0].tls_config.max_version"),
        "{err}"
    );
    assert!(err.contains("min_version"), "{err}");
}

// Every connection is TLS12 or newer, which keeps to a minimum of TLS10; the warning says that
// a target that only speaks TLS10 will fail.
#[test]
fn tls_min_version_older_than_tls12_loads_with_a_warning() {
    let dir = Dir::new();
    let config = dir.load(&tls_job("      min_version: TLS10\n"));
    assert_eq!(
        job(&config, "secure").tls.min_version.as_deref(),
        Some("TLS10")
    );
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(
        config.warnings[0].contains("\"secure\"")
            && config.warnings[0].contains("min_version TLS10")
            && config.warnings[0].contains("TLS12 or TLS13 only"),
        "{:?}",
        config.warnings
    );
}

// Before: server_name was read and then never used, so scrapes silently sent the target's host
// as SNI and verified the certificate against it.
#[test]
fn tls_server_name_is_refused_naming_file_line_and_key() {
    let dir = Dir::new();
    let err = dir.error(&tls_job(
        "      insecure_skip_verify: false\n      server_name: nodes.internal\n",
    ));
    assert!(err.contains("prometheus.yml:6:"), "{err}");
    assert!(
        err.contains("scrape_configs[0].tls_config.server_name"),
        "{err}"
    );
    assert!(err.contains("SNI"), "{err}");
}

#[test]
fn tls_empty_server_name_is_as_if_absent() {
    let dir = Dir::new();
    let config = dir.load(&tls_job("      server_name: \"\"\n"));
    assert_eq!(job(&config, "secure").tls, ScrapeTls::default());
}

#[test]
fn empty_file_has_no_jobs() {
    let dir = Dir::new();
    let config = dir.load("# nothing yet\n");
    assert!(config.jobs.is_empty());
    assert_eq!(config.global, GlobalConfig::default());
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let dir = Dir::new();
    let err = load(&dir.path("absent.yml")).expect_err("missing file");
    assert!(matches!(err, ScrapeConfigError::ReadFile { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.yml"), "{err}");
}
