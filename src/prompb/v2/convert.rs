//! [`Converter`]: a decompressed 2.0 `Request` to an encoded 1.0 `WriteRequest`, walking the wire
//! once (see the module doc of `v2` for the rules and why).

use std::collections::HashSet;

use super::super::encode::{label_len, put_label, put_varint, varint_len};
use super::super::validate::histogram_field;
use super::super::wire::Reader;
use super::V2Error;

/// `Histogram.schema` of native histograms with custom bucket boundaries (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// 1.0 `TimeSeries` keys (field number << 3 | wire type 2).
const SERIES_KEY: u8 = 0x0a;
const SAMPLES_KEY: u8 = 0x12;
const EXEMPLARS_KEY: u8 = 0x1a;
const HISTOGRAMS_KEY: u8 = 0x22;
/// 1.0 `WriteRequest.metadata`.
const METADATA_KEY: u8 = 0x1a;

/// What one request held and what of it was written in 1.0 form: the counts of the 2.0 response
/// headers (`X-Prometheus-Remote-Write-*-Written`) come from here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V2Summary {
    /// 1.0 series written (2.0 series left with nothing to carry are left out).
    pub series: u64,
    /// Float samples written.
    pub samples: u64,
    /// Native histogram samples written.
    pub histograms: u64,
    /// Exemplars written.
    pub exemplars: u64,
    /// 1.0 metric family metadata entries written (one per family name).
    pub metadata: u64,
    /// Custom-bucket histogram samples (schema -53) dropped.
    pub dropped_custom_bucket_histograms: u64,
    /// The labels (`{a="b", ...}`) of the first series a custom-bucket histogram was dropped
    /// from, for a log line.
    pub first_dropped_series: Option<String>,
}

/// Converts 2.0 requests; keeps its scratch buffers between calls (one per thread in ingest).
#[derive(Debug, Default)]
pub struct Converter {
    /// Where each symbol's length prefix is in the request: 4 bytes per symbol, so the table costs
    /// at most twice the request's size (a symbol takes at least 2 bytes on the wire).
    symbols: Vec<u32>,
    /// Label refs of the series being converted.
    labels: Vec<u32>,
    /// Label refs of the exemplar being converted.
    exemplar_labels: Vec<u32>,
    /// The 1.0 `TimeSeries` body being built.
    series: Vec<u8>,
}

/// One 2.0 series' `Metadata`, as prost merges repeated occurrences (each field: last wins).
#[derive(Clone, Copy, Default)]
struct SeriesMetadata {
    r#type: i32,
    help_ref: u32,
    unit_ref: u32,
}

/// A 1.0 `MetricMetadata` to write, borrowing from the request.
struct FamilyMetadata<'a> {
    r#type: i32,
    family: &'a [u8],
    help: &'a [u8],
    unit: &'a [u8],
}

/// The request being converted, with what the walk has found so far.
struct Walk<'a, 'c> {
    req: &'a [u8],
    conv: &'c mut Converter,
    out: &'c mut Vec<u8>,
    limit: usize,
    summary: V2Summary,
    families: HashSet<&'a [u8]>,
    metadata: Vec<FamilyMetadata<'a>>,
}

impl Converter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates `req` (a decompressed 2.0 `Request`) and writes it to `out` (cleared first) as an
    /// encoded 1.0 `WriteRequest`, of at most `limit` bytes. On error `out` holds a partial
    /// result the caller must drop.
    pub fn convert(
        &mut self,
        req: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<V2Summary, V2Error> {
        out.clear();
        self.symbols.clear();
        if req.len() > u32::MAX as usize {
            // Symbol positions are kept as u32.
            return Err(V2Error::TooLarge { limit });
        }
        let series = self.index_symbols(req)?;
        if series > 0 {
            match self.symbols.first() {
                None => return Err(V2Error::NoSymbols { series }),
                Some(&at) => {
                    let first = symbol_at(req, at);
                    if !first.is_empty() {
                        return Err(V2Error::FirstSymbolNotEmpty { len: first.len() });
                    }
                }
            }
        }
        let mut walk = Walk {
            req,
            conv: self,
            out,
            limit,
            summary: V2Summary::default(),
            families: HashSet::new(),
            metadata: Vec::new(),
        };
        let mut r = Reader::new(req, 0);
        let mut index = 0u64;
        while let Some(f) = r.next_field()? {
            if f.number == 5 {
                walk.series(r.message(f, "Request.timeseries")?, index)?;
                index += 1;
            } else {
                r.skip(f)?;
            }
        }
        walk.finish()
    }

    /// First pass over the top-level fields: records where each symbol is (checking it is UTF-8),
    /// checks every series is a length-delimited field inside the request, counts the series.
    fn index_symbols(&mut self, req: &[u8]) -> Result<u64, V2Error> {
        let mut r = Reader::new(req, 0);
        let mut series = 0u64;
        let mut first_symbol_len = None;
        while let Some(f) = r.next_field()? {
            match f.number {
                4 => {
                    let at = r.pos as u32;
                    let s = r.string_bytes(f, "Request.symbols")?;
                    first_symbol_len.get_or_insert(s.len());
                    self.symbols.push(at);
                }
                5 => {
                    r.message(f, "Request.timeseries")?;
                    series += 1;
                }
                _ => r.skip(f)?,
            }
        }
        match first_symbol_len {
            Some(len) if len > 0 => Err(V2Error::FirstSymbolNotEmpty { len }),
            _ => Ok(series),
        }
    }
}

/// The bytes of the symbol whose length prefix is at `at` (checked by the first pass; a prefix
/// that no longer parses yields no bytes rather than a panic).
#[inline]
fn symbol_at(req: &[u8], at: u32) -> &[u8] {
    let mut r = Reader::new(req, 0);
    r.pos = at as usize;
    match r.len_delimited() {
        Ok(s) => s.data,
        Err(_) => &[],
    }
}

impl<'a> Walk<'a, '_> {
    fn symbol(&self, reference: u32) -> &'a [u8] {
        match self.conv.symbols.get(reference as usize) {
            Some(&at) => symbol_at(self.req, at),
            None => &[],
        }
    }

    fn check_ref(&self, series: u64, field: &'static str, reference: u32) -> Result<u32, V2Error> {
        if (reference as usize) < self.conv.symbols.len() {
            Ok(reference)
        } else {
            Err(V2Error::RefOutOfRange {
                series,
                field,
                reference,
                symbols: self.conv.symbols.len(),
            })
        }
    }

    fn over_limit(&self) -> Result<(), V2Error> {
        if self.out.len() + self.conv.series.len() > self.limit {
            Err(V2Error::TooLarge { limit: self.limit })
        } else {
            Ok(())
        }
    }

    /// Converts one 2.0 `TimeSeries`: labels and metadata first (they may come anywhere in the
    /// message), then samples, exemplars and histograms in the order they came.
    fn series(&mut self, r: Reader<'a>, index: u64) -> Result<(), V2Error> {
        self.conv.series.clear();
        self.conv.labels.clear();
        let mut metadata: Option<SeriesMetadata> = None;
        let mut first = r;
        let rest = r;
        while let Some(f) = first.next_field()? {
            match f.number {
                1 => {
                    let (symbols, limit) = (self.conv.symbols.len(), self.limit);
                    let labels = &mut self.conv.labels;
                    first.each_varint(f, "TimeSeries.labels_refs", |v| {
                        push_ref(labels, v, symbols, limit, index, "TimeSeries.labels_refs")
                    })?;
                }
                5 => {
                    let m = metadata.get_or_insert_default();
                    series_metadata(first.message(f, "TimeSeries.metadata")?, m)?;
                }
                _ => first.skip(f)?,
            }
        }
        if !self.conv.labels.len().is_multiple_of(2) {
            return Err(V2Error::OddLabelRefs {
                series: index,
                field: "TimeSeries.labels_refs",
                len: self.conv.labels.len(),
            });
        }
        for pair in 0..self.conv.labels.len() / 2 {
            let name = self.symbol(self.conv.labels[2 * pair]);
            let value = self.symbol(self.conv.labels[2 * pair + 1]);
            put_label(&mut self.conv.series, name, value);
            self.over_limit()?;
        }
        if let Some(m) = metadata {
            self.series_family(index, m)?;
        }

        let (mut samples, mut histograms, mut exemplars) = (0u64, 0u64, 0u64);
        let mut r = rest;
        while let Some(f) = r.next_field()? {
            match f.number {
                2 => {
                    sample(r.message(f, "TimeSeries.samples")?, &mut self.conv.series)?;
                    samples += 1;
                }
                3 => {
                    let h = r.message(f, "TimeSeries.histograms")?;
                    if self.histogram(h)? {
                        histograms += 1;
                    } else {
                        self.dropped_custom_buckets();
                    }
                }
                4 => {
                    self.exemplar(r.message(f, "TimeSeries.exemplars")?, index)?;
                    exemplars += 1;
                }
                // Labels and metadata were read above; unknown fields (such as the removed
                // `created_timestamp` = 6 of older senders) are skipped.
                _ => r.skip(f)?,
            }
            self.over_limit()?;
        }
        if samples + histograms + exemplars == 0 {
            return Ok(());
        }
        let body = self.conv.series.len();
        if self.out.len() + 1 + varint_len(body as u64) + body > self.limit {
            return Err(V2Error::TooLarge { limit: self.limit });
        }
        self.out.push(SERIES_KEY);
        put_varint(self.out, body as u64);
        self.out.extend_from_slice(&self.conv.series);
        self.summary.series += 1;
        self.summary.samples += samples;
        self.summary.histograms += histograms;
        self.summary.exemplars += exemplars;
        Ok(())
    }

    /// Records the 1.0 family metadata of a series that carried 2.0 metadata: the family is the
    /// series' `__name__` (without `_bucket`, `_sum`, `_count` for histogram and summary types);
    /// the first series of a family in the request wins. Metadata without any information (type
    /// unspecified, no help, no unit) and series without `__name__` give none.
    fn series_family(&mut self, index: u64, m: SeriesMetadata) -> Result<(), V2Error> {
        let help_ref = self.check_ref(index, "Metadata.help_ref", m.help_ref)?;
        let unit_ref = self.check_ref(index, "Metadata.unit_ref", m.unit_ref)?;
        let (help, unit) = (self.symbol(help_ref), self.symbol(unit_ref));
        if m.r#type == 0 && help.is_empty() && unit.is_empty() {
            return Ok(());
        }
        let Some(name) = self
            .conv
            .labels
            .chunks_exact(2)
            .find(|pair| self.symbol(pair[0]) == b"__name__")
            .map(|pair| self.symbol(pair[1]))
        else {
            return Ok(());
        };
        let family = family_name(m.r#type, name);
        if self.families.insert(family) {
            self.metadata.push(FamilyMetadata {
                r#type: m.r#type,
                family,
                help,
                unit,
            });
        }
        Ok(())
    }

    /// Validates one 2.0 `Histogram` and appends it as a 1.0 one (the two share fields 1 to 16;
    /// anything else, such as 2.0's `start_timestamp`, is left out). Returns false, writing
    /// nothing, for a custom-bucket histogram.
    fn histogram(&mut self, h: Reader<'a>) -> Result<bool, V2Error> {
        let mut r = h;
        let mut schema = 0i32;
        let mut only_shared_fields = true;
        while let Some(f) = r.next_field()? {
            if f.number == 4 {
                let v = r.varint_value(f, "Histogram.schema")? as u32;
                // sint32: zigzag over the low 32 bits, as prost decodes it.
                schema = ((v >> 1) as i32) ^ -((v & 1) as i32);
            } else {
                only_shared_fields &= f.number <= 16;
                histogram_field(&mut r, f)?;
            }
        }
        if schema == CUSTOM_BUCKETS_SCHEMA {
            return Ok(false);
        }
        let out = &mut self.conv.series;
        out.push(HISTOGRAMS_KEY);
        if only_shared_fields {
            put_varint(out, h.data.len() as u64);
            out.extend_from_slice(h.data);
            return Ok(true);
        }
        let mut len = 0;
        for_each_shared_field(h, |bytes| len += bytes.len())?;
        put_varint(out, len as u64);
        for_each_shared_field(h, |bytes| out.extend_from_slice(bytes))?;
        Ok(true)
    }

    /// Validates one 2.0 `Exemplar` and appends it as a 1.0 one, its labels resolved.
    fn exemplar(&mut self, mut r: Reader<'a>, index: u64) -> Result<(), V2Error> {
        const FIELD: &str = "Exemplar.labels_refs";
        self.conv.exemplar_labels.clear();
        let (mut value, mut timestamp) = (0f64, 0i64);
        while let Some(f) = r.next_field()? {
            match f.number {
                1 => {
                    let (symbols, limit) = (self.conv.symbols.len(), self.limit);
                    let refs = &mut self.conv.exemplar_labels;
                    r.each_varint(f, FIELD, |v| {
                        push_ref(refs, v, symbols, limit, index, FIELD)
                    })?;
                }
                2 => value = r.fixed64_value(f, "Exemplar.value")?,
                3 => timestamp = r.varint_value(f, "Exemplar.timestamp")? as i64,
                _ => r.skip(f)?,
            }
        }
        let refs = std::mem::take(&mut self.conv.exemplar_labels);
        let result = self.put_exemplar(&refs, value, timestamp, index);
        self.conv.exemplar_labels = refs;
        result
    }

    fn put_exemplar(
        &mut self,
        refs: &[u32],
        value: f64,
        timestamp: i64,
        index: u64,
    ) -> Result<(), V2Error> {
        const FIELD: &str = "Exemplar.labels_refs";
        if !refs.len().is_multiple_of(2) {
            return Err(V2Error::OddLabelRefs {
                series: index,
                field: FIELD,
                len: refs.len(),
            });
        }
        let mut len = 9 + timestamp_len(timestamp);
        for pair in refs.chunks_exact(2) {
            let l = label_len(self.symbol(pair[0]), self.symbol(pair[1]));
            len += 1 + varint_len(l as u64) + l;
        }
        if self.out.len() + self.conv.series.len() + len > self.limit {
            return Err(V2Error::TooLarge { limit: self.limit });
        }
        self.conv.series.push(EXEMPLARS_KEY);
        put_varint(&mut self.conv.series, len as u64);
        for pair in refs.chunks_exact(2) {
            let (name, value) = (self.symbol(pair[0]), self.symbol(pair[1]));
            put_label(&mut self.conv.series, name, value);
        }
        let out = &mut self.conv.series;
        out.push(0x11); // Exemplar.value, field 2, 64-bit
        out.extend_from_slice(&value.to_le_bytes());
        put_timestamp(out, 0x18, timestamp); // Exemplar.timestamp, field 3
        Ok(())
    }

    fn dropped_custom_buckets(&mut self) {
        self.summary.dropped_custom_bucket_histograms += 1;
        if self.summary.first_dropped_series.is_none() {
            let mut text = String::from("{");
            for (i, pair) in self.conv.labels.chunks_exact(2).enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(&String::from_utf8_lossy(self.symbol(pair[0])));
                text.push_str("=\"");
                text.push_str(
                    &String::from_utf8_lossy(self.symbol(pair[1]))
                        .escape_default()
                        .to_string(),
                );
                text.push('"');
            }
            text.push('}');
            self.summary.first_dropped_series = Some(text);
        }
    }

    /// Appends the family metadata after the series and returns the counts.
    fn finish(self) -> Result<V2Summary, V2Error> {
        let Walk {
            out,
            limit,
            mut summary,
            metadata,
            ..
        } = self;
        for m in &metadata {
            let len = type_len(m.r#type)
                + field_len(m.family)
                + opt_field_len(m.help)
                + opt_field_len(m.unit);
            if out.len() + 1 + varint_len(len as u64) + len > limit {
                return Err(V2Error::TooLarge { limit });
            }
            out.push(METADATA_KEY);
            put_varint(out, len as u64);
            if m.r#type != 0 {
                out.push(0x08); // MetricMetadata.type, field 1
                put_varint(out, i64::from(m.r#type) as u64);
            }
            put_bytes(out, 0x12, m.family); // metric_family_name, field 2
            if !m.help.is_empty() {
                put_bytes(out, 0x22, m.help); // help, field 4
            }
            if !m.unit.is_empty() {
                put_bytes(out, 0x2a, m.unit); // unit, field 5
            }
            summary.metadata += 1;
        }
        Ok(summary)
    }
}

/// Appends one label ref (read as prost reads a `uint32`: the varint's low 32 bits) after checking
/// it names a symbol. Every label pair takes at least 6 bytes in 1.0 form, so a list longer than
/// a third of `limit` refs cannot fit: refused before it grows further.
#[inline(always)]
fn push_ref(
    refs: &mut Vec<u32>,
    v: u64,
    symbols: usize,
    limit: usize,
    series: u64,
    field: &'static str,
) -> Result<(), V2Error> {
    let reference = v as u32;
    if reference as usize >= symbols {
        return Err(V2Error::RefOutOfRange {
            series,
            field,
            reference,
            symbols,
        });
    }
    if refs.len() >= limit / 3 {
        return Err(V2Error::TooLarge { limit });
    }
    refs.push(reference);
    Ok(())
}

/// Reads a 2.0 `Metadata` into `m` (fields present overwrite, as prost merges a message field
/// that occurs more than once).
fn series_metadata(mut r: Reader<'_>, m: &mut SeriesMetadata) -> Result<(), V2Error> {
    while let Some(f) = r.next_field()? {
        match f.number {
            1 => m.r#type = r.varint_value(f, "Metadata.type")? as i32,
            3 => m.help_ref = r.varint_value(f, "Metadata.help_ref")? as u32,
            4 => m.unit_ref = r.varint_value(f, "Metadata.unit_ref")? as u32,
            _ => r.skip(f)?,
        }
    }
    Ok(())
}

/// Validates one 2.0 `Sample` and appends it as a 1.0 one: value and timestamp (2.0's
/// `start_timestamp` has no place in 1.0).
#[inline(always)]
fn sample(r: Reader<'_>, out: &mut Vec<u8>) -> Result<(), V2Error> {
    // The usual encoding, `09 <8-byte value> 10 <timestamp varint>`, is also the 1.0 one: copy it.
    if let [0x09, _, _, _, _, _, _, _, _, 0x10, timestamp @ ..] = r.data
        && (1..=9).contains(&timestamp.len())
        && timestamp[..timestamp.len() - 1]
            .iter()
            .all(|b| b & 0x80 != 0)
        && timestamp[timestamp.len() - 1] & 0x80 == 0
    {
        out.push(SAMPLES_KEY);
        out.push(r.data.len() as u8);
        out.extend_from_slice(r.data);
        return Ok(());
    }
    sample_fields(r, out)
}

#[inline(never)]
fn sample_fields(mut r: Reader<'_>, out: &mut Vec<u8>) -> Result<(), V2Error> {
    let (mut value, mut timestamp) = (0f64, 0i64);
    while let Some(f) = r.next_field()? {
        match f.number {
            1 => value = r.fixed64_value(f, "Sample.value")?,
            2 => timestamp = r.varint_value(f, "Sample.timestamp")? as i64,
            3 => {
                r.varint_value(f, "Sample.start_timestamp")?;
            }
            _ => r.skip(f)?,
        }
    }
    out.push(SAMPLES_KEY);
    put_varint(out, (9 + timestamp_len(timestamp)) as u64);
    out.push(0x09); // Sample.value, field 1, 64-bit
    out.extend_from_slice(&value.to_le_bytes());
    put_timestamp(out, 0x10, timestamp); // Sample.timestamp, field 2
    Ok(())
}

/// Calls `each` with the bytes (key and value) of every field of an already validated histogram
/// that 1.0 has too (fields 1 to 16), in order.
fn for_each_shared_field(mut r: Reader<'_>, mut each: impl FnMut(&[u8])) -> Result<(), V2Error> {
    loop {
        let start = r.pos;
        let Some(f) = r.next_field()? else {
            return Ok(());
        };
        histogram_field(&mut r, f)?;
        if f.number <= 16 {
            each(&r.data[start..r.pos]);
        }
    }
}

/// The 1.0 family name of a series named `name` whose metadata says `r#type`.
fn family_name(r#type: i32, name: &[u8]) -> &[u8] {
    // HISTOGRAM, GAUGEHISTOGRAM, SUMMARY: one family, several series suffixes.
    const SUFFIXED: [i32; 3] = [3, 4, 5];
    if SUFFIXED.contains(&r#type) {
        for suffix in [&b"_bucket"[..], b"_sum", b"_count"] {
            if let Some(family) = name.strip_suffix(suffix)
                && !family.is_empty()
            {
                return family;
            }
        }
    }
    name
}

fn timestamp_len(timestamp: i64) -> usize {
    if timestamp == 0 {
        0
    } else {
        1 + varint_len(timestamp as u64)
    }
}

fn put_timestamp(out: &mut Vec<u8>, key: u8, timestamp: i64) {
    if timestamp != 0 {
        out.push(key);
        put_varint(out, timestamp as u64);
    }
}

fn type_len(r#type: i32) -> usize {
    if r#type == 0 {
        0
    } else {
        1 + varint_len(i64::from(r#type) as u64)
    }
}

fn field_len(bytes: &[u8]) -> usize {
    1 + varint_len(bytes.len() as u64) + bytes.len()
}

fn opt_field_len(bytes: &[u8]) -> usize {
    if bytes.is_empty() {
        0
    } else {
        field_len(bytes)
    }
}

fn put_bytes(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
const _: () = {
    use super::super::wire::LEN;
    // The keys above are the 1.0 field numbers with wire type 2.
    assert!(SERIES_KEY == (1 << 3) | LEN);
    assert!(SAMPLES_KEY == (2 << 3) | LEN);
    assert!(EXEMPLARS_KEY == (3 << 3) | LEN);
    assert!(HISTOGRAMS_KEY == (4 << 3) | LEN);
    assert!(METADATA_KEY == (3 << 3) | LEN);
};
