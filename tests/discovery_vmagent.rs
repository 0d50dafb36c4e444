//! `http_sd_configs` agree with the real vmagent 1.79.5 (Debian's package): given the same
//! config and the same HTTP SD server, promrelay's discovered labels equal vmagent's target by
//! target, and with `--cluster-members-count 3` both assign every target to the same member.
//!
//! `dns_sd_configs` are not compared here: vmagent resolves through Go's resolver, which reads
//! only `/etc/resolv.conf` and cannot be pointed at a DNS server on a high loopback port; their
//! labels follow Prometheus' `discovery/dns/dns.go` (tests/discovery_dns.rs).
//!
//! It needs `.peers/bin/vmagent` and fails (never skips) without it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use common::scrape::VmagentMember;
use common::{eventually, serve_until_stopped};
use promrelay::config::ClusterConfig;
use promrelay::scrape::config::{self, ScrapeConfig};
use promrelay::scrape::discovery::http::HttpSd;
use promrelay::scrape::targets::build_targets;
use tokio::net::TcpListener;

const MEMBERS: u32 = 3;
const TARGETS: u16 = 60;

/// Discovered labels of one target, by name.
type Labels = BTreeMap<String, String>;

/// The answer: three groups with different labels, closed loopback ports as targets (scrapes
/// fail; only discovery and assignment matter).
fn answer() -> String {
    let group = |range: std::ops::Range<u16>, labels: &str| {
        let targets: Vec<String> = range
            .map(|p| format!("\"127.0.0.1:{}\"", 20000 + p))
            .collect();
        format!(
            "{{\"targets\": [{}], \"labels\": {{{labels}}}}}",
            targets.join(",")
        )
    };
    format!(
        "[{}, {}, {}]",
        group(0..20, r#""env": "prod", "team": "a""#),
        group(20..40, r#""env": "dev", "__meta_rack": "r1""#),
        group(40..TARGETS, ""),
    )
}

/// Serves [`answer`] on a port-0 listener until the returned sender is dropped.
async fn start_sd_server() -> (String, tokio::sync::oneshot::Sender<()>) {
    let body = answer();
    let router = Router::new().route(
        "/sd",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/sd", listener.local_addr().expect("address"));
    let (stop, _) = serve_until_stopped(listener, router, "http_sd server");
    (url, stop)
}

/// No `refresh_interval`: vmagent 1.79.5 refuses the key (it has `-promscrape.httpSDCheckInterval`,
/// 1m as Prometheus' default).
fn write_config(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("prometheus.yml");
    let yaml = format!(
        "global:\n  scrape_interval: 1m\nscrape_configs:\n  - job_name: inventory\n    params: {{module: [m1]}}\n    http_sd_configs:\n      - url: {url}\n    relabel_configs:\n      - source_labels: [env]\n        target_label: environment\n"
    );
    std::fs::write(&path, yaml).expect("write the config");
    path
}

/// promrelay's discovered labels of each target (by discovered `__address__`), and the
/// members that scrape it in a cluster of `members`.
async fn promrelay_view(
    config: &ScrapeConfig,
    members: u32,
) -> (BTreeMap<String, Labels>, Vec<BTreeSet<String>>) {
    let job = &config.jobs[0];
    let groups = HttpSd::new(&job.http_sd_configs[0])
        .expect("client builds")
        .fetch()
        .await
        .expect("fetch succeeds");
    let mut labels = BTreeMap::new();
    let mut assigned = Vec::new();
    for member_num in 0..members {
        let cluster = ClusterConfig {
            members_count: members,
            member_num,
            replication_factor: 1,
        };
        let set = build_targets(job, &groups, &config.global, &cluster);
        let mut mine = BTreeSet::new();
        for target in set.active {
            let discovered: Labels = target
                .discovered_labels
                .iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            let address = discovered["__address__"].clone();
            mine.insert(address.clone());
            labels.insert(address, discovered);
        }
        assigned.push(mine);
    }
    (labels, assigned)
}

/// vmagent's active targets: discovered `__address__` to discovered labels.
async fn vmagent_targets(member: &VmagentMember) -> Option<BTreeMap<String, Labels>> {
    let json = member.targets_json().await?;
    let active = json["data"]["activeTargets"].as_array()?;
    let mut out = BTreeMap::new();
    for t in active {
        let labels: Labels = t["discoveredLabels"]
            .as_object()?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        out.insert(labels.get("__address__")?.clone(), labels);
    }
    Some(out)
}

#[tokio::test]
async fn http_sd_discovered_labels_and_sharding_match_real_vmagent() {
    let (url, _stop) = start_sd_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_config(dir.path(), &url);
    let config = config::load(&path).expect("promrelay loads the config");

    // One member: every target, with its discovered labels.
    let single = VmagentMember::start(&path, 1, 0, 1);
    let theirs = eventually(
        "vmagent to list every target",
        Duration::from_secs(30),
        || async {
            match vmagent_targets(&single).await {
                Some(t) if t.len() == usize::from(TARGETS) => Ok(t),
                Some(t) => Err(format!("{} targets", t.len())),
                None => Err("no answer yet".to_owned()),
            }
        },
    )
    .await;
    let (ours, _) = promrelay_view(&config, 1).await;
    assert_eq!(ours.len(), usize::from(TARGETS));
    for (address, our_labels) in &ours {
        let their_labels = theirs
            .get(address)
            .unwrap_or_else(|| panic!("vmagent has no target {address}"));
        assert_eq!(
            our_labels, their_labels,
            "discovered labels of {address}: promrelay (left) and vmagent (right)"
        );
    }

    // Three members: the same member scrapes each target.
    let members: Vec<VmagentMember> = (0..MEMBERS)
        .map(|k| VmagentMember::start(&path, MEMBERS, k, 1))
        .collect();
    let (_, our_assignment) = promrelay_view(&config, MEMBERS).await;
    for (k, member) in members.iter().enumerate() {
        let want = &our_assignment[k];
        eventually(
            &format!("vmagent member {k} to scrape what promrelay's member {k} does"),
            Duration::from_secs(30),
            || async {
                let seen: BTreeSet<String> = vmagent_targets(member)
                    .await
                    .ok_or("no answer yet")?
                    .into_keys()
                    .collect();
                if &seen == want {
                    Ok(())
                } else {
                    Err(format!(
                        "vmagent alone: {:?}; promrelay alone: {:?}",
                        seen.difference(want).collect::<Vec<_>>(),
                        want.difference(&seen).collect::<Vec<_>>()
                    ))
                }
            },
        )
        .await;
    }
    assert!(
        our_assignment.iter().all(|m| !m.is_empty()),
        "{our_assignment:?}"
    );
}
