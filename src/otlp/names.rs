//! Metric, unit and label names as Prometheus 3 builds them from OTLP by default
//! (`translation_strategy: UnderscoreEscapingWithSuffixes`), ported from prometheus/otlptranslator
//! (`metric_namer.go`, `unit_namer.go`, `label_namer.go`, `strconv.go`) with its escaping on
//! (remote-write 1.0 storages take only legacy names). Error texts are Prometheus' own, so the
//! translator's test tables (tests/fixtures/otlptranslator) pin them too.

use std::fmt;

/// The OTLP kind of a metric, as the namer sees it (`otlptranslator.MetricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Unknown,
    NonMonotonicCounter,
    MonotonicCounter,
    Gauge,
    Histogram,
    ExponentialHistogram,
    Summary,
}

/// A name that cannot be made into a legal Prometheus name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing of the metric's name was left after escaping (only illegal characters, or empty).
    #[error("normalization for metric {0:?} resulted in empty name")]
    EmptyMetric(String),
    /// Only underscores were left of the metric's name after escaping.
    #[error("normalization for metric {0:?} resulted in invalid name {1:?}")]
    InvalidMetric(String, String),
    /// An attribute with an empty key.
    #[error("label name is empty")]
    EmptyLabel,
    /// Only underscores were left of an attribute's key after escaping.
    #[error("normalization for label name {0:?} resulted in invalid name {1:?}")]
    InvalidLabel(String, String),
}

/// OTLP (UCUM) units to Prometheus unit words.
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The denominator of a `x/y` unit to its Prometheus word.
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `buildUnitSuffixes`: the main unit word and `per_<word>`, either possibly empty. Units in
/// curly braces (annotations such as `{request}`) give no suffix.
fn unit_suffixes(unit: &str) -> (String, String) {
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    let main = main.trim();
    let main_word = if !main.is_empty() && !main.contains(['{', '}']) {
        unit_word(main).to_string()
    } else {
        String::new()
    };
    let mut per_word = String::new();
    if let Some(per) = per.filter(|p| !p.is_empty()) {
        let per = per.trim();
        if !per.is_empty() && !per.contains(['{', '}']) {
            per_word = per_unit_word(per).to_string();
        }
        if !per_word.is_empty() {
            per_word.insert_str(0, "per_");
        }
    }
    (main_word, per_word)
}

/// `cleanUpUnit`: illegal characters to `_`, runs of `_` to one, no leading `_`.
fn clean_up_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => out,
    }
}

/// The unit as Prometheus records it in metadata (`UnitNamer` with escaping): `s` -> `seconds`,
/// `By/s` -> `bytes_per_second`, `1` -> empty.
pub fn unit_name(unit: &str) -> String {
    let (main, per) = unit_suffixes(unit);
    let (main, per) = (clean_up_unit(&main), clean_up_unit(&per));
    match (main.is_empty(), per.is_empty()) {
        (false, false) => format!("{main}_{per}"),
        (false, true) => main,
        _ => per,
    }
}

/// Builds Prometheus metric names from OTLP names, units and kinds.
#[derive(Debug, Clone, Default)]
pub struct MetricNamer {
    /// Prefixed to every name (`otlp.namespace`-like; empty by default).
    pub namespace: String,
    /// Unit suffixes, `_total` and `_ratio` (Prometheus' default: on). Off keeps the name as
    /// sent, only escaped (vmagent's default).
    pub with_suffixes: bool,
}

impl MetricNamer {
    /// The legal Prometheus name of a metric.
    pub fn build(&self, name: &str, unit: &str, kind: MetricKind) -> Result<String, NameError> {
        let built = if self.with_suffixes {
            self.normalize(name, unit, kind)
        } else {
            self.escape_only(name)
        };
        if built.is_empty() {
            return Err(NameError::EmptyMetric(name.to_string()));
        }
        if built != name && built.bytes().all(|b| b == b'_') {
            return Err(NameError::InvalidMetric(name.to_string(), built));
        }
        Ok(built)
    }

    fn escape_only(&self, name: &str) -> String {
        let join = |s: &str| {
            s.split(|c: char| !is_metric_char(c) && c != '_')
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("_")
        };
        let mut out = join(name);
        if !self.namespace.is_empty() {
            return format!("{}_{out}", join(&self.namespace));
        }
        if out.starts_with(|c: char| c.is_ascii_digit()) {
            out.insert(0, '_');
        }
        out
    }

    fn normalize(&self, name: &str, unit: &str, kind: MetricKind) -> String {
        let mut tokens: Vec<String> = name
            .split(|c: char| !is_metric_char(c))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let (main, per) = unit_suffixes(unit);
        let (mut main, mut per) = (clean_up_unit(&main), clean_up_unit(&per));
        if tokens.contains(&main) {
            main.clear();
        }
        if per == "per_" {
            per.clear();
        } else {
            if per.ends_with('_') {
                per.pop();
            }
            if tokens.contains(&per) {
                per.clear();
            }
        }
        if !per.is_empty() && main.ends_with('_') {
            main.pop();
        }
        if !main.is_empty() {
            tokens.push(main);
        }
        if !per.is_empty() {
            tokens.push(per);
        }
        if kind == MetricKind::MonotonicCounter {
            tokens.retain(|t| t != "total");
            tokens.push("total".to_string());
        }
        if unit == "1" && kind == MetricKind::Gauge {
            tokens.retain(|t| t != "ratio");
            tokens.push("ratio".to_string());
        }
        if !self.namespace.is_empty() {
            tokens.insert(0, self.namespace.clone());
        }
        let mut out = tokens.join("_");
        if out.starts_with(|c: char| c.is_ascii_digit()) {
            out.insert(0, '_');
        }
        out
    }
}

/// A legal Prometheus label name for an attribute key (`LabelNamer` with its defaults): illegal
/// characters become `_` (runs of them one `_`), a leading digit gets `key_`, and `__x__` keeps
/// its reserved underscores.
pub fn label_name(key: &str) -> Result<String, NameError> {
    if key.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if is_plain_label(key) {
        return Ok(key.to_string());
    }
    let reserved = key.len() >= 4 && key.starts_with("__") && key.ends_with("__");
    let inner = if reserved {
        &key[2..key.len() - 2]
    } else {
        key
    };
    let mut out = String::with_capacity(key.len() + 4);
    if reserved {
        out.push_str("__");
    }
    let mut prev_underscore = false;
    for c in inner.chars() {
        if is_label_char(c) {
            out.push(c);
            prev_underscore = false;
        } else if !prev_underscore {
            out.push('_');
            prev_underscore = true;
        }
    }
    if reserved {
        out.push_str("__");
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    if out.bytes().all(|b| b == b'_') {
        return Err(NameError::InvalidLabel(key.to_string(), out));
    }
    Ok(out)
}

/// `canFastPathLabel` with the defaults: already legal, no `__` run inside (outside a reserved
/// `__x__` frame), not only underscores.
fn is_plain_label(key: &str) -> bool {
    let b = key.as_bytes();
    if b[0].is_ascii_digit() {
        return false;
    }
    let (start, end) = if b.len() >= 4 && key.starts_with("__") && key.ends_with("__") {
        (2, b.len() - 2)
    } else {
        (0, b.len())
    };
    let mut prev_underscore = false;
    let mut other = false;
    for &c in &b[start..end] {
        if c == b'_' {
            if prev_underscore {
                return false;
            }
            prev_underscore = true;
        } else if c.is_ascii_alphanumeric() {
            prev_underscore = false;
            other = true;
        } else {
            return false;
        }
    }
    other
}

/// A float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` writes it (the `le` and `quantile`
/// label values): shortest round-trip digits, no exponent, `+Inf`, `-Inf`, `NaN`.
pub struct GoFloat(pub f64);

impl fmt::Display for GoFloat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v == f64::INFINITY {
            f.write_str("+Inf")
        } else if v == f64::NEG_INFINITY {
            f.write_str("-Inf")
        } else {
            // Rust's Display of f64 is the shortest round-trip form without an exponent.
            write!(f, "{v}")
        }
    }
}
