//! `dns_sd_configs`: targets looked up in DNS, as Prometheus' DNS SD (`discovery/dns/dns.go`)
//! finds them.
//!
//! # Owns
//! - The lookups: every `refresh_interval`, each configured name is asked (concurrently) for the
//!   configured record type, with the search list and `ndots` of `/etc/resolv.conf`, or of one
//!   name server given with `--dns-sd-resolver` ([`DnsResolver::at`]). No cache and no
//!   `/etc/hosts`, as Prometheus asks the servers each time.
//! - The targets: SRV `target:port` (the record's port), A/AAAA `address:port`, MX and NS
//!   `host:port` (the configured port); host names lose their final dot in the address, not in
//!   the labels. CNAMEs in an answer are skipped.
//! - The labels of every target, all set, empty when they do not apply: `__meta_dns_name` (the
//!   name as configured), `__meta_dns_srv_record_target`, `__meta_dns_srv_record_port`,
//!   `__meta_dns_mx_record_target`, `__meta_dns_ns_record_target`.
//!
//! # Guarantees
//! - A name that does not exist (NXDOMAIN) or has no record of the type loses its targets, as in
//!   Prometheus (its servers answered). A lookup that fails otherwise (timeout, SERVFAIL,
//!   refused) keeps the name's previous targets; it is counted and logged at most once a minute
//!   per config.
//! - Each target is its own group (the labels differ per record), with the source `<name>`; the
//!   groups follow the configured order of names and the server's order of records.
//!
//! # Must not
//! Build targets or relabel; resolve the discovered host names (the scrape does that).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{ResolveError, TokioResolver};
use tokio::task::JoinSet;

use super::{GroupSink, ProviderContext, TargetGroup};
use crate::scrape::config::{DnsRecordType, DnsSdConfig};
use crate::util::{LogThrottle, error_chain, one_line};

/// The configured name a target was found under.
pub const META_DNS_NAME: &str = "__meta_dns_name";
/// The SRV record's target host, final dot kept; empty for other types.
pub const META_DNS_SRV_RECORD_TARGET: &str = "__meta_dns_srv_record_target";
/// The SRV record's port; empty for other types.
pub const META_DNS_SRV_RECORD_PORT: &str = "__meta_dns_srv_record_port";
/// The MX record's host, final dot kept; empty for other types.
pub const META_DNS_MX_RECORD_TARGET: &str = "__meta_dns_mx_record_target";
/// The NS record's host, final dot kept; empty for other types.
pub const META_DNS_NS_RECORD_TARGET: &str = "__meta_dns_ns_record_target";

/// Why the resolver could not be set up, or a lookup failed (the name keeps its targets).
#[derive(Debug, thiserror::Error)]
pub enum DnsSdError {
    /// `/etc/resolv.conf` could not be read or parsed.
    #[error("reading the system's resolver configuration: {0}")]
    SystemConfig(#[source] ResolveError),
    /// The servers did not give a usable answer: timeout, SERVFAIL, refused, a name that is not
    /// a valid domain name.
    #[error("looking up {name:?}: {source}")]
    Lookup {
        name: String,
        #[source]
        source: ResolveError,
    },
}

/// The resolver every `dns_sd_config` of the process asks. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct DnsResolver(TokioResolver);

impl DnsResolver {
    /// The system's resolver: name servers, search list and options of `/etc/resolv.conf`.
    pub fn system() -> Result<DnsResolver, DnsSdError> {
        let mut builder = TokioResolver::builder_tokio().map_err(DnsSdError::SystemConfig)?;
        prometheus_like(builder.options_mut());
        Ok(DnsResolver(builder.build()))
    }

    /// One name server at `addr` (UDP, TCP on truncation), no search list: for tests and for
    /// split-horizon setups where discovery must ask another server than the system's.
    pub fn at(addr: SocketAddr) -> DnsResolver {
        let servers = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
        prometheus_like(builder.options_mut());
        DnsResolver(builder.build())
    }
}

/// Prometheus asks the servers at every refresh and never reads `/etc/hosts`.
fn prometheus_like(options: &mut hickory_resolver::config::ResolverOpts) {
    options.cache_size = 0;
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = Duration::from_secs(5);
    options.attempts = 2;
}

/// One discovered target: its address and its `__meta_dns_*` labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsTarget {
    pub address: String,
    pub labels: BTreeMap<String, String>,
}

/// Looks `name` up for `record_type`; `port` is used for all types but SRV. An answer without
/// records (NXDOMAIN or no record of the type) is an empty list, not an error.
pub async fn lookup(
    resolver: &DnsResolver,
    name: &str,
    record_type: DnsRecordType,
    port: u16,
) -> Result<Vec<DnsTarget>, DnsSdError> {
    let qtype = match record_type {
        DnsRecordType::Srv => RecordType::SRV,
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Mx => RecordType::MX,
        DnsRecordType::Ns => RecordType::NS,
    };
    let answer = match resolver.0.lookup(name, qtype).await {
        Ok(answer) => answer,
        Err(e) if servers_said_no_records(&e) => return Ok(Vec::new()),
        Err(source) => {
            return Err(DnsSdError::Lookup {
                name: one_line(name),
                source,
            });
        }
    };
    let mut targets = Vec::new();
    for record in answer.iter() {
        let (mut srv_target, mut srv_port, mut mx_target, mut ns_target) =
            (String::new(), String::new(), String::new(), String::new());
        let address = match record {
            RData::SRV(srv) => {
                srv_target = srv.target().to_string();
                srv_port = srv.port().to_string();
                host_port(srv_target.trim_end_matches('.'), srv.port())
            }
            RData::MX(mx) => {
                mx_target = mx.exchange().to_string();
                host_port(mx_target.trim_end_matches('.'), port)
            }
            RData::NS(ns) => {
                ns_target = ns.0.to_string();
                host_port(ns_target.trim_end_matches('.'), port)
            }
            RData::A(a) => SocketAddr::new(a.0.into(), port).to_string(),
            RData::AAAA(aaaa) => SocketAddr::new(aaaa.0.into(), port).to_string(),
            // A CNAME chain in an A or AAAA answer; its end records follow.
            _ => continue,
        };
        let labels = BTreeMap::from([
            (META_DNS_NAME.to_owned(), name.to_owned()),
            (META_DNS_SRV_RECORD_TARGET.to_owned(), srv_target),
            (META_DNS_SRV_RECORD_PORT.to_owned(), srv_port),
            (META_DNS_MX_RECORD_TARGET.to_owned(), mx_target),
            (META_DNS_NS_RECORD_TARGET.to_owned(), ns_target),
        ]);
        targets.push(DnsTarget { address, labels });
    }
    Ok(targets)
}

/// True when the servers answered that the name has no such records: NXDOMAIN, or NOERROR with
/// an empty answer (Prometheus' "everyone says NXDOMAIN"). hickory reports SERVFAIL and REFUSED
/// as "no records" too; those are failures here, as in Prometheus.
fn servers_said_no_records(e: &ResolveError) -> bool {
    match e.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => {
            matches!(
                *response_code,
                ResponseCode::NXDomain | ResponseCode::NoError
            )
        }
        _ => false,
    }
}

/// Go's `net.JoinHostPort`: brackets around a host holding a colon.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One `dns_sd_config` with what its names last resolved to.
#[derive(Debug)]
pub struct DnsSd {
    config: DnsSdConfig,
    resolver: DnsResolver,
    /// Per configured name, the targets of its last good answer (`None` before one).
    last: Vec<Option<Vec<DnsTarget>>>,
    log_throttle: Arc<LogThrottle>,
}

impl DnsSd {
    pub fn new(config: DnsSdConfig, resolver: DnsResolver) -> DnsSd {
        let names = config.names.len();
        DnsSd {
            config,
            resolver,
            last: vec![None; names],
            log_throttle: Arc::new(LogThrottle::new(Duration::from_secs(60))),
        }
    }

    /// Time between two refreshes.
    pub fn refresh_interval(&self) -> Duration {
        self.config.refresh_interval
    }

    /// Looks every name up once (concurrently); a failed name keeps its previous targets.
    /// `counted(failed)` is called once per lookup. Returns the groups of every name.
    pub async fn refresh(
        &mut self,
        job: &str,
        counted: &(dyn Fn(bool) + Sync),
    ) -> Vec<TargetGroup> {
        let mut lookups = JoinSet::new();
        for (index, name) in self.config.names.iter().enumerate() {
            let (resolver, name) = (self.resolver.clone(), name.clone());
            let (record_type, port) = (self.config.record_type, self.config.port);
            lookups
                .spawn(async move { (index, lookup(&resolver, &name, record_type, port).await) });
        }
        while let Some(done) = lookups.join_next().await {
            let (index, result) = match done {
                Ok(done) => done,
                // Only a panic in the resolver gets here; that name keeps its targets.
                Err(e) => {
                    counted(true);
                    tracing::error!(job, "dns_sd lookup task failed: {e}");
                    continue;
                }
            };
            counted(result.is_err());
            match result {
                Ok(targets) => self.last[index] = Some(targets),
                Err(e) => {
                    if self.log_throttle.due() {
                        tracing::warn!(
                            job,
                            "dns_sd lookup failed, keeping the name's previous targets: {e}"
                        );
                    }
                }
            }
        }
        self.groups()
    }

    /// The groups of the last good answers, names in config order.
    pub fn groups(&self) -> Vec<TargetGroup> {
        let mut groups = Vec::new();
        for (name, targets) in self.config.names.iter().zip(&self.last) {
            for target in targets.iter().flatten() {
                groups.push(TargetGroup {
                    common: None,
                    source: name.clone(),
                    targets: vec![target.address.clone()],
                    labels: target.labels.clone(),
                    file: None,
                });
            }
        }
        groups
    }
}

/// The provider task of one `dns_sd_config`: looks its names up every `refresh_interval` (the
/// first time at once) and publishes the groups to `sink` when they changed. Ends when the hub
/// is gone.
pub async fn run(config: DnsSdConfig, job: String, sink: GroupSink, context: ProviderContext) {
    let mut ticker = tokio::time::interval(config.refresh_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sd: Option<DnsSd> = None;
    let mut published: Option<Vec<TargetGroup>> = None;
    let metrics = Arc::clone(&context.metrics);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = sink.closed() => return,
        }
        // The system's configuration is read again at the next refresh when it cannot be read.
        let sd = match &mut sd {
            Some(sd) => sd,
            None => {
                let resolver = match context.dns_server {
                    Some(addr) => DnsResolver::at(addr),
                    None => match DnsResolver::system() {
                        Ok(resolver) => resolver,
                        Err(e) => {
                            metrics.dns_looked_up(true);
                            tracing::error!(job, "dns_sd: {}", error_chain(&e));
                            continue;
                        }
                    },
                };
                sd.insert(DnsSd::new(config.clone(), resolver))
            }
        };
        let groups = sd
            .refresh(&job, &|failed| metrics.dns_looked_up(failed))
            .await;
        if published.as_ref() != Some(&groups) {
            if !sink.publish(groups.clone()) {
                return;
            }
            published = Some(groups);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_brackets_hosts_with_colons_as_go_does() {
        assert_eq!(host_port("node1.example", 9100), "node1.example:9100");
        assert_eq!(host_port("::1", 80), "[::1]:80");
    }

    #[test]
    fn groups_are_one_per_target_in_name_order_and_skip_names_never_resolved() {
        let config = DnsSdConfig {
            names: vec!["a.example".into(), "b.example".into(), "c.example".into()],
            record_type: DnsRecordType::A,
            port: 9100,
            refresh_interval: Duration::from_secs(30),
        };
        let mut sd = DnsSd::new(
            config,
            DnsResolver::at("127.0.0.1:1".parse().expect("address")),
        );
        let target = |address: &str, name: &str| DnsTarget {
            address: address.into(),
            labels: BTreeMap::from([(META_DNS_NAME.to_owned(), name.to_owned())]),
        };
        sd.last[2] = Some(vec![target("10.0.0.3:9100", "c.example")]);
        sd.last[0] = Some(vec![
            target("10.0.0.1:9100", "a.example"),
            target("10.0.0.2:9100", "a.example"),
        ]);
        let groups = sd.groups();
        let shown: Vec<(&str, &str)> = groups
            .iter()
            .map(|g| (g.source.as_str(), g.targets[0].as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("a.example", "10.0.0.1:9100"),
                ("a.example", "10.0.0.2:9100"),
                ("c.example", "10.0.0.3:9100")
            ]
        );
    }
}
