//! The last 15 minutes the status page charts, kept in memory and served as JSON at
//! `GET /api/v1/history`.
//!
//! # Owns
//! One ring of points per series, a point every [`INTERVAL`], [`POINTS`] points (15 minutes):
//! - ingest: samples received a second (and of them, scraped), pushes refused a second by reason;
//! - per queue (a storage, or one tenant's queue of a multitenant storage): backlog bytes and
//!   samples sent a second.
//!
//! The sampler (`mod.rs`) calls [`History::record`] every [`INTERVAL`] with what the same
//! [`super::StatusSource`] the page and `/metrics` read: no request path does any work for it.
//!
//! # Guarantees
//! - Memory is fixed: at most [`POINTS`] points per ring and rings for at most [`MAX_QUEUES`]
//!   queues. A point is 96 bytes of ingest and 32 bytes per queue, so the rings hold at most
//!   17 KiB + 50 × 5.6 KiB ≈ 300 KiB (a test pins it), plus each charted queue's id and name.
//! - A rate is the difference of a counter between two consecutive samples over the monotonic
//!   time between them; a point without an earlier sample (the first, a queue just seen, one
//!   missed for longer than [`MAX_GAP`]) or whose counter went down has none, never an invented
//!   one.
//! - The first [`MAX_QUEUES`] queues seen get a ring; later ones are counted as left out, and
//!   get a ring when one frees: a ring whose queue has not been seen for the whole window is
//!   dropped.
//!
//! # Must not
//! Read the clock or counters itself: it is handed each sample, so it is tested with fixed data.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::drain::{self, Drain};
use crate::forward::StorageStatus;
use crate::stats::{IngestSnapshot, Reject, Source};

/// Time between two points.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Points per ring: 15 minutes.
pub const POINTS: usize = 180;
/// The span the rings cover.
pub const WINDOW: Duration = Duration::from_secs(INTERVAL.as_secs() * POINTS as u64);
/// Queues that get a ring; more are counted, not charted.
pub const MAX_QUEUES: usize = 50;
/// Two samples further apart than this (the sampler stalled, a queue vanished for a while) are
/// not joined by a rate, and the charts break their line there.
pub const MAX_GAP: Duration = Duration::from_millis(INTERVAL.as_millis() as u64 * 5 / 2);

const REASONS: usize = Reject::ALL.len();

/// One ingest point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngestPoint {
    pub at_unix_ms: u64,
    /// Samples received a second, every source together.
    pub samples_per_second: Option<f64>,
    /// Of them, from the scraper.
    pub scraped_samples_per_second: Option<f64>,
    /// Pushes refused a second, by [`Reject::ALL`]'s order.
    pub refused_per_second: Option<[f64; REASONS]>,
}

impl IngestPoint {
    /// Pushes refused a second, every reason together.
    pub fn refused_total(&self) -> Option<f64> {
        self.refused_per_second.map(|r| r.iter().sum())
    }
}

/// One point of a queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueuePoint {
    pub at_unix_ms: u64,
    pub backlog_bytes: u64,
    pub sent_samples_per_second: Option<f64>,
}

/// A fixed-size ring: the oldest point goes when a new one comes to a full ring.
#[derive(Debug)]
pub struct Ring<T> {
    points: VecDeque<T>,
}

impl<T> Ring<T> {
    fn new() -> Self {
        Self {
            points: VecDeque::with_capacity(POINTS),
        }
    }

    fn push(&mut self, point: T) {
        if self.points.len() == POINTS {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.points.iter()
    }
}

/// The counters a rate is taken from, at the sample before.
#[derive(Debug, Clone, Copy)]
struct Previous<C> {
    at: Instant,
    counters: C,
}

#[derive(Debug, Clone, Copy)]
struct IngestCounters {
    samples: u64,
    scraped: u64,
    refused: [u64; REASONS],
}

/// One queue's ring and what names it.
#[derive(Debug)]
pub struct QueueHistory {
    /// [`StorageStatus::key`]: what tells the queue from the others.
    pub key: String,
    pub id: String,
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub points: Ring<QueuePoint>,
    previous: Option<Previous<u64>>,
    last_seen: Instant,
}

impl QueueHistory {
    /// The verdict on the backlog from the ring's last points.
    pub fn drain(&self) -> Drain {
        let Some(last) = self.points.iter().next_back() else {
            return Drain::Measuring;
        };
        // Only an unbroken run of points is a trend: a gap means the queue was not seen.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut later = last.at_unix_ms;
        for p in self.points.iter().rev() {
            let age_ms = last.at_unix_ms.saturating_sub(p.at_unix_ms);
            if later.saturating_sub(p.at_unix_ms) > MAX_GAP.as_millis() as u64
                || age_ms > drain::FIT_WINDOW.as_millis() as u64
            {
                break;
            }
            run.push((-(age_ms as f64) / 1000.0, p.backlog_bytes as f64));
            later = p.at_unix_ms;
        }
        run.reverse();
        drain::estimate(&run)
    }
}

/// Every ring.
#[derive(Debug)]
pub struct History {
    pub ingest: Ring<IngestPoint>,
    previous_ingest: Option<Previous<IngestCounters>>,
    /// In the order first seen.
    pub queues: Vec<QueueHistory>,
    /// Queues seen at the last sample that have no ring (past [`MAX_QUEUES`]).
    pub left_out: usize,
}

impl Default for History {
    fn default() -> Self {
        Self {
            ingest: Ring::new(),
            previous_ingest: None,
            queues: Vec::new(),
            left_out: 0,
        }
    }
}

/// `(now - before)` per second over `seconds`; `None` when the counter went down.
fn per_second(now: u64, before: u64, seconds: f64) -> Option<f64> {
    now.checked_sub(before).map(|d| d as f64 / seconds)
}

/// Seconds since `previous`, when it is recent enough to take a rate over.
fn span(previous: Option<Instant>, now: Instant) -> Option<f64> {
    let elapsed = now.saturating_duration_since(previous?);
    (elapsed > Duration::ZERO && elapsed <= MAX_GAP).then_some(elapsed.as_secs_f64())
}

impl History {
    /// Adds the point of `now` (monotonic, for rates; `now_unix_ms` for the charts' time axis).
    pub fn record(
        &mut self,
        now: Instant,
        now_unix_ms: u64,
        storages: &[StorageStatus],
        ingest: &IngestSnapshot,
    ) {
        self.record_ingest(now, now_unix_ms, ingest);
        self.queues
            .retain(|q| now.saturating_duration_since(q.last_seen) <= WINDOW);
        self.left_out = 0;
        for s in storages {
            self.record_queue(now, now_unix_ms, s);
        }
    }

    fn record_ingest(&mut self, now: Instant, now_unix_ms: u64, ingest: &IngestSnapshot) {
        let mut refused = [0; REASONS];
        for (reason, n) in &ingest.rejected_requests {
            if let Some(i) = Reject::ALL.iter().position(|r| r == reason) {
                refused[i] = *n;
            }
        }
        let counters = IngestCounters {
            samples: ingest.samples.iter().map(|(_, n)| n).sum(),
            scraped: ingest
                .samples
                .iter()
                .filter(|(s, _)| *s == Source::Scrape)
                .map(|(_, n)| n)
                .sum(),
            refused,
        };
        let mut point = IngestPoint {
            at_unix_ms: now_unix_ms,
            samples_per_second: None,
            scraped_samples_per_second: None,
            refused_per_second: None,
        };
        if let (Some(prev), Some(secs)) = (
            self.previous_ingest,
            span(self.previous_ingest.map(|p| p.at), now),
        ) {
            let before = prev.counters;
            point.samples_per_second = per_second(counters.samples, before.samples, secs);
            point.scraped_samples_per_second = per_second(counters.scraped, before.scraped, secs);
            let mut rates = [0.0; REASONS];
            let mut all = true;
            for (i, rate) in rates.iter_mut().enumerate() {
                match per_second(counters.refused[i], before.refused[i], secs) {
                    Some(r) => *rate = r,
                    None => all = false,
                }
            }
            point.refused_per_second = all.then_some(rates);
        }
        self.ingest.push(point);
        self.previous_ingest = Some(Previous { at: now, counters });
    }

    fn record_queue(&mut self, now: Instant, now_unix_ms: u64, s: &StorageStatus) {
        let key = s.key();
        let index = match self.queues.iter().position(|q| q.key == key) {
            Some(i) => i,
            None if self.queues.len() < MAX_QUEUES => {
                self.queues.push(QueueHistory {
                    key,
                    id: s.id.clone(),
                    name: s.name.clone(),
                    tenant: s.tenant.clone(),
                    points: Ring::new(),
                    previous: None,
                    last_seen: now,
                });
                self.queues.len() - 1
            }
            None => {
                self.left_out += 1;
                return;
            }
        };
        let q = &mut self.queues[index];
        let sent_samples_per_second = match (q.previous, span(q.previous.map(|p| p.at), now)) {
            (Some(prev), Some(secs)) => per_second(s.sent_samples_total, prev.counters, secs),
            _ => None,
        };
        q.points.push(QueuePoint {
            at_unix_ms: now_unix_ms,
            backlog_bytes: s.pending_bytes,
            sent_samples_per_second,
        });
        q.previous = Some(Previous {
            at: now,
            counters: s.sent_samples_total,
        });
        q.last_seen = now;
    }

    /// The ring of the queue with [`StorageStatus::key`] `key`, if it has one.
    pub fn queue(&self, key: &str) -> Option<&QueueHistory> {
        self.queues.iter().find(|q| q.key == key)
    }

    /// The JSON of `GET /api/v1/history` (documented in the README).
    pub fn to_json(&self) -> Value {
        let ingest: Vec<Value> = self
            .ingest
            .iter()
            .map(|p| {
                let by_reason: Map<String, Value> = p
                    .refused_per_second
                    .iter()
                    .flat_map(|rates| Reject::ALL.iter().zip(rates))
                    .filter(|(_, rate)| **rate > 0.0)
                    .map(|(reason, rate)| (reason.as_str().to_owned(), json!(rate)))
                    .collect();
                json!({
                    "at_unix_ms": p.at_unix_ms,
                    "samples_per_second": p.samples_per_second,
                    "scraped_samples_per_second": p.scraped_samples_per_second,
                    "refused_requests_per_second": p.refused_total(),
                    "refused_requests_per_second_by_reason": by_reason,
                })
            })
            .collect();
        let queues: Vec<Value> = self
            .queues
            .iter()
            .map(|q| {
                let drain = q.drain();
                json!({
                    "key": q.key,
                    "id": q.id,
                    "name": q.name,
                    "tenant": q.tenant,
                    "drain": {
                        "state": drain.state(),
                        "seconds": drain.seconds(),
                        "bytes_per_second": drain.bytes_per_second(),
                        "text": drain.text(),
                    },
                    "points": q.points.iter().map(|p| json!({
                        "at_unix_ms": p.at_unix_ms,
                        "backlog_bytes": p.backlog_bytes,
                        "sent_samples_per_second": p.sent_samples_per_second,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "interval_seconds": INTERVAL.as_secs(),
            "points_kept": POINTS,
            "max_queues": MAX_QUEUES,
            "queues_left_out": self.left_out,
            "ingest": ingest,
            "queues": queues,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::tests::storage;

    fn queue(id: &str, backlog: u64, sent_samples: u64) -> StorageStatus {
        let mut s = storage(id);
        s.pending_bytes = backlog;
        s.sent_samples_total = sent_samples;
        s
    }

    fn ingest(samples: u64, scraped: u64, too_large: u64) -> IngestSnapshot {
        IngestSnapshot {
            samples: vec![(Source::RemoteWrite, samples), (Source::Scrape, scraped)],
            rejected_requests: vec![(Reject::BadBody, 0), (Reject::TooLarge, too_large)],
            ..IngestSnapshot::default()
        }
    }

    /// Records `samples` every 5 s from `t0`, each `(queues, ingest)`.
    fn recorded(samples: &[(Vec<StorageStatus>, IngestSnapshot)]) -> History {
        let mut h = History::default();
        let t0 = Instant::now();
        for (i, (queues, ingest)) in samples.iter().enumerate() {
            let i = i as u64;
            h.record(
                t0 + INTERVAL * i as u32,
                1_000_000 + 5000 * i,
                queues,
                ingest,
            );
        }
        h
    }

    #[test]
    fn the_first_point_has_values_but_no_rates() {
        let h = recorded(&[(vec![queue("a", 4096, 10)], ingest(100, 0, 0))]);
        let p = h.ingest.iter().next().expect("a point");
        assert_eq!(p.samples_per_second, None);
        assert_eq!(p.refused_per_second, None);
        let q = h.queue("a").expect("a ring");
        let qp = q.points.iter().next().expect("a point");
        assert_eq!(qp.backlog_bytes, 4096);
        assert_eq!(qp.sent_samples_per_second, None);
    }

    #[test]
    fn rates_are_counter_differences_over_the_interval() {
        let h = recorded(&[
            (vec![queue("a", 0, 1000)], ingest(100, 50, 2)),
            (vec![queue("a", 0, 1500)], ingest(600, 150, 7)),
        ]);
        let p = h.ingest.iter().nth(1).expect("a second point");
        assert_eq!(p.samples_per_second, Some(120.0));
        assert_eq!(p.scraped_samples_per_second, Some(20.0));
        assert_eq!(p.refused_total(), Some(1.0));
        let qp = h.queue("a").and_then(|q| q.points.iter().nth(1)).copied();
        assert_eq!(qp.and_then(|p| p.sent_samples_per_second), Some(100.0));
    }

    #[test]
    fn a_counter_that_went_down_gives_no_rate() {
        let h = recorded(&[
            (vec![queue("a", 0, 1000)], ingest(100, 0, 0)),
            (vec![queue("a", 0, 10)], ingest(100, 0, 0)),
        ]);
        let qp = h.queue("a").and_then(|q| q.points.iter().nth(1)).copied();
        assert_eq!(qp.map(|p| p.sent_samples_per_second), Some(None));
    }

    #[test]
    fn a_ring_keeps_the_last_fifteen_minutes() {
        let samples: Vec<_> = (0..POINTS as u64 + 20)
            .map(|i| (vec![queue("a", i, i)], ingest(i, 0, 0)))
            .collect();
        let h = recorded(&samples);
        assert_eq!(h.ingest.iter().len(), POINTS);
        let q = h.queue("a").expect("a ring");
        assert_eq!(q.points.iter().len(), POINTS);
        assert_eq!(q.points.iter().next().map(|p| p.backlog_bytes), Some(20));
    }

    #[test]
    fn a_queue_seen_later_gets_a_ring_from_then_on() {
        let h = recorded(&[
            (vec![queue("a", 1, 0)], ingest(0, 0, 0)),
            (vec![queue("a", 1, 0), queue("b", 2, 0)], ingest(0, 0, 0)),
        ]);
        assert_eq!(h.queue("a").map(|q| q.points.iter().len()), Some(2));
        assert_eq!(h.queue("b").map(|q| q.points.iter().len()), Some(1));
    }

    #[test]
    fn tenant_queues_of_one_storage_get_rings_of_their_own() {
        let tenant = |t: &str| {
            let mut s = queue("vminsert", 1, 0);
            s.tenant = Some(t.to_owned());
            s
        };
        let h = recorded(&[(vec![tenant("1:0"), tenant("2:0")], ingest(0, 0, 0))]);
        assert!(h.queue("vminsert/1:0").is_some());
        assert!(h.queue("vminsert/2:0").is_some());
    }

    #[test]
    fn queues_past_the_limit_are_counted_not_charted() {
        let many: Vec<StorageStatus> = (0..MAX_QUEUES + 3)
            .map(|i| queue(&format!("q{i}"), 0, 0))
            .collect();
        let h = recorded(&[(many, ingest(0, 0, 0))]);
        assert_eq!(h.queues.len(), MAX_QUEUES);
        assert_eq!(h.left_out, 3);
        assert!(h.queue(&format!("q{}", MAX_QUEUES)).is_none());
    }

    #[test]
    fn a_queue_unseen_for_the_whole_window_frees_its_ring() {
        let mut samples = vec![(vec![queue("gone", 1, 0)], ingest(0, 0, 0))];
        samples.extend((0..POINTS + 1).map(|_| (vec![queue("stays", 1, 0)], ingest(0, 0, 0))));
        let h = recorded(&samples);
        assert!(h.queue("gone").is_none());
        assert!(h.queue("stays").is_some());
    }

    #[test]
    fn the_backlog_verdict_comes_from_the_ring() {
        let samples: Vec<_> = (0..13)
            .map(|i| (vec![queue("a", 1_000_000 + 10_000 * i, 0)], ingest(0, 0, 0)))
            .collect();
        let h = recorded(&samples);
        let drain = h.queue("a").expect("a ring").drain();
        assert_eq!(drain.bytes_per_second(), Some(2000.0));
        assert_eq!(drain.state(), "growing");
    }

    #[test]
    fn a_gap_in_a_queues_points_restarts_its_trend() {
        let mut h = History::default();
        let t0 = Instant::now();
        let none = ingest(0, 0, 0);
        // Growing for a minute, unseen for 30 s, then flat: the growth before the gap is not
        // today's trend.
        for i in 0..13u64 {
            h.record(
                t0 + INTERVAL * i as u32,
                5000 * i,
                &[queue("a", 1000 * i, 0)],
                &none,
            );
        }
        for i in 19..22u64 {
            h.record(
                t0 + INTERVAL * i as u32,
                5000 * i,
                &[queue("a", 50_000, 0)],
                &none,
            );
        }
        assert_eq!(
            h.queue("a").expect("a ring").drain(),
            Drain::Steady { bytes: 50_000 }
        );
    }

    #[test]
    fn memory_stays_under_the_stated_bound() {
        use std::mem::size_of;
        assert_eq!(size_of::<IngestPoint>(), 96);
        assert_eq!(size_of::<QueuePoint>(), 32);
        let rings =
            POINTS * size_of::<IngestPoint>() + MAX_QUEUES * POINTS * size_of::<QueuePoint>();
        assert!(rings <= 300 * 1024, "{rings} bytes");
    }

    #[test]
    fn the_json_names_every_series() {
        let h = recorded(&[
            (vec![queue("a", 10, 0)], ingest(0, 0, 0)),
            (vec![queue("a", 20, 50)], ingest(500, 0, 5)),
        ]);
        let json = h.to_json();
        assert_eq!(json["interval_seconds"], 5);
        assert_eq!(json["ingest"][1]["samples_per_second"], 100.0);
        assert_eq!(
            json["ingest"][1]["refused_requests_per_second_by_reason"]["too_large"],
            1.0
        );
        assert_eq!(json["queues"][0]["key"], "a");
        assert_eq!(json["queues"][0]["points"][1]["backlog_bytes"], 20);
        assert_eq!(
            json["queues"][0]["points"][1]["sent_samples_per_second"],
            10.0
        );
        assert_eq!(json["queues"][0]["drain"]["state"], "measuring");
    }
}
