//! Send rates for the status page, from earlier snapshots kept in memory.
//!
//! # Guarantees
//! - A rate is the difference of a storage's counters over a window of about [`WINDOW`] (longer
//!   only when nobody looked for a while: then it is the average since the last look), so every
//!   viewer sees the same figure however many pages poll.
//! - Memory is bounded: one sample per second at most, none older than the window but the last.
//!
//! # Must not
//! Invent a rate: a storage without an earlier sample (just added, or the first look) has none.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::forward::StorageStatus;

/// The span a rate is averaged over.
pub const WINDOW: Duration = Duration::from_secs(10);
/// At most one sample is kept per this interval, whatever the number of viewers.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// A rate over a shorter span is too noisy to show.
const MIN_SPAN: Duration = Duration::from_millis(500);

/// A storage's send rate, per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub samples_per_second: f64,
    pub bytes_per_second: f64,
}

#[derive(Debug, Clone, Copy)]
struct Counters {
    sent_samples: u64,
    sent_bytes: u64,
}

#[derive(Debug)]
struct Sample {
    at: Instant,
    counters: HashMap<String, Counters>,
}

/// Earlier snapshots of the sent counters.
#[derive(Debug, Default)]
pub struct RateHistory {
    samples: VecDeque<Sample>,
}

impl RateHistory {
    /// Records `storages` as seen at `now` and returns each storage's rate, by
    /// [`StorageStatus::key`] (the id, with the tenant for a tenant queue).
    pub fn observe(&mut self, now: Instant, storages: &[StorageStatus]) -> HashMap<String, Rate> {
        while self.samples.len() > 1
            && self
                .samples
                .front()
                .is_some_and(|s| now.saturating_duration_since(s.at) > WINDOW)
        {
            self.samples.pop_front();
        }
        let mut rates = HashMap::with_capacity(storages.len());
        if let Some(base) = self.samples.front() {
            let span = now.saturating_duration_since(base.at);
            if span >= MIN_SPAN {
                let secs = span.as_secs_f64();
                for s in storages {
                    if let Some(old) = base.counters.get(&s.key()) {
                        rates.insert(
                            s.key(),
                            Rate {
                                samples_per_second: s
                                    .sent_samples_total
                                    .saturating_sub(old.sent_samples)
                                    as f64
                                    / secs,
                                bytes_per_second: s.sent_bytes_total.saturating_sub(old.sent_bytes)
                                    as f64
                                    / secs,
                            },
                        );
                    }
                }
            }
        }
        let due = self
            .samples
            .back()
            .is_none_or(|last| now.saturating_duration_since(last.at) >= SAMPLE_EVERY);
        if due {
            self.samples.push_back(Sample {
                at: now,
                counters: storages
                    .iter()
                    .map(|s| {
                        (
                            s.key(),
                            Counters {
                                sent_samples: s.sent_samples_total,
                                sent_bytes: s.sent_bytes_total,
                            },
                        )
                    })
                    .collect(),
            });
        }
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::tests::storage;

    fn sent(id: &str, samples: u64, bytes: u64) -> StorageStatus {
        let mut s = storage(id);
        s.sent_samples_total = samples;
        s.sent_bytes_total = bytes;
        s
    }

    #[test]
    fn first_look_has_no_rate() {
        let mut h = RateHistory::default();
        assert!(h.observe(Instant::now(), &[sent("a", 10, 100)]).is_empty());
    }

    #[test]
    fn rate_is_the_counter_difference_over_the_elapsed_time() {
        let mut h = RateHistory::default();
        let t0 = Instant::now();
        h.observe(t0, &[sent("a", 1000, 5000)]);
        let rates = h.observe(t0 + Duration::from_secs(2), &[sent("a", 3000, 6000)]);
        assert_eq!(
            rates.get("a"),
            Some(&Rate {
                samples_per_second: 1000.0,
                bytes_per_second: 500.0
            })
        );
    }

    #[test]
    fn rate_is_averaged_over_the_window_not_the_last_poll() {
        let mut h = RateHistory::default();
        let t0 = Instant::now();
        // Polled every 2 s; 100 samples/s for 8 s, then nothing for 2 s.
        for (i, total) in [0u64, 200, 400, 600, 800, 800].into_iter().enumerate() {
            let rates = h.observe(
                t0 + Duration::from_secs(2 * i as u64),
                &[sent("a", total, 0)],
            );
            if i == 5 {
                assert_eq!(rates["a"].samples_per_second, 80.0);
            }
        }
    }

    #[test]
    fn many_viewers_keep_one_sample_per_second() {
        let mut h = RateHistory::default();
        let t0 = Instant::now();
        for ms in (0..60_000).step_by(50) {
            h.observe(t0 + Duration::from_millis(ms), &[sent("a", ms, ms)]);
        }
        assert!(h.samples.len() <= 12, "{} samples kept", h.samples.len());
        let rates = h.observe(t0 + Duration::from_secs(60), &[sent("a", 60_000, 60_000)]);
        assert!((rates["a"].samples_per_second - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn tenant_queues_of_one_storage_have_rates_of_their_own() {
        let mut h = RateHistory::default();
        let t0 = Instant::now();
        let tenant = |t: &str, samples| {
            let mut s = sent("vminsert", samples, 0);
            s.tenant = Some(t.to_owned());
            s
        };
        h.observe(t0, &[tenant("1:0", 0), tenant("2:0", 0)]);
        let rates = h.observe(
            t0 + Duration::from_secs(1),
            &[tenant("1:0", 10), tenant("2:0", 30)],
        );
        assert_eq!(rates["vminsert/1:0"].samples_per_second, 10.0);
        assert_eq!(rates["vminsert/2:0"].samples_per_second, 30.0);
    }

    #[test]
    fn storage_new_since_the_earlier_sample_has_no_rate() {
        let mut h = RateHistory::default();
        let t0 = Instant::now();
        h.observe(t0, &[sent("a", 0, 0)]);
        let rates = h.observe(
            t0 + Duration::from_secs(2),
            &[sent("a", 10, 10), sent("b", 10, 10)],
        );
        assert!(rates.contains_key("a"));
        assert!(!rates.contains_key("b"));
    }
}
