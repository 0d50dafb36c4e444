//! Behaviour of target building, one test per rule.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::scrape::config::{RelabelRules, Scheme, ScrapeAuth, ScrapeTls};
use crate::scrape::discovery::SdFile;

fn job(name: &str) -> JobConfig {
    JobConfig {
        job_name: name.to_owned(),
        scrape_interval: Duration::from_secs(60),
        scrape_timeout: Duration::from_secs(10),
        metrics_path: "/metrics".to_owned(),
        scheme: Scheme::Http,
        params: BTreeMap::new(),
        honor_labels: false,
        honor_timestamps: true,
        static_configs: Vec::new(),
        file_sd_configs: Vec::new(),
        kubernetes_sd_configs: Vec::new(),
        http_sd_configs: Vec::new(),
        dns_sd_configs: Vec::new(),
        relabel_configs: RelabelRules::default(),
        metric_relabel_configs: RelabelRules::default(),
        sample_limit: 0,
        label_limit: 0,
        body_size_limit: 0,
        auth: ScrapeAuth::None,
        tls: ScrapeTls::default(),
        base_dir: PathBuf::from("/etc/prometheus"),
    }
}

fn rules(yaml: &str) -> RelabelRules {
    let configs: Vec<crate::relabel::RelabelConfig> =
        serde_saphyr::from_str(yaml).expect("relabel rules parse");
    RelabelRules::new(configs).expect("relabel rules compile")
}

fn group(targets: &[&str], labels: &[(&str, &str)]) -> TargetGroup {
    TargetGroup {
        common: None,
        source: "static_configs[0]".to_owned(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        file: None,
    }
}

fn single() -> ClusterConfig {
    ClusterConfig {
        members_count: 1,
        member_num: 0,
        replication_factor: 1,
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(k, v)| Label::new(*k, *v)).collect()
}

fn build(job: &JobConfig, groups: &[TargetGroup]) -> TargetSet {
    build_targets(job, groups, &GlobalConfig::default(), &single())
}

#[test]
fn populate_labels_matches_prometheus_for_params_and_instance() {
    let mut j = job("blackbox");
    j.metrics_path = "/probe".to_owned();
    j.scrape_interval = Duration::from_secs(90);
    j.scrape_timeout = Duration::from_secs(15);
    j.params.insert(
        "module".to_owned(),
        vec!["http_2xx".to_owned(), "second".to_owned()],
    );
    j.params.insert("empty".to_owned(), Vec::new());
    let set = build(&j, &[group(&["exporter:9115"], &[("team", "web")])]);
    assert!(set.dropped.is_empty(), "{:?}", set.dropped);
    let t = &set.active[0];
    assert_eq!(
        t.discovered_labels.to_vec(),
        labels(&[
            ("__address__", "exporter:9115"),
            ("__metrics_path__", "/probe"),
            ("__param_module", "http_2xx"),
            ("__scheme__", "http"),
            ("__scrape_interval__", "1m30s"),
            ("__scrape_timeout__", "15s"),
            ("job", "blackbox"),
            ("team", "web"),
        ])
    );
    assert_eq!(
        t.labels,
        labels(&[
            ("instance", "exporter:9115"),
            ("job", "blackbox"),
            ("team", "web")
        ])
    );
    assert_eq!(
        t.scrape_url.as_str(),
        "http://exporter:9115/probe?module=http_2xx&module=second"
    );
    assert_eq!(t.interval, Duration::from_secs(90));
    assert_eq!(t.timeout, Duration::from_secs(15));
}

#[test]
fn relabeled_param_replaces_the_first_value_and_instance_can_be_set() {
    let mut j = job("blackbox");
    j.params
        .insert("module".to_owned(), vec!["a".to_owned(), "b".to_owned()]);
    j.relabel_configs = rules(
        "- source_labels: [__address__]\n  target_label: __param_target\n- source_labels: [__param_target]\n  target_label: instance\n- target_label: __address__\n  replacement: blackbox:9115\n- target_label: __param_module\n  replacement: tcp\n",
    );
    let set = build(&j, &[group(&["https://example.com"], &[])]);
    let t = &set.active[0];
    assert_eq!(t.label("instance"), Some("https://example.com"));
    assert_eq!(
        t.scrape_url.as_str(),
        "http://blackbox:9115/metrics?module=tcp&module=b&target=https%3A%2F%2Fexample.com"
    );
}

#[test]
fn group_labels_override_defaults_but_not_params_or_address() {
    let mut j = job("a");
    j.params
        .insert("x".to_owned(), vec!["from-config".to_owned()]);
    let g = group(
        &["real:1"],
        &[
            ("__metrics_path__", "/custom"),
            ("__param_x", "from-group"),
            ("__address__", "group:2"),
            ("job", "other"),
        ],
    );
    let t = &build(&j, &[g]).active[0];
    assert_eq!(t.scrape_url.as_str(), "http://real:1/custom?x=from-config");
    assert_eq!(t.label("job"), Some("other"));
}

#[test]
fn default_port_is_added_to_address_and_instance() {
    let mut j = job("a");
    let t = &build(&j, &[group(&["host"], &[])]).active[0];
    assert_eq!(t.label("instance"), Some("host:80"));
    j.scheme = Scheme::Https;
    let t = &build(&j, &[group(&["[::1]"], &[])]).active[0];
    assert_eq!(t.label("instance"), Some("[::1]:443"));
    assert_eq!(t.scrape_url.as_str(), "https://[::1]/metrics");
}

#[test]
fn relabel_drop_keeps_discovered_labels_and_a_reason() {
    let mut j = job("a");
    j.relabel_configs = rules("- source_labels: [env]\n  regex: dev\n  action: drop\n");
    let set = build(
        &j,
        &[group(&["a:1"], &[("env", "dev")]), group(&["b:1"], &[])],
    );
    assert_eq!(set.active.len(), 1);
    assert_eq!(set.dropped.len(), 1);
    let d = &set.dropped[0];
    assert_eq!(d.reason, DropReason::Relabeling);
    assert_eq!(d.discovered_labels.get("env"), Some("dev"));
    assert_eq!(d.discovered_labels.get("__address__"), Some("a:1"));
}

#[test]
fn dropped_targets_past_the_listing_limit_are_counted_not_kept() {
    let mut j = job("a");
    j.relabel_configs = rules("- source_labels: [env]\n  regex: dev\n  action: drop\n");
    let groups = [
        group(&["a:1", "a:2", "a:3"], &[("env", "dev")]),
        group(&["b:1"], &[]),
    ];
    let set = build_targets_listing(&j, &groups, &GlobalConfig::default(), &single(), 2);
    assert_eq!(set.active.len(), 1);
    assert_eq!(set.dropped_total, 3);
    let listed: Vec<Option<&str>> = set
        .dropped
        .iter()
        .map(|d| d.discovered_labels.get("__address__"))
        .collect();
    assert_eq!(listed, [Some("a:1"), Some("a:2")]);
    assert_eq!(
        build(&j, &groups).dropped.len(),
        3,
        "build_targets lists every one"
    );
}

#[test]
fn missing_or_invalid_address_after_relabeling_drops_the_target() {
    let mut j = job("a");
    j.relabel_configs = rules("- action: labeldrop\n  regex: __address__\n");
    let set = build(&j, &[group(&["a:1"], &[])]);
    assert_eq!(set.dropped[0].reason, DropReason::NoAddress);

    let set = build(&job("a"), &[group(&["", "a:1/x", "a:1:2"], &[])]);
    assert!(set.active.is_empty());
    assert_eq!(set.dropped[0].reason, DropReason::NoAddress);
    assert!(matches!(
        set.dropped[1].reason,
        DropReason::InvalidAddress { .. }
    ));
    assert!(matches!(
        set.dropped[2].reason,
        DropReason::InvalidAddress { .. }
    ));
}

#[test]
fn relabeled_interval_is_read_back_in_either_spelling_and_checked() {
    let mut j = job("a");
    j.relabel_configs = rules(
        "- target_label: __scrape_interval__\n  replacement: 2m\n- target_label: __scrape_timeout__\n  replacement: 1m0.5s\n",
    );
    let t = &build(&j, &[group(&["a:1"], &[])]).active[0];
    assert_eq!(t.interval, Duration::from_secs(120));
    assert_eq!(t.timeout, Duration::from_millis(60_500));

    j.relabel_configs = rules("- target_label: __scrape_timeout__\n  replacement: 5m\n");
    let set = build(&j, &[group(&["a:1"], &[])]);
    assert!(
        matches!(
            &set.dropped[0].reason,
            DropReason::InvalidInterval {
                reason: IntervalError::TimeoutLongerThanInterval { .. }
            }
        ),
        "{:?}",
        set.dropped
    );
}

#[test]
fn target_id_is_stable_and_duplicates_are_listed_once() {
    let j = job("a");
    let first = build(&j, &[group(&["a:1", "a:1"], &[("x", "1")])]);
    let again = build(&j, &[group(&["a:1"], &[("x", "1")])]);
    assert_eq!(first.active.len(), 1);
    assert_eq!(first.active[0].id(), again.active[0].id());
    let other = build(&j, &[group(&["a:1"], &[("x", "2")])]);
    assert_ne!(first.active[0].id(), other.active[0].id());
}

#[test]
fn label_durations_accept_go_and_prometheus_forms_and_refuse_junk() {
    assert_eq!(
        parse_label_duration("1h30m"),
        Ok(Duration::from_secs(5_400))
    );
    assert_eq!(parse_label_duration("2d"), Ok(Duration::from_secs(172_800)));
    assert_eq!(parse_label_duration(".5s"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_label_duration("10us"), Ok(Duration::from_micros(10)));
    for bad in ["", "-1s", "5", "1x", "s", "1.s5"] {
        assert!(parse_label_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn targets_of_other_cluster_members_are_dropped_with_their_owners() {
    let j = job("a");
    let groups = [group(&["a:1", "a:2", "a:3", "a:4", "a:5", "a:6"], &[])];
    let mut seen = BTreeMap::new();
    for member in 0..3 {
        let cluster = ClusterConfig {
            members_count: 3,
            member_num: member,
            replication_factor: 1,
        };
        let set = build_targets(&j, &groups, &GlobalConfig::default(), &cluster);
        assert_eq!(set.active.len() + set.dropped.len(), 6);
        for t in &set.active {
            assert_eq!(t.owners, vec![member]);
            assert!(
                seen.insert(t.label("instance").map(str::to_owned), member)
                    .is_none()
            );
        }
        for d in &set.dropped {
            match &d.reason {
                DropReason::OtherMembers {
                    owners,
                    member_num,
                    members_count,
                } => {
                    assert!(!owners.contains(&member));
                    assert_eq!((*member_num, *members_count), (member, 3));
                }
                other => panic!("unexpected reason {other}"),
            }
        }
    }
    assert_eq!(seen.len(), 6, "every target has exactly one owner");
}

#[test]
fn shard_key_is_vmagent_labels_after_relabeling_without_meta_labels() {
    let mut j = job("node");
    j.relabel_configs = rules(
        "- source_labels: [__meta_filepath]\n  regex: '.*'\n  target_label: from_meta\n  replacement: yes\n",
    );
    let mut global = GlobalConfig::default();
    global
        .external_labels
        .insert("dc".to_owned(), "eu1".to_owned());
    let g = TargetGroup {
        common: None,
        source: "/etc/prometheus/sd/a.json:0".to_owned(),
        targets: vec!["h:1".to_owned()],
        labels: [
            ("env".to_owned(), "prod".to_owned()),
            (
                META_FILEPATH.to_owned(),
                "/etc/prometheus/sd/a.json".to_owned(),
            ),
        ]
        .into(),
        file: Some(SdFile {
            path: PathBuf::from("/etc/prometheus/sd/a.json"),
            absolute: PathBuf::from("/etc/prometheus/sd/a.json"),
        }),
    };
    let ctx = Context {
        job: &j,
        global: &global,
        cluster: &single(),
        interval: format_go_duration(j.scrape_interval),
        timeout: format_go_duration(j.scrape_timeout),
    };
    let discovered = ctx.discovered_labels(&g, "h:1");
    let key = sharding::shard_key(&ctx.vmagent_key_labels(&g, "h:1", &discovered, &[]));
    assert_eq!(
        key,
        "__address__=h:1,__metrics_path__=/metrics,__scheme__=http,__scrape_interval__=1m0s,\
         __scrape_timeout__=10s,__vm_filepath=/etc/prometheus/sd/a.json,dc=eu1,env=prod,\
         from_meta=yes,job=node,"
    );
    // The target's own labels stay Prometheus': no external label, no __vm_filepath.
    let set = build_targets(&j, &[g], &global, &single());
    let t = &set.active[0];
    assert_eq!(t.label("dc"), None);
    assert_eq!(t.discovered_labels.get("__vm_filepath"), None);
}
