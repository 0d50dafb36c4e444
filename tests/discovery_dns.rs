//! `dns_sd_configs` against a real DNS server (Debian's dnsmasq on a loopback port): which
//! targets and labels each record type gives, and what a refresh does when records change,
//! disappear, or the server refuses to answer. Labels and their empty values follow
//! Prometheus' `discovery/dns/dns.go`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::dnsmasq::{Dnsmasq, host, mx, srv};
use promrelay::scrape::config::{DnsRecordType, DnsSdConfig};
use promrelay::scrape::discovery::TargetGroup;
use promrelay::scrape::discovery::dns::{DnsSd, lookup};

fn config(names: &[&str], record_type: DnsRecordType, port: u16) -> DnsSdConfig {
    DnsSdConfig {
        names: names.iter().map(|n| n.to_string()).collect(),
        record_type,
        port,
        refresh_interval: Duration::from_secs(30),
    }
}

/// The labels Prometheus gives every DNS target: all five, empty where they do not apply.
fn labels(name: &str, srv_target: &str, srv_port: &str, mx: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("__meta_dns_name".to_owned(), name.to_owned()),
        (
            "__meta_dns_srv_record_target".to_owned(),
            srv_target.to_owned(),
        ),
        ("__meta_dns_srv_record_port".to_owned(), srv_port.to_owned()),
        ("__meta_dns_mx_record_target".to_owned(), mx.to_owned()),
        ("__meta_dns_ns_record_target".to_owned(), String::new()),
    ])
}

/// `(address, labels)` of every group, sorted by address (servers may rotate records).
fn targets(groups: &[TargetGroup]) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out: Vec<_> = groups
        .iter()
        .flat_map(|g| g.targets.iter().map(|t| (t.clone(), g.labels.clone())))
        .collect();
    out.sort();
    out
}

async fn refresh(sd: &mut DnsSd) -> Vec<TargetGroup> {
    sd.refresh("dns-test", &|_failed| {}).await
}

#[tokio::test]
async fn srv_records_give_host_port_targets_and_keep_the_final_dot_in_labels() {
    let name = "_node._tcp.example.test";
    let server = Dnsmasq::start(&[
        srv(name, "node1.example.test", 9100),
        srv(name, "node2.example.test", 9200),
    ])
    .await;
    let found = lookup(&server.resolver(), name, DnsRecordType::Srv, 0)
        .await
        .expect("lookup answers");
    let mut found: Vec<_> = found.into_iter().map(|t| (t.address, t.labels)).collect();
    found.sort();
    assert_eq!(
        found,
        [
            (
                "node1.example.test:9100".to_owned(),
                labels(name, "node1.example.test.", "9100", "")
            ),
            (
                "node2.example.test:9200".to_owned(),
                labels(name, "node2.example.test.", "9200", "")
            ),
        ]
    );
}

#[tokio::test]
async fn a_and_aaaa_records_take_the_configured_port() {
    let server = Dnsmasq::start(&[host(
        "web.example.test",
        &["10.0.0.1", "10.0.0.2", "fd00::1"],
    )])
    .await;
    let resolver = server.resolver();
    let mut v4: Vec<String> = lookup(&resolver, "web.example.test", DnsRecordType::A, 8080)
        .await
        .expect("A lookup answers")
        .into_iter()
        .map(|t| {
            assert_eq!(t.labels, labels("web.example.test", "", "", ""));
            t.address
        })
        .collect();
    v4.sort();
    assert_eq!(v4, ["10.0.0.1:8080", "10.0.0.2:8080"]);
    let v6: Vec<String> = lookup(&resolver, "web.example.test", DnsRecordType::Aaaa, 8080)
        .await
        .expect("AAAA lookup answers")
        .into_iter()
        .map(|t| t.address)
        .collect();
    assert_eq!(v6, ["[fd00::1]:8080"]);
}

#[tokio::test]
async fn mx_records_give_the_exchange_with_the_configured_port() {
    let server = Dnsmasq::start(&[mx("example.test", "mail.example.test", 10)]).await;
    let found = lookup(&server.resolver(), "example.test", DnsRecordType::Mx, 25)
        .await
        .expect("MX lookup answers");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].address, "mail.example.test:25");
    assert_eq!(
        found[0].labels,
        labels("example.test", "", "", "mail.example.test.")
    );
}

#[tokio::test]
async fn a_changed_record_is_picked_up_at_the_next_refresh() {
    let mut server = Dnsmasq::start(&[host("app.example.test", &["10.0.0.1"])]).await;
    let mut sd = DnsSd::new(
        config(&["app.example.test"], DnsRecordType::A, 80),
        server.resolver(),
    );
    let first = refresh(&mut sd).await;
    assert_eq!(targets(&first)[0].0, "10.0.0.1:80");
    assert_eq!(first[0].source, "app.example.test");

    server
        .restart_with(&[host("app.example.test", &["10.0.0.2", "10.0.0.3"])])
        .await;
    let second = refresh(&mut sd).await;
    let addresses: Vec<String> = targets(&second).into_iter().map(|(a, _)| a).collect();
    assert_eq!(addresses, ["10.0.0.2:80", "10.0.0.3:80"]);
}

#[tokio::test]
async fn a_name_that_stops_existing_loses_its_targets() {
    let mut server = Dnsmasq::start(&[
        host("gone.example.test", &["10.0.0.1"]),
        host("stays.example.test", &["10.0.0.2"]),
    ])
    .await;
    let mut sd = DnsSd::new(
        config(
            &["gone.example.test", "stays.example.test"],
            DnsRecordType::A,
            80,
        ),
        server.resolver(),
    );
    assert_eq!(refresh(&mut sd).await.len(), 2);

    // NXDOMAIN now: the servers say the name does not exist, so Prometheus drops its targets.
    server
        .restart_with(&[host("stays.example.test", &["10.0.0.2"])])
        .await;
    let counted = std::sync::Mutex::new(Vec::new());
    let groups = sd
        .refresh("dns-test", &|failed| counted.lock().unwrap().push(failed))
        .await;
    let addresses: Vec<String> = targets(&groups).into_iter().map(|(a, _)| a).collect();
    assert_eq!(addresses, ["10.0.0.2:80"]);
    assert_eq!(
        *counted.lock().unwrap(),
        [false, false],
        "NXDOMAIN is an answer, not a failed lookup"
    );
}

#[tokio::test]
async fn a_name_without_records_of_the_type_has_no_targets() {
    let server = Dnsmasq::start(&[host("v4only.example.test", &["10.0.0.1"])]).await;
    let found = lookup(
        &server.resolver(),
        "v4only.example.test",
        DnsRecordType::Aaaa,
        80,
    )
    .await
    .expect("an empty answer is not an error");
    assert!(found.is_empty(), "{found:?}");
}

#[tokio::test]
async fn a_refused_lookup_keeps_the_previous_targets_and_counts_a_failure() {
    // dnsmasq has no upstream: a name outside its own domain is REFUSED.
    let name = "app.elsewhere.test";
    let mut server = Dnsmasq::start(&[host(name, &["10.0.0.1"])]).await;
    let mut sd = DnsSd::new(config(&[name], DnsRecordType::A, 80), server.resolver());
    assert_eq!(targets(&refresh(&mut sd).await)[0].0, "10.0.0.1:80");

    server.restart_with(&[]).await;
    let failures = std::sync::atomic::AtomicUsize::new(0);
    let groups = sd
        .refresh("dns-test", &|failed| {
            if failed {
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await;
    assert_eq!(
        targets(&groups)[0].0,
        "10.0.0.1:80",
        "previous targets kept"
    );
    assert_eq!(failures.into_inner(), 1);
}

/// Through the discovery hub, as the scraper runs it: the config file's `dns_sd_configs`, the
/// server given as `--dns-sd-resolver` gives, a changed record reaches the snapshot.
#[tokio::test]
async fn the_provider_publishes_changes_to_the_hub() {
    use promrelay::scrape::discovery::{Discovery, DiscoveryOptions, ProviderContext};

    let mut server = Dnsmasq::start(&[srv("_app._tcp.example.test", "a.example.test", 80)]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prometheus.yml");
    std::fs::write(
        &path,
        "scrape_configs:\n  - job_name: dns\n    dns_sd_configs:\n      - names: [_app._tcp.example.test]\n        refresh_interval: 100ms\n",
    )
    .expect("write the config");
    let jobs = promrelay::scrape::config::load(&path)
        .expect("config loads")
        .jobs;
    let context = ProviderContext {
        dns_server: Some(server.addr()),
        ..ProviderContext::default()
    };
    let options = DiscoveryOptions {
        poll_interval: Duration::from_secs(3600),
        min_publish_interval: Duration::from_millis(10),
    };
    let discovery = Discovery::start_with_context(&jobs, options, &context);
    let addresses = || -> Vec<String> {
        let mut seen: Vec<String> = discovery.current()[0]
            .all()
            .flat_map(|g| g.targets.clone())
            .collect();
        seen.sort();
        seen
    };
    common::eventually("the first answer", common::EVENTUALLY_TIMEOUT, || async {
        let seen = addresses();
        if seen == ["a.example.test:80"] {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
    server
        .restart_with(&[
            srv("_app._tcp.example.test", "a.example.test", 80),
            srv("_app._tcp.example.test", "b.example.test", 81),
        ])
        .await;
    common::eventually("the changed answer", common::EVENTUALLY_TIMEOUT, || async {
        let seen = addresses();
        if seen == ["a.example.test:80", "b.example.test:81"] {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
}
