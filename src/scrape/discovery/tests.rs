//! Behaviour of discovery, one test per rule.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::file::expand;
use super::*;
use crate::scrape::config::{self, ScrapeConfig};

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().expect("temp dir"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create dir");
        }
        fs::write(path, text).expect("write test file");
    }

    fn config(&self, yaml: &str) -> ScrapeConfig {
        self.write("prometheus.yml", yaml);
        config::parse(&self.path("prometheus.yml"), yaml).expect("config loads")
    }
}

fn targets_of(snapshot: &[JobGroups], job: &str) -> Vec<String> {
    snapshot
        .iter()
        .filter(|j| j.job == job)
        .flat_map(|j| j.all().flat_map(|g| g.targets.iter().cloned()))
        .collect()
}

const FILE_SD: &str = "scrape_configs:\n  - job_name: files\n    file_sd_configs:\n      - files: ['sd/*.json', 'sd/*.yml']\n";

#[test]
fn file_sd_yaml_and_json_are_both_read() {
    let dir = Dir::new();
    dir.write(
        "sd/a.json",
        r#"[{"targets": ["a:1", "a:2"], "labels": {"env": "prod"}}, {"targets": ["a:3"]}]"#,
    );
    dir.write("sd/b.yml", "- targets: [b:1]\n  labels:\n    env: dev\n");
    dir.write("sd/ignored.txt", "not matched");
    let config = dir.config(FILE_SD);
    let mut d = Discoverer::new(&config.jobs);
    assert!(d.refresh(Instant::now()));
    let snapshot = d.snapshot();
    assert_eq!(targets_of(&snapshot, "files"), ["a:1", "a:2", "a:3", "b:1"]);
    let groups = &snapshot[0].groups;
    let a_json = dir.path("sd/a.json");
    assert_eq!(groups[0].labels["env"], "prod");
    assert_eq!(groups[0].labels[META_FILEPATH], a_json.to_string_lossy());
    assert_eq!(groups[0].source, format!("{}:0", a_json.display()));
    assert_eq!(groups[1].source, format!("{}:1", a_json.display()));
    assert_eq!(groups[2].labels["env"], "dev");
    let file = groups[2].file.as_ref().expect("file_sd group has its file");
    assert!(file.absolute.is_absolute() && file.absolute.ends_with("sd/b.yml"));
}

#[test]
fn static_configs_come_first_with_their_labels() {
    let dir = Dir::new();
    dir.write("sd/a.json", r#"[{"targets": ["f:1"]}]"#);
    let config = dir.config(
        "scrape_configs:\n  - job_name: j\n    static_configs:\n      - targets: [s:1, s:2]\n        labels: {k: v}\n    file_sd_configs:\n      - files: [sd/a.json]\n",
    );
    let mut d = Discoverer::new(&config.jobs);
    d.refresh(Instant::now());
    let snapshot = d.snapshot();
    assert_eq!(targets_of(&snapshot, "j"), ["s:1", "s:2", "f:1"]);
    let first = &snapshot[0].groups[0];
    assert_eq!(first.source, "static_configs[0]");
    assert_eq!(first.labels["k"], "v");
    assert!(first.file.is_none() && !first.labels.contains_key(META_FILEPATH));
}

#[test]
fn bad_file_sd_file_keeps_its_previous_targets() {
    let dir = Dir::new();
    dir.write("sd/a.json", r#"[{"targets": ["a:1"]}]"#);
    let config = dir.config(FILE_SD);
    let mut d = Discoverer::new(&config.jobs);
    d.refresh(Instant::now());
    assert_eq!(targets_of(&d.snapshot(), "files"), ["a:1"]);

    dir.write("sd/a.json", r#"[{"targets": ["a:1", "#); // torn write
    assert!(
        !d.refresh(Instant::now()),
        "nothing changed for subscribers"
    );
    assert_eq!(targets_of(&d.snapshot(), "files"), ["a:1"]);

    dir.write(
        "sd/a.json",
        r#"[{"targets": ["a:1"], "labels": {"bad-name": "x"}}]"#,
    );
    d.refresh(Instant::now());
    assert_eq!(targets_of(&d.snapshot(), "files"), ["a:1"]);

    dir.write("sd/a.json", r#"[{"targets": ["a:9"]}]"#);
    assert!(d.refresh(Instant::now()));
    assert_eq!(targets_of(&d.snapshot(), "files"), ["a:9"]);
}

#[test]
fn removed_file_loses_its_targets() {
    let dir = Dir::new();
    dir.write("sd/a.json", r#"[{"targets": ["a:1"]}]"#);
    dir.write("sd/b.json", r#"[{"targets": ["b:1"]}]"#);
    let config = dir.config(FILE_SD);
    let mut d = Discoverer::new(&config.jobs);
    d.refresh(Instant::now());
    fs::remove_file(dir.path("sd/a.json")).expect("remove");
    assert!(d.refresh(Instant::now()));
    assert_eq!(targets_of(&d.snapshot(), "files"), ["b:1"]);
}

#[test]
fn unchanged_files_are_re_read_after_refresh_interval() {
    let dir = Dir::new();
    dir.write("sd/a.json", r#"[{"targets": ["a:1"]}]"#);
    let config = dir.config(FILE_SD);
    let mut d = Discoverer::new(&config.jobs);
    let start = Instant::now();
    d.refresh(start);
    // Same size and, on a coarse clock, the same modification time: only a full read sees it.
    let stamp = fs::metadata(dir.path("sd/a.json"))
        .and_then(|m| m.modified())
        .expect("mtime");
    dir.write("sd/a.json", r#"[{"targets": ["a:2"]}]"#);
    fs::File::options()
        .write(true)
        .open(dir.path("sd/a.json"))
        .and_then(|f| f.set_modified(stamp))
        .expect("reset mtime");
    assert!(!d.refresh(start + Duration::from_secs(1)));
    assert!(d.refresh(start + config::DEFAULT_FILE_SD_REFRESH_INTERVAL));
    assert_eq!(targets_of(&d.snapshot(), "files"), ["a:2"]);
}

#[tokio::test]
async fn file_sd_change_is_picked_up() {
    let dir = Dir::new();
    dir.write("sd/a.json", r#"[{"targets": ["a:1"]}]"#);
    let config = dir.config(FILE_SD);
    let discovery = Discovery::start_with(&config.jobs, fast());
    assert_eq!(targets_of(&discovery.current(), "files"), ["a:1"]);
    let mut changes = discovery.subscribe();
    changes.borrow_and_update();

    dir.write("sd/new.yml", "- targets: [n:1, n:2]\n");
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("a change within 10s")
        .expect("discovery still running");
    let snapshot = changes.borrow_and_update().clone();
    assert_eq!(targets_of(&snapshot, "files"), ["a:1", "n:1", "n:2"]);
    assert_eq!(discovery.current(), snapshot);
}

#[tokio::test]
async fn dropping_discovery_closes_subscriptions() {
    let dir = Dir::new();
    let config = dir.config(FILE_SD);
    let discovery = Discovery::start_with(&config.jobs, fast());
    let mut changes = discovery.subscribe();
    drop(discovery);
    let closed = tokio::time::timeout(Duration::from_secs(10), changes.changed()).await;
    assert!(matches!(closed, Ok(Err(_))), "{closed:?}");
}

#[test]
fn wildcards_match_like_go_filepath_match() {
    for (pattern, name, want) in [
        ("*.json", "a.json", true),
        ("*.json", "a.yml", false),
        ("nodes-*.json", "nodes-1.json", true),
        ("nodes-*.json", "web-1.json", false),
        ("?.json", "a.json", true),
        ("?.json", "ab.json", false),
        ("[ab].json", "b.json", true),
        ("[^ab].json", "b.json", false),
        ("[a-c]*.yml", "cat.yml", true),
        ("[a-c]*.yml", "dog.yml", false),
        ("\\*.json", "*.json", true),
        ("[.json", "a.json", false),
    ] {
        assert_eq!(wildcard_match(pattern, name), want, "{pattern} vs {name}");
    }
}

#[test]
fn absolute_paths_of_matches_are_absolute() {
    let dir = Dir::new();
    dir.write("sd/a.json", "[]");
    let config = dir.config(FILE_SD);
    let pattern = &config.jobs[0].file_sd_configs[0].files[0];
    let matches = expand(pattern);
    assert_eq!(matches.len(), 1);
    assert!(Path::new(&matches[0].1).is_absolute());
    assert_eq!(matches[0].0, dir.path("sd/a.json"));
}

/// Options for tests: files polled every 20 ms, snapshots sent without delay.
fn fast() -> DiscoveryOptions {
    DiscoveryOptions {
        poll_interval: Duration::from_millis(20),
        min_publish_interval: Duration::ZERO,
    }
}

fn group(source: &str, targets: &[&str]) -> TargetGroup {
    TargetGroup {
        common: None,
        source: source.to_owned(),
        targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        labels: BTreeMap::new(),
        file: None,
    }
}

/// Starts discovery whose providers are sinks handed back to the test, `per_job` slots per job.
fn with_sinks(
    config: &ScrapeConfig,
    per_job: usize,
    options: DiscoveryOptions,
) -> (Discovery, Vec<GroupSink>) {
    let mut sinks = Vec::new();
    let discovery = Discovery::start_with_providers(&config.jobs, options, |_, factory| {
        for _ in 0..per_job {
            sinks.push(factory.next_sink());
        }
        Vec::new()
    });
    (discovery, sinks)
}

async fn next_snapshot(changes: &mut watch::Receiver<Snapshot>) -> Snapshot {
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("a change within 10s")
        .expect("discovery still running");
    changes.borrow_and_update().clone()
}

const STATIC_AND_FILES: &str = "scrape_configs:\n  - job_name: files\n    static_configs:\n      - targets: ['s:1']\n    file_sd_configs:\n      - files: ['sd/*.json']\n";

#[tokio::test]
async fn provider_groups_follow_static_and_file_groups_in_slot_order() {
    let dir = Dir::new();
    dir.write("sd/a.json", r#"[{"targets": ["f:1"]}]"#);
    let config = dir.config(STATIC_AND_FILES);
    let (discovery, sinks) = with_sinks(&config, 2, fast());
    let mut changes = discovery.subscribe();
    changes.borrow_and_update();

    assert!(sinks[1].publish(vec![group("second", &["p2:1"])]));
    assert!(sinks[0].publish(vec![group("first", &["p1:1", "p1:2"])]));
    let mut snapshot = next_snapshot(&mut changes).await;
    while targets_of(&snapshot, "files").len() < 5 {
        snapshot = next_snapshot(&mut changes).await;
    }
    assert_eq!(
        targets_of(&snapshot, "files"),
        ["s:1", "f:1", "p1:1", "p1:2", "p2:1"]
    );
}

#[tokio::test]
async fn a_burst_of_updates_becomes_one_snapshot_with_the_latest_groups() {
    let dir = Dir::new();
    let config = dir.config("scrape_configs:\n  - job_name: k\n    static_configs: []\n");
    let options = DiscoveryOptions {
        min_publish_interval: Duration::from_millis(300),
        ..fast()
    };
    let (discovery, sinks) = with_sinks(&config, 1, options);
    let mut changes = discovery.subscribe();
    changes.borrow_and_update();

    // The first update goes out at once; the burst after it waits for the interval.
    sinks[0].publish(vec![group("g", &["a:0"])]);
    assert_eq!(targets_of(&next_snapshot(&mut changes).await, "k"), ["a:0"]);
    for i in 1..=100 {
        sinks[0].publish(vec![group("g", &[&format!("a:{i}")])]);
    }
    assert_eq!(
        targets_of(&next_snapshot(&mut changes).await, "k"),
        ["a:100"]
    );
    // Nothing more is pending: the 100 updates made one snapshot.
    let more = tokio::time::timeout(Duration::from_millis(700), changes.changed()).await;
    assert!(more.is_err(), "an extra snapshot was sent");
}

#[tokio::test]
async fn publishing_the_same_groups_again_wakes_no_subscriber() {
    let dir = Dir::new();
    let config = dir.config("scrape_configs:\n  - job_name: k\n    static_configs: []\n");
    let (discovery, sinks) = with_sinks(&config, 1, fast());
    let mut changes = discovery.subscribe();
    changes.borrow_and_update();
    sinks[0].publish(vec![group("g", &["a:1"])]);
    next_snapshot(&mut changes).await;

    sinks[0].publish(vec![group("g", &["a:1"])]);
    let more = tokio::time::timeout(Duration::from_millis(300), changes.changed()).await;
    assert!(more.is_err(), "an unchanged publish woke a subscriber");
}

#[tokio::test]
async fn dropping_discovery_closes_provider_sinks() {
    let dir = Dir::new();
    let config = dir.config("scrape_configs:\n  - job_name: k\n    static_configs: []\n");
    let (discovery, sinks) = with_sinks(&config, 1, fast());
    drop(discovery);
    tokio::time::timeout(Duration::from_secs(10), sinks[0].closed())
        .await
        .expect("the sink closes when discovery is dropped");
    assert!(!sinks[0].publish(Vec::new()));
}
