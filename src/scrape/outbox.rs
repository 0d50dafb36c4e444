//! The scraper's outbox: the batches of many scrapes gathered into one block before it is
//! compressed and queued, as vmagent gathers scraped rows into blocks of up to 10,000.
//!
//! Owns: a few pending `WriteRequest` buffers (shards) that scrape loops build their batches
//! straight into, their compression, and the one [`Fanout::push`] per block. A block is pushed
//! when its shard holds [`Limits::max_bytes`] of encoded series, when its first series has waited
//! [`Limits::max_age`] (a flusher task checks), and when the scraper stops
//! ([`Outbox::flush_all`]). One push per scrape cost a compression call, a blocking-pool hand-off
//! and a queue write each: at 1,000 targets of 1,000 series, a fifth of the scraper's CPU.
//!
//! Guarantees:
//! - Per-target order: a target's batches always go to the same shard (by target id), and a
//!   shard pushes its blocks one at a time in the order they were built, so the samples and
//!   stale markers of one target reach the queues in the order they were scraped.
//! - A batch is appended whole or not at all: a builder that fails cuts the buffer back to where
//!   it started ([`Outbox::add`] hands it the shard's buffer as it was).
//! - Scraped samples are counted as ingested (`promrelay_ingested_samples_total{source="scrape"}`)
//!   when their block is in every queue; a block that cannot be queued is logged and counted
//!   nowhere else, as a failed push of one scrape was before.
//! - Bounded: a shard holds at most `max_bytes` plus one batch before it pushes; while a push
//!   waits (a `block` queue at its cap), the loops of that shard wait too, as they did on their
//!   own push.
//!
//! Must not: decide what a batch holds (the loop and [`super::cache`] do), or write to queues
//! except through [`Fanout::push`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::forward::{Fanout, PushError};
use crate::prompb::WriteRequestEncoder;
use crate::stats::{IngestMetrics, Source};

/// When a shard's block is pushed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Encoded (uncompressed) bytes that make a block full.
    pub max_bytes: usize,
    /// Longest a series waits in a shard before its block is pushed.
    pub max_age: Duration,
}

impl Default for Limits {
    /// 1 MiB (about 8,000 samples of a typical exporter, vmagent's 10,000-row blocks in bytes)
    /// and 200 ms (a scrape reaches the queues well within a second, as vmagent's default
    /// 1 s flush interval allows).
    fn default() -> Limits {
        Limits {
            max_bytes: 1 << 20,
            max_age: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    batch: WriteRequestEncoder,
    /// When the first series of the pending block was added.
    since: Option<Instant>,
}

/// See the module documentation.
pub struct Outbox {
    shards: Box<[Mutex<Shard>]>,
    fanout: Arc<Fanout>,
    metrics: Arc<IngestMetrics>,
    limits: Limits,
}

impl Outbox {
    /// An outbox of `shards` shards (at least one) pushing into `fanout`.
    pub fn new(
        fanout: Arc<Fanout>,
        metrics: Arc<IngestMetrics>,
        shards: usize,
        limits: Limits,
    ) -> Outbox {
        Outbox {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            fanout,
            metrics,
            limits,
        }
    }

    /// As many shards as the process may use CPUs (at most 16), so loops on different worker
    /// threads rarely wait for one another.
    pub fn for_this_machine(fanout: Arc<Fanout>, metrics: Arc<IngestMetrics>) -> Outbox {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Outbox::new(fanout, metrics, cpus.min(16), Limits::default())
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        &self.shards[(key % self.shards.len() as u64) as usize]
    }

    /// Lets `build` append one batch to the shard of `key` (a target id), and pushes the shard's
    /// block if that made it full. `build` must only append, and on failure cut the buffer back
    /// to the length and series count it found ([`WriteRequestEncoder::truncate`]).
    pub async fn add<R>(&self, key: u64, build: impl FnOnce(&mut WriteRequestEncoder) -> R) -> R {
        let mut shard = self.shard(key).lock().await;
        let result = build(&mut shard.batch);
        if shard.batch.series() > 0 && shard.since.is_none() {
            shard.since = Some(Instant::now());
        }
        if shard.batch.as_bytes().len() >= self.limits.max_bytes {
            self.push(&mut shard).await;
        }
        result
    }

    /// Pushes every shard whose oldest series has waited `max_age`. A shard in use is left to
    /// the next round: a loop is appending to it, or it is pushing already (and may wait for a
    /// full queue, which must not hold up the other shards' flushes).
    pub async fn flush_due(&self) {
        for shard in self.shards.iter() {
            let Ok(mut shard) = shard.try_lock() else {
                continue;
            };
            if shard
                .since
                .is_some_and(|t| t.elapsed() >= self.limits.max_age)
            {
                self.push(&mut shard).await;
            }
        }
    }

    /// Pushes every pending series (the scraper stops).
    pub async fn flush_all(&self) {
        for shard in self.shards.iter() {
            self.push(&mut *shard.lock().await).await;
        }
    }

    /// Runs [`Self::flush_due`] every half `max_age` until `stop`, then [`Self::flush_all`].
    pub fn spawn_flusher(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.limits.max_age / 2);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => me.flush_due().await,
                    _ = stop.cancelled() => break,
                }
            }
            me.flush_all().await;
        })
    }

    async fn push(&self, shard: &mut Shard) {
        shard.since = None;
        let series = shard.batch.series();
        if series == 0 {
            return;
        }
        let block = Bytes::from(crate::prompb::compress(shard.batch.as_bytes()));
        shard.batch.clear();
        // A huge scrape's buffer is not kept for every later block.
        if shard.batch.capacity() > 4 * self.limits.max_bytes {
            shard.batch = WriteRequestEncoder::new();
        }
        if let Err(e) = push(&self.fanout, &self.metrics, block, series).await {
            warn!(error = %e, series, "scraped samples could not be queued");
        }
    }
}

/// Queues one compressed block of `series` series and counts them as scraped samples.
async fn push(
    fanout: &Fanout,
    metrics: &IngestMetrics,
    block: Bytes,
    series: usize,
) -> Result<(), PushError> {
    let samples = u32::try_from(series).unwrap_or(u32::MAX);
    fanout.push(block, samples, None).await?;
    metrics.accepted(Source::Scrape, series as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::prompb::{decode_write_request, decompress_bounded};

    fn fanout(dir: &std::path::Path) -> Arc<Fanout> {
        let cfg = Config::from_args([
            "promrelay",
            "--data-dir",
            dir.to_str().unwrap(),
            "--remote-write-url",
            "http://127.0.0.1:1/write",
        ])
        .unwrap();
        Arc::new(Fanout::open(&cfg).unwrap())
    }

    fn outbox(fanout: &Arc<Fanout>, shards: usize, limits: Limits) -> Arc<Outbox> {
        Arc::new(Outbox::new(
            Arc::clone(fanout),
            Arc::new(IngestMetrics::default()),
            shards,
            limits,
        ))
    }

    /// The queued blocks, each as its series' (name, value).
    fn queued(fanout: &Fanout) -> Vec<Vec<(String, f64)>> {
        let st = &fanout.storages()[0];
        let mut blocks = Vec::new();
        while let Some(b) = st.queue().read().unwrap() {
            let raw = decompress_bounded(&b.payload, usize::MAX).unwrap();
            let req = decode_write_request(&raw).unwrap();
            blocks.push(
                req.timeseries
                    .iter()
                    .map(|t| (t.labels[0].value.clone(), t.samples[0].value))
                    .collect(),
            );
        }
        blocks
    }

    fn one_series(name: &'static str, value: f64) -> impl FnOnce(&mut WriteRequestEncoder) {
        move |batch| {
            batch.push_series([("__name__", name)], value, 1);
        }
    }

    /// Bytes one `one_series` batch encodes to.
    fn series_bytes() -> usize {
        let mut enc = WriteRequestEncoder::new();
        one_series("a", 0.0)(&mut enc);
        enc.as_bytes().len()
    }

    fn limits(series: usize, max_age: Duration) -> Limits {
        Limits {
            max_bytes: series * series_bytes(),
            max_age,
        }
    }

    #[tokio::test]
    async fn batches_wait_for_a_full_block_and_go_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = fanout(dir.path());
        let o = outbox(&f, 1, limits(3, Duration::from_secs(3600)));
        o.add(1, one_series("a", 1.0)).await;
        o.add(2, one_series("b", 2.0)).await;
        assert!(
            queued(&f).is_empty(),
            "nothing queued before the block is full"
        );
        o.add(3, one_series("c", 3.0)).await;
        let want = [("a", 1.0), ("b", 2.0), ("c", 3.0)].map(|(n, v)| (n.to_owned(), v));
        assert_eq!(queued(&f), vec![want.to_vec()]);
    }

    #[tokio::test]
    async fn a_pending_block_is_queued_once_it_is_max_age_old() {
        let dir = tempfile::tempdir().unwrap();
        let f = fanout(dir.path());
        let o = outbox(&f, 2, limits(1000, Duration::from_millis(50)));
        let stop = CancellationToken::new();
        let flusher = o.spawn_flusher(stop.clone());
        o.add(7, one_series("a", 1.0)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            got = queued(&f);
        }
        assert_eq!(got, vec![vec![("a".to_owned(), 1.0)]]);
        stop.cancel();
        flusher.await.unwrap();
    }

    #[tokio::test]
    async fn stopping_the_flusher_queues_what_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let f = fanout(dir.path());
        let o = outbox(&f, 4, limits(1000, Duration::from_secs(3600)));
        let stop = CancellationToken::new();
        let flusher = o.spawn_flusher(stop.clone());
        for (key, name) in [(0, "a"), (1, "b"), (2, "c")] {
            o.add(key, one_series(name, 1.0)).await;
        }
        stop.cancel();
        flusher.await.unwrap();
        let mut names: Vec<String> = queued(&f).into_iter().flatten().map(|(n, _)| n).collect();
        names.sort();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_targets_batches_stay_in_order_across_blocks_and_shards() {
        let dir = tempfile::tempdir().unwrap();
        let f = fanout(dir.path());
        let o = outbox(&f, 3, limits(2, Duration::from_secs(3600)));
        // Five targets, eight scrapes each, interleaved; the value is the scrape's number.
        let names = ["t0", "t1", "t2", "t3", "t4"];
        for scrape in 0..8 {
            for (key, name) in names.iter().enumerate() {
                o.add(key as u64, one_series(name, f64::from(scrape))).await;
            }
        }
        o.flush_all().await;
        let all: Vec<(String, f64)> = queued(&f).into_iter().flatten().collect();
        assert_eq!(all.len(), 40);
        for name in names {
            let values: Vec<f64> = all.iter().filter(|(n, _)| n == name).map(|s| s.1).collect();
            assert_eq!(values, (0..8).map(f64::from).collect::<Vec<_>>(), "{name}");
        }
    }
}
