//! Exposition-format parsing: Prometheus text format 0.0.4 and OpenMetrics 1.0 text, read
//! straight out of a scraped (or pushed) body.
//!
//! Owns: the line grammar of both formats, number and timestamp syntax, label and HELP
//! unescaping, and the OpenMetrics semantic rules ([`OpenMetricsValidator`]).
//!
//! # API
//! [`Parser`] is an iterator over one body (`&[u8]`) yielding [`Entry`]s that borrow from it:
//! ```
//! use promrelay::exposition::parse::{Entry, Parser, format_from_content_type};
//!
//! let body = b"# TYPE up gauge\nup{job=\"node\"} 1\n";
//! let format = format_from_content_type(Some("text/plain; version=0.0.4"));
//! for entry in Parser::new(body, format) {
//!     if let Entry::Sample(s) = entry? {
//!         for (name, value) in s.labels.iter() {
//!             assert_eq!((name, &*value), ("job", "node"));
//!         }
//!         assert_eq!((s.name, s.value, s.timestamp_ms), ("up", 1.0, None));
//!     }
//! }
//! # Ok::<(), promrelay::exposition::parse::ParseError>(())
//! ```
//! The caller picks the [`Format`] from the response's `Content-Type`
//! ([`format_from_content_type`]). The first error ends the iteration: a partial or invalid
//! exposition is erroneous in its entirety (OpenMetrics says so; Prometheus fails the scrape too).
//!
//! # Guarantees
//! - Zero-copy: names, label values and HELP text borrow from the body. A label value or HELP
//!   text is an owned `String` only when it contains a backslash escape; samples allocate
//!   nothing. Labels are re-scanned lazily by [`LabelsRef::iter`] from the label block the parser
//!   already checked, so the parser keeps no per-sample buffer.
//! - Every `&str` handed out is valid UTF-8: the body is validated once up front, and per line
//!   only past the first invalid byte (where text-format comments, which Prometheus does not
//!   check either, may still hold any bytes).
//! - Never panics on any input (proptest in `proptests.rs`), and every error names its 1-based
//!   line: [`ParseError`] displays as `line N: what is wrong` for a 400 answer.
//! - Values: decimal and exponent syntax, `NaN`, `+Inf`, `-Inf` (and the other spellings Go's
//!   `ParseFloat` accepts in the text format; hexadecimal floats and `_` separators are refused,
//!   as Prometheus does). A finite literal out of f64's range is an error. Every NaN comes out
//!   as the canonical `f64::NAN`, never as Prometheus' stale-marker bit pattern, so a scraped NaN
//!   can not be mistaken for staleness.
//! - Timestamps are milliseconds: the text format's integer milliseconds as written; OpenMetrics'
//!   float seconds converted exactly from the decimal digits (no float rounding), truncated
//!   toward zero below the millisecond, saturated at the i64 range.
//!
//! # The two formats
//! - [`Format::PrometheusText`] is as lenient as Prometheus' own `promparse`: blank lines,
//!   spaces and tabs between tokens, free comments, a trailing comma in a label set. It checks the
//!   grammar only, so it stays fast; duplicate label names, family grouping and the like are left
//!   to the caller (Prometheus does that at append time too).
//! - [`Format::OpenMetrics`] follows the 1.0 ABNF exactly (single spaces, no blank lines or
//!   comments, exemplars, float-second timestamps, `# UNIT`, `# EOF` exactly once and last) and,
//!   unless [`Parser::without_semantic_checks`] is called, feeds every entry to an
//!   [`OpenMetricsValidator`]: families not interleaved, metadata before samples and at most once,
//!   suffixes by type, histogram bucket rules, counter-like values not negative or NaN, exemplars
//!   only on counters' `_total` and buckets, and so on. It accepts exactly the expositions the
//!   OpenMetrics project's parser test suite marks valid (`tests/openmetrics_testdata.rs`).
//!
//! Must not: allocate per sample in the common case; know about targets, relabelling, queues or
//! HTTP; accept UTF-8 (quoted) metric or label names: the scraper must not ask for them
//! (`escaping=allow-utf-8` in `Accept`), and an exposition that has them is refused.
//!
//! # Layout
//! - `parser`: [`Parser`], the line loop and the grammar of both formats.
//! - `scan`: byte-level scanning: name characters, label blocks, quoted strings, unescaping,
//!   [`LabelsRef`] and its iterator [`Labels`].
//! - `number`: values and timestamps.
//! - `openmetrics`: [`OpenMetricsValidator`], the OpenMetrics semantic rules.
//! - `error`: [`ParseError`].

mod error;
mod number;
mod openmetrics;
mod parser;
mod scan;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

pub use error::ParseError;
pub use openmetrics::OpenMetricsValidator;
pub use parser::Parser;
pub use scan::{Labels, LabelsRef};

/// Which exposition format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), and the fallback for any other
    /// or missing content type, as Prometheus does.
    PrometheusText,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

/// Picks the format from a response's `Content-Type`: `application/openmetrics-text` (any
/// version or parameters, any letter case) is OpenMetrics, everything else the text format.
pub fn format_from_content_type(content_type: Option<&str>) -> Format {
    let Some(ct) = content_type else {
        return Format::PrometheusText;
    };
    let media_type = ct.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    }
}

/// A metric family's type from a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics only).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics only).
    Info,
    /// `stateset` (OpenMetrics only).
    StateSet,
    /// `unknown` in OpenMetrics, `untyped` in the text format.
    Unknown,
}

impl MetricType {
    /// The OpenMetrics spelling (`unknown` for the text format's `untyped`).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    /// The types a text-format `# TYPE` line may name (what `promparse` accepts).
    fn from_text(word: &str) -> Option<MetricType> {
        Some(match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Unknown,
            _ => return None,
        })
    }

    /// The types of the OpenMetrics ABNF (`untyped` is not one of them).
    fn from_openmetrics(word: &str) -> Option<MetricType> {
        Some(match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "unknown" => MetricType::Unknown,
            _ => return None,
        })
    }
}

/// One line of an exposition that means something.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP name text`, the text unescaped (`\\` and `\n`; OpenMetrics also `\"`).
    Help {
        /// The metric family name.
        metric: &'a str,
        /// The help text; borrowed unless it had an escape.
        text: Cow<'a, str>,
    },
    /// `# TYPE name type`.
    Type {
        /// The metric family name.
        metric: &'a str,
        /// The family's type.
        kind: MetricType,
    },
    /// `# UNIT name unit` (OpenMetrics only; the unit may be empty).
    Unit {
        /// The metric family name.
        metric: &'a str,
        /// The unit, for example `seconds`.
        unit: &'a str,
    },
    /// A sample line.
    Sample(SampleRef<'a>),
    /// Any other `#` line (text format only; OpenMetrics has no comments).
    Comment,
}

/// What [`Parser::next_with`] yields: samples only.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a, K> {
    /// A sample line whose series text the caller recognised: the caller's key for it, and the
    /// sample's value and timestamp (as [`SampleRef`] would give them).
    Known {
        key: K,
        value: f64,
        timestamp_ms: Option<i64>,
    },
    /// Any other sample, parsed in full.
    Sample(SampleRef<'a>),
}

/// A sample, borrowed from the body.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRef<'a> {
    /// The sample's metric name (with any `_total`, `_bucket`, ... suffix, as written).
    pub name: &'a str,
    /// The name and label block exactly as written, for example `up{job="node"}`: a cheap key
    /// for a per-target cache of series (what Prometheus' scrape cache keys by).
    pub series: &'a str,
    /// The labels, in the order written, unsorted and possibly with duplicates in the text
    /// format (OpenMetrics refuses duplicates).
    pub labels: LabelsRef<'a>,
    /// The value; NaN is always `f64::NAN`.
    pub value: f64,
    /// The timestamp in milliseconds since the Unix epoch, if the line has one.
    pub timestamp_ms: Option<i64>,
    /// The exemplar (OpenMetrics only).
    pub exemplar: Option<ExemplarRef<'a>>,
}

/// An OpenMetrics exemplar: `# {labels} value [timestamp]` after a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarRef<'a> {
    /// The exemplar's labels (often a `trace_id`).
    pub labels: LabelsRef<'a>,
    /// The exemplar's value.
    pub value: f64,
    /// The exemplar's timestamp in milliseconds, if it has one.
    pub timestamp_ms: Option<i64>,
}
