//! Behaviour tests. The table cases are ported from Prometheus' `model/relabel/relabel_test.go`
//! (`TestRelabel`, `TestRelabelValidate`, the `BenchmarkRelabel` configurations) and from the
//! `<relabel_config>` documentation; rules are written as JSON through serde, as the
//! configuration loader will feed them.

use super::process::hashmod;
use super::*;
use crate::prompb::Label;

type Pairs = &'static [(&'static str, &'static str)];

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    let mut out: Vec<Label> = pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect();
    out.sort();
    out
}

fn configs(json: &str) -> Vec<RelabelConfig> {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("rules {json} do not load: {e}"))
}

fn rules(json: &str) -> Vec<CompiledRelabel> {
    compile_all(&configs(json)).expect("rules compile")
}

/// Runs `json` rules on `input`; `None` when the series is dropped.
fn run(input: &[(&str, &str)], json: &str) -> Option<Vec<Label>> {
    let mut series = labels(input);
    process(&mut series, &rules(json)).then_some(series)
}

/// The error a single rule is refused with when deserialized.
fn load_error(json: &str) -> String {
    match serde_json::from_str::<RelabelConfig>(json) {
        Ok(config) => panic!("{json} loaded as {config:?}, expected an error"),
        Err(e) => e.to_string(),
    }
}

struct Case {
    name: &'static str,
    input: Pairs,
    rules: &'static str,
    /// `None`: the series is dropped.
    want: Option<Pairs>,
}

fn check(cases: &[Case]) {
    for case in cases {
        let got = run(case.input, case.rules);
        let want = case.want.map(labels);
        assert_eq!(got, want, "case {}", case.name);
    }
}

#[test]
fn prometheus_relabel_test_cases() {
    check(&[
        Case {
            name: "replace_expands_braced_group_twice",
            input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
            rules: r#"[{"source_labels":["a"],"regex":"f(.*)","target_label":"d","replacement":"ch${1}-ch${1}"}]"#,
            want: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
        },
        Case {
            name: "later_rule_sees_value_written_by_earlier_rule",
            input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
            rules: r#"[
                {"source_labels":["a","b"],"regex":"f(.*);(.*)r","target_label":"a","replacement":"b${1}${2}m"},
                {"source_labels":["c","a"],"regex":"(b).*b(.*)ba(.*)","target_label":"d","replacement":"$1$2$2$3"}
            ]"#,
            want: Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
        },
        Case {
            name: "drop_stops_before_later_rules",
            input: &[("a", "foo")],
            rules: r#"[
                {"source_labels":["a"],"regex":".*o.*","action":"drop"},
                {"source_labels":["a"],"regex":"f(.*)","target_label":"d","replacement":"ch$1-ch$1"}
            ]"#,
            want: None,
        },
        Case {
            name: "drop_when_regex_matches",
            input: &[("a", "foo"), ("b", "bar")],
            rules: r#"[{"source_labels":["a"],"regex":".*o.*","action":"drop"}]"#,
            want: None,
        },
        Case {
            name: "replace_captures_group_inside_wildcards",
            input: &[("a", "abc")],
            rules: r#"[{"source_labels":["a"],"regex":".*(b).*","target_label":"d","replacement":"$1"}]"#,
            want: Some(&[("a", "abc"), ("d", "b")]),
        },
        Case {
            name: "drop_keeps_series_when_regex_does_not_match",
            input: &[("a", "foo")],
            rules: r#"[{"source_labels":["a"],"regex":"no-match","action":"drop"}]"#,
            want: Some(&[("a", "foo")]),
        },
        Case {
            name: "drop_alternation_is_anchored_as_a_whole",
            input: &[("a", "foo")],
            rules: r#"[{"source_labels":["a"],"regex":"f|o","action":"drop"}]"#,
            want: Some(&[("a", "foo")]),
        },
        Case {
            name: "keep_drops_series_when_regex_does_not_match",
            input: &[("a", "foo")],
            rules: r#"[{"source_labels":["a"],"regex":"no-match","action":"keep"}]"#,
            want: None,
        },
        Case {
            name: "keep_keeps_series_when_regex_matches",
            input: &[("a", "foo")],
            rules: r#"[{"source_labels":["a"],"regex":"f.*","action":"keep"}]"#,
            want: Some(&[("a", "foo")]),
        },
        Case {
            name: "replace_does_nothing_without_a_match",
            input: &[("a", "boo")],
            rules: r#"[{"source_labels":["a"],"regex":"f","target_label":"b","replacement":"bar"}]"#,
            want: Some(&[("a", "boo")]),
        },
        Case {
            name: "replace_with_blank_result_deletes_expanded_target",
            input: &[("a", "foo"), ("f", "baz")],
            rules: r#"[{"source_labels":["a"],"regex":"(f).*","target_label":"$1","replacement":"$2"}]"#,
            want: Some(&[("a", "foo")]),
        },
        Case {
            name: "hashmod_of_baz_mod_1000",
            input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
            rules: r#"[{"source_labels":["c"],"target_label":"d","action":"hashmod","modulus":1000}]"#,
            want: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
        },
        Case {
            name: "hashmod_hashes_value_with_newline",
            input: &[("a", "foo\nbar")],
            rules: r#"[{"source_labels":["a"],"target_label":"b","action":"hashmod","modulus":1000}]"#,
            want: Some(&[("a", "foo\nbar"), ("b", "734")]),
        },
        Case {
            name: "labelmap_copies_matching_labels_under_expanded_names",
            input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            rules: r#"[{"regex":"(b.*)","replacement":"bar_${1}","action":"labelmap"}]"#,
            want: Some(&[
                ("a", "foo"),
                ("b1", "bar"),
                ("b2", "baz"),
                ("bar_b1", "bar"),
                ("bar_b2", "baz"),
            ]),
        },
        Case {
            name: "labelmap_strips_meta_prefix",
            input: &[
                ("a", "foo"),
                ("__meta_my_bar", "aaa"),
                ("__meta_my_baz", "bbb"),
                ("__meta_other", "ccc"),
            ],
            rules: r#"[{"regex":"__meta_(my.*)","replacement":"${1}","action":"labelmap"}]"#,
            want: Some(&[
                ("a", "foo"),
                ("__meta_my_bar", "aaa"),
                ("__meta_my_baz", "bbb"),
                ("__meta_other", "ccc"),
                ("my_bar", "aaa"),
                ("my_baz", "bbb"),
            ]),
        },
        Case {
            name: "replace_target_label_from_capture_group",
            input: &[("a", "some-name-value")],
            rules: r#"[{"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${2}","target_label":"${1}"}]"#,
            want: Some(&[("a", "some-name-value"), ("name", "value")]),
        },
        Case {
            name: "replace_with_missing_group_in_replacement_deletes_target",
            input: &[("a", "some-name-value")],
            rules: r#"[{"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${3}","target_label":"${1}"}]"#,
            want: Some(&[("a", "some-name-value")]),
        },
        Case {
            name: "replace_with_missing_group_in_target_changes_nothing",
            input: &[("a", "some-name-0")],
            rules: r#"[
                {"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${1}","target_label":"${3}"},
                {"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${1}","target_label":"${3}"},
                {"source_labels":["a"],"regex":"some-([^-]+)(-[^,]+)","replacement":"${1}","target_label":"${3}"}
            ]"#,
            want: Some(&[("a", "some-name-0")]),
        },
        Case {
            name: "replace_parses_service_discovery_tags",
            input: &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
            rules: r#"[
                {"source_labels":["__meta_sd_tags"],"regex":"(?:.+,|^)path:(/[^,]+).*","replacement":"${1}","target_label":"__metrics_path__"},
                {"source_labels":["__meta_sd_tags"],"regex":"(?:.+,|^)job:([^,]+).*","replacement":"${1}","target_label":"job"},
                {"source_labels":["__meta_sd_tags"],"regex":"(?:.+,|^)label:([^=]+)=([^,]+).*","replacement":"${2}","target_label":"${1}"}
            ]"#,
            want: Some(&[
                ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
                ("__metrics_path__", "/secret"),
                ("job", "some-job"),
                ("foo", "bar"),
            ]),
        },
        Case {
            // Prometheus issue 12283.
            name: "label_dropped_then_set_again_is_seen_by_keep",
            input: &[
                ("__meta_kubernetes_pod_container_port_name", "foo"),
                ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
            ],
            rules: r#"[
                {"regex":"^__meta_kubernetes_pod_container_port_name$","action":"labeldrop"},
                {"source_labels":["__meta_kubernetes_pod_annotation_XXX_metrics_port"],"regex":"(.+)","replacement":"metrics","target_label":"__meta_kubernetes_pod_container_port_name"},
                {"source_labels":["__meta_kubernetes_pod_container_port_name"],"regex":"^metrics$","action":"keep"}
            ]"#,
            want: Some(&[
                ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
                ("__meta_kubernetes_pod_container_port_name", "metrics"),
            ]),
        },
        Case {
            name: "labelkeep_keeps_only_matching_names",
            input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            rules: r#"[{"regex":"(b.*)","action":"labelkeep"}]"#,
            want: Some(&[("b1", "bar"), ("b2", "baz")]),
        },
        Case {
            name: "labeldrop_removes_matching_names",
            input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            rules: r#"[{"regex":"(b.*)","action":"labeldrop"}]"#,
            want: Some(&[("a", "foo")]),
        },
        Case {
            name: "uppercase_and_lowercase_write_case_mapped_copies",
            input: &[("foo", "bAr123Foo")],
            rules: r#"[
                {"source_labels":["foo"],"action":"uppercase","target_label":"foo_uppercase"},
                {"source_labels":["foo"],"action":"lowercase","target_label":"foo_lowercase"}
            ]"#,
            want: Some(&[
                ("foo", "bAr123Foo"),
                ("foo_lowercase", "bar123foo"),
                ("foo_uppercase", "BAR123FOO"),
            ]),
        },
        Case {
            name: "keepequal_keeps_series_when_values_are_equal",
            input: &[
                ("__tmp_port", "1234"),
                ("__port1", "1234"),
                ("__port2", "5678"),
            ],
            rules: r#"[{"source_labels":["__tmp_port"],"action":"keepequal","target_label":"__port1"}]"#,
            want: Some(&[
                ("__tmp_port", "1234"),
                ("__port1", "1234"),
                ("__port2", "5678"),
            ]),
        },
        Case {
            name: "dropequal_drops_series_when_values_are_equal",
            input: &[
                ("__tmp_port", "1234"),
                ("__port1", "1234"),
                ("__port2", "5678"),
            ],
            rules: r#"[{"source_labels":["__tmp_port"],"action":"dropequal","target_label":"__port1"}]"#,
            want: None,
        },
        Case {
            name: "dropequal_keeps_series_when_values_differ",
            input: &[
                ("__tmp_port", "1234"),
                ("__port1", "1234"),
                ("__port2", "5678"),
            ],
            rules: r#"[{"source_labels":["__tmp_port"],"action":"dropequal","target_label":"__port2"}]"#,
            want: Some(&[
                ("__tmp_port", "1234"),
                ("__port1", "1234"),
                ("__port2", "5678"),
            ]),
        },
        Case {
            name: "keepequal_drops_series_when_values_differ",
            input: &[
                ("__tmp_port", "1234"),
                ("__port1", "1234"),
                ("__port2", "5678"),
            ],
            rules: r#"[{"source_labels":["__tmp_port"],"action":"keepequal","target_label":"__port2"}]"#,
            want: None,
        },
        Case {
            name: "dot_matches_newline",
            input: &[("a", "line1\nline2"), ("b", "bar"), ("c", "baz")],
            rules: r#"[{"source_labels":["a"],"regex":"line1.*line2","target_label":"d","replacement":"match${1}"}]"#,
            want: Some(&[
                ("a", "line1\nline2"),
                ("b", "bar"),
                ("c", "baz"),
                ("d", "match"),
            ]),
        },
        Case {
            name: "numbered_and_named_references_braced_and_bare",
            input: &[("a", "line1\nline2"), ("b", "bar"), ("c", "baz")],
            rules: r#"[
                {"source_labels":["a"],"regex":"(line1).*(?<second>line2)","target_label":"label1_${1}","replacement":"val_${second}"},
                {"source_labels":["a"],"regex":"(line1).*(?<second>line2)","target_label":"label2_$1","replacement":"val_$second"}
            ]"#,
            want: Some(&[
                ("a", "line1\nline2"),
                ("b", "bar"),
                ("c", "baz"),
                ("label1_line1", "val_line2"),
                ("label2_line1", "val_line2"),
            ]),
        },
        Case {
            name: "replace_sets_type_label_from_metric_name_suffix",
            input: &[("__name__", "http_requests_total")],
            rules: r#"[{"source_labels":["__name__"],"regex":".*_total$","target_label":"__type__","replacement":"counter"}]"#,
            want: Some(&[("__name__", "http_requests_total"), ("__type__", "counter")]),
        },
        Case {
            name: "replace_sets_unit_label_from_metric_name_suffix",
            input: &[("__name__", "disk_usage_bytes")],
            rules: r#"[{"source_labels":["__name__"],"regex":".*_bytes$","target_label":"__unit__","replacement":"bytes"}]"#,
            want: Some(&[("__name__", "disk_usage_bytes"), ("__unit__", "bytes")]),
        },
    ]);
}

#[test]
fn prometheus_benchmark_configurations() {
    check(&[
        Case {
            // conf.good.yml's example; the first regex needs the value to end in "some-"
            // plus one character, so it does not match.
            name: "example_config_copies_sets_and_uses_null_regex",
            input: &[
                ("__meta_dns_name", "example-some-x.com"),
                ("abc", "def"),
                ("job", "foo"),
            ],
            rules: r#"[
                {"source_labels":["job","__meta_dns_name"],"regex":"(.*)some-[regex]","target_label":"job","replacement":"foo-${1}"},
                {"source_labels":["abc"],"target_label":"cde"},
                {"replacement":"static","target_label":"abc"},
                {"regex":null,"replacement":"static","target_label":"abc"}
            ]"#,
            want: Some(&[
                ("__meta_dns_name", "example-some-x.com"),
                ("abc", "static"),
                ("cde", "def"),
                ("job", "foo"),
            ]),
        },
        Case {
            name: "static_label_pairs_and_zero_group_references",
            input: &[("abcdefg01", "hijklmn1"), ("job", "foo")],
            rules: r#"[
                {"replacement":"wwwwww","target_label":"wwwwww"},
                {"replacement":"yyyyyyyyyyyy","target_label":"xxxxxxxxx"},
                {"replacement":"xxxxxxxxx","target_label":"yyyyyyyyyyyy"},
                {"source_labels":["something"],"target_label":"with_source_labels","replacement":"value"},
                {"replacement":"dropped","target_label":"${0}"},
                {"replacement":"${0}","target_label":"dropped"}
            ]"#,
            want: Some(&[
                ("abcdefg01", "hijklmn1"),
                ("job", "foo"),
                ("with_source_labels", "value"),
                ("wwwwww", "wwwwww"),
                ("xxxxxxxxx", "yyyyyyyyyyyy"),
                ("yyyyyyyyyyyy", "xxxxxxxxx"),
            ]),
        },
    ]);
}

/// The "kubernetes" configuration of Prometheus' BenchmarkRelabel, ending in a hashmod shard
/// filter; `{shard}` is the shard kept.
const KUBERNETES_PODS: &str = r#"[
    {"source_labels":["__meta_kubernetes_pod_container_port_name"],"regex":".*-metrics","action":"keep"},
    {"source_labels":["__meta_kubernetes_pod_label_name"],"action":"drop","regex":""},
    {"source_labels":["__meta_kubernetes_pod_phase"],"regex":"Succeeded|Failed","action":"drop"},
    {"source_labels":["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],"regex":"false","action":"drop"},
    {"source_labels":["__meta_kubernetes_pod_annotation_prometheus_io_scheme"],"target_label":"__scheme__","regex":"(https?)","replacement":"$1","action":"replace"},
    {"source_labels":["__meta_kubernetes_pod_annotation_prometheus_io_path"],"target_label":"__metrics_path__","regex":"(.+)","replacement":"$1","action":"replace"},
    {"source_labels":["__address__","__meta_kubernetes_pod_annotation_prometheus_io_port"],"target_label":"__address__","regex":"(.+?)(\\:\\d+)?;(\\d+)","replacement":"$1:$3","action":"replace"},
    {"regex":"__meta_kubernetes_pod_annotation_prometheus_io_param_(.+)","replacement":"__param_$1","action":"labelmap"},
    {"regex":"__meta_kubernetes_pod_label_prometheus_io_label_(.+)","action":"labelmap"},
    {"regex":"__meta_kubernetes_pod_annotation_prometheus_io_label_(.+)","action":"labelmap"},
    {"source_labels":["__meta_kubernetes_namespace","__meta_kubernetes_pod_label_name"],"separator":"/","target_label":"job","replacement":"$1","action":"replace"},
    {"source_labels":["__meta_kubernetes_namespace"],"target_label":"namespace","action":"replace"},
    {"source_labels":["__meta_kubernetes_pod_name"],"target_label":"pod","action":"replace"},
    {"source_labels":["__meta_kubernetes_pod_container_name"],"target_label":"container","action":"replace"},
    {"source_labels":["__meta_kubernetes_pod_name","__meta_kubernetes_pod_container_name","__meta_kubernetes_pod_container_port_name"],"separator":":","target_label":"instance","action":"replace"},
    {"target_label":"cluster","replacement":"dev-us-central-0"},
    {"source_labels":["__meta_kubernetes_namespace"],"regex":"hosted-grafana","action":"drop"},
    {"source_labels":["__address__"],"target_label":"__tmp_hash","modulus":3,"action":"hashmod"},
    {"source_labels":["__tmp_hash"],"regex":"^{shard}$","action":"keep"},
    {"regex":"__tmp_hash","action":"labeldrop"}
]"#;

const KUBERNETES_POD: Pairs = &[
    ("__address__", "10.132.183.40:80"),
    ("__meta_kubernetes_namespace", "loki-boltdb-shipper"),
    ("__meta_kubernetes_pod_container_name", "promtail"),
    ("__meta_kubernetes_pod_container_port_name", "http-metrics"),
    ("__meta_kubernetes_pod_container_port_number", "80"),
    (
        "__meta_kubernetes_pod_label_name",
        "promtail-loki-boltdb-shipper",
    ),
    (
        "__meta_kubernetes_pod_name",
        "promtail-loki-boltdb-shipper-jgtr7",
    ),
    ("__meta_kubernetes_pod_phase", "Running"),
    ("__metrics_path__", "/metrics"),
    ("__scheme__", "http"),
    ("job", "kubernetes-pods"),
];

#[test]
fn kubernetes_pipeline_drops_pod_outside_its_hashmod_shard() {
    // md5("10.132.183.40:80") mod 3 is 1, so shard 0 does not scrape this pod.
    assert_eq!(
        run(KUBERNETES_POD, &KUBERNETES_PODS.replace("{shard}", "0")),
        None
    );
}

#[test]
fn kubernetes_pipeline_rewrites_pod_in_its_hashmod_shard() {
    let got = run(KUBERNETES_POD, &KUBERNETES_PODS.replace("{shard}", "1"));
    let mut want = labels(KUBERNETES_POD);
    want.retain(|l| l.name != "job");
    want.extend(labels(&[
        ("job", "loki-boltdb-shipper/promtail-loki-boltdb-shipper"),
        ("namespace", "loki-boltdb-shipper"),
        ("pod", "promtail-loki-boltdb-shipper-jgtr7"),
        ("container", "promtail"),
        (
            "instance",
            "promtail-loki-boltdb-shipper-jgtr7:promtail:http-metrics",
        ),
        ("cluster", "dev-us-central-0"),
    ]));
    want.sort();
    assert_eq!(got, Some(want));
}

#[test]
fn documentation_examples() {
    check(&[
        Case {
            name: "static_label_added_by_target_and_replacement_alone",
            input: &[("job", "node")],
            rules: r#"[{"target_label":"env","replacement":"production"}]"#,
            want: Some(&[("env", "production"), ("job", "node")]),
        },
        Case {
            name: "unanchored_with_dot_star_on_both_sides",
            input: &[("__address__", "db-prod-1:9100")],
            rules: r#"[{"source_labels":["__address__"],"regex":".*prod.*","action":"keep"}]"#,
            want: Some(&[("__address__", "db-prod-1:9100")]),
        },
        Case {
            name: "address_port_taken_from_annotation",
            input: &[
                ("__address__", "10.0.0.1:8080"),
                (
                    "__meta_kubernetes_pod_annotation_prometheus_io_port",
                    "9102",
                ),
            ],
            rules: r#"[{"source_labels":["__address__","__meta_kubernetes_pod_annotation_prometheus_io_port"],"regex":"([^:]+)(?::\\d+)?;(\\d+)","replacement":"$1:$2","target_label":"__address__"}]"#,
            want: Some(&[
                ("__address__", "10.0.0.1:9102"),
                (
                    "__meta_kubernetes_pod_annotation_prometheus_io_port",
                    "9102",
                ),
            ]),
        },
        Case {
            name: "custom_separator_joins_source_values",
            input: &[("host", "web1"), ("port", "80")],
            rules: r#"[{"source_labels":["host","port"],"separator":":","target_label":"instance"}]"#,
            want: Some(&[("host", "web1"), ("instance", "web1:80"), ("port", "80")]),
        },
        Case {
            name: "drop_on_absent_label_with_empty_regex",
            input: &[("job", "a")],
            rules: r#"[{"source_labels":["__meta_kubernetes_pod_label_name"],"regex":"","action":"drop"}]"#,
            want: None,
        },
        Case {
            name: "absent_source_labels_join_as_empty_values",
            input: &[("b", "2")],
            rules: r#"[{"source_labels":["a","b","c"],"target_label":"joined"}]"#,
            want: Some(&[("b", "2"), ("joined", ";2;")]),
        },
        Case {
            name: "metric_name_drop_by_regex",
            input: &[("__name__", "go_gc_duration_seconds"), ("job", "a")],
            rules: r#"[{"source_labels":["__name__"],"regex":"go_.*","action":"drop"}]"#,
            want: None,
        },
        Case {
            name: "action_names_are_case_insensitive",
            input: &[("__meta_x", "1"), ("tmp", "t")],
            rules: r#"[{"regex":"__meta_(.*)","action":"LabelMap"},{"regex":"tmp","action":"LABELDROP"}]"#,
            want: Some(&[("__meta_x", "1"), ("x", "1")]),
        },
    ]);
}

#[test]
fn regex_is_fully_anchored() {
    let rule = r#"[{"source_labels":["a"],"regex":"foo|bar","action":"keep"}]"#;
    assert!(run(&[("a", "foo")], rule).is_some());
    assert!(run(&[("a", "bar")], rule).is_some());
    for unanchored in ["xfoo", "foox", "xbar", "barx", "foobar"] {
        assert_eq!(run(&[("a", unanchored)], rule), None, "{unanchored}");
    }
    // A regex that brings its own anchors is unchanged by ours.
    let anchored = r#"[{"source_labels":["a"],"regex":"^foo$","action":"keep"}]"#;
    assert!(run(&[("a", "foo")], anchored).is_some());
}

#[test]
fn hashmod_matches_prometheus_for_known_inputs() {
    // From relabel_test.go (976, 734) and computed with an independent md5
    // (Python's hashlib): int.from_bytes(md5(s).digest()[8:], "big") % m.
    let known = [
        ("baz", 1000, 976),
        ("foo\nbar", 1000, 734),
        ("10.132.183.40:80", 3, 1),
        ("", 10, 8),
        ("a;b", 7, 2),
        ("node-1:9100", u64::MAX, 14_715_440_348_818_559_805),
        ("node-1:9100", 1, 0),
        ("ünïcødé", 97, 53),
    ];
    for (value, modulus, want) in known {
        assert_eq!(hashmod(value, modulus), want, "{value:?} mod {modulus}");
    }
    let joined = run(
        &[("a", "a"), ("b", "b")],
        r#"[{"source_labels":["a","b"],"target_label":"shard","modulus":7,"action":"hashmod"}]"#,
    );
    assert_eq!(
        joined,
        Some(labels(&[("a", "a"), ("b", "b"), ("shard", "2")]))
    );
}

#[test]
fn empty_replacement_result_deletes_target_label() {
    let got = run(
        &[("env", "prod"), ("team", "")],
        r#"[{"source_labels":["team"],"target_label":"env","replacement":"$1"}]"#,
    );
    assert_eq!(got, Some(labels(&[("team", "")])));
    let literal_empty = run(
        &[("env", "prod")],
        r#"[{"target_label":"env","replacement":""}]"#,
    );
    assert_eq!(literal_empty, Some(vec![]));
}

#[test]
fn invalid_target_label_after_expansion_leaves_labels_unchanged() {
    let rule =
        r#"[{"source_labels":["a"],"regex":"(.*)","target_label":"${1}","replacement":"x"}]"#;
    for value in ["1abc", "foo-bar", "foo.bar", "é", ""] {
        assert_eq!(
            run(&[("a", value)], rule),
            Some(labels(&[("a", value)])),
            "{value:?}"
        );
    }
    assert_eq!(
        run(&[("a", "ok_name")], rule),
        Some(labels(&[("a", "ok_name"), ("ok_name", "x")]))
    );
}

#[test]
fn replacement_references_follow_go_expand() {
    let rule = |replacement: &str| {
        format!(
            r#"[{{"source_labels":["a"],"regex":"(?P<first>x)(y)","target_label":"t","replacement":"{replacement}"}}]"#
        )
    };
    let expand = |replacement: &str| {
        run(&[("a", "xy")], &rule(replacement))
            .and_then(|ls| ls.into_iter().find(|l| l.name == "t"))
            .map(|l| l.value)
    };
    // `$1x` names group "1x", which does not exist: empty, so no label is written.
    assert_eq!(expand("$1x"), None);
    assert_eq!(expand("${1}x").as_deref(), Some("xx"));
    assert_eq!(expand("$$1").as_deref(), Some("$1"));
    assert_eq!(expand("${first}-$2").as_deref(), Some("x-y"));
    assert_eq!(expand("$01"), None, "a leading zero makes it a name in Go");
    assert_eq!(
        expand("a${1-2}").as_deref(),
        Some("a${1-2}"),
        "malformed: `$` kept"
    );
}

#[test]
fn labelmap_does_not_remap_labels_it_created() {
    let got = run(
        &[("x_a", "1")],
        r#"[{"regex":"x_(.*)","replacement":"x_x_$1","action":"labelmap"}]"#,
    );
    assert_eq!(got, Some(labels(&[("x_a", "1"), ("x_x_a", "1")])));
}

#[test]
fn labelmap_conflicting_names_last_in_name_order_wins() {
    let got = run(
        &[("a_x", "from_a"), ("b_x", "from_b")],
        r#"[{"regex":".*_(x)","action":"labelmap"}]"#,
    );
    assert_eq!(
        got,
        Some(labels(&[
            ("a_x", "from_a"),
            ("b_x", "from_b"),
            ("x", "from_b")
        ]))
    );
}

#[test]
fn labelmap_onto_existing_name_overwrites_it() {
    let got = run(
        &[("__meta_job", "new"), ("job", "old")],
        r#"[{"regex":"__meta_(.*)","action":"labelmap"}]"#,
    );
    assert_eq!(got, Some(labels(&[("__meta_job", "new"), ("job", "new")])));
}

#[test]
fn labelmap_to_empty_name_is_skipped() {
    let got = run(
        &[("foo", "1")],
        r#"[{"regex":"foo(.*)","action":"labelmap"}]"#,
    );
    assert_eq!(got, Some(labels(&[("foo", "1")])));
}

#[test]
fn lowercase_and_uppercase_of_empty_value_delete_target() {
    let got = run(
        &[("shout", "LOUD")],
        r#"[{"source_labels":["absent"],"target_label":"shout","action":"lowercase"}]"#,
    );
    assert_eq!(got, Some(vec![]));
}

#[test]
fn uppercase_uses_go_simple_case_mapping() {
    let got = run(
        &[("city", "straße")],
        r#"[{"source_labels":["city"],"target_label":"city_upper","action":"uppercase"}]"#,
    );
    assert_eq!(
        got,
        Some(labels(&[("city", "straße"), ("city_upper", "STRAßE")]))
    );
}

#[test]
fn keepequal_treats_absent_labels_as_empty() {
    let rule =
        r#"[{"source_labels":["absent"],"target_label":"also_absent","action":"keepequal"}]"#;
    assert!(run(&[("a", "1")], rule).is_some());
}

#[test]
fn perl_classes_in_rules_are_ascii_as_in_prometheus() {
    let rule = r#"[{"source_labels":["code"],"regex":"\\d+","action":"keep"}]"#;
    assert!(run(&[("code", "200")], rule).is_some());
    assert_eq!(run(&[("code", "٢٠٠")], rule), None);
}

#[test]
fn null_regex_matches_only_the_empty_string() {
    let rule = r#"[{"source_labels":["a"],"regex":null,"action":"drop"}]"#;
    assert_eq!(run(&[("b", "1")], rule), None);
    assert!(run(&[("a", "1")], rule).is_some());
}

#[test]
fn output_is_sorted_and_unique_even_for_unsorted_input() {
    let mut series = vec![
        Label::new("b", "2"),
        Label::new("a", "1"),
        Label::new("b", "3"),
    ];
    assert!(process(&mut series, &[]));
    assert_eq!(series, labels(&[("a", "1"), ("b", "2")]));

    let mut series = vec![Label::new("z", "1"), Label::new("a", "1")];
    let keep = process(
        &mut series,
        &rules(r#"[{"target_label":"m","replacement":"x"}]"#),
    );
    assert!(keep);
    assert_eq!(series, labels(&[("a", "1"), ("m", "x"), ("z", "1")]));
}

#[test]
fn untouched_labels_keep_their_allocations() {
    let mut series = labels(&[("a", "keep me"), ("b", "old value")]);
    let untouched = series[0].value.as_ptr();
    let updated = series[1].value.as_ptr();
    let keep = process(
        &mut series,
        &rules(r#"[{"target_label":"b","replacement":"new"}]"#),
    );
    assert!(keep);
    assert_eq!(series, labels(&[("a", "keep me"), ("b", "new")]));
    assert_eq!(series[0].value.as_ptr(), untouched);
    assert_eq!(
        series[1].value.as_ptr(),
        updated,
        "value rewritten in place"
    );
}

#[test]
fn one_scratch_serves_different_rule_lists() {
    let two_groups = rules(
        r#"[{"source_labels":["a"],"regex":"(.)(.)","target_label":"t","replacement":"$2$1"}]"#,
    );
    let one_group =
        rules(r#"[{"source_labels":["a"],"regex":"x(.*)","target_label":"t","replacement":"$1"}]"#);
    let mut scratch = Scratch::default();
    for _ in 0..2 {
        let mut series = labels(&[("a", "ab")]);
        assert!(process_with(&mut series, &two_groups, &mut scratch));
        assert_eq!(series, labels(&[("a", "ab"), ("t", "ba")]));
        let mut series = labels(&[("a", "xyz")]);
        assert!(process_with(&mut series, &one_group, &mut scratch));
        assert_eq!(series, labels(&[("a", "xyz"), ("t", "yz")]));
    }
}

#[test]
fn compiled_rules_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledRelabel>();
    let shared = std::sync::Arc::new(rules(r#"[{"target_label":"t","replacement":"v"}]"#));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let shared = std::sync::Arc::clone(&shared);
            std::thread::spawn(move || {
                let mut series = labels(&[("a", "1")]);
                process(&mut series, &shared).then_some(series)
            })
        })
        .collect();
    for handle in handles {
        let got = handle.join().expect("thread finished");
        assert_eq!(got, Some(labels(&[("a", "1"), ("t", "v")])));
    }
}

// ---- loading and validation ----

#[test]
fn absent_keys_take_prometheus_defaults() {
    let config: RelabelConfig = serde_json::from_str(r#"{"target_label":"t"}"#).expect("loads");
    assert_eq!(
        config,
        RelabelConfig {
            target_label: "t".into(),
            ..RelabelConfig::default()
        }
    );
    assert_eq!(config.separator, ";");
    assert_eq!(config.regex_str(), "(.*)");
    assert_eq!(config.replacement, "$1");
    assert_eq!(config.action, Action::Replace);
}

#[test]
fn null_values_take_go_zero_values() {
    let config: RelabelConfig = serde_json::from_str(
        r#"{"target_label":"t","separator":null,"regex":null,"replacement":null,"modulus":null,"source_labels":null}"#,
    )
    .expect("loads");
    assert_eq!(config.separator, "");
    assert_eq!(config.regex.as_deref(), Some(""));
    assert_eq!(config.replacement, "");
    assert_eq!(config.modulus, 0);
    assert_eq!(config.source_labels, None);
}

#[test]
fn action_is_parsed_case_insensitively() {
    for (written, want) in [
        ("Replace", Action::Replace),
        ("labelmap", Action::LabelMap),
        ("LabelMap", Action::LabelMap),
        ("HASHMOD", Action::HashMod),
        ("KeepEqual", Action::KeepEqual),
        ("dropEqual", Action::DropEqual),
    ] {
        assert_eq!(written.parse::<Action>(), Ok(want), "{written}");
    }
    for action in Action::ALL {
        assert_eq!(action.as_str().parse::<Action>(), Ok(action));
    }
}

#[test]
fn unknown_or_null_action_is_refused() {
    assert!(load_error(r#"{"action":"rename"}"#).contains(r#"unknown relabel action "rename""#));
    assert!(load_error(r#"{"action":""}"#).contains(r#"unknown relabel action """#));
    assert!(load_error(r#"{"action":null}"#).contains("relabel action cannot be empty"));
}

#[test]
fn unknown_keys_are_refused() {
    let error = load_error(r#"{"target_label":"t","regexp":"x"}"#);
    assert!(error.contains("unknown field `regexp`"), "{error}");
}

#[test]
fn config_round_trips_through_serialize() {
    for json in [
        r#"{"source_labels":["a","b"],"separator":"/","regex":"(.+)","target_label":"t","replacement":"${1}x","action":"replace"}"#,
        r#"{"regex":"tmp_.*","action":"labeldrop"}"#,
        r#"{"source_labels":["a"],"target_label":"h","modulus":8,"action":"hashmod"}"#,
    ] {
        let config: RelabelConfig = serde_json::from_str(json).expect("loads");
        let back = serde_json::to_string(&config).expect("serializes");
        let again: RelabelConfig = serde_json::from_str(&back).expect("reloads");
        assert_eq!(again, config, "{json} -> {back}");
    }
}

#[test]
fn validation_errors_name_the_field_and_problem() {
    // (rule, expected error text); the first ones are TestRelabelValidate's, under legacy
    // label name validation.
    let cases = [
        (
            r#"{"action":"replace"}"#,
            "target_label: required for the replace action",
        ),
        (
            r#"{"action":"lowercase"}"#,
            "target_label: required for the lowercase action",
        ),
        (
            r#"{"action":"lowercase","target_label":"${3}"}"#,
            r#"target_label: "${3}" is not a valid label name for the lowercase action"#,
        ),
        (
            r#"{"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${1}","target_label":"0${3}"}"#,
            r#"target_label: "0${3}" is not a valid label name for the replace action"#,
        ),
        (
            r#"{"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${1}","target_label":"-${3}"}"#,
            r#"target_label: "-${3}" is not a valid label name for the replace action"#,
        ),
        (
            r#"{"source_labels":["a"],"regex":"line1.*line2","target_label":"utf-8.label"}"#,
            r#"target_label: "utf-8.label" is not a valid label name for the replace action"#,
        ),
        (
            r#"{"source_labels":["a"],"regex":"line1.*line2","target_label":"utf-8.label${1}"}"#,
            r#"target_label: "utf-8.label${1}" is not a valid label name for the replace action"#,
        ),
        (
            r#"{"source_labels":["utf-8.label"],"target_label":"d"}"#,
            r#"source_labels: "utf-8.label" is not a valid label name"#,
        ),
        (
            r#"{"source_labels":["a"],"target_label":"h","action":"hashmod"}"#,
            "modulus: the hashmod action requires a non-zero modulus",
        ),
        (
            r#"{"source_labels":["a"],"target_label":"h-1","modulus":2,"action":"hashmod"}"#,
            r#"target_label: "h-1" is not a valid label name for the hashmod action"#,
        ),
        (
            r#"{"source_labels":["a"],"target_label":"b","replacement":"x","action":"uppercase"}"#,
            "replacement: cannot be set for the uppercase action",
        ),
        (
            r#"{"regex":"(.*)","replacement":"foo-$1","action":"labelmap"}"#,
            r#"replacement: "foo-$1" is not a valid label name template for the labelmap action"#,
        ),
        (
            r#"{"source_labels":["a"],"target_label":"b","regex":"(.*)","action":"keepequal"}"#,
            "regex: the keepequal action accepts only source_labels and target_label",
        ),
        (
            r#"{"source_labels":["a"],"target_label":"b","separator":",","action":"dropequal"}"#,
            "separator: the dropequal action accepts only source_labels and target_label",
        ),
        (
            r#"{"source_labels":["a"],"target_label":"b","modulus":3,"action":"keepequal"}"#,
            "modulus: the keepequal action accepts only source_labels and target_label",
        ),
        (
            r#"{"source_labels":[],"regex":"x","action":"labeldrop"}"#,
            "source_labels: the labeldrop action accepts only regex",
        ),
        (
            r#"{"target_label":"t","regex":"x","action":"labelkeep"}"#,
            "target_label: the labelkeep action accepts only regex",
        ),
        (
            r#"{"replacement":"r","regex":"x","action":"labeldrop"}"#,
            "replacement: the labeldrop action accepts only regex",
        ),
        (
            r#"{"source_labels":["a"],"regex":"(unclosed","target_label":"t"}"#,
            r#"regex: "(unclosed" is not a valid regular expression"#,
        ),
        (r#"{"regex":"\\Qa.b\\E","target_label":"t"}"#, "regex:"),
    ];
    for (json, want) in cases {
        let error = load_error(json);
        assert!(error.contains(want), "{json}: got {error:?}, want {want:?}");
    }
}

#[test]
fn valid_rules_from_prometheus_validate_test_load() {
    for json in [
        r#"{"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${1}","target_label":"${3}"}"#,
        r#"{"regex":"__meta_kubernetes_pod_label_(strimzi_io_.+)","action":"labelmap","replacement":"$1"}"#,
        r#"{"regex":"__meta_(.+)","action":"labelmap","replacement":"${1}"}"#,
        r#"{"source_labels":["a"],"target_label":"b","action":"keepequal","replacement":"$1","separator":";"}"#,
        r#"{"regex":"tmp","action":"labeldrop","separator":";","replacement":"$1"}"#,
    ] {
        let loaded: Result<RelabelConfig, _> = serde_json::from_str(json);
        assert!(loaded.is_ok(), "{json}: {:?}", loaded.err());
    }
}

#[test]
fn target_label_templates_follow_prometheus_legacy_validity() {
    // TestTargetLabelLegacyValidity, through the replace action's target_label.
    for (target, valid) in [
        ("-label", false),
        ("label", true),
        ("label${1}", true),
        ("${1}label", true),
        ("${1}", true),
        ("${", false),
        ("$", false),
        ("${}", false),
        ("foo${", false),
        ("$1", true),
        ("asd$2asd", true),
        ("-foo${1}bar-", false),
        ("bar.foo${1}bar", false),
        ("_${1}_", true),
        ("foo${bar}foo", true),
    ] {
        let config = RelabelConfig {
            target_label: target.into(),
            ..RelabelConfig::default()
        };
        assert_eq!(config.validate().is_ok(), valid, "{target:?}");
    }
}

#[test]
fn compile_all_names_the_failing_rule() {
    let list = [
        RelabelConfig {
            target_label: "ok".into(),
            ..RelabelConfig::default()
        },
        RelabelConfig {
            action: Action::HashMod,
            target_label: "h".into(),
            ..RelabelConfig::default()
        },
    ];
    let error = compile_all(&list).expect_err("second rule has no modulus");
    assert_eq!(
        error,
        RelabelError::InRule {
            index: 1,
            error: Box::new(RelabelError::ModulusRequired)
        }
    );
    assert_eq!(
        error.to_string(),
        "relabel rule 1: modulus: the hashmod action requires a non-zero modulus"
    );
}

#[test]
fn compiled_rule_exposes_its_configuration() {
    let config = RelabelConfig {
        source_labels: Some(vec!["a".into()]),
        regex: Some("x".into()),
        action: Action::Keep,
        ..RelabelConfig::default()
    };
    let compiled = config.compile().expect("compiles");
    assert_eq!(compiled.config(), &config);
    assert_eq!(compiled.action(), Action::Keep);
}
