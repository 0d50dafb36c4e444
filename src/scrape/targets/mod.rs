//! Targets: from a job and its discovered groups to the targets this instance scrapes, and the
//! ones it does not (with why), as Prometheus' `PopulateLabels` (`scrape/target.go`) builds
//! them and vmagent 1.79 shards them.
//!
//! # Owns
//! - The discovered labels of a target: the group's labels, `__address__` (the target wins over
//!   a group label of that name), then, where not already set, `job`, `__scrape_interval__`,
//!   `__scrape_timeout__`, `__metrics_path__`, `__scheme__`, then `__param_<name>` with the
//!   first value of each `params` entry (set even over a group label, as Prometheus does).
//! - After `relabel_configs`: drop when a rule drops the target or `__address__` is gone or not
//!   a `host[:port]`; add the default port (`:80` for http, `:443` for https) to `__address__`
//!   as Prometheus 2 does; read back the interval and timeout; the final labels are those not
//!   starting with `__`, plus `instance = __address__` unless set.
//! - Sharding: the owners of a target (the [`sharding`] module) from vmagent 1.79's view
//!   of its labels; a target owned by other members is dropped with that reason.
//!
//! # Guarantees
//! - Labels are sorted by name, unique, with no empty value (empty means absent).
//! - [`Target::id`] depends only on the job name and the target's labels after relabeling (so
//!   on what is scraped, from where, how often): equal across reloads that do not change them.
//!   Changes to how a job scrapes (auth, limits) show in [`JobConfig`] equality instead.
//! - Targets of one job with the same id are listed once.
//!
//! # Deviations from Prometheus, on purpose
//! - `__scrape_interval__` and `__scrape_timeout__` hold Go duration strings (`1m0s`, `1m30s`,
//!   `1.5s`) as in vmagent 1.79, where Prometheus writes `1m`: the sharding key hashes them, and
//!   a relabel rule reading them must see what vmagent's sees. Both spellings are read back.
//! - A target whose scheme after relabeling is neither `http` nor `https` is dropped (with the
//!   reason) instead of failing at every scrape.
//!
//! # Where vmagent 1.79 differs, and what promrelay does about it
//! vmagent's target labels differ from Prometheus' in a few ways that change its sharding key:
//! it merges `global.external_labels` into them, gives `file_sd` targets `__vm_filepath` (and a
//! `__meta_filepath` relative to the config directory), and lets group labels override
//! `__param_*` and `__address__`. promrelay keeps Prometheus' labels for scraping and builds
//! vmagent's view only for the key, relabeling it separately when it differs. Relabel rules
//! whose results differ between the two implementations (vmagent's `hashmod` uses xxhash where
//! Prometheus uses md5) can still make the two disagree on a target; when vmagent's view is
//! dropped by relabeling but Prometheus' is not, the key falls back to Prometheus' labels.
//!
//! # Must not
//! Read files or the network; it works on what discovery found.

mod compact;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use url::Url;
use xxhash_rust::xxh64::Xxh64;

use super::config::{GlobalConfig, JobConfig};
use super::discovery::{META_FILEPATH, TargetGroup};
use super::sharding;
use crate::config::{
    ClusterConfig, ValueError, format_go_duration, parse_duration, parse_go_duration,
};
use crate::prompb::Label;
use crate::relabel;
pub use compact::CompactLabels;

/// A target this instance scrapes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The job's `job_name` (the `job` label may have been relabeled to something else).
    pub job: String,
    /// The labels every scraped series of this target gets, sorted by name.
    pub labels: Vec<Label>,
    /// The labels before relabeling (meta labels included), for the targets page.
    pub discovered_labels: CompactLabels,
    /// What is fetched: scheme, address with port, path, and the query parameters.
    pub scrape_url: Url,
    /// Time between scrapes.
    pub interval: Duration,
    /// Longest a scrape may take; `<= interval`.
    pub timeout: Duration,
    /// The cluster members that scrape this target (this one included), vmagent's order.
    pub owners: Vec<u32>,
    /// The group it came from (`static_configs[0]`, `<file>:<index>`).
    pub source: String,
    id: u64,
}

impl Target {
    /// Identity across reloads; see the module doc.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The value of the final label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        get(&self.labels, name)
    }
}

/// A discovered target that this instance does not scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedTarget {
    /// The job's `job_name`.
    pub job: String,
    /// The labels before relabeling.
    pub discovered_labels: CompactLabels,
    /// Why it is not scraped here.
    pub reason: DropReason,
}

/// Why a discovered target is not scraped by this instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A `relabel_configs` rule dropped it.
    Relabeling,
    /// No `__address__` was left after relabeling.
    NoAddress,
    /// `__address__` after relabeling is not a `host[:port]`.
    InvalidAddress {
        /// The offending value.
        address: String,
    },
    /// `__scheme__` after relabeling is not `http` or `https`.
    InvalidScheme {
        /// The offending value (empty when the label is gone).
        scheme: String,
    },
    /// `__scrape_interval__` or `__scrape_timeout__` after relabeling is missing, does not
    /// parse, is zero, or the timeout is longer than the interval.
    InvalidInterval {
        /// What is wrong.
        reason: IntervalError,
    },
    /// The target belongs to other members of the scraping cluster.
    OtherMembers {
        /// The members that scrape it.
        owners: Vec<u32>,
        /// This instance's member number.
        member_num: u32,
        /// The cluster size.
        members_count: u32,
    },
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Relabeling => f.write_str("dropped by relabel_configs"),
            DropReason::NoAddress => f.write_str("no __address__ after relabeling"),
            DropReason::InvalidAddress { address } => {
                write!(f, "__address__ {address:?} is not a valid host:port")
            }
            DropReason::InvalidScheme { scheme } => {
                write!(f, "__scheme__ {scheme:?} is not http or https")
            }
            DropReason::InvalidInterval { reason } => write!(f, "{reason}"),
            DropReason::OtherMembers {
                owners,
                member_num,
                members_count,
            } => {
                let owners: Vec<String> = owners.iter().map(u32::to_string).collect();
                write!(
                    f,
                    "scraped by cluster member {} (this is member {member_num} of {members_count})",
                    owners.join(", ")
                )
            }
        }
    }
}

/// The targets of one job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetSet {
    /// The job's `job_name`.
    pub job: String,
    /// Targets this instance scrapes, in discovery order, without duplicates.
    pub active: Vec<Target>,
    /// Discovered targets it does not scrape, with the reason (at most as many as asked for).
    pub dropped: Vec<DroppedTarget>,
    /// How many discovered targets it does not scrape, listed or not.
    pub dropped_total: usize,
}

/// Builds the targets of `job` from its discovered `groups`. `global` supplies the external
/// labels vmagent puts into its sharding key; `cluster` says which targets are this
/// instance's. Every dropped target is listed; [`build_targets_listing`] lists fewer.
pub fn build_targets<'g>(
    job: &JobConfig,
    groups: impl IntoIterator<Item = &'g TargetGroup>,
    global: &GlobalConfig,
    cluster: &ClusterConfig,
) -> TargetSet {
    build_targets_listing(job, groups, global, cluster, usize::MAX)
}

/// [`build_targets`], listing at most `list_dropped` dropped targets (the first ones); the
/// others are only counted in [`TargetSet::dropped_total`]. A relabeling that keeps one
/// target of a pod's ten drops nine, with all their labels: listing them all would hold most
/// of a large cluster's labels in memory for the targets page alone.
pub fn build_targets_listing<'g>(
    job: &JobConfig,
    groups: impl IntoIterator<Item = &'g TargetGroup>,
    global: &GlobalConfig,
    cluster: &ClusterConfig,
    list_dropped: usize,
) -> TargetSet {
    let ctx = Context {
        job,
        global,
        cluster,
        interval: format_go_duration(job.scrape_interval),
        timeout: format_go_duration(job.scrape_timeout),
    };
    let mut set = TargetSet {
        job: job.job_name.clone(),
        ..TargetSet::default()
    };
    let mut seen = std::collections::HashSet::new();
    for group in groups {
        for address in &group.targets {
            match ctx.target(group, address) {
                Ok(target) => {
                    if seen.insert(target.id) {
                        set.active.push(target);
                    }
                }
                Err((reason, discovered_labels)) => {
                    set.dropped_total += 1;
                    if set.dropped.len() < list_dropped {
                        set.dropped.push(DroppedTarget {
                            job: job.job_name.clone(),
                            discovered_labels: CompactLabels::new(&discovered_labels),
                            reason,
                        });
                    }
                }
            }
        }
    }
    set
}

/// What relabeling makes of a target: everything of a [`Target`] but where it came from.
struct TargetParts {
    labels: Vec<Label>,
    scrape_url: Url,
    interval: Duration,
    timeout: Duration,
    owners: Vec<u32>,
    id: u64,
}

struct Context<'a> {
    job: &'a JobConfig,
    global: &'a GlobalConfig,
    cluster: &'a ClusterConfig,
    /// The job's interval and timeout as Go duration strings, computed once.
    interval: String,
    timeout: String,
}

impl Context<'_> {
    /// The target at `address` of `group`, or why it is not scraped here with its discovered
    /// labels (moved out, so a caller that does not list it frees them at once).
    fn target(
        &self,
        group: &TargetGroup,
        address: &str,
    ) -> Result<Target, (DropReason, Vec<Label>)> {
        let discovered = self.discovered_labels(group, address);
        match self.relabeled(group, address, &discovered) {
            Ok(parts) => Ok(Target {
                job: self.job.job_name.clone(),
                labels: parts.labels,
                discovered_labels: CompactLabels::new(&discovered),
                scrape_url: parts.scrape_url,
                interval: parts.interval,
                timeout: parts.timeout,
                owners: parts.owners,
                source: group.source.clone(),
                id: parts.id,
            }),
            Err(reason) => Err((reason, discovered)),
        }
    }

    /// Relabeling, sharding and the scrape URL of one target, from its discovered labels.
    fn relabeled(
        &self,
        group: &TargetGroup,
        address: &str,
        discovered: &[Label],
    ) -> Result<TargetParts, DropReason> {
        let mut labels = discovered.to_vec();
        if !relabel::process(&mut labels, self.job.relabel_configs.compiled()) {
            return Err(DropReason::Relabeling);
        }
        labels.retain(|l| !l.value.is_empty() && !l.name.starts_with("__meta_"));

        // vmagent computes its key here: after relabeling, before the default port.
        let owners = if self.cluster.members_count > 1 {
            let key_labels = self.vmagent_key_labels(group, address, discovered, &labels);
            sharding::owners(&sharding::shard_key(&key_labels), self.cluster)
        } else {
            vec![0]
        };

        let address = get(&labels, "__address__")
            .ok_or(DropReason::NoAddress)?
            .to_owned();
        let scheme = get(&labels, "__scheme__").unwrap_or("").to_owned();
        let default_port = match scheme.as_str() {
            "http" => "80",
            "https" => "443",
            _ => return Err(DropReason::InvalidScheme { scheme }),
        };
        let address = with_default_port(&address, default_port)
            .ok_or(DropReason::InvalidAddress { address })?;
        let (interval, timeout) =
            intervals(&labels).map_err(|reason| DropReason::InvalidInterval { reason })?;

        if !sharding::is_mine(&owners, self.cluster) {
            return Err(DropReason::OtherMembers {
                owners,
                member_num: self.cluster.member_num,
                members_count: self.cluster.members_count,
            });
        }

        set(&mut labels, "__address__", &address);
        let scrape_url = self.scrape_url(&scheme, &address, &labels).ok_or_else(|| {
            DropReason::InvalidAddress {
                address: address.clone(),
            }
        })?;

        let mut id = Xxh64::new(0);
        id.update(self.job.job_name.as_bytes());
        for label in &labels {
            id.update(&[0xff]);
            id.update(label.name.as_bytes());
            id.update(&[0xff]);
            id.update(label.value.as_bytes());
        }

        let mut final_labels: Vec<Label> = labels
            .iter()
            .filter(|l| !l.name.starts_with("__"))
            .cloned()
            .collect();
        if get(&final_labels, "instance").is_none() {
            set(&mut final_labels, "instance", &address);
        }
        Ok(TargetParts {
            labels: final_labels,
            scrape_url,
            interval,
            timeout,
            owners,
            id: id.digest(),
        })
    }

    /// Prometheus' labels before relabeling (`PopulateLabels`, first half).
    fn discovered_labels(&self, group: &TargetGroup, address: &str) -> Vec<Label> {
        let job = self.job;
        let mut m: BTreeMap<String, String> = group.merged_labels();
        m.insert("__address__".to_owned(), address.to_owned());
        for (name, value) in [
            ("job", job.job_name.as_str()),
            ("__scrape_interval__", self.interval.as_str()),
            ("__scrape_timeout__", self.timeout.as_str()),
            ("__metrics_path__", job.metrics_path.as_str()),
            ("__scheme__", job.scheme.as_str()),
        ] {
            if m.get(name).is_none_or(String::is_empty) {
                m.insert(name.to_owned(), value.to_owned());
            }
        }
        for (name, values) in &job.params {
            if let Some(first) = values.first() {
                m.insert(format!("__param_{name}"), first.clone());
            }
        }
        to_labels(m)
    }

    /// vmagent 1.79's labels for the sharding key (`mergeLabels`, relabeling, no `__meta_*`).
    /// `discovered` and `relabeled` are Prometheus' before and after relabeling, reused when
    /// vmagent's view starts out the same.
    fn vmagent_key_labels(
        &self,
        group: &TargetGroup,
        address: &str,
        discovered: &[Label],
        relabeled: &[Label],
    ) -> Vec<Label> {
        let job = self.job;
        // Later inserts win, in mergeLabels' order.
        let mut m: BTreeMap<String, String> = self.global.external_labels.clone();
        for (name, value) in [
            ("job", job.job_name.as_str()),
            ("__address__", address),
            ("__scheme__", job.scheme.as_str()),
            ("__metrics_path__", job.metrics_path.as_str()),
            ("__scrape_interval__", self.interval.as_str()),
            ("__scrape_timeout__", self.timeout.as_str()),
        ] {
            m.insert(name.to_owned(), value.to_owned());
        }
        for (name, values) in &job.params {
            if let Some(first) = values.first() {
                m.insert(format!("__param_{name}"), first.clone());
            }
        }
        for (name, value) in group.each_label() {
            m.insert(name.clone(), value.clone());
        }
        if let Some(file) = &group.file {
            let absolute = file.absolute.to_string_lossy().into_owned();
            let base = job.base_dir.to_string_lossy();
            // vmagent's pathShort: a plain string prefix test, as in its code.
            let short = match absolute.strip_prefix(base.as_ref()) {
                Some(rest) => rest.strip_prefix('/').unwrap_or(rest).to_owned(),
                None => absolute.clone(),
            };
            m.insert(META_FILEPATH.to_owned(), short);
            m.insert("__vm_filepath".to_owned(), absolute);
        }
        let view = to_labels(m);
        if view == discovered {
            return relabeled.to_vec();
        }
        let mut labels = view;
        if !relabel::process(&mut labels, job.relabel_configs.compiled()) {
            return relabeled.to_vec();
        }
        labels.retain(|l| !l.value.is_empty() && !l.name.starts_with("__meta_"));
        labels
    }

    /// `scheme://address/path?params`, with `__param_<name>` labels replacing the first value
    /// of `params[name]` (or adding it), as Prometheus' `Target.URL` does.
    fn scrape_url(&self, scheme: &str, address: &str, labels: &[Label]) -> Option<Url> {
        let mut url = Url::parse(&format!("{scheme}://{address}")).ok()?;
        if url.host_str().is_none_or(str::is_empty) || url.path() != "/" {
            return None;
        }
        url.set_path(get(labels, "__metrics_path__").unwrap_or(""));
        let mut params = self.job.params.clone();
        for label in labels {
            if let Some(name) = label.name.strip_prefix("__param_") {
                match params.get_mut(name) {
                    Some(values) if !values.is_empty() => values[0] = label.value.clone(),
                    _ => {
                        params.insert(name.to_owned(), vec![label.value.clone()]);
                    }
                }
            }
        }
        if params.values().any(|v| !v.is_empty()) {
            let mut query = url.query_pairs_mut();
            for (name, values) in &params {
                for value in values {
                    query.append_pair(name, value);
                }
            }
        }
        Some(url)
    }
}

/// Labels sorted by name (the map's order), without empty values.
fn to_labels(m: BTreeMap<String, String>) -> Vec<Label> {
    m.into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, value)| Label { name, value })
        .collect()
}

/// The value of `name` in sorted `labels`.
fn get<'a>(labels: &'a [Label], name: &str) -> Option<&'a str> {
    labels
        .binary_search_by(|l| l.name.as_str().cmp(name))
        .ok()
        .map(|i| labels[i].value.as_str())
}

/// Sets `name` in sorted `labels`, keeping them sorted.
fn set(labels: &mut Vec<Label>, name: &str, value: &str) {
    match labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
        Ok(i) => labels[i].value = value.to_owned(),
        Err(i) => labels.insert(i, Label::new(name, value)),
    }
}

/// Why a target's `__scrape_interval__` or `__scrape_timeout__` is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    /// The label is missing or its value is neither a Prometheus nor a Go duration.
    #[error("{label} {text:?} is not a duration")]
    NotADuration { label: &'static str, text: String },
    /// The label's value is 0.
    #[error("{label} cannot be 0")]
    Zero { label: &'static str },
    /// The timeout is longer than the interval.
    #[error(
        "__scrape_timeout__ {} is longer than __scrape_interval__ {}",
        format_go_duration(*timeout),
        format_go_duration(*interval)
    )]
    TimeoutLongerThanInterval {
        timeout: Duration,
        interval: Duration,
    },
}

/// Reads `__scrape_interval__` and `__scrape_timeout__` back, as Prometheus checks them.
fn intervals(labels: &[Label]) -> Result<(Duration, Duration), IntervalError> {
    let read = |label: &'static str| -> Result<Duration, IntervalError> {
        let text = get(labels, label).unwrap_or("");
        let d = parse_label_duration(text).map_err(|_| IntervalError::NotADuration {
            label,
            text: text.to_owned(),
        })?;
        if d.is_zero() {
            return Err(IntervalError::Zero { label });
        }
        Ok(d)
    };
    let interval = read("__scrape_interval__")?;
    let timeout = read("__scrape_timeout__")?;
    if timeout > interval {
        return Err(IntervalError::TimeoutLongerThanInterval { timeout, interval });
    }
    Ok((interval, timeout))
}

/// `address` with `:<default_port>` added when it has no port, as Prometheus 2 does; `None`
/// when it is not a `host[:port]` (empty, holds a `/`, or has a malformed port or brackets).
fn with_default_port(address: &str, default_port: &str) -> Option<String> {
    if address.is_empty() || address.contains('/') {
        return None;
    }
    match split_host_port(address) {
        Ok(_) => Some(address.to_owned()),
        Err(()) => {
            // Go: if adding a port makes it valid, the address only lacked one.
            split_host_port(&format!("{address}:1234")).ok()?;
            Some(format!("{address}:{default_port}"))
        }
    }
}

/// Go's `net.SplitHostPort` acceptance: `host:port` or `[v6]:port`, exactly one unbracketed
/// colon; the port may be empty or any text without `:`, as in Go.
fn split_host_port(s: &str) -> Result<(&str, &str), ()> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or(())?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = after.strip_prefix(':').ok_or(())?;
        if port.contains([':', '[', ']']) || host.contains('[') {
            return Err(());
        }
        return Ok((host, port));
    }
    let colon = s.rfind(':').ok_or(())?;
    let (host, port) = (&s[..colon], &s[colon + 1..]);
    if host.contains([':', '[', ']']) || port.contains([']', '[']) {
        return Err(());
    }
    Ok((host, port))
}

/// Reads a duration written either Prometheus' way (`1m30s`, `2d`) or Go's (`1m30.5s`,
/// `1h0m0s`, `1.5s`, `250ms`, `10µs`); negative durations are refused.
pub fn parse_label_duration(text: &str) -> Result<Duration, ValueError> {
    if let Ok(d) = parse_duration(text) {
        return Ok(d);
    }
    parse_go_duration(text)
}

#[cfg(test)]
mod tests;
