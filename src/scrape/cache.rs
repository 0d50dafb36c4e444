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
//!
//! Must not: fetch, parse or send; decide a series' labels (that is [`crate::exposition::series`]).

use xxhash_rust::xxh3::{xxh3_64, xxh3_128, xxh3_128_with_seed};

use crate::exposition::series::{Added, HashKeyed, STALE_NAN_BITS};
use crate::prompb::WriteRequestEncoder;

/// The hash of a series as written in an exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextKey(u128);

impl TextKey {
    /// The key of `name{labels}` as the parser handed it out ([`crate::exposition::parse::SampleRef::series`]).
    #[inline]
    pub fn of_series(series: &str) -> TextKey {
        TextKey(xxh3_128(series.as_bytes()))
    }

    /// The key of a series the scraper adds itself (`up`, `scrape_duration_seconds`, ...): kept
    /// apart from a scraped series of the same name.
    pub fn of_report(name: &str) -> TextKey {
        TextKey(xxh3_128_with_seed(name.as_bytes(), 0x7265_706f_7274))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A free slot.
    Free,
    /// Metric relabeling drops this series.
    Dropped,
    /// A series with labels in the arena.
    Series,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    /// Whether the series was in the previous batch (set when written in this scrape).
    was_prev: bool,
    /// The scrape that last wrote it; 0 = none.
    last: u64,
    /// Hash of the encoded labels.
    key: u64,
    start: usize,
    len: usize,
}

const FREE: Entry = Entry {
    state: State::Free,
    was_prev: false,
    last: 0,
    key: 0,
    start: 0,
    len: 0,
};

/// One target's memory of its series. See the module documentation.
#[derive(Debug, Default)]
pub struct ScrapeCache {
    /// Encoded labels of the entries, one after another (with holes until compacted).
    arena: Vec<u8>,
    /// Bytes of the arena live entries use.
    live_bytes: usize,
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// The texts of the last scrape in the order the body had them. Exporters write their
    /// series in the same order every time, so a scrape is matched against this list one by
    /// one, reading memory in order; a hash map of 300 targets' series would cost a cache miss
    /// per sample instead.
    order: Vec<(TextKey, u32)>,
    /// Where in `order` the next text is expected.
    cursor: usize,
    /// The texts of this scrape so far (the next `order`).
    next: Vec<(TextKey, u32)>,
    /// Every known text -> (entry, position in `order` or `NO_POS`): built only when `order`
    /// fails to find a text (a new series, or a body in a new order), for that scrape only.
    by_text: Option<HashKeyed<TextKey, (u32, u32)>>,
    /// Entries by the hash of their labels: built for the first new text of a scrape, for that
    /// scrape only.
    by_labels: Option<HashKeyed<u64, u32>>,
    /// The scrape being built (the previous one is `scrape - 1`).
    scrape: u64,
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
        // Scrape numbers start at 2, so that no entry's `last` (0 = none) is "the previous one".
        self.scrape = self.scrape.max(1) + 1;
        self.added = 0;
        self.cursor = 0;
        self.next.clear();
    }

    /// The entry for a series text, if it was seen before.
    #[inline]
    pub fn lookup(&mut self, text: TextKey) -> Option<u32> {
        let end = self.order.len().min(self.cursor + 1 + LOOKAHEAD);
        if let Some(p) = self
            .order
            .get(self.cursor..end)
            .and_then(|expected| expected.iter().position(|(t, _)| *t == text))
        {
            let idx = self.order[self.cursor + p].1;
            self.cursor += p + 1;
            self.next.push((text, idx));
            return Some(idx);
        }
        let (idx, pos) = *self.text_map().get(&text)?;
        if pos != NO_POS {
            self.cursor = pos as usize + 1;
        }
        self.next.push((text, idx));
        Some(idx)
    }

    fn text_map(&mut self) -> &mut HashKeyed<TextKey, (u32, u32)> {
        let (order, next) = (&self.order, &self.next);
        self.by_text.get_or_insert_with(|| {
            let mut map = HashKeyed::default();
            map.reserve(order.len() + next.len());
            for (pos, &(text, idx)) in order.iter().enumerate() {
                map.insert(text, (idx, u32::try_from(pos).unwrap_or(NO_POS)));
            }
            for &(text, idx) in next {
                map.entry(text).or_insert((idx, NO_POS));
            }
            map
        })
    }

    fn labels_map(&mut self) -> &mut HashKeyed<u64, u32> {
        let entries = &self.entries;
        self.by_labels.get_or_insert_with(|| {
            let mut map = HashKeyed::default();
            for (idx, e) in entries.iter().enumerate() {
                if e.state == State::Series {
                    // On a (checked) collision the first keeps the slot; see `insert`.
                    map.entry(e.key).or_insert(idx as u32);
                }
            }
            map
        })
    }

    /// Records what a series text [`Self::lookup`] did not know turned into: its encoded
    /// `labels`, or `None` when metric relabeling drops it. Returns the entry to [`Self::write`].
    pub fn insert(&mut self, text: TextKey, labels: Option<&[u8]>) -> u32 {
        let idx = self.entry_for(labels);
        if let Some(map) = &mut self.by_text {
            map.insert(text, (idx, NO_POS));
        }
        self.next.push((text, idx));
        idx
    }

    fn entry_for(&mut self, labels: Option<&[u8]>) -> u32 {
        let Some(labels) = labels else {
            return self.new_entry(Entry {
                state: State::Dropped,
                ..FREE
            });
        };
        let key = xxh3_64(labels);
        if let Some(&idx) = self.labels_map().get(&key) {
            let e = &self.entries[idx as usize];
            if &self.arena[e.start..e.start + e.len] == labels {
                return idx;
            }
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(labels);
        self.live_bytes += labels.len();
        let idx = self.new_entry(Entry {
            state: State::Series,
            key,
            start,
            len: labels.len(),
            ..FREE
        });
        // On a (checked) 64-bit collision the first keeps the slot; the second is still cached
        // by its text, only not found by its labels.
        self.labels_map().entry(key).or_insert(idx);
        idx
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
        let Some(e) = self.entries.get_mut(idx as usize) else {
            return Added::Relabeled;
        };
        if e.last == self.scrape {
            return match e.state {
                State::Series => Added::Duplicate,
                _ => Added::Relabeled,
            };
        }
        e.was_prev = e.last + 1 == self.scrape;
        e.last = self.scrape;
        if e.state != State::Series {
            return Added::Relabeled;
        }
        if !e.was_prev {
            self.added += 1;
        }
        batch.push_raw_labels(&self.arena[e.start..e.start + e.len], value, timestamp_ms);
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
                    batch.push_raw_labels(
                        &self.arena[e.start..e.start + e.len],
                        stale,
                        timestamp_ms,
                    );
                    markers += 1;
                }
                self.live_bytes -= e.len;
            }
            *e = FREE;
            self.free.push(idx as u32);
            removed = true;
        }
        if removed {
            let entries = &self.entries;
            // Texts of entries just forgotten (after a failed scrape) must not come back.
            self.next
                .retain(|(_, idx)| entries[*idx as usize].state != State::Free);
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
                let start = arena.len();
                arena.extend_from_slice(&self.arena[e.start..e.start + e.len]);
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
                batch.push_raw_labels(&self.arena[e.start..e.start + e.len], stale, timestamp_ms);
            }
        }
    }

    /// What a loop replacing this one (reload, new settings) may keep: the last batch's label
    /// sets, so its first scrape knows which series are not new and which vanished. The texts
    /// are forgotten: the new settings may give them other labels.
    pub fn hand_over(mut self) -> ScrapeCache {
        for (idx, e) in self.entries.iter_mut().enumerate() {
            if e.state == State::Dropped {
                *e = FREE;
                self.free.push(idx as u32);
            }
        }
        self.order.clear();
        self.next.clear();
        self.by_text = None;
        self.by_labels = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{Label, decode_write_request, encode_labels_into};

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
            let key = TextKey::of_series(text);
            let idx = match cache.lookup(key) {
                Some(idx) => idx,
                None => cache.insert(key, Some(&labels(l))),
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
        let idx = cache.lookup(TextKey::of_series("a")).expect("cached");
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
        let key = TextKey::of_series("go_gc");
        let idx = cache.insert(key, None);
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
        let idx = cache.lookup(TextKey::of_series("a")).unwrap();
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
        assert_eq!(cache.lookup(TextKey::of_series("a")), None);
        // The new loop's settings give "a" the same labels and "b" new ones.
        let b2: (&str, &[(&str, &str)]) = ("b", &[("__name__", "b"), ("env", "x")]);
        let (batch, added, stale) = scrape(&mut cache, &[A, b2], 2.0);
        assert_eq!((added, stale), (1, 1));
        assert_eq!(batch[2], (l(&[("__name__", "b")]), STALE_NAN_BITS));
    }

    #[test]
    fn report_series_are_kept_apart_from_scraped_series_of_the_same_name() {
        assert_ne!(TextKey::of_report("up"), TextKey::of_series("up"));
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
            assert!(cache.lookup(TextKey::of_series(text)).is_some(), "{text}");
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
            match i {
                8 | 9 => None,
                6 | 7 => Some(labels(&[("__name__", "m"), ("i", &(i - 6).to_string())])),
                _ => Some(labels(&[("__name__", "m"), ("i", &i.to_string())])),
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
                    (prop::collection::vec(0u8..10, 0..14), any::<bool>(), any::<bool>()),
                    1..12,
                ),
            ) {
                let mut cache = ScrapeCache::default();
                let mut prev: BTreeSet<Vec<u8>> = BTreeSet::new();
                for (round, (texts, fail, hand_over)) in scrapes.into_iter().enumerate() {
                    if hand_over {
                        cache = cache.hand_over();
                    }
                    let fail = fail && round % 3 == 2;
                    let mut batch = WriteRequestEncoder::new();
                    cache.begin();
                    let mut want: Vec<Vec<u8>> = Vec::new();
                    for &t in &texts {
                        let key = TextKey::of_series(&format!("t{t}"));
                        let idx = match cache.lookup(key) {
                            Some(idx) => idx,
                            None => cache.insert(key, labels_of(t).as_deref()),
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
                                t.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
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
