//! Chaos soak with exact accounting: numbered samples pushed from several connections and a real
//! Prometheus agent scraping node_exporter, fanned out by promrelay to VictoriaMetrics and a
//! Prometheus receiver (each behind a fault proxy), while a chaos loop kills and restarts the
//! relay, stops and restarts storages, makes them slow or answer 500/429, fills a queue to its
//! cap (`queue_full: reject`) and damages a block of a stopped relay's queue.
//!
//! At the end every fault is healed, the queues drain, and each storage is asked for every
//! numbered sample. Per storage, every sample the relay acknowledged is either delivered, or in a
//! block the chaos loop damaged (lost with a corrupt block, counted), or dropped by a cap (none
//! with `reject`): **unexplained losses must be 0**. The run also prints the relay's RSS and open
//! file descriptors over time and its CPU time per delivered sample.
//!
//! `scripts/test.sh` runs a short version (50 s of chaos, every kind of event at least once); `scripts/soak.sh MINUTES` the long
//! one (`PROMRELAY_SOAK_SECONDS`, release build). `PROMRELAY_SOAK_SEED` replays a chaos sequence.

mod common;
#[path = "soak/corrupt.rs"]
mod corrupt;
#[path = "soak/load.rs"]
mod load;
#[path = "soak/proxy.rs"]
mod proxy;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::relay::Relay;
use common::{Peers, Series, eventually};
use load::{Load, SampleId};
use promrelay::prompb::{Label, Sample, TimeSeries, WriteRequest, compress};
use prost::Message;
use proxy::{Fault, FaultProxy};

const DEFAULT_SECONDS: u64 = 50;
const CONNECTIONS: u32 = 4;
const PUSH_PAUSE: Duration = Duration::from_millis(20);
/// Small, so filling it and sealing chunks (an eighth of the cap each) takes seconds.
const QUEUE_MAX: &str = "4MiB";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a storage may take to show what it acknowledged.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Event {
    KillRelay,
    StopStorage(usize),
    Slow(usize),
    Errors(usize, u16),
    FillCap(usize),
    CorruptWhileDown(usize),
}

/// Counters of one relay lifetime, summed over lifetimes (they restart at 0).
#[derive(Default, Debug, Clone)]
struct RelayTotals {
    cpu_seconds: f64,
    /// Per storage index.
    cap_dropped_blocks: [u64; 2],
    rejected_blocks: [u64; 2],
    dropped_samples: [u64; 2],
    corrupt_blocks_skipped: [u64; 2],
}

struct Soak {
    relay: Relay,
    storages: Vec<Storage>,
    proxies: Vec<FaultProxy>,
    queue_dirs: Vec<PathBuf>,
    rng: fastrand::Rng,
    start: Instant,
    events: Vec<String>,
    /// Per storage, the numbered samples in blocks the chaos loop damaged.
    damaged: [HashSet<SampleId>; 2],
    totals: RelayTotals,
    /// `(seconds since start, RSS KiB, open fds)` of the relay.
    resources: Vec<(u64, u64, usize)>,
    filler_seq: u64,
    /// Event kinds still to run once each before picking at random.
    first_round: Vec<u32>,
}

/// A storage the chaos loop can stop and start.
enum Storage {
    Vm(common::VictoriaMetrics),
    Prom(common::Prometheus),
}

impl Storage {
    fn name(&self) -> &'static str {
        match self {
            Storage::Vm(_) => "victoria-metrics",
            Storage::Prom(_) => "prometheus",
        }
    }

    fn peer(&mut self) -> &mut common::Peer {
        match self {
            Storage::Vm(p) => p,
            Storage::Prom(p) => p,
        }
    }

    fn is_running(&self) -> bool {
        match self {
            Storage::Vm(p) => p.is_running(),
            Storage::Prom(p) => p.is_running(),
        }
    }

    /// Every numbered sample it holds, duplicates included.
    async fn numbered(&self) -> Vec<Series> {
        match self {
            Storage::Vm(p) => p.export(load::METRIC).await,
            Storage::Prom(p) => p.raw_samples(load::METRIC).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_soak_loses_no_acknowledged_sample() {
    let seconds = std::env::var("PROMRELAY_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    let seed = std::env::var("PROMRELAY_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::try_from(common::now_ms()).expect("positive"));
    println!("soak: {seconds} s of chaos, seed {seed} (PROMRELAY_SOAK_SEED replays it)");

    let vm = Peers::victoria_metrics().start().await;
    let prom = Peers::prometheus_receiver().start().await;
    let node = Peers::node_exporter().start().await;
    let proxies = vec![
        FaultProxy::start(vm.remote_write_url()).await,
        FaultProxy::start(prom.remote_write_url()).await,
    ];
    let relay = Relay::with_storages(&[proxies[0].url(), proxies[1].url()])
        .storage_setting(&format!("queue_max_bytes: {QUEUE_MAX}"))
        .storage_setting("queue_full: reject")
        .start()
        .await;
    let agent = Peers::prometheus_agent(&[node.address()], &relay.remote_write_url())
        .start()
        .await;
    let ids: Vec<String> = relay
        .queues()
        .await
        .iter()
        .map(|q| q["id"].as_str().expect("queue id").to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let queue_dirs = ids
        .iter()
        .map(|id| relay.dir().join("data").join("queues").join(id))
        .collect();
    let load = Load::start(relay.remote_write_url(), CONNECTIONS, PUSH_PAUSE);
    let mut soak = Soak {
        relay,
        storages: vec![Storage::Vm(vm), Storage::Prom(prom)],
        proxies,
        queue_dirs,
        rng: fastrand::Rng::with_seed(seed),
        start: Instant::now(),
        events: Vec::new(),
        damaged: [HashSet::new(), HashSet::new()],
        totals: RelayTotals::default(),
        resources: Vec::new(),
        filler_seq: 0,
        first_round: Vec::new(),
    };

    let deadline = soak.start + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let pause = Duration::from_millis(soak.rng.u64(1_000..4_000));
        soak.watch(pause).await;
        let event = soak.pick();
        soak.run(event).await;
    }
    let record = load.stop().await;
    soak.heal().await;
    soak.log("all faults healed; waiting for the queues to drain");
    soak.wait_drained().await;
    soak.end_lifetime().await;
    drop(agent);

    let mut report = String::new();
    let mut unexplained_total = 0usize;
    writeln!(
        report,
        "\n| storage | acknowledged | delivered | duplicates | extra (not acked) | refused by storage (4xx) | dropped by cap | lost with corrupt blocks | unexplained |\n|---|---|---|---|---|---|---|---|---|"
    )
    .expect("write to string");
    for (i, storage) in soak.storages.iter().enumerate() {
        // A storage makes freshly written samples visible a moment after acknowledging them
        // (VictoriaMetrics even after /internal/force_flush): ask until nothing acknowledged is
        // missing, or the deadline passes, and account with the last answer.
        let asked = Instant::now();
        let (held, copies) = loop {
            let (held, copies) = ids_of(&storage.numbered().await);
            let complete = record
                .acked
                .iter()
                .all(|id| held.contains(id) || soak.damaged[i].contains(id));
            if complete || asked.elapsed() > VISIBLE_TIMEOUT {
                break (held, copies);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let delivered = record.acked.intersection(&held).count();
        let extra = held.difference(&record.acked).count();
        let duplicates = copies - held.len();
        let corrupt_lost: HashSet<&SampleId> = soak.damaged[i]
            .iter()
            .filter(|id| record.acked.contains(id) && !held.contains(id))
            .collect();
        let missing: Vec<&SampleId> = record
            .acked
            .iter()
            .filter(|id| !held.contains(id) && !soak.damaged[i].contains(id))
            .collect();
        unexplained_total += missing.len();
        writeln!(
            report,
            "| {} | {} | {delivered} | {duplicates} | {extra} | {} blocks, {} samples | {} | {} | {} |",
            storage.name(),
            record.acked.len(),
            soak.totals.rejected_blocks[i],
            soak.totals.dropped_samples[i],
            soak.totals.cap_dropped_blocks[i],
            corrupt_lost.len(),
            missing.len()
        )
        .expect("write to string");
        if !missing.is_empty() {
            let mut sample: Vec<_> = missing.iter().take(10).collect();
            sample.sort();
            writeln!(report, "  e.g. missing at {}: {sample:?}", storage.name())
                .expect("write to string");
        }
    }
    writeln!(
        report,
        "\nrefused pushes by status (0 = no answer): {:?}",
        record.refused_pushes
    )
    .expect("write to string");
    writeln!(
        report,
        "relay counters over all lifetimes: {:?}",
        soak.totals
    )
    .expect("write");
    let delivered_any = record.acked.len().max(1);
    writeln!(
        report,
        "relay CPU: {:.1} s, {:.2} µs per acknowledged sample (both storages, agent load included)",
        soak.totals.cpu_seconds,
        soak.totals.cpu_seconds * 1e6 / delivered_any as f64
    )
    .expect("write");
    writeln!(report, "\nrelay resources (s, RSS MiB, open fds):").expect("write");
    let step = (soak.resources.len() / 20).max(1);
    for (t, rss, fds) in soak.resources.iter().step_by(step) {
        writeln!(report, "  {t:>5} {:>7.1} {fds:>4}", *rss as f64 / 1024.0).expect("write");
    }
    writeln!(report, "\nchaos events:").expect("write");
    for e in &soak.events {
        writeln!(report, "  {e}").expect("write");
    }
    println!("{report}");
    assert!(record.acked.len() > 1000, "the load barely ran: {report}");
    assert_eq!(
        unexplained_total, 0,
        "acknowledged samples were lost: {report}"
    );
}

impl Soak {
    fn log(&mut self, what: &str) {
        let line = format!("{:>6.1}s {what}", self.start.elapsed().as_secs_f64());
        println!("soak: {line}");
        self.events.push(line);
    }

    /// The next event: every kind once (in random order) first, so even a short run covers
    /// them all, then at random.
    fn pick(&mut self) -> Event {
        let storage = self.rng.usize(0..2);
        if self.first_round.is_empty() && self.events.is_empty() {
            self.first_round = vec![0, 3, 5, 6, 7, 8, 10];
            self.rng.shuffle(&mut self.first_round);
        }
        let kind = self
            .first_round
            .pop()
            .unwrap_or_else(|| self.rng.u32(0..12));
        match kind {
            0..=2 => Event::KillRelay,
            3 | 4 => Event::StopStorage(storage),
            5 => Event::Slow(storage),
            6 => Event::Errors(storage, 500),
            7 => Event::Errors(storage, 429),
            8 | 9 => Event::FillCap(storage),
            _ => Event::CorruptWhileDown(storage),
        }
    }

    /// Waits `pause`, sampling the relay's RSS and open files every second.
    async fn watch(&mut self, pause: Duration) {
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if self.relay.is_running() {
                let pid = self.relay.pid();
                if let Some((rss, fds)) = resources(pid) {
                    self.resources
                        .push((self.start.elapsed().as_secs(), rss, fds));
                }
            }
            tokio::time::sleep(Duration::from_secs(1).min(until - Instant::now())).await;
        }
    }

    async fn run(&mut self, event: Event) {
        match event {
            Event::KillRelay => {
                self.log("kill -9 the relay");
                self.kill_relay().await;
                let down = Duration::from_millis(self.rng.u64(0..1_500));
                tokio::time::sleep(down).await;
                self.relay.start_again().await;
                self.log(&format!("relay restarted after {down:?}"));
            }
            Event::StopStorage(i) => {
                let name = self.storages[i].name();
                self.log(&format!("stop {name}"));
                self.storages[i].peer().stop().await;
                let down = Duration::from_millis(self.rng.u64(2_000..6_000));
                self.watch(down).await;
                self.storages[i].peer().start_again().await;
                self.log(&format!("{name} started again after {down:?}"));
            }
            Event::Slow(i) => {
                self.fault_for(i, Fault::Slow(Duration::from_millis(1_500)))
                    .await
            }
            Event::Errors(i, code) => self.fault_for(i, Fault::Status(code)).await,
            Event::FillCap(i) => {
                let name = self.storages[i].name();
                self.proxies[i].set(Fault::Status(503));
                let refused = self.fill(i, None).await;
                self.log(&format!(
                    "{name} answers 503; filled its queue to the cap ({refused})"
                ));
                self.watch(Duration::from_secs(3)).await;
                self.proxies[i].set(Fault::Pass);
                self.log(&format!("{name} answers again"));
            }
            Event::CorruptWhileDown(i) => {
                let name = self.storages[i].name();
                self.proxies[i].set(Fault::Status(503));
                let filled = self.fill(i, Some(3)).await;
                self.kill_relay().await;
                match corrupt::damage_one_block(&self.queue_dirs[i]) {
                    Some(d) => {
                        let lost = d.samples.len();
                        self.damaged[i].extend(d.samples);
                        self.log(&format!(
                            "relay killed with {name} backlogged ({filled}); flipped a byte at {}:{} (a block of {lost} numbered samples)",
                            d.chunk.display(),
                            d.offset
                        ));
                    }
                    None => self.log(&format!(
                        "relay killed with {name} backlogged ({filled}); no sealed pending block to damage"
                    )),
                }
                self.relay.start_again().await;
                self.proxies[i].set(Fault::Pass);
                self.log(&format!("relay restarted; {name} answers again"));
            }
        }
    }

    async fn fault_for(&mut self, i: usize, fault: Fault) {
        let name = self.storages[i].name();
        self.proxies[i].set(fault);
        self.log(&format!("{name}: {fault:?}"));
        self.watch(Duration::from_secs(4)).await;
        self.proxies[i].set(Fault::Pass);
        self.log(&format!("{name}: Pass"));
    }

    /// Pushes filler (unnumbered) until the relay refuses a push (its queue `i` is full), or,
    /// with `chunks`, until queue `i` holds that many chunk files. Returns what happened.
    async fn fill(&mut self, i: usize, chunks: Option<usize>) -> String {
        let http = common::http_client();
        for n in 0..400 {
            if let Some(want) = chunks
                && chunk_files(&self.queue_dirs[i]) >= want
            {
                return format!("{n} filler pushes, {want} chunks");
            }
            self.filler_seq += 1;
            let status = http
                .post(self.relay.remote_write_url())
                .header("Content-Type", "application/x-protobuf")
                .header("Content-Encoding", "snappy")
                .body(filler(self.filler_seq))
                .send()
                .await
                .map_or(0, |a| a.status().as_u16());
            if !(200..300).contains(&status) && chunks.is_none() {
                return format!("{n} filler pushes, then refused with {status}");
            }
        }
        "400 filler pushes".to_owned()
    }

    async fn kill_relay(&mut self) {
        self.end_lifetime().await;
        self.relay.kill().await;
    }

    /// Adds this relay lifetime's counters to the totals (they restart with the process).
    async fn end_lifetime(&mut self) {
        let queues = self.relay.queues().await;
        for (i, q) in queues.iter().enumerate().take(2) {
            let n = |k: &str| q[k].as_u64().unwrap_or(0);
            self.totals.cap_dropped_blocks[i] += n("cap_dropped_blocks_total");
            self.totals.rejected_blocks[i] += n("rejected_blocks_total");
            self.totals.dropped_samples[i] += n("dropped_samples_total");
            self.totals.corrupt_blocks_skipped[i] += n("corrupt_blocks_skipped_total");
        }
        self.totals.cpu_seconds += cpu_seconds(self.relay.pid());
    }

    async fn heal(&mut self) {
        for p in &self.proxies {
            p.set(Fault::Pass);
        }
        for s in &mut self.storages {
            if !s.is_running() {
                s.peer().start_again().await;
            }
        }
        if !self.relay.is_running() {
            self.relay.start_again().await;
        }
    }

    async fn wait_drained(&mut self) {
        let relay = &self.relay;
        eventually("every queue to drain", DRAIN_TIMEOUT, || async {
            let queues = relay.queues().await;
            if queues.iter().all(|q| q["pending_blocks"] == 0) {
                Ok(())
            } else {
                Err(serde_json::Value::Array(queues).to_string())
            }
        })
        .await;
    }
}

/// `(held ids, copies held)` of the numbered samples in `series`.
fn ids_of(series: &[Series]) -> (HashSet<SampleId>, usize) {
    let mut held = HashSet::new();
    let mut copies = 0;
    for s in series {
        let (Some(conn), Some(k)) = (
            s.label("conn").and_then(|v| v.parse().ok()),
            s.label("s").and_then(|v| v.parse().ok()),
        ) else {
            continue;
        };
        for (ts, _) in &s.samples {
            held.insert((conn, k, *ts));
            copies += 1;
        }
    }
    (held, copies)
}

/// A filler push: 2,000 series of random values (about 40 KiB compressed).
fn filler(seq: u64) -> Vec<u8> {
    let now = common::now_ms();
    let timeseries = (0..2_000)
        .map(|k| TimeSeries {
            labels: vec![
                Label::new("__name__", "soak_filler"),
                Label::new("k", k.to_string()),
            ],
            samples: vec![Sample {
                value: fastrand::f64() * seq as f64,
                timestamp: now,
            }],
            ..Default::default()
        })
        .collect();
    compress(
        &WriteRequest {
            timeseries,
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

fn chunk_files(dir: &std::path::Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "chunk"))
            .count()
    })
}

/// RSS in KiB and open file descriptors of `pid`.
fn resources(pid: u32) -> Option<(u64, usize)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// User + system CPU seconds of `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command; 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}
