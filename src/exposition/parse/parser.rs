//! [`Parser`]: the line loop and the line grammar of both formats.
//!
//! One pass, one line at a time (`memchr` for the line end), each line scanned byte by byte
//! without backtracking. A sample's labels are checked here and re-scanned later only if the
//! caller iterates them.

use memchr::memchr;

use super::number::{parse_openmetrics_timestamp, parse_text_timestamp, parse_value};
use super::openmetrics::OpenMetricsValidator;
use super::scan::{
    LabelsRef, blank_or_end, is_blank, is_metric_chars, is_metric_name, metric_name_end,
    scan_labels, skip_blanks, unescape,
};
use super::{Entry, ExemplarRef, Format, Item, MetricType, ParseError, SampleRef};

/// One step of [`Parser::advance_with`].
enum Step<'a, K> {
    Known {
        key: K,
        value: f64,
        timestamp_ms: Option<i64>,
    },
    Entry(Entry<'a>),
}

/// Streams the [`Entry`]s of one exposition body; see the [module documentation](super).
///
/// An [`Iterator`] of `Result<Entry, ParseError>` that ends after the first error. In
/// OpenMetrics mode the end of the body without `# EOF` is an error, and so is anything after it.
#[derive(Debug)]
pub struct Parser<'a> {
    body: &'a [u8],
    /// The longest valid UTF-8 prefix of `body` (all of it, nearly always): lines inside it need
    /// no check of their own.
    valid: &'a str,
    /// Start of the next line.
    pos: usize,
    /// Number of the line last read (1-based).
    line: usize,
    format: Format,
    /// The OpenMetrics semantic checks; `None` in text mode or when turned off.
    validator: Option<OpenMetricsValidator<'a>>,
    done: bool,
}

impl<'a> Parser<'a> {
    /// A parser over `body` in `format`; in OpenMetrics mode with the semantic checks on.
    pub fn new(body: &'a [u8], format: Format) -> Parser<'a> {
        let valid = match std::str::from_utf8(body) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or(""),
        };
        Parser {
            body,
            valid,
            pos: 0,
            line: 0,
            format,
            validator: (format == Format::OpenMetrics).then(OpenMetricsValidator::new),
            done: false,
        }
    }

    /// Turns off the OpenMetrics semantic checks ([`OpenMetricsValidator`]), keeping the
    /// grammar: for a scraper that would rather ingest a slightly-off exposition (a histogram
    /// whose `_count` raced its buckets, say) than drop it whole, as Prometheus does. No effect
    /// on the text format, which has none.
    pub fn without_semantic_checks(mut self) -> Parser<'a> {
        self.validator = None;
        self
    }

    /// The format this parser reads.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Number (1-based) of the line the last entry or error came from; 0 before the first.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The next sample (other lines are checked and skipped), first offering its series text
    /// (`name{labels}` exactly as written) to `known`. When `known` recognises it (returns a
    /// key), the line's labels are not scanned again: the sample comes out as [`Item::Known`]
    /// with the key, and only its value and timestamp are parsed. For a scraper that caches what
    /// each series text turns into, as Prometheus' scrape cache does.
    ///
    /// The outcome is the same as [`Iterator::next`]'s: `known` only ever sees text that starts a
    /// sample line and ends at its first `}` (or its first blank when there is no `}`), so a text
    /// `known` has seen whole from [`SampleRef::series`] before is a complete, valid series in
    /// that line too; everything else (and any line whose rest is malformed) takes the full path.
    /// With the OpenMetrics semantic checks on, every sample takes the full path.
    pub fn next_with<K>(
        &mut self,
        mut known: impl FnMut(&'a str) -> Option<K>,
    ) -> Option<Result<Item<'a, K>, ParseError>> {
        if self.done {
            return None;
        }
        let step = match self.advance_with::<K, true>(&mut known) {
            Ok(Some(step)) => step,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        Some(Ok(match step {
            Step::Known {
                key,
                value,
                timestamp_ms,
            } => Item::Known {
                key,
                value,
                timestamp_ms,
            },
            Step::Entry(Entry::Sample(s)) => Item::Sample(s),
            // advance_with::<_, true> returns samples only.
            Step::Entry(_) => return self.next_with(known),
        }))
    }

    fn advance(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        let none = &mut |_: &'a str| None::<std::convert::Infallible>;
        Ok(self.advance_with::<_, false>(none)?.map(|step| match step {
            Step::Entry(e) => e,
            Step::Known { key, .. } => match key {},
        }))
    }

    /// A sample line whose series `known` recognises, with its value and timestamp; `None` for
    /// anything else, left to the full path.
    #[inline]
    /// `i` is where the line's first token starts, and is not a `#`.
    fn known_sample<K>(
        &self,
        start: usize,
        end: usize,
        i: usize,
        known: &mut impl FnMut(&'a str) -> Option<K>,
    ) -> Option<Step<'a, K>> {
        if self.validator.is_some() || end > self.valid.len() {
            return None;
        }
        let b = &self.body[start..end];
        let line = &self.valid[start..end];
        let text = self.format == Format::PrometheusText;
        let series_end = match memchr(b'}', &b[i..]) {
            Some(p) => i + p + 1,
            None if text => blank_or_end(b, i),
            None => token_end(b, i),
        };
        let key = known(&line[i..series_end])?;
        let (value, timestamp_ms) = if text {
            text_value(line, skip_blanks(b, series_end)).ok()?
        } else {
            let (value, timestamp_ms, _) = openmetrics_value(line, series_end, false).ok()?;
            (value, timestamp_ms)
        };
        Some(Step::Known {
            key,
            value,
            timestamp_ms,
        })
    }

    /// The next entry; with `SAMPLES_ONLY` the next sample (other lines are still checked).
    fn advance_with<K, const SAMPLES_ONLY: bool>(
        &mut self,
        known: &mut impl FnMut(&'a str) -> Option<K>,
    ) -> Result<Option<Step<'a, K>>, ParseError> {
        loop {
            if self.pos >= self.body.len() {
                return match self.format {
                    Format::PrometheusText => Ok(None),
                    Format::OpenMetrics => Err(ParseError::new(
                        self.line + 1,
                        "missing \"# EOF\" at the end of the exposition",
                    )),
                };
            }
            let start = self.pos;
            let end = memchr(b'\n', &self.body[start..]).map_or(self.body.len(), |p| start + p);
            self.pos = end + 1;
            self.line += 1;
            let text = self.format == Format::PrometheusText;
            // Where the first token starts (the text format allows blanks before it).
            let lead = if text {
                skip_blanks(&self.body[start..end], 0)
            } else {
                0
            };
            match self.body[start..end].get(lead) {
                Some(b'#') if SAMPLES_ONLY && text && self.validator.is_none() => {
                    self.check_text_comment(start, end, lead + 1)?;
                    continue;
                }
                Some(&c) if c != b'#' => {
                    if let Some(item) = self.known_sample(start, end, lead, known) {
                        return Ok(Some(item));
                    }
                }
                _ => {}
            }
            let entry = match self.format {
                Format::PrometheusText => match self.text_line(start, end, lead)? {
                    Some(entry) => entry,
                    None => continue,
                },
                Format::OpenMetrics => match self.openmetrics_line(start, end)? {
                    Some(entry) => entry,
                    None => return Ok(None),
                },
            };
            if let Some(validator) = &mut self.validator {
                validator.check(self.line, &entry)?;
            }
            if SAMPLES_ONLY && !matches!(entry, Entry::Sample(_)) {
                continue;
            }
            return Ok(Some(Step::Entry(entry)));
        }
    }

    /// The line as `&str`, or an error if it is not UTF-8.
    fn line_str(&self, start: usize, end: usize) -> Result<&'a str, ParseError> {
        if end <= self.valid.len() {
            return Ok(&self.valid[start..end]);
        }
        let bytes = &self.body[start..end];
        std::str::from_utf8(bytes).map_err(|_| ParseError::at(self.line, "invalid UTF-8", bytes))
    }

    fn syntax(&self, what: &str, start: usize, end: usize) -> ParseError {
        ParseError::at(self.line, what, &self.body[start..end])
    }

    /// A text-format line whose first token starts at `i`; `None` for a blank one.
    fn text_line(
        &self,
        start: usize,
        end: usize,
        i: usize,
    ) -> Result<Option<Entry<'a>>, ParseError> {
        let b = &self.body[start..end];
        match b.get(i) {
            None => Ok(None),
            Some(b'#') => self.text_comment(start, end, i + 1).map(Some),
            Some(_) => {
                let line = self.line_str(start, end)?;
                text_sample(line, i)
                    .map(|s| Some(Entry::Sample(s)))
                    .map_err(|what| self.syntax(what, start, end))
            }
        }
    }

    /// A text-format `#` line, `i` just after the `#`: HELP, TYPE or a free comment.
    fn text_comment(&self, start: usize, end: usize, i: usize) -> Result<Entry<'a>, ParseError> {
        match self.text_metadata(start, end, i)? {
            None => Ok(Entry::Comment),
            Some((true, metric, rest)) => Ok(Entry::Help {
                metric,
                text: unescape(rest, false),
            }),
            Some((false, metric, rest)) => self.text_type(metric, rest, start, end),
        }
    }

    /// Checks a text-format `#` line as [`Self::text_comment`] does, without building its entry
    /// (the scrape path skips metadata).
    fn check_text_comment(&self, start: usize, end: usize, i: usize) -> Result<(), ParseError> {
        if let Some((false, metric, rest)) = self.text_metadata(start, end, i)? {
            self.text_type(metric, rest, start, end)?;
        }
        Ok(())
    }

    /// A text-format `#` line split into (is HELP, metric name, rest) for HELP and TYPE lines;
    /// `None` for a free comment.
    fn text_metadata(
        &self,
        start: usize,
        end: usize,
        i: usize,
    ) -> Result<Option<(bool, &'a str, &'a str)>, ParseError> {
        let b = &self.body[start..end];
        let k = skip_blanks(b, i);
        let keyword = &b[k..];
        let help = keyword.starts_with(b"HELP");
        if k == i
            || !(help || keyword.starts_with(b"TYPE"))
            || !keyword.get(4).is_some_and(|&c| is_blank(c))
        {
            // Anything else is a comment, and may hold any bytes.
            return Ok(None);
        }
        let line = self.line_str(start, end)?;
        let name_start = skip_blanks(b, k + 4);
        let name_end = metric_name_end(b, name_start);
        if name_end == name_start || b.get(name_end).is_some_and(|&c| !is_blank(c)) {
            let what = if help {
                "invalid metric name after HELP"
            } else {
                "invalid metric name after TYPE"
            };
            return Err(self.syntax(what, start, end));
        }
        let metric = &line[name_start..name_end];
        let rest = &line[skip_blanks(b, name_end)..];
        Ok(Some((help, metric, rest)))
    }

    fn text_type(
        &self,
        metric: &'a str,
        rest: &str,
        start: usize,
        end: usize,
    ) -> Result<Entry<'a>, ParseError> {
        match MetricType::from_text(rest.trim_end_matches([' ', '\t'])) {
            Some(kind) => Ok(Entry::Type { metric, kind }),
            None => Err(self.syntax(
                "unknown metric type (counter, gauge, histogram, summary or untyped expected)",
                start,
                end,
            )),
        }
    }

    /// An OpenMetrics line; `None` at a valid `# EOF`.
    fn openmetrics_line(
        &mut self,
        start: usize,
        end: usize,
    ) -> Result<Option<Entry<'a>>, ParseError> {
        let b = &self.body[start..end];
        match b.first() {
            None => Err(ParseError::new(
                self.line,
                "blank line (OpenMetrics has none)",
            )),
            Some(b'#') => {
                if b == b"# EOF" {
                    if self.pos < self.body.len() {
                        return Err(ParseError::new(self.line + 1, "text after \"# EOF\""));
                    }
                    if let Some(validator) = &mut self.validator {
                        validator.finish()?;
                    }
                    return Ok(None);
                }
                let line = self.line_str(start, end)?;
                openmetrics_metadata(line)
                    .map(Some)
                    .map_err(|what| self.syntax(what, start, end))
            }
            Some(_) => {
                let line = self.line_str(start, end)?;
                openmetrics_sample(line)
                    .map(|s| Some(Entry::Sample(s)))
                    .map_err(|what| self.syntax(what, start, end))
            }
        }
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Parser<'_> {}

/// A text-format sample line, its metric name at `i`:
/// `name [{labels}] value [timestamp]`, blanks between tokens and around the line.
fn text_sample(line: &str, mut i: usize) -> Result<SampleRef<'_>, &'static str> {
    let b = line.as_bytes();
    let name_start = i;
    i = metric_name_end(b, i);
    if i == name_start {
        return Err("invalid metric name");
    }
    let name = &line[name_start..i];
    let mut j = skip_blanks(b, i);
    let labels;
    if b.get(j) == Some(&b'{') {
        let scan = scan_labels(b, j + 1, true)?;
        labels = LabelsRef::new(&line[j + 1..scan.end - 1], &scan);
        i = scan.end;
        j = skip_blanks(b, i);
    } else {
        if j == i && j < b.len() {
            return Err("invalid character in metric name");
        }
        labels = LabelsRef::empty();
    }
    let series = &line[name_start..i];
    let (value, timestamp_ms) = text_value(line, j)?;
    Ok(SampleRef {
        name,
        series,
        labels,
        value,
        timestamp_ms,
        exemplar: None,
    })
}

/// A text-format sample line's value and optional timestamp, the value starting at `j`, to the
/// end of the line.
#[inline]
fn text_value(line: &str, j: usize) -> Result<(f64, Option<i64>), &'static str> {
    let b = line.as_bytes();
    let value_end = blank_or_end(b, j);
    if value_end == j {
        return Err("missing value");
    }
    let value = parse_value(&line[j..value_end], false)?;
    let k = skip_blanks(b, value_end);
    let mut timestamp_ms = None;
    if k < b.len() {
        let ts_end = blank_or_end(b, k);
        timestamp_ms = Some(parse_text_timestamp(&line[k..ts_end])?);
        if skip_blanks(b, ts_end) != b.len() {
            return Err("unexpected text after the timestamp");
        }
    }
    Ok((value, timestamp_ms))
}

/// An OpenMetrics `#` line other than `# EOF`: `# HELP|TYPE|UNIT name value`, single spaces.
fn openmetrics_metadata(line: &str) -> Result<Entry<'_>, &'static str> {
    const ONLY: &str = "invalid line starting with '#' (OpenMetrics allows only # HELP, # TYPE, \
                        # UNIT and # EOF)";
    let rest = line.strip_prefix("# ").ok_or(ONLY)?;
    let (keyword, rest) = rest.split_once(' ').ok_or(ONLY)?;
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return Err(ONLY);
    }
    let (metric, value) = rest
        .split_once(' ')
        .ok_or("expected a metric name, one space and a value")?;
    if !is_metric_name(metric) {
        return Err("invalid metric name");
    }
    match keyword {
        "HELP" => Ok(Entry::Help {
            metric,
            text: unescape(value, true),
        }),
        "TYPE" => match MetricType::from_openmetrics(value) {
            Some(kind) => Ok(Entry::Type { metric, kind }),
            None => Err(
                "unknown metric type (counter, gauge, histogram, gaugehistogram, \
                         stateset, info, summary or unknown expected)",
            ),
        },
        _ => {
            if !is_metric_chars(value) {
                return Err("invalid unit");
            }
            Ok(Entry::Unit {
                metric,
                unit: value,
            })
        }
    }
}

/// The end of the OpenMetrics token starting at `i` (up to a space or the end).
#[inline]
fn token_end(b: &[u8], i: usize) -> usize {
    memchr(b' ', &b[i..]).map_or(b.len(), |p| i + p)
}

/// An OpenMetrics sample line:
/// `name[{labels}] value[ timestamp][ # {labels} value[ timestamp]]`, single spaces.
fn openmetrics_sample(line: &str) -> Result<SampleRef<'_>, &'static str> {
    let b = line.as_bytes();
    let mut i = metric_name_end(b, 0);
    if i == 0 {
        return Err("invalid metric name");
    }
    let name = &line[..i];
    let mut labels = LabelsRef::empty();
    if b.get(i) == Some(&b'{') {
        let scan = scan_labels(b, i + 1, false)?;
        labels = LabelsRef::new(&line[i + 1..scan.end - 1], &scan);
        i = scan.end;
    }
    let series = &line[..i];
    let (value, timestamp_ms, exemplar) = openmetrics_value(line, i, series.len() == name.len())?;
    Ok(SampleRef {
        name,
        series,
        labels,
        value,
        timestamp_ms,
        exemplar,
    })
}

/// What follows an OpenMetrics sample's series (which ends at `i`, and is only a metric name
/// when `bare_name`): value, optional timestamp, optional exemplar.
#[inline]
fn openmetrics_value(
    line: &str,
    mut i: usize,
    bare_name: bool,
) -> Result<(f64, Option<i64>, Option<ExemplarRef<'_>>), &'static str> {
    let b = line.as_bytes();
    match b.get(i) {
        Some(b' ') => i += 1,
        None => return Err("missing value"),
        Some(_) if bare_name => {
            return Err("invalid character in metric name");
        }
        Some(_) => return Err("expected a space after the labels"),
    }
    let value_end = token_end(b, i);
    if value_end == i {
        return Err("missing value (or a doubled space)");
    }
    let value = parse_value(&line[i..value_end], true)?;
    i = value_end;
    let mut timestamp_ms = None;
    let mut exemplar = None;
    if i < b.len() {
        i += 1;
        if i == b.len() {
            return Err("trailing space");
        }
        if b[i] != b'#' {
            let ts_end = token_end(b, i);
            if ts_end == i {
                return Err("missing timestamp (or a doubled space)");
            }
            timestamp_ms = Some(parse_openmetrics_timestamp(&line[i..ts_end])?);
            i = ts_end;
            if i < b.len() {
                i += 1;
                if b.get(i) != Some(&b'#') {
                    return Err("unexpected text after the timestamp");
                }
            }
        }
        if i < b.len() {
            exemplar = Some(openmetrics_exemplar(line, i)?);
        }
    }
    Ok((value, timestamp_ms, exemplar))
}

/// The exemplar starting at the `#` at `i`: `# {labels} value[ timestamp]` to the end.
fn openmetrics_exemplar(line: &str, i: usize) -> Result<ExemplarRef<'_>, &'static str> {
    let b = line.as_bytes();
    if !b[i..].starts_with(b"# {") {
        return Err("invalid exemplar (expected \"# {labels} value [timestamp]\")");
    }
    let scan = scan_labels(b, i + 3, false)?;
    let labels = LabelsRef::new(&line[i + 3..scan.end - 1], &scan);
    let mut j = scan.end;
    if b.get(j) != Some(&b' ') {
        return Err("missing exemplar value");
    }
    j += 1;
    let value_end = token_end(b, j);
    if value_end == j {
        return Err("missing exemplar value (or a doubled space)");
    }
    let value = parse_value(&line[j..value_end], true)?;
    let mut timestamp_ms = None;
    if value_end < b.len() {
        let k = value_end + 1;
        let ts_end = token_end(b, k);
        if ts_end == k {
            return Err("missing exemplar timestamp (or a trailing space)");
        }
        if ts_end != b.len() {
            return Err("unexpected text after the exemplar timestamp");
        }
        timestamp_ms = Some(parse_openmetrics_timestamp(&line[k..ts_end])?);
    }
    Ok(ExemplarRef {
        labels,
        value,
        timestamp_ms,
    })
}
