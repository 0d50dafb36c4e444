//! `ExportMetricsServiceRequest` -> remote-write 1.0 `WriteRequest`, following Prometheus 3's
//! `storage/remote/otlptranslator/prometheusremotewrite` (`metrics_to_prw.go`, `helper.go`,
//! `number_data_points.go`, `histograms.go`) with its default settings.
//!
//! Where Prometheus fails the whole request (it answers 500 and keeps nothing), this translator
//! refuses only the metric or data point at fault and counts it, so the OTLP answer can be a
//! `partial_success` naming the reason while the rest is queued.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint, metric, number_data_point,
};

use super::histogram::exponential_to_native;
use super::names::{GoFloat, MetricKind, MetricNamer, NameError, label_name, unit_name};
use super::values::{any_value_string, exemplar};
use crate::prompb::{
    Exemplar, Label, MetricMetadata, Sample, TimeSeries, WriteRequest, metric_metadata::MetricType,
};

/// Prometheus' stale marker: a NaN with this bit pattern ends a series (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`: the point says the series is gone.
const FLAG_NO_RECORDED_VALUE: u32 = 1;
/// `target_info` is repeated at this interval (half Prometheus' default lookback of 5 minutes)
/// between a resource's earliest and latest data point, so it never goes stale in between.
const TARGET_INFO_INTERVAL_NS: u64 = 150 * 1_000_000_000;
/// At most this many `target_info` samples before the latest one, per resource: a resource
/// whose points span years (a point at time 0 beside a current one) would otherwise make
/// millions. 1,000 cover 41 hours of points in one push.
const MAX_TARGET_INFO_SAMPLES: usize = 1_000;
/// At most this many refusal reasons are kept for the answer's message.
const MAX_REASONS: usize = 5;

/// The translation choices (Prometheus' `otlp:` section, with its defaults).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How metric names are built (suffixes on by default).
    pub namer: MetricNamer,
    /// Resource attributes copied onto every series of the resource
    /// (`promote_resource_attributes`; none by default).
    pub promote_resource_attributes: Vec<String>,
    /// Translation stops once the encoded `WriteRequest` passes this many bytes
    /// ([`Translation::over_limit`]): one OTLP histogram point of many buckets becomes as many
    /// series, each with every label, so a small body can translate into a huge one.
    pub max_output_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namer: MetricNamer {
                namespace: String::new(),
                with_suffixes: true,
            },
            promote_resource_attributes: Vec::new(),
            max_output_bytes: usize::MAX,
        }
    }
}

/// The outcome of translating one request.
#[derive(Debug, Default)]
pub struct Translation {
    /// The series, exemplars and family metadata to queue.
    pub request: WriteRequest,
    /// Float samples in `request` (target_info included).
    pub samples: u64,
    /// Native histogram samples in `request`.
    pub histograms: u64,
    /// OTLP data points translated.
    pub accepted_points: u64,
    /// OTLP data points refused (delta temporality, illegal names, unsupported values).
    pub rejected_points: u64,
    /// Why, for the first few refusals.
    pub reasons: Vec<String>,
    /// How many refusals were not kept in `reasons`.
    pub more_reasons: usize,
    /// Bytes of `request`'s series once encoded (the family metadata aside).
    pub encoded_bytes: usize,
    /// The translation passed [`Settings::max_output_bytes`] and stopped: the request must be
    /// refused whole (413), `request` is incomplete.
    pub over_limit: bool,
}

impl Translation {
    /// One line for the OTLP `partial_success.error_message`; empty when nothing was refused.
    pub fn message(&self) -> String {
        let mut m = self.reasons.join("; ");
        if self.more_reasons > 0 {
            m.push_str(&format!("; and {} more", self.more_reasons));
        }
        m
    }

    fn refuse(&mut self, points: usize, why: impl std::fmt::Display) {
        self.rejected_points += points as u64;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(why.to_string());
        } else {
            self.more_reasons += 1;
        }
    }
}

/// Translates a whole request. Never panics; refused parts are counted in the result.
pub fn translate(req: &ExportMetricsServiceRequest, settings: &Settings) -> Translation {
    let mut t = Translator {
        settings,
        out: Translation::default(),
        label_cache: HashMap::new(),
        families: HashSet::new(),
        target_info_seen: HashSet::new(),
        le_bounds: Vec::new(),
        le_values: Vec::new(),
    };
    for rm in &req.resource_metrics {
        let empty = Vec::new();
        let attrs = rm.resource.as_ref().map_or(&empty, |r| &r.attributes);
        let resource = match t.resource_context(attrs) {
            Ok(r) => r,
            Err(e) => {
                let points: usize = rm
                    .scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .map(point_count)
                    .sum();
                t.out.refuse(points, format_args!("resource: {e}"));
                continue;
            }
        };
        let mut earliest = u64::MAX;
        let mut latest = 0u64;
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                for ts in point_times(m) {
                    earliest = earliest.min(ts);
                    latest = latest.max(ts);
                }
                t.metric(m, &resource);
                if t.full() {
                    t.out.over_limit = true;
                    return t.out;
                }
            }
        }
        if earliest != u64::MAX {
            t.target_info(attrs, &resource, earliest, latest);
        }
    }
    t.out
}

/// What every series of one resource gets.
struct ResourceContext {
    /// `job`: `service.namespace/service.name`, or `service.name`.
    job: String,
    /// `instance`: `service.instance.id`.
    instance: String,
    /// The promoted resource attributes, as labels.
    promoted: Vec<Label>,
}

struct Translator<'a> {
    settings: &'a Settings,
    out: Translation,
    /// Attribute keys already escaped in this request.
    label_cache: HashMap<String, String>,
    /// Families whose metadata is already in the request.
    families: HashSet<String>,
    /// `(labels hash, timestamp)` of target_info samples already written.
    target_info_seen: HashSet<(u64, i64)>,
    /// The explicit bounds of the last histogram point, and their `le` values.
    le_bounds: Vec<f64>,
    le_values: Vec<String>,
}

/// Labels under construction: sorted by name, set/get like Prometheus' `labels.Builder`.
#[derive(Default)]
struct LabelSet(Vec<Label>);

impl LabelSet {
    fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => &self.0[i].value,
            Err(_) => "",
        }
    }

    fn set(&mut self, name: &str, value: String) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => self.0[i].value = value,
            Err(i) => self.0.insert(i, Label::new(name, value)),
        }
    }

    /// The labels, without the empty ones (an empty value means no label in Prometheus).
    fn finish(mut self) -> Vec<Label> {
        self.0.retain(|l| !l.value.is_empty());
        self.0
    }
}

fn metric_kind(m: &Metric) -> MetricKind {
    match &m.data {
        Some(metric::Data::Gauge(_)) => MetricKind::Gauge,
        Some(metric::Data::Sum(s)) if s.is_monotonic => MetricKind::MonotonicCounter,
        Some(metric::Data::Sum(_)) => MetricKind::NonMonotonicCounter,
        Some(metric::Data::Histogram(_)) => MetricKind::Histogram,
        Some(metric::Data::ExponentialHistogram(_)) => MetricKind::ExponentialHistogram,
        Some(metric::Data::Summary(_)) => MetricKind::Summary,
        None => MetricKind::Unknown,
    }
}

fn prom_type(kind: MetricKind) -> MetricType {
    match kind {
        MetricKind::Gauge | MetricKind::NonMonotonicCounter => MetricType::Gauge,
        MetricKind::MonotonicCounter => MetricType::Counter,
        MetricKind::Histogram | MetricKind::ExponentialHistogram => MetricType::Histogram,
        MetricKind::Summary => MetricType::Summary,
        MetricKind::Unknown => MetricType::Unknown,
    }
}

fn point_count(m: &Metric) -> usize {
    match &m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

fn point_times(m: &Metric) -> Vec<u64> {
    match &m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(metric::Data::Sum(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(metric::Data::Histogram(h)) => {
            h.data_points.iter().map(|p| p.time_unix_nano).collect()
        }
        Some(metric::Data::ExponentialHistogram(h)) => {
            h.data_points.iter().map(|p| p.time_unix_nano).collect()
        }
        Some(metric::Data::Summary(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
        None => Vec::new(),
    }
}

/// The temporality of the kinds that have one.
fn temporality(m: &Metric) -> Option<i32> {
    match &m.data {
        Some(metric::Data::Sum(s)) => Some(s.aggregation_temporality),
        Some(metric::Data::Histogram(h)) => Some(h.aggregation_temporality),
        Some(metric::Data::ExponentialHistogram(h)) => Some(h.aggregation_temporality),
        _ => None,
    }
}

/// Nanoseconds since the epoch to Prometheus milliseconds (`convertTimeStamp`).
pub(super) fn millis(ns: u64) -> i64 {
    (ns as i64) / 1_000_000
}

fn stale_or(flags: u32, v: f64) -> f64 {
    if flags & FLAG_NO_RECORDED_VALUE != 0 {
        f64::from_bits(STALE_NAN_BITS)
    } else {
        v
    }
}

fn find_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attrs.iter().find(|kv| kv.key == key)
}

const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";

impl Translator<'_> {
    fn label_name(&mut self, key: &str) -> Result<String, NameError> {
        if let Some(n) = self.label_cache.get(key) {
            return Ok(n.clone());
        }
        let n = label_name(key)?;
        self.label_cache.insert(key.to_string(), n.clone());
        Ok(n)
    }

    fn resource_context(&mut self, attrs: &[KeyValue]) -> Result<ResourceContext, NameError> {
        let mut job = String::new();
        if let Some(name) = find_attr(attrs, SERVICE_NAME) {
            job = any_value_string(name.value.as_ref());
            if let Some(ns) = find_attr(attrs, SERVICE_NAMESPACE) {
                job = format!("{}/{job}", any_value_string(ns.value.as_ref()));
            }
        }
        let instance = find_attr(attrs, SERVICE_INSTANCE_ID)
            .map(|kv| any_value_string(kv.value.as_ref()))
            .unwrap_or_default();
        let mut promoted = LabelSet::default();
        for kv in attrs {
            if self.settings.promote_resource_attributes.contains(&kv.key) {
                let name = self.label_name(&kv.key)?;
                promoted.set(&name, any_value_string(kv.value.as_ref()));
            }
        }
        Ok(ResourceContext {
            job,
            instance,
            promoted: promoted.0,
        })
    }

    /// `createAttributes`: the point's attributes (escaped; colliding keys joined with `;`),
    /// promoted resource attributes where not set, then `job` and `instance`.
    fn base_labels(
        &mut self,
        attrs: &[KeyValue],
        resource: &ResourceContext,
        ignore: &[&str],
        promote: bool,
    ) -> Result<LabelSet, NameError> {
        let mut sorted: Vec<&KeyValue> = attrs
            .iter()
            .filter(|kv| kv.key != "__name__" && !ignore.contains(&kv.key.as_str()))
            .collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        let mut set = LabelSet::default();
        for kv in sorted {
            let name = self.label_name(&kv.key)?;
            let value = any_value_string(kv.value.as_ref());
            let existing = set.get(&name);
            if existing.is_empty() {
                set.set(&name, value);
            } else {
                let joined = format!("{existing};{value}");
                set.set(&name, joined);
            }
        }
        if promote {
            for l in &resource.promoted {
                if set.get(&l.name).is_empty() {
                    set.set(&l.name, l.value.clone());
                }
            }
        }
        if !resource.job.is_empty() {
            set.set("job", resource.job.clone());
        }
        if !resource.instance.is_empty() {
            set.set("instance", resource.instance.clone());
        }
        Ok(set)
    }

    fn labels_with(base: &LabelSet, name: &str, extra: Option<(&str, String)>) -> Vec<Label> {
        let mut set = LabelSet(base.0.clone());
        if let Some((k, v)) = extra {
            set.set(k, v);
        }
        set.set("__name__", name.to_string());
        set.finish()
    }

    fn push_sample(&mut self, labels: Vec<Label>, value: f64, ts: i64, exemplars: Vec<Exemplar>) {
        self.out.samples += 1;
        self.push_series(TimeSeries {
            labels,
            samples: vec![Sample {
                value,
                timestamp: ts,
            }],
            exemplars,
            histograms: Vec::new(),
        });
    }

    fn push_series(&mut self, series: TimeSeries) {
        let len = prost::Message::encoded_len(&series);
        // Field 1's tag, the length prefix, the series.
        self.out.encoded_bytes += 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        self.out.request.timeseries.push(series);
    }

    /// Whether the output passed [`Settings::max_output_bytes`].
    fn full(&self) -> bool {
        self.out.encoded_bytes > self.settings.max_output_bytes
    }

    fn metric(&mut self, m: &Metric, resource: &ResourceContext) {
        let points = point_count(m);
        let kind = metric_kind(m);
        if kind == MetricKind::Unknown {
            self.out.refuse(
                points,
                format_args!("metric {:?}: unsupported metric type", m.name),
            );
            return;
        }
        if let Some(t) = temporality(m)
            && t != AggregationTemporality::Cumulative as i32
        {
            let which = if t == AggregationTemporality::Delta as i32 {
                "delta"
            } else {
                "unspecified"
            };
            self.out.refuse(
                points,
                format_args!(
                    "invalid temporality and type combination for metric {:?}: {which} temporality is not accepted (as in Prometheus by default), export cumulative temporality",
                    m.name
                ),
            );
            return;
        }
        let family = match self.settings.namer.build(&m.name, &m.unit, kind) {
            Ok(f) => f,
            Err(e) => {
                self.out.refuse(points, e);
                return;
            }
        };
        if points == 0 {
            return;
        }
        if self.families.insert(family.clone()) {
            self.out.request.metadata.push(MetricMetadata {
                r#type: prom_type(kind) as i32,
                metric_family_name: family.clone(),
                help: m.description.clone(),
                unit: unit_name(&m.unit),
            });
        }
        match &m.data {
            Some(metric::Data::Gauge(g)) => {
                for p in &g.data_points {
                    if self.full() {
                        return;
                    }
                    self.number_point(p, &family, resource, false);
                }
            }
            Some(metric::Data::Sum(s)) => {
                for p in &s.data_points {
                    if self.full() {
                        return;
                    }
                    self.number_point(p, &family, resource, true);
                }
            }
            Some(metric::Data::Histogram(h)) => {
                for p in &h.data_points {
                    if self.full() {
                        return;
                    }
                    self.histogram_point(p, &family, resource);
                }
            }
            Some(metric::Data::ExponentialHistogram(h)) => {
                for p in &h.data_points {
                    if self.full() {
                        return;
                    }
                    self.exponential_point(p, &family, resource);
                }
            }
            Some(metric::Data::Summary(s)) => {
                for p in &s.data_points {
                    if self.full() {
                        return;
                    }
                    self.summary_point(p, &family, resource);
                }
            }
            None => {}
        }
    }

    fn number_point(
        &mut self,
        p: &NumberDataPoint,
        family: &str,
        resource: &ResourceContext,
        with_exemplars: bool,
    ) {
        let base = match self.base_labels(&p.attributes, resource, &[], true) {
            Ok(b) => b,
            Err(e) => return self.out.refuse(1, format_args!("metric {family:?}: {e}")),
        };
        let v = match p.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => 0.0,
        };
        let exemplars = if with_exemplars {
            p.exemplars.iter().map(exemplar).collect()
        } else {
            Vec::new()
        };
        let labels = Self::labels_with(&base, family, None);
        self.push_sample(
            labels,
            stale_or(p.flags, v),
            millis(p.time_unix_nano),
            exemplars,
        );
        self.out.accepted_points += 1;
    }

    /// `addHistogramDataPoints`: `_sum` (when set), `_count`, cumulative `_bucket{le}` and the
    /// `+Inf` bucket; each exemplar goes to the first bucket whose bound is at or above it.
    fn histogram_point(
        &mut self,
        p: &HistogramDataPoint,
        family: &str,
        resource: &ResourceContext,
    ) {
        let base = match self.base_labels(&p.attributes, resource, &[], true) {
            Ok(b) => b,
            Err(e) => return self.out.refuse(1, format_args!("metric {family:?}: {e}")),
        };
        let ts = millis(p.time_unix_nano);
        if let Some(sum) = p.sum {
            let labels = Self::labels_with(&base, &format!("{family}_sum"), None);
            self.push_sample(labels, stale_or(p.flags, sum), ts, Vec::new());
        }
        let count = stale_or(p.flags, p.count as f64);
        let labels = Self::labels_with(&base, &format!("{family}_count"), None);
        self.push_sample(labels, count, ts, Vec::new());
        let exemplars: Vec<Exemplar> = p.exemplars.iter().map(exemplar).collect();
        let mut next = 0;
        let mut cumulative = 0u64;
        let bucket = format!("{family}_bucket");
        // The points of a histogram nearly always share their bounds: format them once.
        if self.le_bounds != p.explicit_bounds {
            self.le_bounds.clone_from(&p.explicit_bounds);
            self.le_values = p
                .explicit_bounds
                .iter()
                .map(|b| GoFloat(*b).to_string())
                .collect();
        }
        for (i, (bound, n)) in p.explicit_bounds.iter().zip(&p.bucket_counts).enumerate() {
            cumulative = cumulative.saturating_add(*n);
            let start = next;
            while next < exemplars.len() && exemplars[next].value <= *bound {
                next += 1;
            }
            let le = self.le_values[i].clone();
            let labels = Self::labels_with(&base, &bucket, Some(("le", le)));
            self.push_sample(
                labels,
                stale_or(p.flags, cumulative as f64),
                ts,
                exemplars[start..next].to_vec(),
            );
        }
        let labels = Self::labels_with(&base, &bucket, Some(("le", "+Inf".to_string())));
        self.push_sample(labels, count, ts, exemplars[next..].to_vec());
        self.out.accepted_points += 1;
    }

    fn exponential_point(
        &mut self,
        p: &ExponentialHistogramDataPoint,
        family: &str,
        resource: &ResourceContext,
    ) {
        let h = match exponential_to_native(p) {
            Ok(h) => h,
            Err(e) => return self.out.refuse(1, format_args!("metric {family:?}: {e}")),
        };
        let base = match self.base_labels(&p.attributes, resource, &[], true) {
            Ok(b) => b,
            Err(e) => return self.out.refuse(1, format_args!("metric {family:?}: {e}")),
        };
        self.out.histograms += 1;
        self.push_series(TimeSeries {
            labels: Self::labels_with(&base, family, None),
            samples: Vec::new(),
            exemplars: p.exemplars.iter().map(exemplar).collect(),
            histograms: vec![h],
        });
        self.out.accepted_points += 1;
    }

    /// `addSummaryDataPoints`: `_sum`, `_count`, and one series per quantile.
    fn summary_point(&mut self, p: &SummaryDataPoint, family: &str, resource: &ResourceContext) {
        let base = match self.base_labels(&p.attributes, resource, &[], true) {
            Ok(b) => b,
            Err(e) => return self.out.refuse(1, format_args!("metric {family:?}: {e}")),
        };
        let ts = millis(p.time_unix_nano);
        let labels = Self::labels_with(&base, &format!("{family}_sum"), None);
        self.push_sample(labels, stale_or(p.flags, p.sum), ts, Vec::new());
        let labels = Self::labels_with(&base, &format!("{family}_count"), None);
        self.push_sample(labels, stale_or(p.flags, p.count as f64), ts, Vec::new());
        for q in &p.quantile_values {
            let labels = Self::labels_with(
                &base,
                family,
                Some(("quantile", GoFloat(q.quantile).to_string())),
            );
            self.push_sample(labels, stale_or(p.flags, q.value), ts, Vec::new());
        }
        self.out.accepted_points += 1;
    }

    /// `addResourceTargetInfo`: one `target_info` series with the resource's attributes other
    /// than the service ones, when it has any and has a `job` or `instance`; repeated every
    /// [`TARGET_INFO_INTERVAL_NS`] from the earliest to the latest point of the resource.
    fn target_info(
        &mut self,
        attrs: &[KeyValue],
        resource: &ResourceContext,
        earliest: u64,
        latest: u64,
    ) {
        const IDENTIFYING: [&str; 3] = [SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID];
        let others = attrs
            .iter()
            .filter(|kv| !IDENTIFYING.contains(&kv.key.as_str()))
            .count();
        if others == 0 {
            return;
        }
        let base = match self.base_labels(attrs, resource, &IDENTIFYING, false) {
            Ok(b) => b,
            Err(e) => return self.out.refuse(0, format_args!("target_info: {e}")),
        };
        if base.get("job").is_empty() && base.get("instance").is_empty() {
            return;
        }
        let labels = Self::labels_with(&base, "target_info", None);
        let mut hasher = DefaultHasher::new();
        labels.hash(&mut hasher);
        let key = hasher.finish();
        if self.families.insert("target_info".to_string()) {
            self.out.request.metadata.push(MetricMetadata {
                r#type: MetricType::Gauge as i32,
                metric_family_name: "target_info".to_string(),
                help: "Target metadata".to_string(),
                unit: String::new(),
            });
        }
        let mut ts = earliest;
        let mut times = Vec::new();
        while ts < latest && times.len() < MAX_TARGET_INFO_SAMPLES {
            times.push(millis(ts));
            ts = ts.saturating_add(TARGET_INFO_INTERVAL_NS);
        }
        times.push(millis(latest));
        for ms in times {
            if self.target_info_seen.insert((key, ms)) {
                self.push_sample(labels.clone(), 1.0, ms, Vec::new());
            }
        }
    }
}
