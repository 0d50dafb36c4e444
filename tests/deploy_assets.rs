//! The operating assets in `deploy/` say only what is true of promrelay: every metric the
//! Grafana dashboard (`deploy/grafana/promrelay.json`) and the alerting rules
//! (`deploy/prometheus/promrelay-alerts.yml`) query is one a running promrelay exports on
//! `/metrics`, and the rules pass `promtool check rules` and their own `promtool test rules`.
//! The Kubernetes fleet in `deploy/kubernetes/` holds together as written: member count equal to
//! `replicas`, member number from the pod name, every `PROMRELAY_*` variable one promrelay reads,
//! config files where the ConfigMap is mounted and loadable by promrelay's own loaders, the queue
//! volume where the image keeps its data, the kustomization listing every manifest. (Their
//! schemas are checked by `kubernetes-validate` in `scripts/test.sh`.)
//!
//! Metric names are taken from PromQL by a small tokenizer ([`metric_names`]) that knows what is
//! not a metric: function and aggregation names (an identifier followed by `(`, or by `by` /
//! `without`), label matchers in `{...}`, label lists after `by`, `without`, `on`, `ignoring`,
//! `group_left` and `group_right`, ranges and durations in `[...]`, keywords, numbers, strings
//! and Grafana's `$variables`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::relay::{FakeStorage, Pushes, Relay, unused_port};

/// The repository root (where `deploy/` is).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// PromQL words that are never metric names, besides [`LABEL_LIST_KEYWORDS`].
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "offset", "bool", "atan2", "inf", "nan",
];

/// Keywords followed by a parenthesised list of label names (never metric names either).
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects, in order of appearance, without repeats.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_past(&chars, i, '}'),
            '[' => i = skip_past(&chars, i, ']'),
            '$' => {
                // A Grafana variable: `$instance`, `${datasource}`, `$__rate_interval`.
                i += 1;
                if chars.get(i) == Some(&'{') {
                    i = skip_past(&chars, i, '}');
                } else {
                    while i < chars.len() && is_ident_char(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                // A number or a duration (`5m`, `1.5e3`, `0x1f`): digits and letters together.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = next_non_space(&chars, i);
                let lower = word.to_ascii_lowercase();
                if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                    if next.is_some_and(|(_, c)| c == '(') {
                        i = skip_past(&chars, next.map_or(i, |(j, _)| j), ')');
                    }
                    continue;
                }
                if KEYWORDS.contains(&lower.as_str()) {
                    continue;
                }
                let called = match next {
                    Some((_, '(')) => true,
                    // `sum by (...) (...)`, `topk without (...) (...)`.
                    Some((j, _)) => {
                        let rest: String = chars[j..].iter().take(8).collect();
                        let rest = rest.to_ascii_lowercase();
                        ["by ", "by(", "without ", "without("]
                            .iter()
                            .any(|k| rest.starts_with(k))
                    }
                    None => false,
                };
                if !called && !names.contains(&word) {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn next_non_space(chars: &[char], from: usize) -> Option<(usize, char)> {
    chars[from..]
        .iter()
        .enumerate()
        .find(|(_, c)| !c.is_whitespace())
        .map(|(k, c)| (from + k, *c))
}

/// The index after the `close` that ends the bracket opened at `open`, strings inside skipped.
fn skip_past(chars: &[char], open: usize, close: char) -> usize {
    let opener = chars[open];
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == opener => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

/// The index after the string literal starting at `start` (backslash escapes honoured).
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// The query inside a Grafana variable's `label_values(QUERY, label)` (or the whole text).
fn variable_query(definition: &str) -> &str {
    let inner = definition
        .trim()
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(definition);
    // The label is after the last comma outside braces; matchers may hold commas.
    match inner.rfind(',') {
        Some(comma) if !inner[comma..].contains('}') => &inner[..comma],
        _ => inner,
    }
}

/// Every PromQL query of the dashboard with where it is: panel targets and variable queries.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: serde_json::Value = serde_json::from_str(&read("deploy/grafana/promrelay.json"))
        .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    let mut panels: Vec<&serde_json::Value> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels is a list") {
        panels.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
    }
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            queries.push((format!("panel {title:?}"), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating list")
    {
        if variable["type"] == "query" {
            let definition = variable["definition"]
                .as_str()
                .expect("a query variable has a definition");
            queries.push((
                format!("variable {}", variable["name"]),
                variable_query(definition).to_owned(),
            ));
        }
    }
    queries
}

/// Every alerting rule's expression with its alert name.
fn rule_expressions() -> Vec<(String, String)> {
    let rules: serde_json::Value =
        serde_saphyr::from_str(&read("deploy/prometheus/promrelay-alerts.yml"))
            .expect("rules are YAML");
    let mut out = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            out.push((format!("alert {name}"), expr.to_owned()));
        }
    }
    out
}

/// The series names a `/metrics` body offers: each `# TYPE` family, and for a histogram its
/// `_bucket`, `_sum` and `_count`.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        if matches!(kind, "histogram" | "summary") {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
        names.insert(name.to_owned());
    }
    names
}

/// What the Prometheus that scrapes promrelay adds to it by itself: the rules alert on `up`.
const SCRAPER_SERIES: &[&str] = &["up"];

/// The names a running promrelay exports: one with a storage that accepts, a scrape job with a
/// target that cannot be reached (a real, failed scrape), after pushes, so that every family
/// (storage, ingest, scrape, listener, process) has samples.
async fn names_a_running_relay_exports() -> BTreeSet<String> {
    let storage = FakeStorage::new().start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let scrape = dir.path().join("scrape.yml");
    std::fs::write(
        &scrape,
        format!(
            "scrape_configs:\n  - job_name: unreachable\n    scrape_interval: 1s\n    static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
            unused_port()
        ),
    )
    .expect("write the scrape config");
    let relay = Relay::with_storages(&[storage.url()])
        .arg("--scrape-config")
        .arg(scrape.display().to_string())
        .start()
        .await;
    let pushes = Pushes::new("deploy_assets_metric", 3, 2);
    relay.push_all_accepted(&pushes).await;
    storage
        .samples_at_least("deploy_assets_metric", pushes.sample_count())
        .await;

    common::eventually(
        "a failed scrape and a successful send on /metrics",
        common::EVENTUALLY_TIMEOUT,
        || async {
            let (status, body) = relay.get("/metrics").await;
            let scraped = body.lines().any(|l| {
                l.starts_with("promrelay_scrape_targets{")
                    && l.contains("health=\"down\"")
                    && l.ends_with(" 1")
            });
            let sent = body.contains("# TYPE promrelay_last_success_timestamp_seconds ");
            if status == 200 && scraped && sent {
                Ok(exported_names(&body))
            } else {
                Err(format!("HTTP {status}:\n{body}"))
            }
        },
    )
    .await
}

/// Queries (with where they are) whose metric names the relay does not export.
fn unknown_metrics(queries: &[(String, String)], exported: &BTreeSet<String>) -> Vec<String> {
    let mut unknown = Vec::new();
    for (place, expr) in queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{place}: no metric found in {expr:?}");
        for name in names {
            if !exported.contains(&name) && !SCRAPER_SERIES.contains(&name.as_str()) {
                unknown.push(format!("{place}: {name} (in {expr})"));
            }
        }
    }
    unknown
}

#[tokio::test]
async fn every_dashboard_query_names_metrics_promrelay_exports() {
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 20,
        "the dashboard's queries were found: {}",
        queries.len()
    );

    let exported = names_a_running_relay_exports().await;

    let unknown = unknown_metrics(&queries, &exported);
    assert!(unknown.is_empty(), "not exported:\n{}", unknown.join("\n"));
}

#[tokio::test]
async fn every_alert_rule_names_metrics_promrelay_exports() {
    let rules = rule_expressions();
    assert!(rules.len() >= 8, "the rules were found: {}", rules.len());

    let exported = names_a_running_relay_exports().await;

    let unknown = unknown_metrics(&rules, &exported);
    assert!(unknown.is_empty(), "not exported:\n{}", unknown.join("\n"));
}

#[test]
fn the_dashboard_has_datasource_instance_and_storage_variables() {
    let dashboard: serde_json::Value = serde_json::from_str(&read("deploy/grafana/promrelay.json"))
        .expect("the dashboard is JSON");
    let variables: Vec<(&str, &str)> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating list")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or(""),
                v["type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        variables,
        [
            ("datasource", "datasource"),
            ("instance", "query"),
            ("storage", "query")
        ]
    );
    for (place, expr) in dashboard_queries() {
        if place.starts_with("panel") {
            assert!(
                expr.contains("instance=~\"$instance\""),
                "{place} ignores $instance: {expr}"
            );
        }
    }
}

/// `promtool` from `.peers/bin`, or a failure that says how to get it.
fn promtool() -> PathBuf {
    let path = repo().join(".peers/bin/promtool");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-peers.sh",
        path.display()
    );
    path
}

fn run_promtool(args: &[&str], dir: &Path) {
    let output = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alert_rules_pass_promtool_check_rules() {
    run_promtool(
        &["check", "rules", "promrelay-alerts.yml"],
        &repo().join("deploy/prometheus"),
    );
}

#[test]
fn the_alert_rules_pass_their_promtool_unit_tests() {
    run_promtool(
        &["test", "rules", "promrelay-alerts.test.yml"],
        &repo().join("deploy/prometheus"),
    );
}

#[test]
fn metric_names_skip_functions_matchers_label_lists_ranges_and_variables() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$instance", x="by(y)"}[$__rate_interval])))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        metric_names(
            "sum without (storage) (b_total offset 5m) / on (instance) group_left (name) c"
        ),
        ["b_total", "c"]
    );
    assert_eq!(
        metric_names("d > 300 and deriv(e[15m]) > 0 unless absent(f{job=\"g\"})"),
        ["d", "e", "f"]
    );
    assert_eq!(metric_names("max by(x)(h) * 1e3 + ${var} - 0.5"), ["h"]);
}

#[test]
fn variable_queries_are_the_selector_of_label_values() {
    assert_eq!(
        variable_query(r#"label_values(m{instance=~"$instance", a="b,c"}, storage)"#),
        r#"m{instance=~"$instance", a="b,c"}"#
    );
    assert_eq!(variable_query("label_values(m, instance)"), "m");
}
// ---- deploy/kubernetes ----

/// Every document of a manifest file.
fn manifests(file: &str) -> Vec<serde_json::Value> {
    let path = format!("deploy/kubernetes/{file}");
    serde_saphyr::from_multiple(&read(&path)).unwrap_or_else(|e| panic!("{path} is YAML: {e}"))
}

/// The one object of `kind` in `file`.
fn manifest(file: &str, kind: &str) -> serde_json::Value {
    let mut found: Vec<serde_json::Value> = manifests(file)
        .into_iter()
        .filter(|m| m["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} in {file}");
    found.remove(0)
}

fn statefulset_container() -> serde_json::Value {
    let set = manifest("statefulset.yaml", "StatefulSet");
    let containers = set["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .clone();
    assert_eq!(containers.len(), 1, "one container");
    containers[0].clone()
}

/// The value of the container's environment variable `name`: its text, or its `valueFrom`.
fn container_env(name: &str) -> serde_json::Value {
    let var = named(&statefulset_container()["env"], name);
    if var["value"].is_null() {
        var["valueFrom"].clone()
    } else {
        var["value"].clone()
    }
}

/// The entry of the list `list` whose `name` is `name`.
fn named(list: &serde_json::Value, name: &str) -> serde_json::Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no entry named {name} in {list}"))
        .clone()
}

#[test]
fn the_member_count_equals_the_statefulsets_replicas() {
    let set = manifest("statefulset.yaml", "StatefulSet");
    let replicas = set["spec"]["replicas"]
        .as_u64()
        .expect("replicas is a number");
    let count: u64 = container_env("PROMRELAY_CLUSTER_MEMBERS_COUNT")
        .as_str()
        .expect("an env value is a string")
        .parse()
        .expect("a number");
    assert_eq!(count, replicas);
}

#[test]
fn each_members_number_is_read_from_its_pod_name() {
    assert_eq!(
        container_env("PROMRELAY_CLUSTER_MEMBER_NUM"),
        serde_json::json!({"fieldRef": {"fieldPath": "metadata.name"}})
    );
    // The pod names the StatefulSet gives (`<name>-<ordinal>`) are what the flag takes.
    let set = manifest("statefulset.yaml", "StatefulSet");
    let name = set["metadata"]["name"].as_str().expect("a name");
    let config = promrelay::config::Config::from_args([
        "promrelay",
        "--remote-write-url",
        "http://127.0.0.1:9/api/v1/write",
        "--cluster-members-count",
        "3",
        "--cluster-member-num",
        &format!("{name}-2"),
    ])
    .expect("a pod name is a member number");
    assert_eq!(config.scrape.cluster.member_num, 2);
}

#[test]
fn every_promrelay_variable_the_statefulset_sets_is_one_promrelay_reads() {
    use clap::CommandFactory;
    let read_by_promrelay: Vec<String> = promrelay::config::Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|v| v.to_string_lossy().into_owned()))
        .collect();
    let container = statefulset_container();
    for var in container["env"].as_array().expect("env") {
        let name = var["name"].as_str().expect("a name");
        assert!(
            read_by_promrelay.iter().any(|r| r == name),
            "promrelay does not read {name}"
        );
    }
}

#[test]
fn the_config_files_named_in_the_environment_are_keys_of_the_mounted_configmap() {
    let container = statefulset_container();
    let mount = named(&container["volumeMounts"], "config");
    let set = manifest("statefulset.yaml", "StatefulSet");
    let volume = named(&set["spec"]["template"]["spec"]["volumes"], "config");
    let configmap = manifest("configmap.yaml", "ConfigMap");
    assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);
    let dir = mount["mountPath"].as_str().expect("a mount path");
    for var in ["PROMRELAY_CONFIG", "PROMRELAY_SCRAPE_CONFIG"] {
        let path = container_env(var);
        let key = path
            .as_str()
            .and_then(|p| p.strip_prefix(dir))
            .and_then(|p| p.strip_prefix('/'))
            .unwrap_or_else(|| panic!("{var} ({path}) is under {dir}"));
        assert!(
            configmap["data"][key].is_string(),
            "{var}: the ConfigMap has no {key}"
        );
    }
}

#[test]
fn the_queue_volume_is_mounted_where_the_images_data_dir_is_and_owned_by_its_user() {
    let dockerfile = read("Dockerfile");
    let container = statefulset_container();
    let mount = named(&container["volumeMounts"], "data");
    let dir = mount["mountPath"].as_str().expect("a mount path");
    assert!(
        dockerfile.contains(&format!("\"--data-dir\", \"{dir}\"")),
        "the Dockerfile's entrypoint passes --data-dir {dir}"
    );
    let set = manifest("statefulset.yaml", "StatefulSet");
    let claims = set["spec"]["volumeClaimTemplates"]
        .as_array()
        .expect("volumeClaimTemplates");
    assert!(
        claims.iter().any(|c| c["metadata"]["name"] == "data"),
        "the data volume is a claim template"
    );
    let security = &set["spec"]["template"]["spec"]["securityContext"];
    let uid = security["runAsUser"].as_u64().expect("runAsUser");
    assert!(
        dockerfile.contains(&format!("--uid {uid} ")),
        "the image's user is {uid}"
    );
    assert_eq!(
        security["fsGroup"].as_u64(),
        Some(uid),
        "the volume is writable for that user's group"
    );
}

#[test]
fn readiness_and_liveness_probe_ready_and_healthy_on_the_listening_port() {
    let container = statefulset_container();
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    let port = &container["ports"][0];
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], port["name"], "{probe}");
    }
    assert!(read("Dockerfile").contains(&format!("0.0.0.0:{}", port["containerPort"])));
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let kustomization: serde_json::Value =
        serde_saphyr::from_str(&read("deploy/kubernetes/kustomization.yaml")).expect("YAML");
    let mut listed: Vec<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file name").to_owned())
        .collect();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .expect("list deploy/kubernetes")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    present.sort();
    assert_eq!(listed, present);
}

#[test]
fn the_rbac_binds_the_statefulsets_service_account() {
    let set = manifest("statefulset.yaml", "StatefulSet");
    let account = manifest("serviceaccount.yaml", "ServiceAccount");
    let binding = manifest("rbac.yaml", "ClusterRoleBinding");
    let role = manifest("rbac.yaml", "ClusterRole");
    assert_eq!(
        set["spec"]["template"]["spec"]["serviceAccountName"],
        account["metadata"]["name"]
    );
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);
    assert_eq!(
        binding["subjects"][0]["namespace"],
        account["metadata"]["namespace"]
    );
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
}

/// The ConfigMap's file `key`, written to a temporary directory for a loader.
fn configmap_file(key: &str) -> (tempfile::TempDir, PathBuf) {
    let configmap = manifest("configmap.yaml", "ConfigMap");
    let text = configmap["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("the ConfigMap has {key}"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join(key);
    std::fs::write(&path, text).expect("write the file");
    (dir, path)
}

#[test]
fn the_configmaps_relay_config_loads() {
    let (_dir, path) = configmap_file("promrelay.yml");
    let config = promrelay::config::Config::from_args([
        "promrelay",
        "--config",
        path.to_str().expect("UTF-8"),
    ])
    .unwrap_or_else(|e| panic!("promrelay.yml: {e}"));
    assert_eq!(config.storages.len(), 1);
}

#[test]
fn the_configmaps_scrape_config_loads_with_its_jobs() {
    let (_dir, path) = configmap_file("scrape.yml");
    let text = std::fs::read_to_string(&path).expect("read it back");
    let config = promrelay::scrape::config::parse(&path, &text)
        .unwrap_or_else(|e| panic!("scrape.yml: {e}"));
    let jobs: Vec<&str> = config.jobs.iter().map(|j| j.job_name.as_str()).collect();
    assert_eq!(jobs, ["promrelay", "kubernetes-pods"]);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}
