//! The built-in scraper end to end: what a scrape writes, what a failed scrape and a vanished
//! target write (stale markers), what a reload changes and what a refused reload leaves alone,
//! and how labels, `metric_relabel_configs`, `sample_limit` and `file_sd` shape what is scraped.
//!
//! Real node_exporter and VictoriaMetrics where the point is interoperability; in-process
//! targets and the fake storage (which shows a stale marker's exact NaN bits) elsewhere. Every
//! job scrapes every second.

mod common;

use common::relay::{FakeStorage, Relay};
use common::scrape::{
    Job, RelayScrape, ScrapeConfig, ScrapingRelay, TargetServer, export_until, file_sd_json,
    is_stale_marker, summary,
};
use common::{EVENTUALLY_TIMEOUT, NodeExporter, Peers, Series, VictoriaMetrics, eventually};

/// A fake storage, and a relay that scrapes what `config` says and forwards it there.
async fn scraping_into_fake_storage(config: &ScrapeConfig) -> (FakeStorage, Relay) {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()])
        .scraping(config)
        .start()
        .await;
    (storage, relay)
}

/// The series of `metric` the storage acknowledged whose `instance` is `instance`.
fn of_instance(storage: &FakeStorage, metric: &str, instance: &str) -> Vec<Series> {
    storage
        .series(metric)
        .into_iter()
        .filter(|s| s.label("instance") == Some(instance))
        .collect()
}

/// Waits until `storage` holds series of `metric` for which `done` holds, and returns them.
async fn storage_until(
    storage: &FakeStorage,
    metric: &str,
    what: &str,
    done: impl Fn(&[Series]) -> bool,
) -> Vec<Series> {
    eventually(what, EVENTUALLY_TIMEOUT, || async {
        let series = storage.series(metric);
        if done(&series) {
            Ok(series)
        } else {
            Err(format!("{series:?}"))
        }
    })
    .await
}

/// Real VictoriaMetrics and node_exporter, and a relay scraping the one (job `node`) into the
/// other. The config and relay must be kept alive for the test.
async fn node_exporter_into_victoria_metrics()
-> (VictoriaMetrics, NodeExporter, ScrapeConfig, Relay) {
    let (vm, node) = tokio::join!(
        Peers::victoria_metrics().start(),
        Peers::node_exporter().start()
    );
    let config = ScrapeConfig::new(&[Job::new("node").target(node.target())]);
    let relay = Relay::with_storages(&[vm.remote_write_url()])
        .scraping(&config)
        .start()
        .await;
    (vm, node, config, relay)
}

fn ends_stale(series: &Series) -> bool {
    series
        .samples
        .last()
        .is_some_and(|(_, v)| is_stale_marker(*v))
}

fn has_stale_marker(series: &Series) -> bool {
    series.samples.iter().any(|(_, v)| is_stale_marker(*v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_scraped_through_relay_arrives_in_victoria_metrics_with_job_and_instance() {
    let (vm, node, _config, _relay) = node_exporter_into_victoria_metrics().await;

    let up = vm.export_at_least(r#"up{job="node"}"#, 2).await;
    let node_series = vm.export_at_least(r#"{__name__=~"node_.*"}"#, 100).await;

    assert_eq!(up.len(), 1, "one up series: {up:?}");
    assert_eq!(up[0].label("instance"), Some(node.target().as_str()));
    assert!(up[0].values().iter().all(|v| *v == 1.0), "{up:?}");
    let strays: Vec<_> = node_series
        .iter()
        .filter(|s| s.label("job") != Some("node") || s.label("instance") != Some(&node.target()))
        .map(|s| &s.labels)
        .collect();
    assert!(
        strays.is_empty(),
        "series without job and instance: {strays:?}"
    );
    let names: std::collections::BTreeSet<&str> = node_series.iter().map(|s| s.name()).collect();
    for expected in ["node_exporter_build_info", "node_time_seconds"] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    for added in [
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        let series = vm
            .export_at_least(&format!(r#"{added}{{job="node"}}"#), 1)
            .await;
        assert_eq!(
            series[0].label("instance"),
            Some(node.target().as_str()),
            "{added}: {series:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_node_exporter_gives_up_zero_and_stale_markers() {
    let (vm, mut node, _config, _relay) = node_exporter_into_victoria_metrics().await;
    vm.export_at_least(r#"up{job="node"}"#, 2).await;

    node.stop().await;

    let up = export_until(&vm, r#"up{job="node"}"#, "up to go to 0", |s| {
        s.len() == 1 && s[0].samples.last().is_some_and(|(_, v)| *v == Some(0.0))
    })
    .await;
    assert!(up[0].values().contains(&1.0), "up was 1 before: {up:?}");
    let node_series = export_until(
        &vm,
        r#"{__name__=~"node_.*",job="node"}"#,
        "every node_* series to end with a stale marker (null)",
        |s| s.len() > 100 && s.iter().all(|s| s.ends_stale()),
    )
    .await;
    assert!(
        node_series.iter().all(|s| !s.values().is_empty()),
        "{}",
        summary(&node_series)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_target_gets_stale_markers_after_reload() {
    let targets = TargetServer::on_ports(2, "reload_metric 1\n").await;
    let [kept, removed] = <[String; 2]>::try_from(targets.addresses()).expect("two ports");
    let config = ScrapeConfig::new(&[Job::new("app").targets(&[&kept, &removed])]);
    let (storage, relay) = scraping_into_fake_storage(&config).await;
    storage_until(&storage, "reload_metric", "both targets scraped", |s| {
        s.len() == 2
    })
    .await;

    config.rewrite(&[Job::new("app").target(&kept)]);
    relay
        .reload_scrape_config()
        .await
        .expect("the new config loads");

    for metric in ["reload_metric", "up", "scrape_duration_seconds"] {
        storage_until(
            &storage,
            metric,
            &format!("{metric} of the removed target to end with a stale marker"),
            |_| {
                let series = of_instance(&storage, metric, &removed);
                !series.is_empty() && series.iter().all(ends_stale)
            },
        )
        .await;
    }
    let scrapes_after_reload = targets.scrapes_of(&removed);
    let kept_before = of_instance(&storage, "reload_metric", &kept)[0]
        .samples
        .len();
    // Two more scrapes of the kept target: time enough for the removed one, on the same
    // interval, to be scraped again if its loop had survived.
    let kept_series = eventually(
        "the kept target to be scraped twice more",
        EVENTUALLY_TIMEOUT,
        || async {
            let series = of_instance(&storage, "reload_metric", &kept);
            if series
                .first()
                .is_some_and(|s| s.samples.len() >= kept_before + 2)
            {
                Ok(series)
            } else {
                Err(format!("{series:?}"))
            }
        },
    )
    .await;
    assert!(
        targets.scrapes_of(&removed) <= scrapes_after_reload + 1,
        "the removed target is no longer scraped"
    );
    assert!(
        !has_stale_marker(&kept_series[0]),
        "the kept target got no stale marker: {kept_series:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_new_scrape_config_is_refused_and_old_keeps_running() {
    let targets = TargetServer::on_ports(2, "steady_metric 1\n").await;
    let [running, proposed] = <[String; 2]>::try_from(targets.addresses()).expect("two ports");
    let config = ScrapeConfig::new(&[Job::new("app").target(&running)]);
    let (storage, relay) = scraping_into_fake_storage(&config).await;
    storage_until(&storage, "steady_metric", "the target scraped", |s| {
        s.len() == 1
    })
    .await;

    // Valid YAML adding a target, but a timeout longer than the interval: Prometheus refuses it.
    config.rewrite(&[Job::new("app")
        .targets(&[&running, &proposed])
        .setting("scrape_interval: 1s")
        .setting("scrape_timeout: 5s")]);
    let refused = relay.reload_scrape_config().await;

    let reason = refused.expect_err("a timeout longer than the interval is refused");
    assert!(reason.contains("scrape_timeout"), "{reason}");
    let scrapes_at_reload = targets.scrapes_of(&running);
    eventually(
        "the running target to be scraped twice more",
        EVENTUALLY_TIMEOUT,
        || async {
            let now = targets.scrapes_of(&running);
            if now >= scrapes_at_reload + 2 {
                Ok(())
            } else {
                Err(format!("{now} scrapes, {scrapes_at_reload} at the reload"))
            }
        },
    )
    .await;
    assert_eq!(
        targets.scrapes_of(&proposed),
        0,
        "the refused config's target"
    );
    let series = of_instance(&storage, "steady_metric", &running);
    assert!(!has_stale_marker(&series[0]), "{series:?}");
    assert!(relay.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honor_labels_and_metric_relabel_configs_apply() {
    let target = TargetServer::serving(
        "# TYPE app_info gauge\n\
         app_info{job=\"from_target\",instance=\"inner\",version=\"1.2\"} 1\n\
         debug_noise_total 5\n",
    )
    .await;
    let address = target.address();
    let config = ScrapeConfig::new(&[
        Job::new("plain").target(&address).setting(
            "metric_relabel_configs:\n\
             \x20 - source_labels: [__name__]\n\
             \x20   regex: debug_.*\n\
             \x20   action: drop\n\
             \x20 - source_labels: [version]\n\
             \x20   target_label: release",
        ),
        Job::new("honoring")
            .target(&address)
            .setting("honor_labels: true"),
    ]);
    let (storage, _relay) = scraping_into_fake_storage(&config).await;

    let app_info = storage_until(&storage, "app_info", "app_info from both jobs", |s| {
        s.len() == 2
    })
    .await;
    let noise = storage_until(&storage, "debug_noise_total", "debug noise", |s| {
        !s.is_empty()
    })
    .await;
    let up = storage_until(&storage, "up", "up of both jobs", |s| s.len() == 2).await;

    let labels = |series: &Series| -> Vec<(String, String)> {
        series
            .labels
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    };
    let mut got: Vec<_> = app_info.iter().map(labels).collect();
    got.sort();
    let mut want = vec![
        pairs(&[
            ("__name__", "app_info"),
            ("instance", "inner"),
            ("job", "from_target"),
            ("version", "1.2"),
        ]),
        pairs(&[
            ("__name__", "app_info"),
            ("exported_instance", "inner"),
            ("exported_job", "from_target"),
            ("instance", &address),
            ("job", "plain"),
            ("release", "1.2"),
            ("version", "1.2"),
        ]),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(
        noise.iter().all(|s| s.label("job") == Some("honoring")),
        "only the job without the drop rule keeps debug_noise_total: {noise:?}"
    );
    let mut up_jobs: Vec<_> = up.iter().filter_map(|s| s.label("job")).collect();
    up_jobs.sort();
    assert_eq!(
        up_jobs,
        ["honoring", "plain"],
        "metric_relabel_configs leave up alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_limit_exceeded_fails_the_scrape() {
    let exposition: String = (0..10)
        .map(|i| format!("limited_metric{{n=\"{i}\"}} {i}\n"))
        .collect();
    let target = TargetServer::serving(&exposition).await;
    let config = ScrapeConfig::new(&[
        Job::new("over")
            .target(target.address())
            .setting("sample_limit: 9"),
        // The limit is inclusive: exactly as many samples as allowed is a good scrape.
        Job::new("at")
            .target(target.address())
            .setting("sample_limit: 10"),
    ]);
    let (storage, _relay) = scraping_into_fake_storage(&config).await;

    let up = storage_until(&storage, "up", "two scrapes of each job", |s| {
        s.len() == 2 && s.iter().all(|s| s.samples.len() >= 2)
    })
    .await;

    for series in &up {
        let want = if series.label("job") == Some("over") {
            0.0
        } else {
            1.0
        };
        assert!(
            series.values().iter().all(|v| *v == want),
            "up of job {:?}: {series:?}",
            series.label("job")
        );
    }
    let limited = storage.series("limited_metric");
    assert!(
        limited.iter().all(|s| s.label("job") == Some("at")),
        "no sample of the failed scrape is kept: {limited:?}"
    );
    assert_eq!(limited.len(), 10, "{limited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_targets_are_picked_up_when_the_file_changes() {
    let targets = TargetServer::on_ports(2, "discovered_metric 1\n").await;
    let [first, added] = <[String; 2]>::try_from(targets.addresses()).expect("two ports");
    let config = ScrapeConfig::new(&[Job::new("files").file_sd("sd/*.json")]);
    config.write_file(
        "sd/targets.json",
        &file_sd_json(std::slice::from_ref(&first), &[]),
    );
    let (storage, _relay) = scraping_into_fake_storage(&config).await;
    storage_until(&storage, "up", "the first file target scraped", |s| {
        s.len() == 1
    })
    .await;

    config.write_file(
        "sd/targets.json",
        &file_sd_json(&[first.clone(), added.clone()], &[("env", "test")]),
    );

    let up = storage_until(
        &storage,
        "up",
        "the added target scraped with the file's labels",
        |_| {
            of_instance(&storage, "up", &added)
                .iter()
                .any(|s| s.label("env") == Some("test") && s.values().contains(&1.0))
        },
    )
    .await;
    assert!(up.iter().all(|s| s.label("job") == Some("files")), "{up:?}");
    assert!(targets.scrapes_of(&added) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_gone_from_the_body_gets_one_stale_marker_and_the_rest_carry_on() {
    let target = TargetServer::serving("kept_metric 1\ngone_metric 1\n").await;
    let config = ScrapeConfig::new(&[Job::new("app").target(target.address())]);
    let (storage, _relay) = scraping_into_fake_storage(&config).await;
    storage_until(&storage, "gone_metric", "both series scraped", |s| {
        s.len() == 1
    })
    .await;

    target.set_exposition("kept_metric 2\n");
    let gone = storage_until(
        &storage,
        "gone_metric",
        "gone_metric to end with a stale marker",
        |s| s.len() == 1 && ends_stale(&s[0]),
    )
    .await;
    storage_until(&storage, "kept_metric", "kept_metric scraped after", |s| {
        s.len() == 1 && s[0].samples.last().is_some_and(|(_, v)| *v == 2.0)
    })
    .await;
    let kept_then = storage.series("kept_metric")[0].samples.len();
    // Two more scrapes: each would have added a stale marker if they were written per scrape.
    storage_until(&storage, "kept_metric", "two more scrapes", |s| {
        s.len() == 1 && s[0].samples.len() >= kept_then + 2
    })
    .await;
    let gone_after = &storage.series("gone_metric")[0];
    assert_eq!(
        gone_after
            .samples
            .iter()
            .filter(|(_, v)| is_stale_marker(*v))
            .count(),
        1,
        "one stale marker, not one per scrape: {gone:?} then {gone_after:?}"
    );
    assert!(!has_stale_marker(&storage.series("kept_metric")[0]));
    let added = storage.series("scrape_series_added");
    assert!(
        added[0].samples.last().is_some_and(|(_, v)| *v == 0.0),
        "nothing new in the steady state: {added:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changing_a_jobs_settings_keeps_its_series_without_stale_markers() {
    let target = TargetServer::serving("app_requests_total 5\napp_debug_total 1\n").await;
    let address = target.address();
    let config = ScrapeConfig::new(&[Job::new("app").target(&address)]);
    let (storage, relay) = scraping_into_fake_storage(&config).await;
    storage_until(&storage, "app_debug_total", "both series scraped", |s| {
        s.len() == 1
    })
    .await;

    // New settings for the same target: its loop is replaced and hands its memory over.
    config.rewrite(&[Job::new("app").target(&address).setting(
        "metric_relabel_configs:\n\
         \x20 - source_labels: [__name__]\n\
         \x20   regex: app_debug_total\n\
         \x20   action: drop",
    )]);
    relay
        .reload_scrape_config()
        .await
        .expect("the new config loads");
    storage_until(
        &storage,
        "app_debug_total",
        "the series the new settings drop to end with a stale marker",
        |s| s.len() == 1 && ends_stale(&s[0]),
    )
    .await;
    let before = storage.series("app_requests_total")[0].samples.len();
    let kept = &storage_until(
        &storage,
        "app_requests_total",
        "the kept series to be scraped twice more by the new loop",
        |s| s.len() == 1 && s[0].samples.len() >= before + 2,
    )
    .await[0];
    assert!(
        !has_stale_marker(kept),
        "no stale marker across the reload: {kept:?}"
    );
    for metric in ["up", "scrape_duration_seconds"] {
        let series = storage.series(metric);
        assert!(
            series.iter().all(|s| !has_stale_marker(s)),
            "{metric} carries on across the reload: {series:?}"
        );
    }
}
