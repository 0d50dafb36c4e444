//! Sharded scraping across real relay processes: three relays given the same 100 targets split
//! them so that each target is scraped by exactly `replication` of them, each relay scrapes
//! (and forwards) exactly the targets it lists as active, and the split is the one real vmagent
//! 1.79.5 members make from the same file, target by target.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::relay::{FakeStorage, Relay};
use common::scrape::{Job, RelayScrape, ScrapeConfig, ScrapingRelay, TargetServer, VmagentMember};
use common::{EVENTUALLY_TIMEOUT, eventually};

const MEMBERS: u32 = 3;
const TARGETS: usize = 100;

/// Three relays scraping `config` as members 0, 1, 2 with `replication`, each forwarding to its
/// own storage.
async fn three_relays(config: &ScrapeConfig, replication: u32) -> (Vec<Relay>, Vec<FakeStorage>) {
    let (s0, s1, s2) = tokio::join!(
        FakeStorage::new().start(),
        FakeStorage::new().start(),
        FakeStorage::new().start()
    );
    let storages = vec![s0, s1, s2];
    let member = |k: u32| {
        Relay::with_storages(&[storages[k as usize].url()])
            .scraping(config)
            .cluster_member(MEMBERS, k, replication)
            .start()
    };
    let (r0, r1, r2) = tokio::join!(member(0), member(1), member(2));
    (vec![r0, r1, r2], storages)
}

/// Each relay's active targets, once together they list `expected` (a relay lists its targets
/// as soon as it is ready, so this rarely waits).
async fn assignment(relays: &[Relay], expected: usize) -> Vec<BTreeSet<String>> {
    eventually(
        "the relays to list every target's owners",
        EVENTUALLY_TIMEOUT,
        || async {
            let mut members = Vec::new();
            for relay in relays {
                members.push(relay.active_addresses().await);
            }
            let listed: usize = members.iter().map(BTreeSet::len).sum();
            if listed == expected {
                Ok(members)
            } else {
                Err(format!("{listed} listed: {members:?}"))
            }
        },
    )
    .await
}

async fn three_relays_share_targets(replication: u32) {
    let targets = TargetServer::on_ports(TARGETS, "fleet_metric 1\n").await;
    let config = ScrapeConfig::new(&[Job::new("fleet").targets(&targets.addresses())]);
    let (relays, storages) = three_relays(&config, replication).await;

    let members = assignment(&relays, TARGETS * replication as usize).await;

    let mut owners: BTreeMap<&str, u32> = BTreeMap::new();
    for member in &members {
        for address in member {
            *owners.entry(address.as_str()).or_default() += 1;
        }
    }
    let all = targets.addresses();
    let unowned: Vec<_> = all
        .iter()
        .filter(|a| !owners.contains_key(a.as_str()))
        .collect();
    assert!(unowned.is_empty(), "nobody scrapes {unowned:?}");
    let miscounted: Vec<_> = owners.iter().filter(|(_, n)| **n != replication).collect();
    assert!(
        miscounted.is_empty(),
        "targets not scraped by exactly {replication}: {miscounted:?}"
    );
    assert!(
        members.iter().all(|m| m.len() >= TARGETS / 10),
        "a lopsided split: {:?}",
        members.iter().map(BTreeSet::len).collect::<Vec<_>>()
    );
    // The rest each relay lists as dropped, with a reason.
    for (k, (relay, member)) in relays.iter().zip(&members).enumerate() {
        let dropped = relay.dropped_targets().await;
        let listed: BTreeSet<&str> = member
            .iter()
            .map(String::as_str)
            .chain(dropped.iter().map(|(a, _)| a.as_str()))
            .collect();
        assert_eq!(
            (listed.len(), member.len() + dropped.len()),
            (TARGETS, TARGETS),
            "relay {k} lists each target once, as active or dropped: {dropped:?}"
        );
        assert!(
            dropped.iter().all(|(_, reason)| !reason.is_empty()),
            "{dropped:?}"
        );
    }
    // What each relay forwards is what it lists: one `up` series per listed target.
    for (k, (member, storage)) in members.iter().zip(&storages).enumerate() {
        eventually(
            &format!("relay {k} to forward up of exactly its targets"),
            EVENTUALLY_TIMEOUT,
            || async {
                let scraped: BTreeSet<String> = storage
                    .series("up")
                    .iter()
                    .filter_map(|s| s.label("instance").map(str::to_owned))
                    .collect();
                if &scraped == member {
                    Ok(())
                } else {
                    Err(format!(
                        "forwarded but not listed: {:?}; listed, not yet forwarded: {:?}",
                        scraped.difference(member).collect::<Vec<_>>(),
                        member.difference(&scraped).collect::<Vec<_>>()
                    ))
                }
            },
        )
        .await;
    }
    let not_scraped: Vec<_> = all.iter().filter(|a| targets.scrapes_of(a) == 0).collect();
    assert!(not_scraped.is_empty(), "never scraped: {not_scraped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_relays_share_100_targets_each_scraped_by_exactly_r_members_with_r1() {
    three_relays_share_targets(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_relays_share_100_targets_each_scraped_by_exactly_r_members_with_r2() {
    three_relays_share_targets(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_assignment_equals_vmagents() {
    // Two jobs, a target label and a relabel rule: each changes vmagent's sharding key.
    let targets = TargetServer::on_ports(TARGETS, "fleet_metric 1\n").await;
    let addresses = targets.addresses();
    let (first, second) = addresses.split_at(TARGETS * 3 / 5);
    let config = ScrapeConfig::new(&[
        Job::new("fleet")
            .targets(first)
            .setting("scrape_interval: 5s")
            .setting("scrape_timeout: 2s")
            .setting(
                "relabel_configs:\n\
                 \x20 - source_labels: [__address__]\n\
                 \x20   regex: '127\\.0\\.0\\.1:(.*)'\n\
                 \x20   target_label: port",
            ),
        Job::new("other")
            .targets(second)
            .setting("scrape_interval: 5s")
            .setting("scrape_timeout: 2s"),
    ]);

    for replication in [1, 2] {
        let vmagents: Vec<VmagentMember> = (0..MEMBERS)
            .map(|k| VmagentMember::start(&config.path(), MEMBERS, k, replication))
            .collect();
        let (relays, _storages) = three_relays(&config, replication).await;
        let expected = TARGETS * replication as usize;

        let theirs = eventually(
            "the vmagents to list every target's owners",
            EVENTUALLY_TIMEOUT,
            || async {
                let mut members = Vec::new();
                for vmagent in &vmagents {
                    let listed = vmagent.active_targets().await;
                    members.push(listed.ok_or_else(|| vmagent.log_tail())?);
                }
                let listed: usize = members.iter().map(BTreeSet::len).sum();
                if listed == expected {
                    Ok(members)
                } else {
                    Err(format!("{listed} listed"))
                }
            },
        )
        .await;
        let ours = eventually(
            "the relays to list every target's owners",
            EVENTUALLY_TIMEOUT,
            || async {
                let mut members = Vec::new();
                for relay in &relays {
                    let listed: BTreeSet<(String, String)> = relay
                        .active_targets()
                        .await
                        .iter()
                        .map(|t| (t.scrape_pool.clone(), t.address().to_owned()))
                        .collect();
                    members.push(listed);
                }
                let listed: usize = members.iter().map(BTreeSet::len).sum();
                if listed == expected {
                    Ok(members)
                } else {
                    Err(format!("{listed} listed"))
                }
            },
        )
        .await;

        for k in 0..MEMBERS as usize {
            let only_vmagent: Vec<_> = theirs[k].difference(&ours[k]).collect();
            let only_ours: Vec<_> = ours[k].difference(&theirs[k]).collect();
            assert!(
                only_vmagent.is_empty() && only_ours.is_empty(),
                "replication factor {replication}, member {k}: vmagent alone scrapes {only_vmagent:?}, promrelay alone scrapes {only_ours:?}"
            );
        }
        drop(relays);
        drop(vmagents);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
