//! [`OpenMetricsValidator`]: the OpenMetrics 1.0 rules that are not grammar, checked over the
//! stream of entries.
//!
//! The rules and their reading follow the spec and, where the spec is loose, the reference
//! parser the OpenMetrics test suite was written against (`prometheus_client.openmetrics.parser`
//! of client_python):
//! - A metric family starts with a metadata line or with a sample whose name is not one of the
//!   current family's sample names (family name + a suffix its type allows; a family without
//!   TYPE allows only its own name). Metadata comes before samples, at most once of each kind.
//! - Families do not clash: a family's name plus each suffix of its type is claimed for the
//!   whole exposition, so a family can not come back later, and `foo_created` (gauge) next to
//!   `foo` (counter) is refused. A non-empty UNIT is a suffix of the name; info and stateset
//!   have none.
//! - Samples of one group (labels without `le` for buckets, without `quantile` for quantiles,
//!   without the family name for statesets; all of an info family) are contiguous; within a
//!   group, timestamps are all present or all absent and do not go backwards.
//! - Histograms and gauge histograms, per group and timestamp: buckets strictly increasing in
//!   `le` (NaN refused, `+Inf` spelled canonically) with non-decreasing counts, a `+Inf` bucket,
//!   `_count`/`_gcount` equal to it and present exactly when `_sum`/`_gsum` is; no `_sum` with
//!   negative buckets; a negative `_gsum` only with negative buckets.
//! - Values: counter-like samples (`_total`, `_sum`, `_count`, `_bucket`, `_gcount`, `_gsum`)
//!   not NaN and (but `_gsum`) not negative; quantiles in [0, 1] with non-negative values;
//!   stateset values 0 or 1, with the state label present; info values 1.
//! - Exemplars only on counters' `_total` and on buckets, with at most 128 characters of label
//!   names and values; no duplicate label names in a sample or exemplar.
//!
//! Left out (the reference parser does not check them either): an exemplar's value lying within
//! its bucket, integral count values. Duplicate samples (same series and timestamp) are allowed,
//! as the reference parser drops them silently; a repeated histogram bucket, though, fails the
//! strictly-increasing `le` rule here.
//!
//! Groups are told apart by a 64-bit hash of their label pairs, order-independent. Two distinct
//! groups of one family sharing a hash (odds around n²/2⁶⁴ for n groups) would be taken as
//! interleaved; no exposition of this world comes near.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh64::xxh64;

use super::number::parse_value;
use super::{Entry, LabelsRef, MetricType, ParseError, SampleRef};

/// Most characters (code points) of label names and values an exemplar may carry.
const EXEMPLAR_MAX_CHARS: usize = 128;

/// Checks a stream of OpenMetrics entries against the spec's semantic rules (see the module
/// documentation). [`Parser`](super::Parser) runs one in OpenMetrics mode; it is public for a
/// caller that parses with [`Parser::without_semantic_checks`](super::Parser::without_semantic_checks)
/// and wants to check later, or elsewhere.
///
/// Feed it every entry in order with [`check`](Self::check), then call
/// [`finish`](Self::finish) once at `# EOF`. Memory: the claimed family names, and one hash per
/// group of the current family.
#[derive(Debug, Default)]
pub struct OpenMetricsValidator<'a> {
    /// Every sample name claimed by a finished family.
    claimed: HashSet<String>,
    family: Option<Family<'a>>,
    /// Groups of the current family seen so far (cleared per family, allocation kept).
    seen_groups: HashSet<u64, BuildHasherDefault<PreHashed>>,
}

#[derive(Debug)]
struct Family<'a> {
    name: &'a str,
    first_line: usize,
    /// `None` until a TYPE line (or a sample) says; unknown at the end.
    kind: Option<MetricType>,
    has_help: bool,
    unit: Option<&'a str>,
    has_samples: bool,
    /// The current group and the timestamp of its last sample.
    group: Option<(u64, Option<i64>)>,
    histogram: Option<HistogramGroup>,
}

impl<'a> Family<'a> {
    fn new(name: &'a str, line: usize, kind: Option<MetricType>) -> Family<'a> {
        Family {
            name,
            first_line: line,
            kind,
            has_help: false,
            unit: None,
            has_samples: false,
            group: None,
            histogram: None,
        }
    }

    fn kind(&self) -> MetricType {
        self.kind.unwrap_or(MetricType::Unknown)
    }

    /// The suffix `sample` has in this family, if it belongs here.
    fn suffix_of<'s>(&self, sample: &'s str) -> Option<&'s str> {
        let suffix = sample.strip_prefix(self.name)?;
        let allowed = match self.kind {
            None => &[""][..],
            Some(kind) => suffixes(kind),
        };
        allowed.contains(&suffix).then_some(suffix)
    }
}

/// The sample name suffixes each type uses.
fn suffixes(kind: MetricType) -> &'static [&'static str] {
    match kind {
        MetricType::Counter => &["_total", "_created"],
        MetricType::Summary => &["", "_count", "_sum", "_created"],
        MetricType::Histogram => &["_count", "_sum", "_bucket", "_created"],
        MetricType::GaugeHistogram => &["_gcount", "_gsum", "_bucket"],
        MetricType::Info => &["_info"],
        MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[""],
    }
}

/// The state of one histogram group (labels and timestamp) being checked.
#[derive(Debug)]
struct HistogramGroup {
    key: (u64, Option<i64>),
    last_line: usize,
    /// `le` of the last bucket.
    last_le: Option<f64>,
    /// Count of the last bucket.
    last_count: f64,
    count: Option<f64>,
    has_sum: bool,
    has_gsum: bool,
    negative_gsum: bool,
    negative_buckets: bool,
}

impl HistogramGroup {
    fn new(key: (u64, Option<i64>), line: usize) -> HistogramGroup {
        HistogramGroup {
            key,
            last_line: line,
            last_le: None,
            last_count: 0.0,
            count: None,
            has_sum: false,
            has_gsum: false,
            negative_gsum: false,
            negative_buckets: false,
        }
    }

    /// The rules that need the whole group.
    fn check(&self, family: &str) -> Result<(), ParseError> {
        let fail = |what: &str| {
            Err(ParseError::new(
                self.last_line,
                format!("{what} in {family:?}"),
            ))
        };
        if self.last_le != Some(f64::INFINITY) {
            return fail("histogram has no +Inf bucket");
        }
        if let Some(count) = self.count
            && count != self.last_count
        {
            return fail("histogram count does not equal its +Inf bucket");
        }
        if self.has_sum && self.count.is_none() {
            return fail("histogram has _sum but no _count");
        }
        if self.has_gsum && self.count.is_none() {
            return fail("gauge histogram has _gsum but no _gcount");
        }
        if !(self.has_sum || self.has_gsum) && self.count.is_some() {
            return fail("histogram has a count but no sum");
        }
        if self.negative_buckets && self.has_sum {
            return fail("histogram with negative buckets has a _sum");
        }
        if !self.negative_buckets && self.negative_gsum {
            return fail("gauge histogram without negative buckets has a negative _gsum");
        }
        Ok(())
    }
}

impl<'a> OpenMetricsValidator<'a> {
    /// A validator at the start of an exposition.
    pub fn new() -> OpenMetricsValidator<'a> {
        OpenMetricsValidator::default()
    }

    /// Checks the next entry, from line `line`.
    pub fn check(&mut self, line: usize, entry: &Entry<'a>) -> Result<(), ParseError> {
        match entry {
            Entry::Help { metric, .. } => self.metadata(line, metric, |f| {
                std::mem::replace(&mut f.has_help, true).then_some("HELP")
            }),
            Entry::Type { metric, kind } => {
                self.metadata(line, metric, |f| f.kind.replace(*kind).map(|_| "TYPE"))
            }
            Entry::Unit { metric, unit } => {
                self.metadata(line, metric, |f| f.unit.replace(unit).map(|_| "UNIT"))
            }
            Entry::Sample(sample) => self.sample(line, sample),
            Entry::Comment => Err(ParseError::new(line, "OpenMetrics has no comments")),
        }
    }

    /// Ends the exposition (at its `# EOF` line): checks what the last family still owes.
    pub fn finish(&mut self) -> Result<(), ParseError> {
        self.end_family()
    }

    /// A metadata line; `set` records it and names it if the family already had one.
    fn metadata(
        &mut self,
        line: usize,
        metric: &'a str,
        set: impl FnOnce(&mut Family<'a>) -> Option<&'static str>,
    ) -> Result<(), ParseError> {
        if self.family.as_ref().is_none_or(|f| f.name != metric) {
            self.start_family(line, metric, None)?;
        }
        let Some(family) = self.family.as_mut() else {
            return Ok(());
        };
        if family.has_samples {
            return Err(ParseError::new(
                line,
                format!("metadata for {metric:?} after its samples"),
            ));
        }
        if let Some(kind) = set(family) {
            return Err(ParseError::new(
                line,
                format!("second {kind} line for {metric:?}"),
            ));
        }
        Ok(())
    }

    fn start_family(
        &mut self,
        line: usize,
        name: &'a str,
        kind: Option<MetricType>,
    ) -> Result<(), ParseError> {
        self.end_family()?;
        self.family = Some(Family::new(name, line, kind));
        self.seen_groups.clear();
        Ok(())
    }

    fn end_family(&mut self) -> Result<(), ParseError> {
        let Some(family) = self.family.take() else {
            return Ok(());
        };
        if let Some(group) = &family.histogram {
            group.check(family.name)?;
        }
        let kind = family.kind();
        let fail = |what: String| Err(ParseError::new(family.first_line, what));
        let mut names: Vec<&str> = suffixes(kind).to_vec();
        if !names.contains(&"") {
            names.push("");
        }
        for suffix in names {
            let claimed = format!("{}{suffix}", family.name);
            if self.claimed.contains(&claimed) {
                return fail(format!(
                    "metric family {:?} ({}) clashes with the name {claimed:?} of an earlier family \
                     (families must not be interleaved or repeated)",
                    family.name,
                    kind.as_str()
                ));
            }
            self.claimed.insert(claimed);
        }
        if let Some(unit) = family.unit.filter(|u| !u.is_empty()) {
            if !family
                .name
                .strip_suffix(unit)
                .is_some_and(|rest| rest.ends_with('_'))
            {
                return fail(format!(
                    "unit {unit:?} is not a suffix of the metric family name {:?}",
                    family.name
                ));
            }
            if matches!(kind, MetricType::Info | MetricType::StateSet) {
                return fail(format!(
                    "{} family {:?} has a unit",
                    kind.as_str(),
                    family.name
                ));
            }
        }
        Ok(())
    }

    fn sample(&mut self, line: usize, s: &SampleRef<'a>) -> Result<(), ParseError> {
        let fail = |what: String| Err(ParseError::new(line, what));
        if self
            .family
            .as_ref()
            .and_then(|f| f.suffix_of(s.name))
            .is_none()
        {
            self.start_family(line, s.name, Some(MetricType::Unknown))?;
        }
        let Some(family) = self.family.as_mut() else {
            return Ok(());
        };
        let suffix = family.suffix_of(s.name).unwrap_or("");
        let kind = family.kind();
        let is_histogram = matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram);
        let bucket = is_histogram && suffix == "_bucket";
        let quantile = kind == MetricType::Summary && suffix.is_empty();

        // The label a group ignores: it tells the group's members apart.
        let skip = if bucket {
            Some("le")
        } else if quantile {
            Some("quantile")
        } else if kind == MetricType::StateSet {
            Some(family.name)
        } else {
            None
        };
        let pass = label_pass(&s.labels, skip).map_err(|n| {
            ParseError::new(line, format!("label {n:?} appears twice in {:?}", s.series))
        })?;
        let mut le = None;
        if bucket {
            let Some(raw) = pass.skipped else {
                return fail(format!("bucket {:?} has no le label", s.series));
            };
            let v = match parse_value(&raw, true) {
                Ok(v) if !v.is_nan() => v,
                _ => return fail(format!("invalid le label {raw:?} in {:?}", s.series)),
            };
            if v == f64::INFINITY && raw != "+Inf" {
                return fail(format!("le label {raw:?} must be spelled \"+Inf\"",));
            }
            le = Some(v);
        } else if quantile {
            let valid = pass
                .skipped
                .and_then(|q| parse_value(&q, true).ok())
                .is_some_and(|q| (0.0..=1.0).contains(&q));
            if !valid {
                return fail(format!(
                    "summary quantile {:?} needs a quantile label between 0 and 1",
                    s.series
                ));
            }
        } else if kind == MetricType::StateSet && pass.skipped.is_none() {
            return fail(format!(
                "stateset sample {:?} has no label {:?}",
                s.series, family.name
            ));
        }
        // An info family is one group.
        let group = if kind == MetricType::Info {
            0
        } else {
            pass.hash
        };

        if let Some((previous, previous_ts)) = family.group {
            if previous != group && self.seen_groups.contains(&group) {
                return fail(format!(
                    "{:?} comes back to a group of {:?} after another one (interleaved)",
                    s.series, family.name
                ));
            }
            if previous == group {
                match (previous_ts, s.timestamp_ms) {
                    (Some(_), None) | (None, Some(_)) => {
                        return fail(format!(
                            "{:?}: timestamps must be on all samples of a group or on none",
                            s.series
                        ));
                    }
                    (Some(before), Some(now)) if now < before && kind != MetricType::Info => {
                        return fail(format!("{:?}: timestamp goes backwards", s.series));
                    }
                    _ => {}
                }
            }
        }
        if family.group.is_none_or(|(previous, _)| previous != group) {
            self.seen_groups.insert(group);
        }
        family.group = Some((group, s.timestamp_ms));

        let v = s.value;
        match kind {
            MetricType::StateSet if v != 0.0 && v != 1.0 => {
                return fail(format!(
                    "stateset value {v} is not 0 or 1 in {:?}",
                    s.series
                ));
            }
            MetricType::Info if v != 1.0 => {
                return fail(format!("info value {v} is not 1 in {:?}", s.series));
            }
            _ => {}
        }
        if quantile && v < 0.0 {
            return fail(format!("negative quantile value in {:?}", s.series));
        }
        let counter_like = matches!(
            suffix,
            "_total" | "_sum" | "_count" | "_bucket" | "_gcount" | "_gsum"
        );
        if counter_like && v.is_nan() {
            return fail(format!("{:?} is counter-like and can not be NaN", s.series));
        }
        if counter_like && suffix != "_gsum" && v < 0.0 {
            return fail(format!(
                "{:?} is counter-like and can not be negative",
                s.series
            ));
        }

        if let Some(exemplar) = &s.exemplar {
            let allowed = bucket || (kind == MetricType::Counter && suffix == "_total");
            if !allowed {
                return fail(format!(
                    "{:?} can not have an exemplar (only counter totals and buckets can)",
                    s.series
                ));
            }
            label_pass(&exemplar.labels, None).map_err(|n| {
                ParseError::new(line, format!("exemplar label {n:?} appears twice"))
            })?;
            let chars: usize = exemplar
                .labels
                .iter()
                .map(|(n, v)| n.chars().count() + v.chars().count())
                .sum();
            if chars > EXEMPLAR_MAX_CHARS {
                return fail(format!(
                    "exemplar labels have {chars} characters, more than {EXEMPLAR_MAX_CHARS}"
                ));
            }
        }

        if is_histogram {
            let key = (group, s.timestamp_ms);
            if family.histogram.as_ref().is_some_and(|h| h.key != key)
                && let Some(done) = family.histogram.take()
            {
                done.check(family.name)?;
            }
            let h = family
                .histogram
                .get_or_insert_with(|| HistogramGroup::new(key, line));
            h.last_line = line;
            match suffix {
                "_bucket" => {
                    let le = le.unwrap_or(f64::NAN);
                    if le < 0.0 {
                        h.negative_buckets = true;
                    }
                    if h.last_le.is_some_and(|last| le <= last) {
                        return fail(format!(
                            "buckets of {:?} are not in increasing le order",
                            family.name
                        ));
                    }
                    if v < h.last_count {
                        return fail(format!("bucket counts of {:?} decrease", family.name));
                    }
                    h.last_le = Some(le);
                    h.last_count = v;
                }
                "_count" | "_gcount" => h.count = Some(v),
                "_sum" => h.has_sum = true,
                "_gsum" => {
                    h.has_gsum = true;
                    h.negative_gsum |= v < 0.0;
                }
                _ => {}
            }
        }
        family.has_samples = true;
        Ok(())
    }
}

/// What one pass over a sample's labels finds.
struct LabelPass<'a> {
    /// Order-independent hash of the pairs but the skipped one (values unescaped, so two
    /// spellings of one value are one group).
    hash: u64,
    /// The value of the label named `skip`.
    skipped: Option<Cow<'a, str>>,
}

/// One pass over `labels`: their group hash without the label named `skip`, that label's
/// value, and the first label name that appears twice (the error).
fn label_pass<'a>(labels: &LabelsRef<'a>, skip: Option<&str>) -> Result<LabelPass<'a>, &'a str> {
    // Names seen, for the duplicate check; a longer set is checked by sorting, below.
    const FEW: usize = 16;
    let mut names = [""; FEW];
    let mut pass = LabelPass {
        hash: 0,
        skipped: None,
    };
    for (i, (name, value)) in labels.iter().enumerate() {
        if i < FEW {
            if names[..i].contains(&name) {
                return Err(name);
            }
            names[i] = name;
        }
        if Some(name) == skip {
            pass.skipped = Some(value);
            continue;
        }
        pass.hash = pass
            .hash
            .wrapping_add(xxh64(value.as_bytes(), xxh64(name.as_bytes(), 0)));
    }
    if labels.len() > FEW {
        let mut all: Vec<&str> = labels.iter().map(|(n, _)| n).collect();
        all.sort_unstable();
        if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
            return Err(w[0]);
        }
    }
    Ok(pass)
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
