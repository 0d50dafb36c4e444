//! A target's scrape cache: what the loop remembers about each series between scrapes, as
//! Prometheus' scrape cache does.
//!
//! Owns: the mapping from a series as written in the exposition (`name{labels}`, exactly the
//! bytes of the body) to its final labels already encoded as remote-write `TimeSeries.labels`
//! fields, and which series the previous batch held. A series seen before costs one hash of its
//! text, one comparison with the text expected at that point of the body (exporters keep their
//! order) and one copy of its label bytes: no label parsing, sorting, merging, relabeling or
//! encoding. Hash maps are built only for a scrape that needs them (new series, a new order),
//! so a steady target keeps just its label bytes and two short lists. The previous batch's
//! series are where stale markers and `scrape_series_added` come from.
//!
//! Guarantees:
//! - A cached mapping is only valid for the loop's configuration (target labels, `honor_labels`,
//!   metric relabeling, external labels): a loop that is replaced (reload) hands over
//!   [`ScrapeCache::hand_over`], which forgets the texts and keeps only the previous batch's
//!   label sets, so the new loop recomputes every series once and still knows which are not new.
//! - One series at most once per batch, also when two different texts give the same labels (for
//!   example `m{a="1",}` and `m{a="1"}`, or labels dropped by relabeling): texts are linked to
//!   one entry by the hash of the encoded labels, checked byte for byte.
//! - After [`ScrapeCache::finish`] the cache holds exactly the series of the batch just built
//!   (plus texts that metric relabeling drops, so they stay cheap); every series of the previous
//!   batch missing from it got a stale marker.
//! - Texts are keyed by their 128-bit xxh3 hash without keeping the text. Two different series
//!   texts colliding is about 2^-128 per pair (Prometheus keeps the string instead; it costs
//!   memory per series for no practical gain). Label hashes are 64-bit but checked.
//! - Memory per series: its encoded labels less the fields every series of the target carries
//!   (target and external labels, kept once: see `cache/shared.rs`), a 32-byte entry (which holds its
//!   text's hash) and 4 bytes in each of the two order lists (was 104 bytes besides the labels:
//!   60 MiB less at 1,000 targets of 1,000 series). A second text of the same series is an entry
//!   of its own.
//!
//! Must not: fetch, parse or send; decide a series' labels (that is [`crate::exposition::series`]).

mod shared;

use xxhash_rust::xxh3::{xxh3_64, xxh3_128, xxh3_128_with_seed};

use shared::SharedLabels;

use crate::exposition::series::{Added, HashKeyed, STALE_NAN_BITS};
use crate::prompb::WriteRequestEncoder;

/// The hash of a series as written in an exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextKey([u64; 2]);

impl TextKey {
    /// The key of `name{labels}` as the parser handed it out ([`crate::exposition::parse::SampleRef::series`]).
    #[inline]
    pub fn of_series(series: &[u8]) -> TextKey {
        TextKey::from(xxh3_128(series))
    }

    /// The key of a series the scraper adds itself (`up`, `scrape_duration_seconds`, ...): kept
    /// apart from a scraped series of the same name.
    pub fn of_report(name: &str) -> TextKey {
        TextKey::from(xxh3_128_with_seed(name.as_bytes(), 0x7265_706f_7274))
    }

    #[inline]
    fn from(h: u128) -> TextKey {
        // Two u64 halves: 8-byte alignment keeps an `Entry` at 32 bytes (a u128 would pad it to 48).
        TextKey([h as u64, (h >> 64) as u64])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A free slot.
    Free,
    /// Metric relabeling drops this series' text.
    Dropped,
    /// A series with labels in the arena (`start`, `len`).
    Series,
    /// A second text of the series in entry `start` (`m{a="1",}` beside `m{a="1"}`).
    Alias,
}

/// One series or text; 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The text that found this entry last (for `Series`, unless `has_text` is false).
    text: TextKey,
    /// `Series`: where its labels start in the arena. `Alias`: the entry of its series.
    start: u32,
    len: u32,
    /// The scrape that last wrote it; 0 = none.
    last: u32,
    state: State,
    /// Whether the series was in the previous batch (set when written in this scrape).
    was_prev: bool,
    /// A handed-over series keeps its labels but forgets its text until it is seen again.
    has_text: bool,
    /// `Series`: records of shared fields at the start of its arena bytes ([`shared`]).
    records: u8,
}

const FREE: Entry = Entry {
    text: TextKey([0, 0]),
    start: 0,
    len: 0,
    last: 0,
    state: State::Free,
    was_prev: false,
    has_text: false,
    records: 0,
};

/// The cache of a target whose encoded labels passed 4 GiB (an exposition of several GiB).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the scrape cache holds 4 GiB of labels: too many series")]
pub struct CacheFull;

/// One target's memory of its series. See the module documentation.
///
/// Memory per series: its encoded labels, one 32-byte entry (holding its text's hash) and
/// 4 bytes in each of the two order lists. The maps below exist only during a scrape that
/// meets a new series or a new order.
#[derive(Debug, Default)]
pub struct ScrapeCache {
    /// Encoded labels of the entries in their cached form (see [`shared`]), one after another
    /// (with holes until compacted).
    arena: Vec<u8>,
    /// The label fields the target's series share, cut out of their cached labels.
    shared: SharedLabels,
    /// Where [`Self::insert`] puts a series' cached form.
    split: Vec<u8>,
    /// Bytes of the arena live entries use.
    live_bytes: usize,
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// The entries of the last scrape's texts in the order the body had them. Exporters write
    /// their series in the same order every time, so a scrape is matched against this list one
    /// by one, reading memory in order; a hash map of 300 targets' series would cost a cache
    /// miss per sample instead.
    order: Vec<u32>,
    /// Where in `order` the next text is expected.
    cursor: usize,
    /// The entries of this scrape's texts so far (the next `order`).
    next: Vec<u32>,
    /// Every known text -> (entry, position in `order` or `NO_POS`): built only when `order`
    /// fails to find a text (a new series, or a body in a new order), for that scrape only.
    by_text: Option<HashKeyed<TextKey, (u32, u32)>>,
    /// `Series` entries by the hash of their labels: built for the first new text of a scrape,
    /// for that scrape only.
    by_labels: Option<HashKeyed<u64, u32>>,
    /// The scrape being built (the previous one is `scrape - 1`).
    scrape: u32,
    /// Series of this scrape that the previous batch did not have.
    added: usize,
}

/// How far past the expected position a text is looked for before asking the map: a few
/// series that vanished from the middle of a body.
const LOOKAHEAD: usize = 4;
const NO_POS: u32 = u32::MAX;

impl ScrapeCache {
    /// Starts a new scrape: series written from now on belong to the new batch.
    pub fn begin(&mut self) {
        if self.scrape >= u32::MAX - 1 {
            self.renumber();
        }
        // Scrape numbers start at 2, so that no entry's `last` (0 = none) is "the previous one".
        self.scrape = self.scrape.max(1) + 1;
        self.added = 0;
        self.cursor = 0;
        self.next.clear();
    }

    /// Once in 2^32 scrapes: the last scrape becomes number 2, older marks none.
    fn renumber(&mut self) {
        for e in &mut self.entries {
            e.last = if e.last == self.scrape { 2 } else { 0 };
        }
        self.scrape = 2;
    }

    /// The entry for a series text, if it was seen before.
    #[inline]
    pub fn lookup(&mut self, text: TextKey) -> Option<u32> {
        let end = self.order.len().min(self.cursor + 1 + LOOKAHEAD);
        let entries = &self.entries;
        if let Some(p) = self.order.get(self.cursor..end).and_then(|expected| {
            expected.iter().position(|&idx| {
                let e = &entries[idx as usize];
                e.text == text && e.has_text
            })
        }) {
            let idx = self.order[self.cursor + p];
            self.cursor += p + 1;
            self.next.push(idx);
            return Some(idx);
        }
        let (idx, pos) = *self.text_map().get(&text)?;
        if pos != NO_POS {
            self.cursor = pos as usize + 1;
        }
        self.next.push(idx);
        Some(idx)
    }

    fn text_map(&mut self) -> &mut HashKeyed<TextKey, (u32, u32)> {
        let (order, next, entries) = (&self.order, &self.next, &self.entries);
        self.by_text.get_or_insert_with(|| {
            let mut map = HashKeyed::default();
            map.reserve(order.len() + next.len());
            for (pos, &idx) in order.iter().enumerate() {
                let e = &entries[idx as usize];
                if e.has_text {
                    map.insert(e.text, (idx, u32::try_from(pos).unwrap_or(NO_POS)));
                }
            }
            for &idx in next {
                let e = &entries[idx as usize];
                if e.has_text {
                    map.entry(e.text).or_insert((idx, NO_POS));
                }
            }
            map
        })
    }

    fn labels_map(&mut self) -> &mut HashKeyed<u64, u32> {
        let (entries, arena) = (&self.entries, &self.arena);
        self.by_labels.get_or_insert_with(|| {
            let mut map = HashKeyed::default();
            for (idx, e) in entries.iter().enumerate() {
                if e.state == State::Series {
                    let labels = &arena[e.start as usize..(e.start + e.len) as usize];
                    // On a (checked) collision the first keeps the slot; see `insert`.
                    map.entry(xxh3_64(labels)).or_insert(idx as u32);
                }
            }
            map
        })
    }

    /// Records what a series text [`Self::lookup`] did not know turned into: its encoded
    /// `labels`, or `None` when metric relabeling drops it. Returns the entry to [`Self::write`].
    pub fn insert(&mut self, text: TextKey, labels: Option<&[u8]>) -> Result<u32, CacheFull> {
        let idx = self.entry_for(text, labels)?;
        if let Some(map) = &mut self.by_text {
            map.insert(text, (idx, NO_POS));
        }
        self.next.push(idx);
        Ok(idx)
    }

    /// The entry that will hold `text`: a new `Dropped` one, the series with these labels
    /// (taking the text if it has none, else through a new `Alias`), or a new series.
    fn entry_for(&mut self, text: TextKey, labels: Option<&[u8]>) -> Result<u32, CacheFull> {
        let with_text = |state| Entry {
            text,
            state,
            has_text: true,
            ..FREE
        };
        let Some(labels) = labels else {
            return Ok(self.new_entry(with_text(State::Dropped)));
        };
        let mut split = std::mem::take(&mut self.split);
        let records = self.shared.split(labels, &mut split);
        let found = self.series_entry(text, &split, records, with_text);
        self.split = split;
        found
    }

    /// [`Self::entry_for`] a series whose cached form is `labels` with `records` records.
    fn series_entry(
        &mut self,
        text: TextKey,
        labels: &[u8],
        records: u8,
        with_text: impl Fn(State) -> Entry,
    ) -> Result<u32, CacheFull> {
        let key = xxh3_64(labels);
        if let Some(&idx) = self.labels_map().get(&key) {
            let e = &mut self.entries[idx as usize];
            if self.arena[e.start as usize..(e.start + e.len) as usize] == *labels {
                if !e.has_text {
                    e.text = text;
                    e.has_text = true;
                    return Ok(idx);
                }
                return Ok(self.new_entry(Entry {
                    start: idx,
                    ..with_text(State::Alias)
                }));
            }
        }
        if self.arena.len() + labels.len() > u32::MAX as usize {
            self.compact();
        }
        let start = u32::try_from(self.arena.len()).map_err(|_| CacheFull)?;
        let len = u32::try_from(labels.len()).map_err(|_| CacheFull)?;
        if start.checked_add(len).is_none() {
            return Err(CacheFull);
        }
        self.arena.extend_from_slice(labels);
        self.live_bytes += labels.len();
        let idx = self.new_entry(Entry {
            start,
            len,
            records,
            ..with_text(State::Series)
        });
        // On a (checked) 64-bit collision the first keeps the slot; the second is still cached
        // by its text, only not found by its labels.
        self.labels_map().entry(key).or_insert(idx);
        Ok(idx)
    }

    fn new_entry(&mut self, e: Entry) -> u32 {
        if let Some(idx) = self.free.pop() {
            self.entries[idx as usize] = e;
            idx
        } else {
            self.entries.push(e);
            // A target with 2^32 series would have failed its body size long before.
            u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
        }
    }

    /// Writes a sample of entry `idx` into `batch`, unless the batch already has that series or
    /// relabeling drops it.
    #[inline]
    pub fn write(
        &mut self,
        idx: u32,
        value: f64,
        timestamp_ms: i64,
        batch: &mut WriteRequestEncoder,
    ) -> Added {
        let scrape = self.scrape;
        let Some(e) = self.entries.get_mut(idx as usize) else {
            return Added::Relabeled;
        };
        let idx = match e.state {
            State::Alias => {
                // The text stays known; the series is written (once) under its own entry.
                e.last = scrape;
                e.start
            }
            _ => idx,
        };
        let Some(e) = self.entries.get_mut(idx as usize) else {
            return Added::Relabeled;
        };
        if e.last == scrape {
            return match e.state {
                State::Series => Added::Duplicate,
                _ => Added::Relabeled,
            };
        }
        e.was_prev = e.last + 1 == scrape;
        e.last = scrape;
        if e.state != State::Series {
            return Added::Relabeled;
        }
        if !e.was_prev {
            self.added += 1;
        }
        push_series(&self.arena, &self.shared, e, value, timestamp_ms, batch);
        Added::Series
    }

    /// Series written in this scrape that the previous batch lacked (`scrape_series_added`).
    pub fn added(&self) -> usize {
        self.added
    }

    /// The scrape failed: forgets what this scrape wrote so far (the caller empties the batch),
    /// so [`Self::finish`] sees the previous batch's series as gone.
    pub fn abort(&mut self) {
        let scrape = self.scrape;
        for e in &mut self.entries {
            if e.state != State::Free && e.last == scrape {
                e.last = if e.was_prev { scrape - 1 } else { 0 };
            }
        }
        self.added = 0;
    }

    /// Ends the scrape: a stale marker at `timestamp_ms` into `batch` for every series of the
    /// previous batch this one lacks, and forgets them. Returns the number of stale markers.
    pub fn finish(&mut self, batch: &mut WriteRequestEncoder, timestamp_ms: i64) -> usize {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let (scrape, mut markers, mut removed) = (self.scrape, 0, false);
        for (idx, e) in self.entries.iter_mut().enumerate() {
            if e.state == State::Free || e.last == scrape {
                continue;
            }
            if e.state == State::Series {
                if e.last + 1 == scrape {
                    push_series(&self.arena, &self.shared, e, stale, timestamp_ms, batch);
                    markers += 1;
                }
                self.live_bytes -= e.len as usize;
            }
            *e = FREE;
            self.free.push(idx as u32);
            removed = true;
        }
        if removed {
            let entries = &self.entries;
            // Texts of entries just forgotten (after a failed scrape) must not come back.
            self.next
                .retain(|&idx| entries[idx as usize].state != State::Free);
            self.compact();
        }
        std::mem::swap(&mut self.order, &mut self.next);
        self.next.clear();
        self.cursor = 0;
        self.by_text = None;
        self.by_labels = None;
        markers
    }

    /// Rewrites the arena without holes once they outweigh the live bytes.
    fn compact(&mut self) {
        if self.arena.len() <= 2 * self.live_bytes + 4096 {
            return;
        }
        let mut arena = Vec::with_capacity(self.live_bytes);
        for e in &mut self.entries {
            if e.state == State::Series {
                // The arena only shrinks here, so the new offset fits as the old one did.
                let start = arena.len() as u32;
                arena.extend_from_slice(&self.arena[e.start as usize..(e.start + e.len) as usize]);
                e.start = start;
            }
        }
        self.arena = arena;
        self.entries.truncate(
            self.entries
                .iter()
                .rposition(|e| e.state != State::Free)
                .map_or(0, |i| i + 1),
        );
        let len = self.entries.len();
        self.free.retain(|&i| (i as usize) < len);
        self.entries.shrink_to(len * 2);
        self.free.shrink_to(len);
    }

    /// Series in the last batch (and texts relabeling drops).
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stale markers at `timestamp_ms` into `batch` for every series of the last batch (the
    /// target is gone).
    pub fn all_stale_into(&self, timestamp_ms: i64, batch: &mut WriteRequestEncoder) {
        let stale = f64::from_bits(STALE_NAN_BITS);
        for e in &self.entries {
            if e.state == State::Series && e.last == self.scrape {
                push_series(&self.arena, &self.shared, e, stale, timestamp_ms, batch);
            }
        }
    }

    /// Sets the label fields every series of the target carries (`fields`: encoded
    /// `TimeSeries.labels` fields, sorted by name as series hold them), which the cache then
    /// keeps once instead of in each series. A loop calls it before its first scrape; the
    /// cached series are rewritten when the set differs from the one they were cut against (a
    /// handed-over cache), so what they stand for never changes. Fails, changing nothing, when
    /// the rewritten labels would pass 4 GiB.
    pub fn share_labels(&mut self, fields: &[u8]) -> Result<(), CacheFull> {
        let shared = SharedLabels::new(fields);
        if shared == self.shared {
            return Ok(());
        }
        // The new place of every series, applied once all fit.
        let mut moved: Vec<(u32, u32, u8)> = Vec::with_capacity(self.entries.len());
        let (mut arena, mut full) = (Vec::with_capacity(self.live_bytes), Vec::new());
        let mut split = std::mem::take(&mut self.split);
        for e in &self.entries {
            if e.state != State::Series {
                moved.push((e.start, e.len, e.records));
                continue;
            }
            full.clear();
            let cached = &self.arena[e.start as usize..(e.start + e.len) as usize];
            self.shared.expand_into(cached, e.records, &mut full);
            let records = shared.split(&full, &mut split);
            let start = u32::try_from(arena.len()).map_err(|_| CacheFull)?;
            let len = u32::try_from(split.len()).map_err(|_| CacheFull)?;
            start.checked_add(len).ok_or(CacheFull)?;
            arena.extend_from_slice(&split);
            moved.push((start, len, records));
        }
        for (e, (start, len, records)) in self.entries.iter_mut().zip(moved) {
            (e.start, e.len, e.records) = (start, len, records);
        }
        self.split = split;
        self.live_bytes = arena.len();
        self.arena = arena;
        self.shared = shared;
        self.by_labels = None;
        Ok(())
    }

    /// What a loop replacing this one (reload, new settings) may keep: the last batch's label
    /// sets, so its first scrape knows which series are not new and which vanished. The texts
    /// are forgotten: the new settings may give them other labels.
    pub fn hand_over(mut self) -> ScrapeCache {
        for (idx, e) in self.entries.iter_mut().enumerate() {
            match e.state {
                State::Dropped | State::Alias => {
                    *e = FREE;
                    self.free.push(idx as u32);
                }
                State::Series => e.has_text = false,
                State::Free => {}
            }
        }
        self.order.clear();
        self.next.clear();
        self.by_text = None;
        self.by_labels = None;
        self
    }
}

/// Writes the series of entry `e` (a `Series`) into `batch`: its cached labels, expanded with
/// the shared fields when it has records.
#[inline]
fn push_series(
    arena: &[u8],
    shared: &SharedLabels,
    e: &Entry,
    value: f64,
    timestamp_ms: i64,
    batch: &mut WriteRequestEncoder,
) {
    let cached = &arena[e.start as usize..(e.start + e.len) as usize];
    if e.records == 0 {
        batch.push_raw_labels(cached, value, timestamp_ms);
    } else if let Some(parts) = shared.one_run(cached, e.records) {
        batch.push_labels_parts(parts, value, timestamp_ms);
    } else {
        batch.push_labels_with(
            shared.expanded_len(cached, e.records),
            |out| shared.expand_into(cached, e.records, out),
            value,
            timestamp_ms,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{Label, decode_write_request, encode_labels_into};

    const RECORD_BYTES: usize = shared::RECORD;

    fn labels(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_labels_into(pairs.iter().copied(), &mut out);
        out
    }

    /// One scrape of `series` (text, labels) with value `v`; returns the batch's (labels, value).
    fn scrape(
        cache: &mut ScrapeCache,
        series: &[(&str, &[(&str, &str)])],
        v: f64,
    ) -> (Vec<(Vec<Label>, u64)>, usize, usize) {
        let mut batch = WriteRequestEncoder::new();
        cache.begin();
        for (text, l) in series {
            let key = TextKey::of_series(text.as_bytes());
            let idx = match cache.lookup(key) {
                Some(idx) => idx,
                None => cache.insert(key, Some(&labels(l))).unwrap(),
            };
            cache.write(idx, v, 1, &mut batch);
        }
        let added = cache.added();
        let stale = cache.finish(&mut batch, 2);
        (decoded(&batch), added, stale)
    }

    fn decoded(batch: &WriteRequestEncoder) -> Vec<(Vec<Label>, u64)> {
        decode_write_request(batch.as_bytes())
            .unwrap()
            .timeseries
            .into_iter()
            .map(|t| (t.labels, t.samples[0].value.to_bits()))
            .collect()
    }

    fn l(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()
    }

    const A: (&str, &[(&str, &str)]) = ("a", &[("__name__", "a")]);
    const B: (&str, &[(&str, &str)]) = ("b", &[("__name__", "b")]);

    #[test]
    fn a_known_series_is_written_from_its_cached_labels() {
        let mut cache = ScrapeCache::default();
        scrape(&mut cache, &[A], 1.0);
        cache.begin();
        let idx = cache.lookup(TextKey::of_series(b"a")).expect("cached");
        let mut batch = WriteRequestEncoder::new();
        assert_eq!(cache.write(idx, 5.0, 1, &mut batch), Added::Series);
        assert_eq!(
            decoded(&batch),
            vec![(l(&[("__name__", "a")]), 5f64.to_bits())]
        );
    }

    #[test]
    fn vanished_series_get_stale_markers_in_the_next_batch() {
        let mut cache = ScrapeCache::default();
        let (_, added, _) = scrape(&mut cache, &[A, B], 1.0);
        assert_eq!(added, 2);
        let (batch, added, stale) = scrape(&mut cache, &[A], 2.0);
        assert_eq!((added, stale), (0, 1));
        assert_eq!(batch[1], (l(&[("__name__", "b")]), STALE_NAN_BITS));
        // Forgotten after its marker: no second marker, and it counts as new when it returns.
        let (_, _, stale) = scrape(&mut cache, &[A], 3.0);
        assert_eq!(stale, 0);
        let (_, added, _) = scrape(&mut cache, &[A, B], 4.0);
        assert_eq!(added, 1);
    }

    #[test]
    fn the_same_text_twice_in_a_scrape_is_written_once() {
        let mut cache = ScrapeCache::default();
        let (batch, _, _) = scrape(&mut cache, &[A, A], 1.0);
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn two_texts_with_the_same_labels_are_one_series() {
        let mut cache = ScrapeCache::default();
        let spaced: (&str, &[(&str, &str)]) = ("a{}", &[("__name__", "a")]);
        let (batch, added, _) = scrape(&mut cache, &[A, spaced], 1.0);
        assert_eq!((batch.len(), added), (1, 1));
        let (batch, _, stale) = scrape(&mut cache, &[spaced], 2.0);
        assert_eq!((batch.len(), stale), (1, 0));
    }

    #[test]
    fn a_series_dropped_by_relabeling_is_remembered_as_dropped() {
        let mut cache = ScrapeCache::default();
        cache.begin();
        let key = TextKey::of_series(b"go_gc");
        let idx = cache.insert(key, None).unwrap();
        let mut batch = WriteRequestEncoder::new();
        assert_eq!(cache.write(idx, 1.0, 1, &mut batch), Added::Relabeled);
        assert_eq!(cache.finish(&mut batch, 2), 0);
        assert_eq!(cache.lookup(key), Some(idx));
        assert_eq!(batch.series(), 0);
    }

    #[test]
    fn a_failed_scrape_marks_every_series_of_the_previous_batch_stale() {
        let mut cache = ScrapeCache::default();
        scrape(&mut cache, &[A, B], 1.0);
        cache.begin();
        let mut batch = WriteRequestEncoder::new();
        let idx = cache.lookup(TextKey::of_series(b"a")).unwrap();
        cache.write(idx, 1.0, 1, &mut batch);
        cache.abort();
        batch.clear();
        assert_eq!(cache.finish(&mut batch, 2), 2);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_removed_target_gets_stale_markers_for_everything() {
        let mut cache = ScrapeCache::default();
        scrape(&mut cache, &[A, B], 1.0);
        let mut enc = WriteRequestEncoder::new();
        cache.all_stale_into(5, &mut enc);
        let batch = decoded(&enc);
        assert_eq!(batch.len(), 2);
        assert!(batch.iter().all(|(_, v)| *v == STALE_NAN_BITS));
    }

    #[test]
    fn a_handed_over_cache_knows_old_series_by_their_labels_only() {
        let mut cache = ScrapeCache::default();
        scrape(&mut cache, &[A, B], 1.0);
        let mut cache = cache.hand_over();
        assert_eq!(cache.lookup(TextKey::of_series(b"a")), None);
        // The new loop's settings give "a" the same labels and "b" new ones.
        let b2: (&str, &[(&str, &str)]) = ("b", &[("__name__", "b"), ("env", "x")]);
        let (batch, added, stale) = scrape(&mut cache, &[A, b2], 2.0);
        assert_eq!((added, stale), (1, 1));
        assert_eq!(batch[2], (l(&[("__name__", "b")]), STALE_NAN_BITS));
    }

    #[test]
    fn report_series_are_kept_apart_from_scraped_series_of_the_same_name() {
        assert_ne!(TextKey::of_report("up"), TextKey::of_series(b"up"));
    }

    #[test]
    fn target_labels_are_kept_once_and_series_are_written_unchanged() {
        let target = [("instance", "10.1.2.3:9100"), ("job", "node")];
        let texts: Vec<String> = (0..10).map(|i| format!("m{{cpu=\"{i}\"}}")).collect();
        let cpus: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let sets: Vec<[(&str, &str); 4]> = cpus
            .iter()
            .map(|cpu| [("__name__", "m"), ("cpu", cpu), target[0], target[1]])
            .collect();
        let refs: Vec<(&str, &[(&str, &str)])> = texts
            .iter()
            .zip(&sets)
            .map(|(t, l)| (t.as_str(), &l[..]))
            .collect();
        let mut plain = ScrapeCache::default();
        let mut shared = ScrapeCache::default();
        shared.share_labels(&labels(&target)).unwrap();
        for round in 0..2 {
            let (want, ..) = scrape(&mut plain, &refs, f64::from(round));
            let (got, ..) = scrape(&mut shared, &refs, f64::from(round));
            assert_eq!(got, want, "round {round}");
        }
        let saved = labels(&target).len() - RECORD_BYTES;
        assert_eq!(shared.live_bytes, plain.live_bytes - 10 * saved);
        // Stale markers come from the cached form too.
        let (got, _, stale) = scrape(&mut shared, &refs[1..], 3.0);
        assert_eq!(stale, 1);
        assert_eq!(got[9], (l(refs[0].1), STALE_NAN_BITS));
    }

    #[test]
    fn a_handed_over_cache_under_other_target_labels_writes_the_same_series() {
        let full: &[(&str, &str)] = &[("__name__", "m"), ("instance", "a"), ("job", "node")];
        let mut cache = ScrapeCache::default();
        cache
            .share_labels(&labels(&[("instance", "a"), ("job", "node")]))
            .unwrap();
        scrape(&mut cache, &[("m", full)], 1.0);
        let mut cache = cache.hand_over();
        cache
            .share_labels(&labels(&[("job", "node"), ("zone", "z")]))
            .unwrap();
        // The old series is still known by its labels: not added, and stale when gone.
        let (batch, added, stale) = scrape(&mut cache, &[("m", full)], 2.0);
        assert_eq!((added, stale), (0, 0));
        assert_eq!(batch, vec![(l(full), 2f64.to_bits())]);
        let (batch, _, stale) = scrape(&mut cache, &[], 3.0);
        assert_eq!(stale, 1);
        assert_eq!(batch, vec![(l(full), STALE_NAN_BITS)]);
    }

    #[test]
    fn an_entry_takes_32_bytes() {
        // The per-series memory the module documentation states.
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn scrape_numbers_wrapping_around_keep_added_and_stale_markers_right() {
        let mut cache = ScrapeCache::default();
        scrape(&mut cache, &[A, B], 1.0);
        cache.scrape = u32::MAX - 3;
        for e in &mut cache.entries {
            if e.state != State::Free {
                e.last = cache.scrape;
            }
        }
        for round in 0..4 {
            let (batch, added, stale) = scrape(&mut cache, &[A, B], f64::from(round));
            assert_eq!((batch.len(), added, stale), (2, 0, 0), "round {round}");
        }
        let (batch, added, stale) = scrape(&mut cache, &[A], 9.0);
        assert_eq!((batch.len(), added, stale), (2, 0, 1));
        let (_, added, _) = scrape(&mut cache, &[A, B], 10.0);
        assert_eq!(added, 1);
    }

    #[test]
    fn a_second_text_of_a_series_is_known_by_itself_next_time() {
        let mut cache = ScrapeCache::default();
        let spaced: (&str, &[(&str, &str)]) = ("a{}", &[("__name__", "a")]);
        scrape(&mut cache, &[A, spaced], 1.0);
        cache.begin();
        let idx = cache
            .lookup(TextKey::of_series(b"a{}"))
            .expect("the alias text is cached");
        let mut batch = WriteRequestEncoder::new();
        assert_eq!(cache.write(idx, 2.0, 1, &mut batch), Added::Series);
        assert_eq!(
            decoded(&batch),
            vec![(l(&[("__name__", "a")]), 2f64.to_bits())]
        );
    }

    #[test]
    fn churn_keeps_the_arena_bounded() {
        let mut cache = ScrapeCache::default();
        for round in 0..50 {
            let texts: Vec<String> = (0..100)
                .map(|i| format!("m{{i=\"{round}-{i}\"}}"))
                .collect();
            let names: Vec<[(&str, &str); 2]> = texts
                .iter()
                .map(|t| [("__name__", "m"), ("i", t.as_str())])
                .collect();
            let series: Vec<(&str, &[(&str, &str)])> = texts
                .iter()
                .zip(&names)
                .map(|(t, n)| (t.as_str(), &n[..]))
                .collect();
            scrape(&mut cache, &series, 1.0);
        }
        assert_eq!(cache.len(), 100);
        assert!(cache.arena.len() <= 3 * cache.live_bytes + 4096);
        assert!(cache.entries.len() <= 200);
    }

    #[test]
    fn a_body_in_a_new_order_finds_every_series() {
        let mut cache = ScrapeCache::default();
        let c: (&str, &[(&str, &str)]) = ("c", &[("__name__", "c")]);
        scrape(&mut cache, &[A, B, c], 1.0);
        cache.begin();
        for text in ["c", "b", "a"] {
            assert!(
                cache.lookup(TextKey::of_series(text.as_bytes())).is_some(),
                "{text}"
            );
        }
    }

    #[test]
    fn series_vanishing_from_the_middle_keep_the_rest_in_step() {
        let names: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        let sets: Vec<[(&str, &str); 1]> =
            names.iter().map(|n| [("__name__", n.as_str())]).collect();
        let all: Vec<(&str, &[(&str, &str)])> = names
            .iter()
            .zip(&sets)
            .map(|(n, l)| (n.as_str(), &l[..]))
            .collect();
        let mut cache = ScrapeCache::default();
        scrape(&mut cache, &all, 1.0);
        let fewer: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| !(3..12).contains(i))
            .map(|(_, s)| *s)
            .collect();
        let (batch, added, stale) = scrape(&mut cache, &fewer, 2.0);
        assert_eq!((added, stale, batch.len()), (0, 9, 20));
        for ((labels, _), (name, _)) in batch.iter().zip(&fewer) {
            assert_eq!(labels, &l(&[("__name__", name)]));
        }
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeSet;

        /// Text `i` of the universe: its labels (texts 6 and 7 share 0's and 1's; 8 and 9 are
        /// dropped by relabeling).
        fn labels_of(i: u8) -> Option<Vec<u8>> {
            let job = if i.is_multiple_of(3) { "other" } else { "node" };
            match i {
                8 | 9 => None,
                6 | 7 => Some(labels(&[
                    ("__name__", "m"),
                    ("i", &(i - 6).to_string()),
                    ("job", "node"),
                ])),
                _ => Some(labels(&[
                    ("__name__", "m"),
                    ("i", &i.to_string()),
                    ("job", job),
                ])),
            }
        }

        /// Shared fields a loop may give its cache: none, some series' fields, or none of them.
        fn shared_set(choice: u8) -> Vec<u8> {
            match choice % 4 {
                0 => Vec::new(),
                1 => labels(&[("job", "node")]),
                2 => labels(&[("i", "1"), ("job", "node")]),
                _ => labels(&[("instance", "x")]),
            }
        }

        proptest! {
            /// Against a model that knows nothing of caching: each scrape writes each label set
            /// once, in body order; stale markers for the previous batch's label sets it lacks;
            /// `added` counts label sets the previous batch lacked; a failed scrape writes
            /// nothing and marks the whole previous batch stale.
            #[test]
            fn cache_behaves_like_a_set_of_label_sets(
                scrapes in prop::collection::vec(
                    (prop::collection::vec(0u8..10, 0..14), any::<bool>(), any::<bool>(), any::<u8>()),
                    1..12,
                ),
                first_shared in any::<u8>(),
            ) {
                let mut cache = ScrapeCache::default();
                cache.share_labels(&shared_set(first_shared)).unwrap();
                let mut prev: BTreeSet<Vec<u8>> = BTreeSet::new();
                for (round, (texts, fail, hand_over, shared)) in scrapes.into_iter().enumerate() {
                    if hand_over {
                        cache = cache.hand_over();
                        cache.share_labels(&shared_set(shared)).unwrap();
                    }
                    let fail = fail && round % 3 == 2;
                    let mut batch = WriteRequestEncoder::new();
                    cache.begin();
                    let mut want: Vec<Vec<u8>> = Vec::new();
                    for &t in &texts {
                        let key = TextKey::of_series(format!("t{t}").as_bytes());
                        let idx = match cache.lookup(key) {
                            Some(idx) => idx,
                            None => cache.insert(key, labels_of(t).as_deref()).unwrap(),
                        };
                        let added = cache.write(idx, f64::from(t), 1, &mut batch);
                        let expect = match labels_of(t) {
                            None => Added::Relabeled,
                            Some(l) if want.contains(&l) => Added::Duplicate,
                            Some(l) => {
                                want.push(l);
                                Added::Series
                            }
                        };
                        prop_assert_eq!(added, expect);
                    }
                    if fail {
                        cache.abort();
                        batch.clear();
                        want.clear();
                    }
                    let now: BTreeSet<Vec<u8>> = want.iter().cloned().collect();
                    prop_assert_eq!(cache.added(), now.difference(&prev).count());
                    let stale = cache.finish(&mut batch, 2);
                    prop_assert_eq!(stale, prev.difference(&now).count());
                    let got = decode_write_request(batch.as_bytes()).unwrap().timeseries;
                    let mut encoded: Vec<Vec<u8>> = got
                        .iter()
                        .map(|t| {
                            let pairs: Vec<(&str, &str)> =
                                t.labels.iter().map(Label::as_pair).collect();
                            labels(&pairs)
                        })
                        .collect();
                    let stale_part = encoded.split_off(want.len());
                    prop_assert_eq!(&encoded, &want);
                    let stale_set: BTreeSet<Vec<u8>> = stale_part.into_iter().collect();
                    prop_assert_eq!(stale_set, prev.difference(&now).cloned().collect::<BTreeSet<_>>());
                    prev = now;
                }
            }
        }
    }
}
