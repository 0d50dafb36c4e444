//! Crash test: the queue survives `kill -9` at any moment.
//!
//! A child process (this binary re-executed with `QUEUE_CRASH_CHILD` set) opens the queue and, as fast
//! as it can, appends numbered blocks and reads and acknowledges some of them, reporting each step to
//! the parent on stdout: `a N` after `append` of block N returned, `i N` *before* it acknowledges block
//! N, `f` after `flush` returned. The parent kills it with SIGKILL after a random delay, reopens the
//! queue, reads everything and checks it against what the child reported:
//!
//! - opening never fails and finds no damage (a kill tears at most the last write, which is cut off);
//! - every block is intact (its payload is a function of its number: no garbage);
//! - the blocks are consecutive numbers in order: no duplicates, no gaps;
//! - every block whose append was reported and whose acknowledgement was not is there;
//! - nothing acknowledged before a reported flush comes back (acknowledged but not flushed may: at
//!   least once);
//! - after the last reported block there is at most one more (the kill may land between `append`
//!   returning and the report).
//!
//! The same directory is used for every round, so the position file, chunk deletion and recovery of
//! what the previous kill left are exercised again and again. Rounds use `SyncPolicy::Never` (a
//! process kill must lose nothing the OS has), every tenth `SyncPolicy::Always`.
//!
//! Replay a failure with the seed it prints: `QUEUE_CRASH_SEED=0x... cargo test --test queue_crash`.
//! `QUEUE_CRASH_ROUNDS` changes the number of rounds.
//!
//! `harness = false` (Cargo.toml): `main` is the parent, or the child when `QUEUE_CRASH_CHILD` is set.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use promrelay::queue::{Options, Queue, SyncPolicy};
use queue_helpers::Rng;

#[path = "common/queue.rs"]
mod queue_helpers;

const CHUNK_BYTES: u64 = 16 * 1024;
const DEFAULT_ROUNDS: u64 = 60;
/// The child stops reading when fewer than this many blocks are unread, so the queue keeps a backlog
/// that spans several chunk files, and reads on every step above `MAX_BACKLOG` so it stays bounded.
const MIN_BACKLOG: u64 = 20;
const MAX_BACKLOG: u64 = 1500;
/// A child that was not killed in this time stops by itself (and the round fails).
const CHILD_MAX_RUN: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test -- --list` and test runners ask for the test names.
        println!("queue_crash: test");
        return ExitCode::SUCCESS;
    }
    if let Ok(dir) = std::env::var("QUEUE_CRASH_CHILD") {
        return match child(Path::new(&dir)) {
            Ok(()) => ExitCode::from(4),
            Err(e) => {
                eprintln!("queue_crash child: {e}");
                ExitCode::from(3)
            }
        };
    }
    parent()
}

// ---------------------------------------------------------------------------------------------
// Blocks: an 8-byte number, then 10..5000 bytes of filler derived from it, so frames straddle pages
// and chunk boundaries, and any damage or mix-up shows.

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn block(n: u64) -> Vec<u8> {
    let h = mix(n);
    let filler = 10 + (h % 4991) as usize;
    let mut v = Vec::with_capacity(8 + filler);
    v.extend_from_slice(&n.to_le_bytes());
    v.extend((0..filler).map(|i| (h >> (8 * (i % 8))) as u8 ^ i as u8));
    v
}

/// The block's number if the payload is exactly what `block` makes for it.
fn block_number(payload: &[u8]) -> Option<u64> {
    let n = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    (block(n) == payload).then_some(n)
}

fn count_of(n: u64) -> u32 {
    (n % 7) as u32 + 1
}

fn options(sync: SyncPolicy) -> Options {
    queue_helpers::options(CHUNK_BYTES, sync)
}

// ---------------------------------------------------------------------------------------------
// Child

fn env_u64(name: &str) -> Result<u64, String> {
    std::env::var(name)
        .map_err(|_| format!("{name} not set"))?
        .parse()
        .map_err(|e| format!("{name}: {e}"))
}

fn child(dir: &Path) -> Result<(), String> {
    let mut next_append = env_u64("QUEUE_CRASH_NEXT")?;
    let mut next_read = env_u64("QUEUE_CRASH_FIRST_UNREAD")?;
    let mut unread = env_u64("QUEUE_CRASH_UNREAD")?;
    let mut rng = Rng::new(env_u64("QUEUE_CRASH_CHILD_SEED")?);
    let sync = match std::env::var("QUEUE_CRASH_SYNC").as_deref() {
        Ok("always") => SyncPolicy::Always,
        _ => SyncPolicy::Never,
    };
    // How this round reads: how often, how many blocks it keeps in flight, how often it flushes.
    let read_percent = 40 + rng.below(70);
    let window = 1 + rng.below(4) as usize;
    let flush_every = 5 + rng.below(60);

    let q = Queue::open(dir, options(sync)).map_err(|e| format!("open: {e}"))?;
    let mut out = std::io::stdout().lock();
    let mut report = |line: std::fmt::Arguments<'_>| -> Result<(), String> {
        // One write per line: the parent sees whole lines up to the kill.
        out.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("report: {e}"))
    };
    let mut in_flight = Vec::new();
    let started = Instant::now();
    let mut step = 0u64;
    while started.elapsed() < CHILD_MAX_RUN {
        step += 1;
        let n = next_append;
        q.append(&block(n), count_of(n))
            .map_err(|e| format!("append {n}: {e}"))?;
        report(format_args!("a {n}"))?;
        next_append += 1;
        unread += 1;

        let reads = if unread > MAX_BACKLOG {
            2
        } else if unread > MIN_BACKLOG && rng.below(100) < read_percent {
            1
        } else {
            0
        };
        for _ in 0..reads {
            let Some(b) = q.read().map_err(|e| format!("read: {e}"))? else {
                return Err(format!("read returned nothing with {unread} blocks unread"));
            };
            if block_number(&b.payload) != Some(next_read) || b.count != count_of(next_read) {
                return Err(format!(
                    "read {:?} (count {}), expected block {next_read}",
                    block_number(&b.payload),
                    b.count
                ));
            }
            in_flight.push((next_read, b.id));
            next_read += 1;
            unread -= 1;
        }
        // Acknowledge in any order, keeping up to `window` blocks in flight.
        while in_flight.len() > window || (!in_flight.is_empty() && rng.below(4) == 0) {
            let (n, id) = in_flight.swap_remove(rng.below(in_flight.len() as u64) as usize);
            report(format_args!("i {n}"))?;
            q.ack(id);
        }
        if step.is_multiple_of(flush_every) {
            q.flush().map_err(|e| format!("flush: {e}"))?;
            report(format_args!("f"))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parent

/// What the parent knows from the reports of every round so far.
#[derive(Default)]
struct Model {
    /// One past the highest block known to have been appended (reported, or found on reopen).
    appended_end: u64,
    /// Every block below this one has been (or was about to be) acknowledged since the last reopen
    /// found it.
    unacked_from: u64,
    /// Blocks at or above `unacked_from` whose acknowledgement was announced.
    acked_ahead: BTreeSet<u64>,
    /// Blocks below this were acknowledged before a flush that returned: they never come back.
    flushed_from: u64,
}

impl Model {
    fn apply(&mut self, line: &str) -> Result<(), String> {
        let mut words = line.split(' ');
        let kind = words.next().unwrap_or_default();
        let n = words.next().map(|w| w.parse::<u64>());
        match (kind, n) {
            ("a", Some(Ok(n))) => {
                if n != self.appended_end {
                    return Err(format!(
                        "child appended block {n}, expected {}",
                        self.appended_end
                    ));
                }
                self.appended_end = n + 1;
            }
            ("i", Some(Ok(n))) => {
                if n >= self.unacked_from {
                    self.acked_ahead.insert(n);
                }
                while self.acked_ahead.remove(&self.unacked_from) {
                    self.unacked_from += 1;
                }
            }
            ("f", None) => self.flushed_from = self.unacked_from,
            _ => return Err(format!("child reported {line:?}")),
        }
        Ok(())
    }

    fn summary(&self) -> String {
        format!(
            "appended below {}, acknowledged below {} (and {} more above), flushed below {}",
            self.appended_end,
            self.unacked_from,
            self.acked_ahead.len(),
            self.flushed_from
        )
    }

    /// Checks what a reopen found (`found`: the block numbers, in read order) and learns from it.
    fn check_reopen(&mut self, found: &[u64]) -> Result<(), String> {
        for w in found.windows(2) {
            if w[1] != w[0] + 1 {
                return Err(format!(
                    "blocks not consecutive: {} followed by {}",
                    w[0], w[1]
                ));
            }
        }
        match (found.first(), found.last()) {
            (Some(&first), Some(&last)) => {
                if first < self.flushed_from {
                    return Err(format!(
                        "block {first} came back although it was acknowledged and flushed \
                         (everything below {} was)",
                        self.flushed_from
                    ));
                }
                if self.unacked_from < self.appended_end && first > self.unacked_from {
                    return Err(format!(
                        "unacknowledged blocks {}..{first} lost",
                        self.unacked_from
                    ));
                }
                if last + 1 < self.appended_end {
                    return Err(format!(
                        "blocks {}..{} lost from the end (last found {last})",
                        last + 1,
                        self.appended_end
                    ));
                }
                if last > self.appended_end {
                    return Err(format!(
                        "block {last} found, but the last append reported was {}: \
                         at most one unreported block may be there",
                        self.appended_end as i128 - 1
                    ));
                }
                // A block appended but not reported is now known to be there: it must stay.
                self.appended_end = self.appended_end.max(last + 1);
            }
            _ => {
                if self.unacked_from < self.appended_end {
                    return Err(format!(
                        "queue empty, but blocks {}..{} were never acknowledged",
                        self.unacked_from, self.appended_end
                    ));
                }
            }
        }
        // What came back is pending again, whatever was acknowledged before the kill: the next
        // session must acknowledge it anew before it may disappear.
        self.unacked_from = found.first().copied().unwrap_or(self.appended_end);
        self.acked_ahead.clear();
        Ok(())
    }
}

struct Round {
    index: u64,
    seed: u64,
    delay: Duration,
    sync: SyncPolicy,
}

impl std::fmt::Display for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "round {} (seed {:#018x}, kill after {} ms, sync {:?})",
            self.index,
            self.seed,
            self.delay.as_millis(),
            self.sync
        )
    }
}

#[derive(Default)]
struct Totals {
    appended: u64,
    torn_tails: u64,
    deleted_chunks_seen: bool,
}

fn parent() -> ExitCode {
    let master = std::env::var("QUEUE_CRASH_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            #[expect(
                clippy::disallowed_methods,
                reason = "a seed wants the clock's nanoseconds, not the wall-clock milliseconds"
            )]
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let rounds = std::env::var("QUEUE_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    println!(
        "queue_crash: {rounds} rounds, seed {master:#018x} (replay: QUEUE_CRASH_SEED={master:#x})"
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("queue");
    let started = Instant::now();
    let mut model = Model::default();
    let mut totals = Totals::default();
    let mut previous = Found::default();
    let mut rng = Rng::new(mix(master));
    for index in 0..rounds {
        let seed = rng.next();
        let round = Round {
            index,
            seed,
            delay: Duration::from_millis(5 + seed % 196),
            sync: if index % 10 == 9 {
                SyncPolicy::Always
            } else {
                SyncPolicy::Never
            },
        };
        match run_round(&dir, &round, &mut model, &mut totals, &previous) {
            Ok(found) => previous = found,
            Err(e) => {
                println!("{round}: FAILED: {e}");
                println!("model: {}", model.summary());
                println!("replay: QUEUE_CRASH_SEED={master:#x}");
                println!("queue_crash: {index} passed, 1 failed");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "queue_crash: {} blocks appended, {} torn tails cut, chunk files deleted: {}, {:.1} s",
        totals.appended,
        totals.torn_tails,
        totals.deleted_chunks_seen,
        started.elapsed().as_secs_f64()
    );
    if totals.appended == 0 || !totals.deleted_chunks_seen {
        println!(
            "queue_crash: no block appended or no chunk file deleted: the test tested too little"
        );
        println!("queue_crash: {rounds} passed, 1 failed");
        return ExitCode::FAILURE;
    }
    println!("queue_crash: {rounds} passed, 0 failed");
    ExitCode::SUCCESS
}

/// What the previous reopen found, so the child can check what it reads.
#[derive(Default)]
struct Found {
    first: Option<u64>,
    len: u64,
}

fn run_round(
    dir: &Path,
    round: &Round,
    model: &mut Model,
    totals: &mut Totals,
    previous: &Found,
) -> Result<Found, String> {
    let (first_unread, unread) = (previous.first, previous.len);
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env("QUEUE_CRASH_CHILD", dir)
        .env("QUEUE_CRASH_NEXT", model.appended_end.to_string())
        .env(
            "QUEUE_CRASH_FIRST_UNREAD",
            first_unread.unwrap_or(model.appended_end).to_string(),
        )
        .env("QUEUE_CRASH_UNREAD", unread.to_string())
        .env("QUEUE_CRASH_CHILD_SEED", round.seed.to_string())
        .env(
            "QUEUE_CRASH_SYNC",
            if round.sync == SyncPolicy::Always {
                "always"
            } else {
                "never"
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn child: {e}"))?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let collector = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = BufReader::new(stdout).read_to_end(&mut all);
        all
    });
    #[expect(
        clippy::disallowed_methods,
        reason = "the child runs for this long before the kill: the delay is the experiment"
    )]
    std::thread::sleep(round.delay);
    if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
        let _ = collector.join();
        return Err(format!("child exited by itself before the kill: {status}"));
    }
    child.kill().map_err(|e| format!("kill: {e}"))?; // SIGKILL
    child.wait().map_err(|e| format!("wait: {e}"))?;
    let reports = collector.join().map_err(|_| "collector panicked")?;
    // Only whole lines: a report cut by the kill says nothing.
    let whole = match reports.iter().rposition(|&b| b == b'\n') {
        Some(i) => &reports[..=i],
        None => &[][..],
    };
    let before = model.appended_end;
    for line in whole.lines() {
        model.apply(&line.map_err(|e| e.to_string())?)?;
    }
    totals.appended += model.appended_end - before;
    let (found, stats) = reopen_and_read(dir)?;
    if stats.torn_tail_bytes > 0 {
        totals.torn_tails += 1;
    }
    if oldest_chunk(dir) > 1 {
        totals.deleted_chunks_seen = true;
    }
    if stats.corrupt_blocks_skipped != 0
        || stats.chunks_skipped != 0
        || stats.position_fallbacks != 0
    {
        return Err(format!("a kill must not look like damage: {stats:?}"));
    }
    model.check_reopen(&found)?;
    Ok(Found {
        first: found.first().copied(),
        len: found.len() as u64,
    })
}

/// Reopens the queue like a restart would, reads every block without acknowledging, closes.
fn reopen_and_read(dir: &Path) -> Result<(Vec<u64>, promrelay::queue::Stats), String> {
    let q = Queue::open(dir, options(SyncPolicy::Never)).map_err(|e| format!("reopen: {e}"))?;
    let mut found = Vec::new();
    while let Some(b) = q.read().map_err(|e| format!("read: {e}"))? {
        let Some(n) = block_number(&b.payload) else {
            return Err(format!(
                "garbage block after {:?}: {} bytes starting {:02x?}",
                found.last(),
                b.payload.len(),
                &b.payload[..b.payload.len().min(16)]
            ));
        };
        if b.count != count_of(n) {
            return Err(format!(
                "block {n} has count {}, expected {}",
                b.count,
                count_of(n)
            ));
        }
        found.push(n);
    }
    let stats = q.stats();
    q.close().map_err(|e| format!("close: {e}"))?;
    Ok((found, stats))
}

/// The sequence number of the oldest chunk file (the first is 1): above 1 once deletion happened.
fn oldest_chunk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                u64::from_str_radix(name.strip_suffix(".chunk")?, 16).ok()
            })
            .min()
            .unwrap_or(0)
        })
        .unwrap_or(0)
}
