//! vminsert tenants end to end: pushes to `/insert/<tenant>/...` keep their tenant through a
//! multitenant storage (a recording fake vminsert, and vmagent 1.79's own multitenant forwarding
//! as the reference), while an ordinary storage (VictoriaMetrics) gets everything.

mod common;

use std::collections::BTreeMap;

use common::relay::{
    FakeStorage, Pushes, REMOTE_WRITE_HEADERS, Relay, assert_holds_exactly, encode,
};
use common::{EVENTUALLY_TIMEOUT, Peers, Series, eventually};

/// Where a tenant's pushes go in, the path a vminsert cluster must receive them on, and the
/// metric that tells them apart.
const CASES: [(&str, &str, &str); 4] = [
    (
        "/insert/1:2/prometheus/api/v1/write",
        "/insert/1:2/prometheus/api/v1/write",
        "tenant_one_two",
    ),
    (
        "/insert/7/prometheus/api/v1/push",
        "/insert/7:0/prometheus/api/v1/write",
        "tenant_seven",
    ),
    (
        "/insert/0042:3/prometheus",
        "/insert/42:3/prometheus/api/v1/write",
        "tenant_leading_zeros",
    ),
    (
        "/api/v1/write",
        "/insert/0:0/prometheus/api/v1/write",
        "tenant_none",
    ),
];

const IMPORT_PATH: &str = "/insert/5:6/prometheus/api/v1/import/prometheus";
const IMPORT_FORWARD: &str = "/insert/5:6/prometheus/api/v1/write";

fn import_text() -> String {
    let ts = common::now_ms() - 1000;
    format!("tenant_import{{via=\"text\"}} 1 {ts}\ntenant_import{{via=\"more\"}} 2 {ts}\n")
}

/// The pushes of each case, 5 pushes of 3 series.
fn case_pushes() -> Vec<Pushes> {
    CASES
        .iter()
        .map(|(_, _, metric)| Pushes::new(metric, 5, 3))
        .collect()
}

/// `{forward path: series}` of `metric` at a vminsert, once it holds `samples` of them.
async fn at_vminsert(
    vminsert: &FakeStorage,
    metric: &str,
    samples: usize,
) -> BTreeMap<String, Vec<Series>> {
    eventually(
        &format!("{samples} samples of {metric} at the fake vminsert"),
        EVENTUALLY_TIMEOUT,
        || async {
            let by_path = vminsert.series_by_path(metric);
            let n: usize = by_path.values().map(|s| common::sample_count(s)).sum();
            if n >= samples {
                Ok(by_path)
            } else {
                Err(format!("{n} samples: {:?}", by_path.keys()))
            }
        },
    )
    .await
}

fn sorted(mut by_path: BTreeMap<String, Vec<Series>>) -> BTreeMap<String, Vec<Series>> {
    for series in by_path.values_mut() {
        for s in series.iter_mut() {
            s.samples.sort_by_key(|(t, _)| *t);
        }
    }
    by_path
}

#[tokio::test]
async fn each_tenant_reaches_its_insert_path_and_the_plain_storage_gets_everything() {
    let vm = Peers::victoria_metrics().start().await;
    let vminsert = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[vm.remote_write_url()])
        .multitenant_storage(&vminsert.base_url())
        .start()
        .await;
    let cases = case_pushes();

    for ((push_path, _, _), pushes) in CASES.iter().zip(&cases) {
        for request in pushes.requests() {
            let (status, body) = relay
                .push_raw_to(push_path, encode(&request), &REMOTE_WRITE_HEADERS)
                .await;
            assert_eq!(status, 204, "{push_path}: {body}");
        }
    }
    let (status, body) = relay
        .push_raw_to(
            IMPORT_PATH,
            import_text(),
            &[("Content-Type", "text/plain")],
        )
        .await;
    assert_eq!(status, 204, "{IMPORT_PATH}: {body}");

    for ((_, forward_path, metric), pushes) in CASES.iter().zip(&cases) {
        let by_path = at_vminsert(&vminsert, metric, pushes.sample_count()).await;
        assert_eq!(
            by_path.keys().collect::<Vec<_>>(),
            [forward_path],
            "{metric} went to exactly its tenant's path"
        );
        assert_holds_exactly(forward_path, &by_path[*forward_path], &pushes.expected());
        let at_vm = vm.export_at_least(metric, pushes.sample_count()).await;
        assert_holds_exactly("victoria-metrics", &at_vm, &pushes.expected());
    }
    let imported = at_vminsert(&vminsert, "tenant_import", 2).await;
    assert_eq!(imported.keys().collect::<Vec<_>>(), [IMPORT_FORWARD]);
    assert_eq!(vm.export_at_least("tenant_import", 2).await.len(), 2);

    let queues = relay.wait_until_drained().await;
    let tenants: Vec<&serde_json::Value> = queues.iter().map(|q| &q["tenant"]).collect();
    assert_eq!(
        tenants,
        [
            &serde_json::Value::Null,
            &"0:0".into(),
            &"1:2".into(),
            &"5:6".into(),
            &"7:0".into(),
            &"42:3".into()
        ],
        "{queues:#?}"
    );
    assert_eq!(
        queues[2]["url"],
        format!("{}/insert/1:2/prometheus/api/v1/write", vminsert.base_url())
    );
    assert_eq!(queues[2]["sent_samples_total"], 15, "{:#?}", queues[2]);
    let id = queues[2]["id"].as_str().expect("an id");
    let (_, metrics) = relay.get("/metrics").await;
    let line = format!("promrelay_sent_samples_total{{storage=\"{id}\",tenant=\"1:2\"}} 15");
    assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    let (_, page) = relay.get("/").await;
    assert!(
        page.contains("tenant 42:3"),
        "the status page names the tenant"
    );
}

#[tokio::test]
async fn relay_forwards_each_tenant_to_the_path_vmagent_forwards_it_to() {
    let (for_relay, for_vmagent) =
        tokio::join!(FakeStorage::new().start(), FakeStorage::new().start());
    let vmagent = Peers::vmagent()
        .arg(format!(
            "-remoteWrite.multitenantURL={}",
            for_vmagent.base_url()
        ))
        .start()
        .await;
    let relay = Relay::with_storages::<&str>(&[])
        .multitenant_storage(&for_relay.base_url())
        .start()
        .await;
    // The forms vmagent 1.79 accepts itself.
    let cases = [
        ("/insert/1:2/prometheus/api/v1/write", "vm_cmp_one_two"),
        ("/insert/7/prometheus", "vm_cmp_seven"),
        ("/insert/0042:3/prometheus/", "vm_cmp_zeros"),
        ("/api/v1/write", "vm_cmp_none"),
    ];
    let mut all = Vec::new();
    for (path, metric) in cases {
        let pushes = Pushes::new(metric, 3, 4);
        for request in pushes.requests() {
            let body = encode(&request);
            let (to_relay, to_vmagent) = tokio::join!(
                relay.push_raw_to(path, body.clone(), &REMOTE_WRITE_HEADERS),
                vmagent.push_raw_to(path, body, &REMOTE_WRITE_HEADERS)
            );
            assert_eq!(to_relay.0, 204, "relay {path}: {}", to_relay.1);
            assert_eq!(to_vmagent.0 / 100, 2, "vmagent {path}: {}", to_vmagent.1);
        }
        all.push((metric, pushes.sample_count()));
    }
    let text = import_text();
    let (to_relay, to_vmagent) = tokio::join!(
        relay.push_raw_to(IMPORT_PATH, text.clone(), &[("Content-Type", "text/plain")]),
        vmagent.push_raw_to(IMPORT_PATH, text, &[("Content-Type", "text/plain")])
    );
    assert_eq!(
        (to_relay.0, to_vmagent.0 / 100),
        (204, 2),
        "{to_relay:?} {to_vmagent:?}"
    );
    all.push(("tenant_import", 2));

    for (metric, samples) in all {
        let ours = sorted(at_vminsert(&for_relay, metric, samples).await);
        let theirs = sorted(at_vminsert(&for_vmagent, metric, samples).await);
        assert_eq!(
            ours, theirs,
            "{metric}: relay's paths and series against vmagent's"
        );
    }
}

#[tokio::test]
async fn tenants_victoriametrics_refuses_get_400_with_the_reason_and_queue_nothing() {
    let vminsert = FakeStorage::new().start().await;
    let plain = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[plain.url()])
        .multitenant_storage(&vminsert.base_url())
        .start()
        .await;
    let request = encode(&Pushes::new("bad_tenant", 1, 1).request(0));
    for (tenant, reason) in [
        ("1:x", "cannot parse projectID"),
        ("x", "cannot parse accountID"),
        ("4294967296", "out of range"),
        ("1:2:3", "3 parts"),
        ("-1", "not a decimal number"),
        ("1%3A", "cannot parse projectID"),
        ("multitenant", "not supported"),
    ] {
        let path = format!("/insert/{tenant}/prometheus/api/v1/write");
        let (status, body) = relay
            .push_raw_to(&path, request.clone(), &REMOTE_WRITE_HEADERS)
            .await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(reason), "{path}: {body}");
    }
    let queues = relay.queues().await;
    assert_eq!(queues.len(), 1, "no tenant queue was opened: {queues:#?}");
    assert_eq!(queues[0]["pending_blocks"], 0);
    let (_, metrics) = relay.get("/metrics").await;
    assert!(
        metrics.contains("promrelay_rejected_requests_total{reason=\"bad_tenant\"} 7"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_new_tenant_past_max_tenants_gets_503_while_known_tenants_keep_working() {
    let vminsert = FakeStorage::new().start().await;
    let plain = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[plain.url()])
        .multitenant_storage(&vminsert.base_url())
        .arg("--max-tenants")
        .arg("2")
        .start()
        .await;
    let pushes = Pushes::new("bounded", 4, 2);
    let push = |tenant: &'static str, i: usize| {
        let body = encode(&pushes.request(i));
        let relay = &relay;
        async move {
            relay
                .push_raw_to(
                    &format!("/insert/{tenant}/prometheus/api/v1/write"),
                    body,
                    &REMOTE_WRITE_HEADERS,
                )
                .await
        }
    };
    assert_eq!(push("1", 0).await.0, 204);
    assert_eq!(push("2", 1).await.0, 204);

    let (status, body) = push("3", 2).await;

    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("max_tenants") && body.contains("3:0") && body.lines().count() == 1,
        "one line naming the bound and the tenant: {body}"
    );
    assert_eq!(push("2", 3).await.0, 204, "a known tenant keeps working");
    let expected: Vec<usize> = vec![0, 1, 3];
    let held = plain.samples_at_least("bounded", 2 * expected.len()).await;
    assert_holds_exactly("plain", &held, &pushes.expected_without(&[2]));
    let (_, metrics) = relay.get("/metrics").await;
    assert!(
        metrics.contains("promrelay_rejected_requests_total{reason=\"too_many_tenants\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn tenant_queues_with_a_backlog_are_recovered_on_restart_and_drain_without_a_push() {
    let mut vminsert = FakeStorage::new().start().await;
    vminsert.stop().await;
    let mut relay = Relay::with_storages::<&str>(&[])
        .multitenant_storage(&vminsert.base_url())
        .start()
        .await;
    let first = Pushes::new("backlog_first", 4, 3);
    let second = Pushes::new("backlog_second", 4, 3);
    for i in 0..4 {
        for (tenant, pushes) in [("11", &first), ("12:13", &second)] {
            let (status, body) = relay
                .push_raw_to(
                    &format!("/insert/{tenant}/prometheus/api/v1/write"),
                    encode(&pushes.request(i)),
                    &REMOTE_WRITE_HEADERS,
                )
                .await;
            assert_eq!(status, 204, "{body}");
        }
    }
    let exit = relay.terminate().await;
    assert!(exit.success(), "{exit}");

    vminsert.start_again().await;
    relay.start_again().await;

    for (metric, pushes, path) in [
        (
            "backlog_first",
            &first,
            "/insert/11:0/prometheus/api/v1/write",
        ),
        (
            "backlog_second",
            &second,
            "/insert/12:13/prometheus/api/v1/write",
        ),
    ] {
        let by_path = at_vminsert(&vminsert, metric, pushes.sample_count()).await;
        assert_eq!(by_path.keys().collect::<Vec<_>>(), [path]);
        assert_holds_exactly(path, &by_path[path], &pushes.expected());
    }
    let queues = relay.wait_until_drained().await;
    assert_eq!(queues.len(), 2, "{queues:#?}");
}

#[tokio::test]
async fn otlp_pushes_keep_their_tenant_and_a_bad_one_gets_an_otlp_status() {
    let vminsert = FakeStorage::new().start().await;
    let relay = Relay::with_storages::<&str>(&[])
        .multitenant_storage(&vminsert.base_url())
        .start()
        .await;
    let ns = common::now_ms() * 1_000_000;
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"otlp_tenant_gauge","gauge":{{"dataPoints":[{{"timeUnixNano":"{ns}","asDouble":3}}]}}}}]}}]}}]}}"#
    );
    let json = [("Content-Type", "application/json")];
    for path in [
        "/insert/3:4/opentelemetry/v1/metrics",
        "/insert/3:4/opentelemetry/api/v1/push",
    ] {
        let (status, answer) = relay.push_raw_to(path, body.clone(), &json).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }

    let by_path = at_vminsert(&vminsert, "otlp_tenant_gauge", 2).await;
    assert_eq!(
        by_path.keys().collect::<Vec<_>>(),
        ["/insert/3:4/prometheus/api/v1/write"]
    );
    let (status, answer) = relay
        .push_raw_to("/insert/3:x/opentelemetry/v1/metrics", body, &json)
        .await;
    assert_eq!(status, 400, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("a JSON Status");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot parse projectID"), "{answer}");
}

#[tokio::test]
async fn a_tenant_whose_path_fails_holds_back_no_other_tenant() {
    let down = "/insert/1:0/prometheus/api/v1/write";
    let vminsert = FakeStorage::new().failing_on(down).start().await;
    let relay = Relay::with_storages::<&str>(&[])
        .multitenant_storage(&vminsert.base_url())
        .start()
        .await;
    let stuck = Pushes::new("held_back", 5, 2);
    let flowing = Pushes::new("flowing", 5, 2);
    for i in 0..5 {
        for (tenant, pushes) in [("1", &stuck), ("2", &flowing)] {
            let (status, body) = relay
                .push_raw_to(
                    &format!("/insert/{tenant}/prometheus/api/v1/write"),
                    encode(&pushes.request(i)),
                    &REMOTE_WRITE_HEADERS,
                )
                .await;
            assert_eq!(status, 204, "{body}");
        }
    }

    let by_path = at_vminsert(&vminsert, "flowing", flowing.sample_count()).await;
    let path = "/insert/2:0/prometheus/api/v1/write";
    assert_holds_exactly(path, &by_path[path], &flowing.expected());
    let stuck_queue = relay
        .wait_for_queue(0, "tenant 1:0 retrying with its backlog", |q| {
            q["tenant"] == "1:0" && q["state"] == "retrying" && q["pending_blocks"] == 5
        })
        .await;
    assert!(
        stuck_queue["retries_total"].as_u64() > Some(0),
        "{stuck_queue}"
    );
    assert!(vminsert.series_by_path("held_back").is_empty());

    vminsert.heal();
    let by_path = at_vminsert(&vminsert, "held_back", stuck.sample_count()).await;
    assert_holds_exactly(down, &by_path[down], &stuck.expected());
}
