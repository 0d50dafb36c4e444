//! Cluster sharding of scrape targets, bit for bit as vmagent 1.79 does it
//! (`-promscrape.cluster.membersCount`, `-promscrape.cluster.memberNum`,
//! `-promscrape.cluster.replicationFactor`), so promrelay and vmagent instances can share one
//! fleet, or replace each other one by one, and agree on every target.
//!
//! # Owns
//! - The key: the target's labels after `relabel_configs` without `__meta_*` labels, sorted by
//!   name, written as `name=value,` one after another (no escaping, trailing comma included).
//! - The owners: `idx = xxh64(key, seed 0) % N`, then members `idx, idx+1, … idx+R-1 (mod N)`.
//!
//! What goes into the key is decided by [`targets`](super::targets), which builds vmagent's view
//! of each target's labels; what vmagent 1.79's code (`lib/promscrape/config.go`:
//! `getScrapeWork`, `mergeLabels`, `appendScrapeWorkKey`, `needSkipScrapeWork`) puts there,
//! checked against the real binary by `tests/scrape_sharding_vmagent.rs`:
//! - `job`, `__address__`, `__scheme__`, `__metrics_path__`, `__param_<name>` (first value),
//!   `__scrape_interval__` and `__scrape_timeout__` as Go duration strings (`1m0s`, `1m30s`);
//! - the group's labels, and for `file_sd` targets `__vm_filepath` (the file's absolute path:
//!   it is not a `__meta_` label, so it stays in the key);
//! - `global.external_labels` (1.79 merges them into every target's labels, under all others);
//! - no label with an empty value.
//!
//! # Guarantees
//! - With `members_count <= 1` every target belongs to member 0 alone.
//! - Each target has exactly `min(R, N)` distinct owners.
//!
//! # Must not
//! Know how labels were built; it hashes what it is given.

use xxhash_rust::xxh64::xxh64;

use crate::config::ClusterConfig;
use crate::prompb::Label;

/// Writes vmagent's sharding key for `labels`, which must be sorted by name and hold no
/// `__meta_*` label: `name=value,` per label.
pub fn shard_key(labels: &[Label]) -> String {
    let len = labels
        .iter()
        .map(|l| l.name.len() + l.value.len() + 2)
        .sum();
    let mut key = String::with_capacity(len);
    for label in labels {
        key.push_str(&label.name);
        key.push('=');
        key.push_str(&label.value);
        key.push(',');
    }
    key
}

/// The cluster members that scrape the target with sharding key `key`, in vmagent's order
/// (the first is `xxh64(key) % N`). Always at least one member.
pub fn owners(key: &str, cluster: &ClusterConfig) -> Vec<u32> {
    let members = u64::from(cluster.members_count);
    if members <= 1 {
        return vec![0];
    }
    let replicas = cluster.replication_factor.clamp(1, cluster.members_count);
    // `idx < members <= u32::MAX`, so the conversion cannot fail.
    let first = u32::try_from(xxh64(key.as_bytes(), 0) % members).unwrap_or(0);
    (0..replicas)
        .map(|i| {
            let idx = u64::from(first) + u64::from(i);
            u32::try_from(idx % members).unwrap_or(0)
        })
        .collect()
}

/// True when `cluster.member_num` is among `owners`.
pub fn is_mine(owners: &[u32], cluster: &ClusterConfig) -> bool {
    owners.contains(&cluster.member_num)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(members_count: u32, member_num: u32, replication_factor: u32) -> ClusterConfig {
        ClusterConfig {
            members_count,
            member_num,
            replication_factor,
        }
    }

    #[test]
    fn key_is_name_equals_value_comma_per_label_without_escaping() {
        let labels = [
            Label::new("__address__", "a:1"),
            Label::new("job", "x,y=\"z\""),
        ];
        assert_eq!(shard_key(&labels), "__address__=a:1,job=x,y=\"z\",");
    }

    #[test]
    fn owners_start_at_xxh64_of_the_key_modulo_members() {
        // xxh64("", 0) is the published test vector 0xef46db3751d8e999.
        assert_eq!(xxh64(b"", 0), 0xef46_db37_51d8_e999);
        let first = (0xef46_db37_51d8_e999u64 % 3) as u32;
        assert_eq!(owners("", &cluster(3, 0, 1)), vec![first]);
        assert_eq!(owners("", &cluster(3, 0, 2)), vec![first, (first + 1) % 3]);
    }

    #[test]
    fn replicas_wrap_around_and_are_distinct() {
        for key in ["a", "b", "c", "d", "e", "f"] {
            let o = owners(key, &cluster(4, 0, 3));
            assert_eq!(o.len(), 3);
            assert_eq!(o[1], (o[0] + 1) % 4);
            assert_eq!(o[2], (o[0] + 2) % 4);
        }
        // A replication factor above the member count cannot name a member twice.
        let o = owners("a", &cluster(2, 0, 5));
        assert_eq!(o.len(), 2);
        assert_ne!(o[0], o[1]);
    }

    #[test]
    fn single_member_owns_everything() {
        assert_eq!(owners("anything", &cluster(1, 0, 1)), vec![0]);
        assert!(is_mine(&owners("x", &cluster(1, 0, 1)), &cluster(1, 0, 1)));
    }
}
