//! Byte-level scanning shared by both formats: name characters, whitespace, label blocks,
//! quoted strings and unescaping, and the lazily re-scanned [`LabelsRef`].
//!
//! Every position this module returns is the index of an ASCII byte or the end of the slice,
//! so slicing a `&str` there never splits a character.

use std::borrow::Cow;

use memchr::memchr;

const METRIC_START: u8 = 1;
const METRIC_CHAR: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CHAR: u8 = 8;
const BLANK: u8 = 16;

/// Character classes by byte: `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names,
/// `[a-zA-Z_][a-zA-Z0-9_]*` for label names, and the text format's blanks (space, tab).
static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let mut class = 0;
        if alpha || b == b':' {
            class |= METRIC_START | METRIC_CHAR;
        }
        if b.is_ascii_digit() {
            class |= METRIC_CHAR | LABEL_CHAR;
        }
        if alpha {
            class |= LABEL_START | LABEL_CHAR;
        }
        if b == b' ' || b == b'\t' {
            class |= BLANK;
        }
        table[i] = class;
        i += 1;
    }
    table
}

#[inline]
fn is(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

/// Whether `b` separates tokens in the text format (space or tab).
#[inline]
pub(crate) fn is_blank(b: u8) -> bool {
    is(b, BLANK)
}

/// The index after the spaces and tabs starting at `i`.
#[inline]
pub(crate) fn skip_blanks(b: &[u8], i: usize) -> usize {
    run_end(b, i, BLANK)
}

/// The index of the first space or tab at or after `i`, or the end.
#[inline]
pub(crate) fn blank_or_end(b: &[u8], i: usize) -> usize {
    match b.get(i..) {
        Some(rest) => i + rest.iter().position(|&c| is_blank(c)).unwrap_or(rest.len()),
        None => i,
    }
}

/// The end of the run of `class` bytes starting at `i`.
#[inline]
fn run_end(b: &[u8], i: usize, class: u8) -> usize {
    match b.get(i..) {
        Some(rest) => {
            i + rest
                .iter()
                .position(|&c| !is(c, class))
                .unwrap_or(rest.len())
        }
        None => i,
    }
}

/// The end of the metric name starting at `i`; `i` itself when there is none.
#[inline]
pub(crate) fn metric_name_end(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(&c) if is(c, METRIC_START) => run_end(b, i + 1, METRIC_CHAR),
        _ => i,
    }
}

/// The end of the label name starting at `i`; `i` itself when there is none.
#[inline]
pub(crate) fn label_name_end(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(&c) if is(c, LABEL_START) => run_end(b, i + 1, LABEL_CHAR),
        _ => i,
    }
}

/// Whether all of `s` is a metric name.
pub(crate) fn is_metric_name(s: &str) -> bool {
    !s.is_empty() && metric_name_end(s.as_bytes(), 0) == s.len()
}

/// Whether every byte of `s` may appear inside a metric name (an OpenMetrics unit).
pub(crate) fn is_metric_chars(s: &str) -> bool {
    s.bytes().all(|c| is(c, METRIC_CHAR))
}

/// Scans a quoted string whose opening quote is just before `i`: returns the index of the
/// closing quote, and whether a backslash escape occurred. A backslash protects the byte after
/// it, whatever it is (the escape's meaning is [`unescape`]'s business). `None`: unterminated.
#[inline]
pub(crate) fn closing_quote(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        let p = quote_or_backslash(b, i)?;
        if b[p] == b'"' {
            return Some((p, escaped));
        }
        escaped = true;
        i = p + 2;
    }
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// The 8 bytes at `i` as a little-endian word (first byte lowest), if there are 8.
#[inline]
fn word_at(b: &[u8], i: usize) -> Option<u64> {
    let chunk = b.get(i..i.checked_add(8)?)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    Some(u64::from_le_bytes(word))
}

/// The first `"` or `\` at or after `i`, eight bytes at a time (SWAR): about 12% off the whole
/// parse of the benchmark's exposition against a byte loop, and `memchr2` pays a setup per call
/// that most label values are too short to repay. (Names stay a byte loop over [`CLASS`]:
/// eight-at-a-time range checks measured no faster on names this short.)
#[inline]
fn quote_or_backslash(b: &[u8], mut i: usize) -> Option<usize> {
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    while let Some(w) = word_at(b, i) {
        let q = w ^ QUOTES;
        let s = w ^ BACKSLASHES;
        // Zero bytes of `q` or `s`: the lowest one flagged is the first match (the borrow may
        // flag bytes above a match falsely, never below).
        let found = (q.wrapping_sub(ONES) & !q | s.wrapping_sub(ONES) & !s) & HIGH;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|p| i + p)
}

/// A label block checked by [`scan_labels`].
pub(crate) struct LabelScan {
    /// Index just after the closing `}`.
    pub end: usize,
    /// Number of `name="value"` pairs.
    pub count: usize,
    /// Whether the block needs the text format's leniency (blanks, a missing comma) to read.
    pub lenient: bool,
}

/// Checks the label block whose `{` is just before `i`. The text format (`lenient`) allows
/// blanks around every token and a missing comma between pairs (as `promparse` does);
/// OpenMetrics allows neither. Both allow a trailing comma (as the OpenMetrics reference parser
/// does). The strict reading is tried first: nearly every block passes it, and a block that
/// does is re-scanned by [`Labels`] without looking for blanks.
#[inline]
pub(crate) fn scan_labels(b: &[u8], i: usize, lenient: bool) -> Result<LabelScan, &'static str> {
    match scan_block::<false>(b, i) {
        Err(_) if lenient => scan_block::<true>(b, i),
        strict => strict,
    }
}

#[inline]
fn scan_block<const LENIENT: bool>(b: &[u8], mut i: usize) -> Result<LabelScan, &'static str> {
    let blanks = |b: &[u8], i: usize| if LENIENT { skip_blanks(b, i) } else { i };
    let mut count = 0;
    loop {
        i = blanks(b, i);
        match b.get(i) {
            None => return Err("unterminated label set"),
            Some(b'}') => {
                return Ok(LabelScan {
                    end: i + 1,
                    count,
                    lenient: LENIENT,
                });
            }
            Some(_) => {}
        }
        let name_end = label_name_end(b, i);
        if name_end == i || b.get(name_end).is_some_and(|&c| c != b'=' && !is_blank(c)) {
            return Err("invalid label name");
        }
        i = blanks(b, name_end);
        if b.get(i) != Some(&b'=') {
            return Err("expected '=' after a label name");
        }
        i = blanks(b, i + 1);
        if b.get(i) != Some(&b'"') {
            return Err("expected a quoted label value");
        }
        let (quote, _) = closing_quote(b, i + 1).ok_or("unterminated label value")?;
        count += 1;
        i = blanks(b, quote + 1);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ if LENIENT => {}
            _ => return Err("expected ',' or '}' after a label value"),
        }
    }
}

/// Undoes the escapes of a label value (`\\`, `\"`, `\n`) or of HELP text (`\\`, `\n`, and `\"`
/// when `quote`). A backslash before any other character stays as written, as Prometheus and
/// the OpenMetrics reference parser keep it. Borrows when there is nothing to undo.
pub(crate) fn unescape(raw: &str, quote: bool) -> Cow<'_, str> {
    if memchr(b'\\', raw.as_bytes()).is_none() {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(p) = memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let replaced = match after.as_bytes().first() {
            Some(b'\\') => Some('\\'),
            Some(b'n') => Some('\n'),
            Some(b'"') if quote => Some('"'),
            _ => None,
        };
        match replaced {
            Some(c) => {
                out.push(c);
                rest = &after[1..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The labels of a sample or exemplar: the checked text between `{` and `}`, re-scanned on
/// each [`iter`](LabelsRef::iter). Copying it is free; equality compares the text as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelsRef<'a> {
    raw: &'a str,
    count: usize,
    blanks: bool,
}

impl<'a> LabelsRef<'a> {
    /// `raw` must have passed [`scan_labels`], which counted `count` pairs and said whether the
    /// block is `lenient`.
    pub(crate) fn new(raw: &'a str, scan: &LabelScan) -> LabelsRef<'a> {
        LabelsRef {
            raw,
            count: scan.count,
            blanks: scan.lenient,
        }
    }

    pub(crate) fn empty() -> LabelsRef<'a> {
        LabelsRef {
            raw: "",
            count: 0,
            blanks: false,
        }
    }

    /// The `(name, value)` pairs in written order. A value is borrowed unless it has an escape.
    pub fn iter(&self) -> Labels<'a> {
        Labels {
            rest: self.raw,
            blanks: self.blanks,
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The value of the first pair named `name`.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The text between the braces, exactly as written (escapes not undone).
    pub fn raw(&self) -> &'a str {
        self.raw
    }
}

impl<'a> IntoIterator for LabelsRef<'a> {
    type Item = (&'a str, Cow<'a, str>);
    type IntoIter = Labels<'a>;

    fn into_iter(self) -> Labels<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &LabelsRef<'a> {
    type Item = (&'a str, Cow<'a, str>);
    type IntoIter = Labels<'a>;

    fn into_iter(self) -> Labels<'a> {
        self.iter()
    }
}

/// Iterator over the `(name, value)` pairs of a [`LabelsRef`].
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    rest: &'a str,
    blanks: bool,
}

impl<'a> Iterator for Labels<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest;
        // The block was checked when parsed; should it somehow not parse here, end quietly.
        self.rest = "";
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && (b[i] == b',' || (self.blanks && is_blank(b[i]))) {
            i += 1;
        }
        let name_end = label_name_end(b, i);
        if name_end == i {
            return None;
        }
        let mut j = name_end;
        if self.blanks {
            j = skip_blanks(b, j);
        }
        if b.get(j) != Some(&b'=') {
            return None;
        }
        j += 1;
        if self.blanks {
            j = skip_blanks(b, j);
        }
        if b.get(j) != Some(&b'"') {
            return None;
        }
        let (quote, escaped) = closing_quote(b, j + 1)?;
        let raw = &s[j + 1..quote];
        self.rest = &s[quote + 1..];
        let value = if escaped {
            unescape(raw, true)
        } else {
            Cow::Borrowed(raw)
        };
        Some((&s[i..name_end], value))
    }
}
