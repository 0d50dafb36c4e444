//! A target's scrape cache: what the loop remembers about each series between scrapes, as
//! Prometheus' scrape cache does.
//!
//! Owns: the mapping from a series as written in the exposition (`name{labels}`, exactly the
//! bytes of the body) to its final labels already encoded as remote-write `TimeSeries.labels`
//! fields, and which series the previous batch held. A series seen before costs one hash of its
//! text, one lookup and one copy of its label bytes: no label parsing, sorting, merging,
//! relabeling or encoding. The previous batch's series are where stale markers and
//! `scrape_series_added` come from.
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
//! Must not: fetch, parse or send; decide a series' labels (that is [`super::series`]).

use xxhash_rust::xxh3::{xxh3_64, xxh3_128, xxh3_128_with_seed};

use super::series::{Added, HashKeyed, STALE_NAN_BITS};
use crate::prompb::WriteRequestEncoder;

/// The hash of a series as written in an exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextKey(u128);

impl TextKey {
    /// The key of `name{labels}` as the parser handed it out ([`crate::scrape::parse::SampleRef::series`]).
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
    start: usize,
    len: usize,
}

const FREE: Entry = Entry {
    state: State::Free,
    was_prev: false,
    last: 0,
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
    by_text: HashKeyed<TextKey, u32>,
    by_labels: HashKeyed<u64, u32>,
    /// The scrape being built (the previous one is `scrape - 1`).
    scrape: u64,
    /// Series of this scrape that the previous batch did not have.
    added: usize,
}

impl ScrapeCache {
    /// Starts a new scrape: series written from now on belong to the new batch.
    pub fn begin(&mut self) {
        // Scrape numbers start at 2, so that no entry's `last` (0 = none) is "the previous one".
        self.scrape = self.scrape.max(1) + 1;
        self.added = 0;
    }

    /// The entry for a series text, if it was seen before.
    #[inline]
    pub fn lookup(&self, text: TextKey) -> Option<u32> {
        self.by_text.get(&text).copied()
    }

    /// Records what a series text turned into: its encoded `labels`, or `None` when metric
    /// relabeling drops it. Returns the entry to [`Self::write`].
    pub fn insert(&mut self, text: TextKey, labels: Option<&[u8]>) -> u32 {
        let Some(labels) = labels else {
            let idx = self.new_entry(Entry {
                state: State::Dropped,
                ..FREE
            });
            self.by_text.insert(text, idx);
            return idx;
        };
        let key = xxh3_64(labels);
        if let Some(&idx) = self.by_labels.get(&key) {
            let e = &self.entries[idx as usize];
            if &self.arena[e.start..e.start + e.len] == labels {
                self.by_text.insert(text, idx);
                return idx;
            }
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(labels);
        self.live_bytes += labels.len();
        let idx = self.new_entry(Entry {
            state: State::Series,
            start,
            len: labels.len(),
            ..FREE
        });
        // On a (checked) 64-bit collision the first keeps the slot; the second is still cached
        // by its text, only not found by its labels.
        self.by_labels.entry(key).or_insert(idx);
        self.by_text.insert(text, idx);
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
            self.by_text
                .retain(|_, idx| entries[*idx as usize].state != State::Free);
            self.by_labels
                .retain(|_, idx| entries[*idx as usize].state != State::Free);
            self.compact();
        }
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

    /// Stale markers at `timestamp_ms` for every series of the last batch (the target is gone).
    pub fn all_stale(&self, timestamp_ms: i64) -> WriteRequestEncoder {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let mut enc = WriteRequestEncoder::new();
        for e in &self.entries {
            if e.state == State::Series && e.last == self.scrape {
                enc.push_raw_labels(&self.arena[e.start..e.start + e.len], stale, timestamp_ms);
            }
        }
        enc
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
        self.by_text.clear();
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
        let batch = decoded(&cache.all_stale(5));
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
}
