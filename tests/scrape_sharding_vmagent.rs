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

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use promrelay::config::ClusterConfig;
use promrelay::scrape::config::{self, ScrapeConfigFile};
use promrelay::scrape::discovery::Discoverer;
use promrelay::scrape::targets::build_targets;

const MEMBERS: u32 = 3;
const STATIC_TARGETS: u16 = 100;
const FILE_TARGETS: u16 = 30;
/// How long vmagents get to start and list every target.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// `(job, __address__ as discovered)`: how a target is named on both sides.
type TargetName = (String, String);

#[test]
fn cluster_assignment_matches_real_vmagent_for_every_target() {
    let vmagent = vmagent_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = write_config(dir.path());
    let config = config::load(&config_path).expect("promrelay loads the config");
    let all = promrelay_assignment(&config, cluster(1, 1));
    let total = all[0].len();
    assert_eq!(total, usize::from(STATIC_TARGETS + FILE_TARGETS));

    for replication in [1, 2] {
        let mut members: Vec<Vmagent> = (0..MEMBERS)
            .map(|k| Vmagent::start(&vmagent, dir.path(), &config_path, k, replication))
            .collect();
        let theirs = settle(&mut members, total * replication as usize);
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
    config: &ScrapeConfigFile,
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
                let set = build_targets(job, &groups.groups, &config.global, member);
                for target in set.active {
                    let address = target
                        .discovered_labels
                        .iter()
                        .find(|l| l.name == "__address__")
                        .map(|l| l.value.clone())
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

fn vmagent_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers/bin/vmagent");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-peers.sh (it unpacks Debian's vmagent 1.79.5), then run this test again",
        path.display()
    );
    path
}

/// One running vmagent; killed when dropped.
struct Vmagent {
    member: u32,
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Vmagent {
    fn start(binary: &Path, dir: &Path, config: &Path, member: u32, replication: u32) -> Self {
        let port = free_port();
        let data = dir.join(format!("vmagent-r{replication}-m{member}"));
        fs::create_dir_all(&data).expect("create vmagent dir");
        let log = data.join("vmagent.log");
        let log_file = fs::File::create(&log).expect("create vmagent log");
        let child = Command::new(binary)
            .arg(format!("-promscrape.config={}", config.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-remoteWrite.url=http://127.0.0.1:1/api/v1/write")
            .arg(format!(
                "-remoteWrite.tmpDataPath={}",
                data.join("queue").display()
            ))
            .arg(format!("-promscrape.cluster.membersCount={MEMBERS}"))
            .arg(format!("-promscrape.cluster.memberNum={member}"))
            .arg(format!(
                "-promscrape.cluster.replicationFactor={replication}"
            ))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Vmagent {
            member,
            port,
            child,
            log,
        }
    }

    /// The targets it scrapes, or `None` while it is not answering yet.
    fn active_targets(&mut self) -> Option<BTreeSet<TargetName>> {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "vmagent member {} exited with {status}:\n{}",
                self.member,
                self.log_tail()
            );
        }
        let body = http_get(self.port, "/api/v1/targets")?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let active = json["data"]["activeTargets"].as_array()?;
        let mut targets = BTreeSet::new();
        for target in active {
            let job = target["scrapePool"].as_str()?;
            let address = target["discoveredLabels"]["__address__"].as_str()?;
            targets.insert((job.to_owned(), address.to_owned()));
        }
        Some(targets)
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Vmagent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls every member until together they list `expected` targets (each counted once per
/// member that scrapes it), and returns each member's targets.
fn settle(members: &mut [Vmagent], expected: usize) -> Vec<BTreeSet<TargetName>> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last = Vec::new();
    loop {
        let seen: Option<Vec<BTreeSet<TargetName>>> =
            members.iter_mut().map(Vmagent::active_targets).collect();
        if let Some(seen) = seen {
            if seen.iter().map(BTreeSet::len).sum::<usize>() == expected {
                return seen;
            }
            last = seen.iter().map(BTreeSet::len).collect();
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = members
                .iter()
                .map(|m| format!("member {}:\n{}", m.member, m.log_tail()))
                .collect();
            panic!(
                "vmagents did not list {expected} targets in {SETTLE_TIMEOUT:?} (last counts {last:?})\n{}",
                logs.join("\n")
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// A minimal HTTP/1.0 GET on loopback: the body of a 200 answer, or `None`.
fn http_get(port: u16, path: &str) -> Option<String> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200")).then(|| body.to_owned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
