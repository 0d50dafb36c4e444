//! Label fields every series of a target carries (its target labels such as `instance` and
//! `job`, the external labels), kept once per target instead of in each series' cached labels.
//!
//! A series' cached form is its encoded labels (`TimeSeries.labels` fields) with each run of
//! fields equal to consecutive shared fields cut out and replaced by a 4-byte record:
//!
//! ```text
//! cached = record* own        record = at: u16 LE | first: u8 | count: u8
//! ```
//!
//! `own` is what is left of the labels; a record puts shared fields `first..first+count` back
//! at byte `at` of `own` (records in order of `at`). Expanding gives back exactly the bytes that
//! were split (a proptest pins it), so the written series do not change; what changes is memory:
//! `instance` and `job` are about 40 bytes of every scraped series.
//!
//! Guarantees: [`SharedLabels::split`] never fails; fields it cannot record (past 255 records,
//! an `own` past 64 KiB, a shared set past 255 fields, bytes that are not label fields) stay in
//! `own` as they are.
//!
//! Must not: decide labels; it only stores what it is given.

/// Bytes of one record.
pub(super) const RECORD: usize = 4;

/// The shared fields of one target, in the order given (sorted by label name, as series hold
/// them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SharedLabels {
    bytes: Vec<u8>,
    /// Where each field starts in `bytes`, then the end: `fields + 1` offsets.
    at: Vec<u32>,
}

/// Most shared fields a record can name.
const MAX_FIELDS: usize = 255;

/// The end of the label field starting at `pos` (tag 1, length-delimited), if one does.
fn field_end(b: &[u8], pos: usize) -> Option<usize> {
    if b.get(pos) != Some(&0x0a) {
        return None;
    }
    let (mut len, mut shift, mut i) = (0usize, 0u32, pos + 1);
    loop {
        let byte = *b.get(i)?;
        i += 1;
        len |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
    let end = i.checked_add(len)?;
    (end <= b.len()).then_some(end)
}

impl SharedLabels {
    /// The shared set of `fields` (encoded `TimeSeries.labels` fields, one after another); the
    /// first 255 fields are kept, and nothing from the first byte that is not a field.
    pub fn new(fields: &[u8]) -> SharedLabels {
        let mut shared = SharedLabels::default();
        let mut pos = 0;
        while shared.at.len() < MAX_FIELDS {
            let Some(end) = field_end(fields, pos) else {
                break;
            };
            shared.at.push(pos as u32);
            pos = end;
        }
        if shared.at.is_empty() {
            return shared;
        }
        shared.bytes = fields[..pos].to_vec();
        shared.at.push(pos as u32);
        shared
    }

    pub fn is_empty(&self) -> bool {
        self.at.len() < 2
    }

    fn fields(&self) -> usize {
        self.at.len().saturating_sub(1)
    }

    /// Shared fields `first..first + count`, one after another.
    #[inline]
    fn run(&self, first: u8, count: u8) -> &[u8] {
        let (a, b) = (usize::from(first), usize::from(first) + usize::from(count));
        match (self.at.get(a), self.at.get(b)) {
            (Some(&s), Some(&e)) => &self.bytes[s as usize..e as usize],
            // Records are only made against this set (see `ScrapeCache::share_labels`).
            _ => &[],
        }
    }

    fn position(&self, field: &[u8]) -> Option<usize> {
        (0..self.fields())
            .find(|&k| &self.bytes[self.at[k] as usize..self.at[k + 1] as usize] == field)
    }

    /// Writes the cached form of `labels` into `out` (cleared first); returns its number of
    /// records.
    pub fn split(&self, labels: &[u8], out: &mut Vec<u8>) -> u8 {
        out.clear();
        if self.is_empty() {
            out.extend_from_slice(labels);
            return 0;
        }
        // (at, first, count) of each record, and the label bytes that stay.
        let mut records: smallvec::SmallVec<[(u16, u8, u8); 4]> = smallvec::SmallVec::new();
        let mut own: smallvec::SmallVec<[(usize, usize); 8]> = smallvec::SmallVec::new();
        let (mut own_len, mut pos) = (0usize, 0usize);
        while pos < labels.len() {
            let Some(end) = field_end(labels, pos) else {
                own.push((pos, labels.len()));
                break;
            };
            let shared = self
                .position(&labels[pos..end])
                .filter(|_| own_len <= usize::from(u16::MAX));
            let room = records.len() < usize::from(u8::MAX);
            match (shared, records.last_mut()) {
                (Some(k), Some(last))
                    if usize::from(last.0) == own_len
                        && usize::from(last.1) + usize::from(last.2) == k
                        && last.2 < u8::MAX =>
                {
                    last.2 += 1;
                }
                (Some(k), _) if room => {
                    // k < 255: the set keeps at most 255 fields.
                    records.push((own_len as u16, k as u8, 1));
                }
                _ => {
                    match own.last_mut() {
                        Some(last) if last.1 == pos => last.1 = end,
                        _ => own.push((pos, end)),
                    }
                    own_len += end - pos;
                }
            }
            pos = end;
        }
        for &(at, first, count) in &records {
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&[first, count]);
        }
        for &(a, b) in &own {
            out.extend_from_slice(&labels[a..b]);
        }
        records.len() as u8
    }

    /// A cached form with one record as the three pieces it expands to (the common case: the
    /// target labels are one run); `None` for any other number of records.
    #[inline]
    pub fn one_run<'c>(&'c self, cached: &'c [u8], n: u8) -> Option<[&'c [u8]; 3]> {
        if n != 1 || cached.len() < RECORD {
            return None;
        }
        let (record, own) = cached.split_at(RECORD);
        let at = usize::from(u16::from_le_bytes([record[0], record[1]])).min(own.len());
        Some([&own[..at], self.run(record[2], record[3]), &own[at..]])
    }

    /// Records of a cached form with `n` of them, and its own bytes.
    #[inline]
    fn parts(cached: &[u8], n: u8) -> (impl Iterator<Item = (usize, u8, u8)> + '_, &[u8]) {
        let split = (usize::from(n) * RECORD).min(cached.len());
        let (records, own) = cached.split_at(split);
        let records = records
            .chunks_exact(RECORD)
            .map(|r| (usize::from(u16::from_le_bytes([r[0], r[1]])), r[2], r[3]));
        (records, own)
    }

    /// The length of the labels a cached form with `n` records stands for.
    #[inline]
    pub fn expanded_len(&self, cached: &[u8], n: u8) -> usize {
        let (records, own) = Self::parts(cached, n);
        own.len()
            + records
                .map(|(_, first, count)| self.run(first, count).len())
                .sum::<usize>()
    }

    /// Appends the labels a cached form with `n` records stands for.
    #[inline]
    pub fn expand_into(&self, cached: &[u8], n: u8, out: &mut Vec<u8>) {
        let (records, own) = Self::parts(cached, n);
        let mut done = 0;
        for (at, first, count) in records {
            let at = at.clamp(done, own.len());
            out.extend_from_slice(&own[done..at]);
            out.extend_from_slice(self.run(first, count));
            done = at;
        }
        out.extend_from_slice(&own[done..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::encode_labels_into;
    use proptest::prelude::*;

    fn encoded(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_labels_into(pairs.iter().copied(), &mut out);
        out
    }

    fn expanded(shared: &SharedLabels, cached: &[u8], n: u8) -> Vec<u8> {
        let mut out = Vec::new();
        shared.expand_into(cached, n, &mut out);
        assert_eq!(out.len(), shared.expanded_len(cached, n));
        out
    }

    #[test]
    fn instance_and_job_become_one_record() {
        let shared = SharedLabels::new(&encoded(&[("instance", "h:9100"), ("job", "node")]));
        let full = encoded(&[
            ("__name__", "node_cpu_seconds_total"),
            ("cpu", "0"),
            ("instance", "h:9100"),
            ("job", "node"),
            ("mode", "idle"),
        ]);
        let mut cached = Vec::new();
        let n = shared.split(&full, &mut cached);
        assert_eq!(n, 1);
        let own = encoded(&[
            ("__name__", "node_cpu_seconds_total"),
            ("cpu", "0"),
            ("mode", "idle"),
        ]);
        let at = own.len() - encoded(&[("mode", "idle")]).len();
        let mut want = (at as u16).to_le_bytes().to_vec();
        want.extend_from_slice(&[0, 2]);
        want.extend_from_slice(&own);
        assert_eq!(cached, want, "golden cached form");
        assert_eq!(expanded(&shared, &cached, n), full);
    }

    #[test]
    fn a_field_with_another_value_stays_in_the_series() {
        let shared = SharedLabels::new(&encoded(&[("instance", "a"), ("job", "node")]));
        let full = encoded(&[("__name__", "m"), ("instance", "b"), ("job", "node")]);
        let mut cached = Vec::new();
        let n = shared.split(&full, &mut cached);
        assert_eq!(n, 1);
        assert_eq!(
            cached.len(),
            RECORD + full.len() - encoded(&[("job", "node")]).len()
        );
        assert_eq!(expanded(&shared, &cached, n), full);
    }

    #[test]
    fn no_shared_fields_keep_the_labels_as_they_are() {
        let full = encoded(&[("__name__", "m"), ("a", "1")]);
        let mut cached = Vec::new();
        assert_eq!(SharedLabels::default().split(&full, &mut cached), 0);
        assert_eq!(cached, full);
    }

    fn pair() -> impl Strategy<Value = (String, String)> {
        (
            prop::sample::select(vec!["__name__", "a", "instance", "job", "z"]),
            prop::sample::select(vec!["", "1", "x", "node", "h:9100"]),
        )
            .prop_map(|(n, v)| (n.to_string(), v.to_string()))
    }

    proptest! {
        /// Whatever the labels and the shared set (overlapping, repeated, out of order, or not
        /// label fields at all), the cached form expands to exactly the labels.
        #[test]
        fn split_then_expand_gives_back_the_labels(
            labels in prop::collection::vec(pair(), 0..8),
            shared in prop::collection::vec(pair(), 0..5),
            raw_tail in prop::collection::vec(any::<u8>(), 0..4),
        ) {
            let as_refs = |v: &[(String, String)]| -> Vec<u8> {
                let pairs: Vec<(&str, &str)> = v.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                encoded(&pairs)
            };
            let mut full = as_refs(&labels);
            full.extend_from_slice(&raw_tail);
            let shared = SharedLabels::new(&as_refs(&shared));
            let mut cached = Vec::new();
            let n = shared.split(&full, &mut cached);
            prop_assert_eq!(expanded(&shared, &cached, n), full);
        }
    }
}
