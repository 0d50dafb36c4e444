//! From parsed samples to remote-write series: the labels Prometheus would store for them
//! (target labels merged as `honor_labels` says, `metric_relabel_configs`, external labels),
//! label limits, and duplicate series in a pushed exposition ([`SeriesBuilder`]).
//!
//! Guarantees: label sets come out sorted by name, without empty values or duplicate names; one
//! series appears at most once per batch. The common case (no metric relabeling) borrows every
//! label from the parsed body and the target, and encodes it straight into the output.
//!
//! Must not: fetch, parse or send; it only computes labels and builds batches. The scraper calls
//! [`encode_series_labels`] only for series its scrape cache (`ScrapeCache` in the `scrape` module) has not seen yet.

use std::borrow::Cow;
use std::collections::HashMap;

use smallvec::SmallVec;
use xxhash_rust::xxh3::xxh3_64;

use crate::prompb::{Label, WriteRequestEncoder, encode_labels_into};
use crate::relabel::CompiledRelabel;

/// The value Prometheus writes to mark a series stale (a NaN with this exact bit pattern).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Why a series could not be built. Any of these fails the whole scrape, as in Prometheus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    /// The exposition gave the same label name twice for one sample.
    #[error("series {metric}: label {label:?} appears twice")]
    DuplicateLabel { metric: String, label: String },
    /// A series has more labels than the job's `label_limit`.
    #[error("series {metric}: {count} labels is more than label_limit {limit}")]
    LabelLimit {
        metric: String,
        count: usize,
        limit: usize,
    },
}

/// How series of one batch get their labels.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeriesOptions<'a> {
    /// The target's final labels, sorted by name (empty for pushed text).
    pub target_labels: &'a [Label],
    /// On a name clash keep the scraped label (true) or keep the target's and rename the scraped
    /// one to `exported_<name>` (false, Prometheus' default).
    pub honor_labels: bool,
    pub metric_relabel: &'a [CompiledRelabel],
    /// Added to series that lack them, after relabeling; sorted by name.
    pub external_labels: &'a [Label],
    /// Most labels per series; 0 = no limit.
    pub label_limit: usize,
}

/// What happened to one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Written to the batch.
    Series,
    /// Dropped by `metric_relabel_configs`.
    Relabeled,
    /// The batch already had this series; the later sample was left out.
    Duplicate,
}

type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// Hashes keys that are already xxh3 hashes: hashing them again (SipHash) only costs time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = (n as u64) ^ ((n >> 64) as u64);
    }
}

/// A map keyed by an xxh3 hash.
pub(crate) type HashKeyed<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// One batch of series (one pushed exposition) being encoded, each series once.
#[derive(Debug, Default)]
pub struct SeriesBuilder {
    enc: WriteRequestEncoder,
    /// Series of this batch, by the hash of their encoded labels.
    keys: std::collections::HashSet<u64, std::hash::BuildHasherDefault<KeyHasher>>,
    /// The labels of the series being added, encoded.
    scratch: Vec<u8>,
}

impl SeriesBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Series in the batch.
    pub fn series(&self) -> usize {
        self.enc.series()
    }

    /// The batch as a serialized `WriteRequest`.
    pub fn as_bytes(&self) -> &[u8] {
        self.enc.as_bytes()
    }

    /// Adds one sample of metric `name` with its scraped `labels`.
    pub fn add<'a, I>(
        &mut self,
        name: &'a str,
        labels: I,
        value: f64,
        timestamp_ms: i64,
        opts: &SeriesOptions<'a>,
    ) -> Result<Added, SeriesError>
    where
        I: IntoIterator<Item = (&'a str, Cow<'a, str>)>,
    {
        if !encode_series_labels(name, labels, opts, &mut self.scratch)? {
            return Ok(Added::Relabeled);
        }
        let key = xxh3_64(&self.scratch);
        if !self.keys.insert(key) {
            return Ok(Added::Duplicate);
        }
        self.enc.push_raw_labels(&self.scratch, value, timestamp_ms);
        Ok(Added::Series)
    }
}

/// Computes the labels Prometheus would store for one scraped sample of metric `name` (target
/// labels merged, metric relabeling, external labels, label limit) and writes them into `out`
/// (cleared first) encoded as `TimeSeries.labels` fields. Returns false when metric relabeling
/// drops the series.
pub fn encode_series_labels<'a, I>(
    name: &'a str,
    labels: I,
    opts: &SeriesOptions<'a>,
    out: &mut Vec<u8>,
) -> Result<bool, SeriesError>
where
    I: IntoIterator<Item = (&'a str, Cow<'a, str>)>,
{
    out.clear();
    let mut set: SmallVec<[Pair<'a>; 16]> = SmallVec::new();
    set.push((Cow::Borrowed("__name__"), Cow::Borrowed(name)));
    set.extend(
        labels
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (Cow::Borrowed(n), v)),
    );
    set.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = set.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SeriesError::DuplicateLabel {
            metric: name.to_string(),
            label: w[0].0.to_string(),
        });
    }
    merge_target_labels(&mut set, opts.target_labels, opts.honor_labels);
    if !opts.metric_relabel.is_empty() {
        let mut owned: Vec<Label> = set
            .iter()
            .map(|(n, v)| Label::new(n.as_ref(), v.as_ref()))
            .collect();
        if !crate::relabel::process(&mut owned, opts.metric_relabel) {
            return Ok(false);
        }
        let mut set: SmallVec<[Pair<'_>; 16]> = owned
            .iter()
            .map(|l| {
                (
                    Cow::Borrowed(l.name.as_str()),
                    Cow::Borrowed(l.value.as_str()),
                )
            })
            .collect();
        add_external(&mut set, opts.external_labels);
        return finish_labels(name, &set, opts.label_limit, out);
    }
    add_external(&mut set, opts.external_labels);
    finish_labels(name, &set, opts.label_limit, out)
}

fn finish_labels(
    name: &str,
    set: &[Pair<'_>],
    label_limit: usize,
    out: &mut Vec<u8>,
) -> Result<bool, SeriesError> {
    if label_limit > 0 && set.len() > label_limit {
        return Err(SeriesError::LabelLimit {
            metric: name.to_string(),
            count: set.len(),
            limit: label_limit,
        });
    }
    encode_labels_into(set.iter().map(|(n, v)| (n.as_ref(), v.as_ref())), out);
    Ok(true)
}

/// Prometheus' `mutateSampleLabels` for the target labels.
fn merge_target_labels<'a>(
    set: &mut SmallVec<[Pair<'a>; 16]>,
    target: &'a [Label],
    honor_labels: bool,
) {
    if target.is_empty() {
        return;
    }
    let mut conflicts: SmallVec<[Pair<'a>; 4]> = SmallVec::new();
    for t in target {
        match set.binary_search_by(|p| p.0.as_ref().cmp(t.name.as_str())) {
            Ok(i) if honor_labels => {
                let _ = i;
            }
            Ok(i) => {
                let scraped = std::mem::replace(&mut set[i].1, Cow::Borrowed(t.value.as_str()));
                conflicts.push((Cow::Borrowed(t.name.as_str()), scraped));
            }
            Err(i) => set.insert(
                i,
                (
                    Cow::Borrowed(t.name.as_str()),
                    Cow::Borrowed(t.value.as_str()),
                ),
            ),
        }
    }
    // The scraped value of a clashing label moves to `exported_<name>` (prefixed again until free).
    conflicts.sort_by_key(|c| c.0.len());
    for (name, value) in conflicts {
        let mut new_name = name.into_owned();
        loop {
            new_name.insert_str(0, "exported_");
            if let Err(i) = set.binary_search_by(|p| p.0.as_ref().cmp(new_name.as_str())) {
                set.insert(i, (Cow::Owned(new_name), value));
                break;
            }
        }
    }
}

fn add_external<'a>(set: &mut SmallVec<[Pair<'a>; 16]>, external: &'a [Label]) {
    for l in external {
        if let Err(i) = set.binary_search_by(|p| p.0.as_ref().cmp(l.name.as_str())) {
            set.insert(
                i,
                (
                    Cow::Borrowed(l.name.as_str()),
                    Cow::Borrowed(l.value.as_str()),
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::decode_write_request;

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()
    }

    fn built(b: &SeriesBuilder) -> Vec<Vec<(String, String)>> {
        decode_write_request(b.as_bytes())
            .unwrap()
            .timeseries
            .into_iter()
            .map(|t| t.labels.into_iter().map(|l| (l.name, l.value)).collect())
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn scraped<'a>(p: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> {
        p.iter().map(|(n, v)| (*n, Cow::Borrowed(*v)))
    }

    #[test]
    fn target_labels_are_added_and_sorted() {
        let target = labels(&[("instance", "h:9100"), ("job", "node")]);
        let opts = SeriesOptions {
            target_labels: &target,
            ..Default::default()
        };
        let mut b = SeriesBuilder::new();
        b.add("up_x", scraped(&[("zone", "a")]), 1.0, 1, &opts)
            .unwrap();
        assert_eq!(
            built(&b),
            vec![pairs(&[
                ("__name__", "up_x"),
                ("instance", "h:9100"),
                ("job", "node"),
                ("zone", "a")
            ])]
        );
    }

    #[test]
    fn clashing_scraped_label_becomes_exported_without_honor_labels() {
        let target = labels(&[("job", "node")]);
        let opts = SeriesOptions {
            target_labels: &target,
            ..Default::default()
        };
        let mut b = SeriesBuilder::new();
        b.add(
            "m",
            scraped(&[("job", "app"), ("exported_job", "x")]),
            1.0,
            1,
            &opts,
        )
        .unwrap();
        assert_eq!(
            built(&b),
            vec![pairs(&[
                ("__name__", "m"),
                ("exported_exported_job", "app"),
                ("exported_job", "x"),
                ("job", "node")
            ])]
        );
    }

    #[test]
    fn honor_labels_keeps_the_scraped_value() {
        let target = labels(&[("instance", "h"), ("job", "node")]);
        let opts = SeriesOptions {
            target_labels: &target,
            honor_labels: true,
            ..Default::default()
        };
        let mut b = SeriesBuilder::new();
        b.add("m", scraped(&[("job", "app")]), 1.0, 1, &opts)
            .unwrap();
        assert_eq!(
            built(&b),
            vec![pairs(&[
                ("__name__", "m"),
                ("instance", "h"),
                ("job", "app")
            ])]
        );
    }

    #[test]
    fn empty_label_values_are_left_out() {
        let mut b = SeriesBuilder::new();
        b.add(
            "m",
            scraped(&[("a", ""), ("b", "1")]),
            1.0,
            1,
            &SeriesOptions::default(),
        )
        .unwrap();
        assert_eq!(built(&b), vec![pairs(&[("__name__", "m"), ("b", "1")])]);
    }

    #[test]
    fn duplicate_label_name_fails_the_series() {
        let mut b = SeriesBuilder::new();
        let err = b
            .add(
                "m",
                scraped(&[("a", "1"), ("a", "2")]),
                1.0,
                1,
                &SeriesOptions::default(),
            )
            .unwrap_err();
        assert!(matches!(err, SeriesError::DuplicateLabel { .. }));
    }

    #[test]
    fn same_series_twice_in_a_batch_is_written_once() {
        let mut b = SeriesBuilder::new();
        let opts = SeriesOptions::default();
        assert_eq!(b.add("m", scraped(&[]), 1.0, 1, &opts), Ok(Added::Series));
        assert_eq!(
            b.add("m", scraped(&[]), 2.0, 1, &opts),
            Ok(Added::Duplicate)
        );
        assert_eq!(b.series(), 1);
    }

    #[test]
    fn label_limit_counts_every_label_including_the_name() {
        let opts = SeriesOptions {
            label_limit: 2,
            ..Default::default()
        };
        let mut b = SeriesBuilder::new();
        assert!(b.add("m", scraped(&[("a", "1")]), 1.0, 1, &opts).is_ok());
        let err = b
            .add("m", scraped(&[("a", "1"), ("b", "2")]), 1.0, 1, &opts)
            .unwrap_err();
        assert!(matches!(err, SeriesError::LabelLimit { count: 3, .. }));
    }

    #[test]
    fn metric_relabel_configs_drop_and_rewrite() {
        let rules: Vec<crate::relabel::RelabelConfig> = serde_json::from_str(
            r#"[{"source_labels": ["__name__"], "regex": "go_.*", "action": "drop"},
                {"target_label": "env", "replacement": "prod"}]"#,
        )
        .unwrap();
        let compiled = crate::relabel::compile_all(&rules).unwrap();
        let opts = SeriesOptions {
            metric_relabel: &compiled,
            ..Default::default()
        };
        let mut b = SeriesBuilder::new();
        assert_eq!(
            b.add("go_goroutines", scraped(&[]), 1.0, 1, &opts),
            Ok(Added::Relabeled)
        );
        b.add("app_up", scraped(&[]), 1.0, 1, &opts).unwrap();
        assert_eq!(
            built(&b),
            vec![pairs(&[("__name__", "app_up"), ("env", "prod")])]
        );
    }

    #[test]
    fn external_labels_fill_in_only_missing_names() {
        let ext = labels(&[("cluster", "eu"), ("zone", "z1")]);
        let opts = SeriesOptions {
            external_labels: &ext,
            ..Default::default()
        };
        let mut b = SeriesBuilder::new();
        b.add("m", scraped(&[("zone", "mine")]), 1.0, 1, &opts)
            .unwrap();
        assert_eq!(
            built(&b),
            vec![pairs(&[
                ("__name__", "m"),
                ("cluster", "eu"),
                ("zone", "mine")
            ])]
        );
    }
}
