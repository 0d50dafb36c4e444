//! promrelay shards scrape targets exactly as the real vmagent 1.79.5 (Debian's package) does,
//! so a fleet mixing the two, or moving from one to the other member by member, scrapes every
//! target with exactly `replicationFactor` members.
//!
//! The test writes one scrape config (static targets with params and a relabel rule that adds
//! a label, file_sd targets in two files, and `global.external_labels`: each changes vmagent's
//! key), runs three vmagents as members 0, 1, 2 of a cluster, with replication factor 1 and
//! then 2, reads each one's active targets from `/api/v1/targets`, and compares them with what
//! promrelay's [`build_targets`] assigns to the same member. The targets are closed loopback
//! ports: vmagent's failed scrapes do not matter, only its assignment does.
//!
//! It needs `.peers/bin/vmagent` and fails (never skips) without it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::eventually;
use common::scrape::VmagentMember;

use promrelay::config::ClusterConfig;
use promrelay::scrape::config::{self, ScrapeConfig};
use promrelay::scrape::discovery::Discoverer;
use promrelay::scrape::targets::build_targets;

const MEMBERS: u32 = 3;
const STATIC_TARGETS: u16 = 100;
const FILE_TARGETS: u16 = 30;
/// How long vmagents get to start and list every target.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// `(job, __address__ as discovered)`: how a target is named on both sides.
type TargetName = (String, String);

#[tokio::test]
async fn cluster_assignment_matches_real_vmagent_for_every_target() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = write_config(dir.path());
    let config = config::load(&config_path).expect("promrelay loads the config");
    let all = promrelay_assignment(&config, cluster(1, 1));
    let total = all[0].len();
    assert_eq!(total, usize::from(STATIC_TARGETS + FILE_TARGETS));

    for replication in [1, 2] {
        let members: Vec<VmagentMember> = (0..MEMBERS)
            .map(|k| VmagentMember::start(&config_path, MEMBERS, k, replication))
            .collect();
        let theirs = settle(&members, total * replication as usize).await;
        let ours = promrelay_assignment(&config, cluster(MEMBERS, replication));

        for k in 0..MEMBERS as usize {
            let only_vmagent: Vec<_> = theirs[k].difference(&ours[k]).collect();
            let only_ours: Vec<_> = ours[k].difference(&theirs[k]).collect();
            assert!(
                only_vmagent.is_empty() && only_ours.is_empty(),
                "replication factor {replication}, member {k}: vmagent alone scrapes {only_vmagent:?}, promrelay alone scrapes {only_ours:?}"
            );
        }
        let mut owners: BTreeMap<&TargetName, u32> = BTreeMap::new();
        for member in &ours {
            for target in member {
                *owners.entry(target).or_default() += 1;
            }
        }
        assert_eq!(owners.len(), total, "every target is scraped by someone");
        assert!(
            owners.values().all(|n| *n == replication),
            "replication factor {replication}: owner counts {owners:?}"
        );
        // Not a degenerate split: with 130 targets every member gets some.
        assert!(ours.iter().all(|m| !m.is_empty()), "{ours:?}");
    }
}

fn cluster(members_count: u32, replication_factor: u32) -> Vec<ClusterConfig> {
    (0..members_count)
        .map(|member_num| ClusterConfig {
            members_count,
            member_num,
            replication_factor,
        })
        .collect()
}

/// The targets promrelay scrapes as each member of `members`.
fn promrelay_assignment(
    config: &ScrapeConfig,
    members: Vec<ClusterConfig>,
) -> Vec<BTreeSet<TargetName>> {
    let mut discoverer = Discoverer::new(&config.jobs);
    discoverer.refresh(Instant::now());
    let snapshot = discoverer.snapshot();
    members
        .iter()
        .map(|member| {
            let mut mine = BTreeSet::new();
            for (job, groups) in config.jobs.iter().zip(&snapshot) {
                assert_eq!(job.job_name, groups.job);
                let set = build_targets(job, groups.all(), &config.global, member);
                for target in set.active {
                    let address = target
                        .discovered_labels
                        .get("__address__")
                        .map(str::to_owned)
                        .expect("a target has an address");
                    mine.insert((job.job_name.clone(), address));
                }
            }
            mine
        })
        .collect()
}

/// Writes the scrape config and its file_sd files; returns the config's absolute path.
fn write_config(dir: &Path) -> PathBuf {
    let sd = dir.join("sd");
    fs::create_dir_all(&sd).expect("create sd dir");
    let file_targets: Vec<String> = (0..FILE_TARGETS)
        .map(|i| format!("\"127.0.0.1:{}\"", 1001 + i))
        .collect();
    let (first, second) = file_targets.split_at(file_targets.len() / 2);
    fs::write(
        sd.join("a.json"),
        format!(
            r#"[{{"targets": [{}], "labels": {{"env": "prod"}}}}]"#,
            first.join(", ")
        ),
    )
    .expect("write a.json");
    fs::write(
        sd.join("b.json"),
        format!(r#"[{{"targets": [{}]}}]"#, second.join(", ")),
    )
    .expect("write b.json");

    let static_targets = |range: std::ops::Range<u16>| -> String {
        range
            .map(|p| format!("'127.0.0.1:{p}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let split = STATIC_TARGETS * 3 / 5;
    let yaml = format!(
        r#"global:
  scrape_interval: 1m
  external_labels:
    dc: eu1
scrape_configs:
  - job_name: static
    scrape_interval: 90s
    scrape_timeout: 15s
    params:
      module: [http_2xx, second]
    static_configs:
      - targets: [{}]
        labels:
          team: a
      - targets: [{}]
    relabel_configs:
      - source_labels: [__address__]
        regex: '127\.0\.0\.1:(.*)'
        target_label: port
  - job_name: files
    file_sd_configs:
      - files: ['sd/*.json']
"#,
        static_targets(1..split + 1),
        static_targets(split + 1..STATIC_TARGETS + 1),
    );
    let path = dir.join("prometheus.yml");
    fs::write(&path, yaml).expect("write config");
    path
}

/// Polls every member until together they list `expected` targets (each counted once per
/// member that scrapes it), and returns each member's targets.
async fn settle(members: &[VmagentMember], expected: usize) -> Vec<BTreeSet<TargetName>> {
    eventually(
        "the vmagents to list every target's owners",
        SETTLE_TIMEOUT,
        || async {
            let mut seen = Vec::new();
            for member in members {
                seen.push(member.active_targets().await.ok_or("not answering yet")?);
            }
            let listed: usize = seen.iter().map(BTreeSet::len).sum();
            if listed == expected {
                Ok(seen)
            } else {
                let logs: Vec<String> = members.iter().map(VmagentMember::log_tail).collect();
                Err(format!("{listed} listed; logs:\n{}", logs.join("\n")))
            }
        },
    )
    .await
}
