//! A streaming `WriteRequest` encoder: appends one series with one sample at a time, straight from
//! borrowed label slices into a reused buffer, without building prost structs. The scraper's hot
//! path; tests pin it against prost's decoding.

/// Writes `WriteRequest.timeseries` entries into a buffer. The buffer is a valid serialized
/// `WriteRequest` after every call (a message of only repeated field 1).
#[derive(Debug, Default)]
pub struct WriteRequestEncoder {
    buf: Vec<u8>,
    series: usize,
}

pub(super) fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of a `Label` message body.
pub(super) fn label_len(name: &[u8], value: &[u8]) -> usize {
    1 + varint_len(name.len() as u64)
        + name.len()
        + 1
        + varint_len(value.len() as u64)
        + value.len()
}

/// Appends one label as a `TimeSeries.labels` (or `Exemplar.labels`: also field 1) entry.
pub(super) fn put_label(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x0a); // TimeSeries.labels, field 1
    put_varint(out, label_len(name, value) as u64);
    out.push(0x0a); // Label.name
    put_varint(out, name.len() as u64);
    out.extend_from_slice(name);
    out.push(0x12); // Label.value
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Bytes of a `Sample` message body: double value (field 1) and int64 timestamp (field 2).
fn sample_len(timestamp_ms: i64) -> usize {
    9 + if timestamp_ms == 0 {
        0
    } else {
        1 + varint_len(timestamp_ms as u64)
    }
}

fn put_sample(b: &mut Vec<u8>, value: f64, timestamp_ms: i64, s_len: usize) {
    b.push(0x12); // TimeSeries.samples, field 2
    put_varint(b, s_len as u64);
    b.push(0x09); // Sample.value, field 1, 64-bit
    b.extend_from_slice(&value.to_le_bytes());
    if timestamp_ms != 0 {
        b.push(0x10); // Sample.timestamp, field 2, varint
        put_varint(b, timestamp_ms as u64);
    }
}

/// Appends `labels` as `TimeSeries.labels` fields (what [`WriteRequestEncoder::push_raw_labels`]
/// takes): the scraper encodes a series' labels once and reuses the bytes on every scrape.
/// `labels` must be sorted by name, without duplicates.
pub fn encode_labels_into<'a, I>(labels: I, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    for (n, v) in labels {
        put_label(out, n.as_bytes(), v.as_bytes());
    }
}

impl WriteRequestEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one series with one sample. `labels` must be sorted by name, without duplicates
    /// (the caller's contract, as in remote-write). Returns where the series' encoded labels
    /// are in [`Self::as_bytes`]: a key for the series, and what [`Self::push_raw_labels`] takes.
    pub fn push_series<'a, I>(
        &mut self,
        labels: I,
        value: f64,
        timestamp_ms: i64,
    ) -> std::ops::Range<usize>
    where
        I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        let labels_len: usize = labels
            .clone()
            .into_iter()
            .map(|(n, v)| {
                let l = label_len(n.as_bytes(), v.as_bytes());
                1 + varint_len(l as u64) + l
            })
            .sum();
        let s_len = sample_len(timestamp_ms);
        let series_len = labels_len + 1 + varint_len(s_len as u64) + s_len;
        let b = &mut self.buf;
        b.reserve(1 + varint_len(series_len as u64) + series_len);
        b.push(0x0a); // WriteRequest.timeseries, field 1, length-delimited
        put_varint(b, series_len as u64);
        let labels_start = b.len();
        encode_labels_into(labels, b);
        let labels_end = b.len();
        put_sample(b, value, timestamp_ms, s_len);
        self.series += 1;
        labels_start..labels_end
    }

    /// Appends one series whose labels are given already encoded: the bytes a
    /// [`Self::push_series`] call's returned range covered (for example in an earlier buffer).
    pub fn push_raw_labels(&mut self, labels: &[u8], value: f64, timestamp_ms: i64) {
        let s_len = sample_len(timestamp_ms);
        let series_len = labels.len() + 1 + varint_len(s_len as u64) + s_len;
        let b = &mut self.buf;
        b.push(0x0a);
        put_varint(b, series_len as u64);
        b.extend_from_slice(labels);
        put_sample(b, value, timestamp_ms, s_len);
        self.series += 1;
    }

    /// Appends one series whose encoded labels, `labels_len` bytes, `write_labels` appends
    /// (labels kept in pieces, for example).
    #[inline]
    pub fn push_labels_with(
        &mut self,
        labels_len: usize,
        write_labels: impl FnOnce(&mut Vec<u8>),
        value: f64,
        timestamp_ms: i64,
    ) {
        let s_len = sample_len(timestamp_ms);
        let series_len = labels_len + 1 + varint_len(s_len as u64) + s_len;
        let b = &mut self.buf;
        b.push(0x0a);
        put_varint(b, series_len as u64);
        let at = b.len();
        write_labels(b);
        debug_assert_eq!(
            b.len() - at,
            labels_len,
            "labels_len must be what is written"
        );
        put_sample(b, value, timestamp_ms, s_len);
        self.series += 1;
    }

    /// Appends one series whose encoded labels are `parts`, one after another.
    #[inline]
    pub fn push_labels_parts(&mut self, parts: [&[u8]; 3], value: f64, timestamp_ms: i64) {
        let labels_len = parts[0].len() + parts[1].len() + parts[2].len();
        let write = |b: &mut Vec<u8>| {
            // One reservation for the pieces and the sample after them (at most 24 bytes).
            b.reserve(labels_len + 24);
            for part in parts {
                b.extend_from_slice(part);
            }
        };
        self.push_labels_with(labels_len, write, value, timestamp_ms);
    }

    /// Cuts the buffer back to `len` bytes holding `series` series (undoing later pushes).
    pub fn truncate(&mut self, len: usize, series: usize) {
        self.buf.truncate(len);
        self.series = series;
    }

    /// Takes the buffer out, leaving `replacement` (cleared) in its place.
    pub fn swap_buffer(&mut self, mut replacement: Vec<u8>) -> Vec<u8> {
        replacement.clear();
        self.series = 0;
        std::mem::replace(&mut self.buf, replacement)
    }

    /// Bytes the buffer holds without growing.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Series written so far.
    pub fn series(&self) -> usize {
        self.series
    }

    /// The serialized `WriteRequest`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Empties the encoder, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.series = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{Label, Sample, TimeSeries, WriteRequest, decode_write_request};
    use proptest::prelude::*;

    /// Labels, value and timestamp of one generated series.
    type GeneratedSeries = (Vec<(String, String)>, f64, i64);

    fn expected(series: &[GeneratedSeries]) -> WriteRequest {
        WriteRequest {
            timeseries: series
                .iter()
                .map(|(labels, v, t)| TimeSeries {
                    labels: labels.iter().map(|(n, v)| Label::new(n, v)).collect(),
                    samples: vec![Sample {
                        value: *v,
                        timestamp: *t,
                    }],
                    ..Default::default()
                })
                .collect(),
            metadata: vec![],
        }
    }

    #[test]
    fn encoded_series_decode_with_prost() {
        let mut e = WriteRequestEncoder::new();
        e.push_series(
            [("__name__", "up"), ("job", "node")],
            1.0,
            1_700_000_000_000,
        );
        e.push_series([("__name__", "x")], f64::NAN, -5);
        let got = decode_write_request(e.as_bytes()).unwrap();
        assert_eq!(got.timeseries.len(), 2);
        assert_eq!(got.timeseries[0].labels[1], Label::new("job", "node"));
        assert_eq!(got.timeseries[0].samples[0].timestamp, 1_700_000_000_000);
        assert!(got.timeseries[1].samples[0].value.is_nan());
        assert_eq!(got.timeseries[1].samples[0].timestamp, -5);
    }

    #[test]
    fn raw_labels_from_an_earlier_buffer_make_the_same_series() {
        let mut a = WriteRequestEncoder::new();
        let range = a.push_series([("__name__", "up"), ("job", "x")], 1.0, 10);
        let mut b = WriteRequestEncoder::new();
        b.push_raw_labels(&a.as_bytes()[range], 0.0, 20);
        let got = decode_write_request(b.as_bytes()).unwrap();
        assert_eq!(
            got.timeseries[0].labels,
            vec![Label::new("__name__", "up"), Label::new("job", "x")]
        );
        assert_eq!(got.timeseries[0].samples[0].timestamp, 20);
    }

    #[test]
    fn truncate_undoes_a_push() {
        let mut e = WriteRequestEncoder::new();
        e.push_series([("__name__", "a")], 1.0, 1);
        let (len, n) = (e.as_bytes().len(), e.series());
        e.push_series([("__name__", "b")], 1.0, 1);
        e.truncate(len, n);
        let got = decode_write_request(e.as_bytes()).unwrap();
        assert_eq!(got.timeseries.len(), 1);
        assert_eq!(e.series(), 1);
    }

    #[test]
    fn stale_marker_bits_survive_encoding() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let mut e = WriteRequestEncoder::new();
        e.push_series([("__name__", "gone")], stale, 1);
        let got = decode_write_request(e.as_bytes()).unwrap();
        assert_eq!(
            got.timeseries[0].samples[0].value.to_bits(),
            0x7ff0_0000_0000_0002
        );
    }

    proptest! {
        #[test]
        fn encoder_matches_prost_for_any_series(
            series in prop::collection::vec(
                (
                    prop::collection::vec(("[a-z_]{1,8}", ".{0,20}"), 0..6),
                    any::<f64>(),
                    any::<i64>(),
                ),
                0..20,
            )
        ) {
            let mut e = WriteRequestEncoder::new();
            for (labels, v, t) in &series {
                e.push_series(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())), *v, *t);
            }
            // Same message (prost leaves out default values, we write them: both are valid);
            // compared through prost's own encoding so NaN payloads count too.
            let want = prost::Message::encode_to_vec(&expected(&series));
            let got = decode_write_request(e.as_bytes()).expect("decodes");
            prop_assert_eq!(prost::Message::encode_to_vec(&got), want);
            prop_assert_eq!(e.series(), series.len());
        }
    }
}
