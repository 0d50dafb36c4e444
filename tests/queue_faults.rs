//! Every file operation the queue makes, failed at every step it is made in.
//!
//! Steps: `append` (group commit under `--fsync always`), `rollover` (sealing the head chunk and
//! starting the next), `read`, `flush` (fsync, position persist, deletion of acknowledged chunks),
//! `cap` (dropping the oldest chunks to honour the size cap) and `recovery` (open: a fresh
//! directory, one left by a crash with a leftover, a junk file and a torn tail, and one whose
//! position file is gone). For each (operation x step) the matrix fails the operation with EIO and
//! with ENOSPC, on every occurrence while armed and on only its 1st, 2nd or 3rd occurrence, plus
//! the double faults that reach the clean-up paths (a failed write, then a failed cut-back or
//! removal). The rule every case must keep:
//! - every call returns within a deadline (no wedge) and nothing panics;
//! - once the fault is gone the queue heals: it opens, appends and reads again, flush succeeds;
//! - a reopen holds every block whose append returned Ok and that was not acknowledged (at the
//!   cap: every such block newer than the oldest one kept, as the cap drops from the front); no
//!   block comes back garbled, out of order or twice.
//!
//! Coverage (rows: operation, columns: step; `x` = a case injects the fault there and the rule
//! holds, `-` = the step never makes this operation). `required_coverage` pins this table: a case
//! that stops reaching its operation fails the test.
//!
//! | op        | append | rollover | read | flush | cap | recovery |
//! |-----------|--------|----------|------|-------|-----|----------|
//! | CreateDir |   -    |    -     |  -   |   -   |  -  |    x     |
//! | List      |   -    |    -     |  -   |   -   |  -  |    x     |
//! | Open      |   -    |    -     |  x   |   x   |  x  |    x     |
//! | Create    |   -    |    x     |  -   |   x   |  x  |    x     |
//! | Lock      |   -    |    -     |  -   |   -   |  -  |    x     |
//! | Stat      |   -    |    -     |  -   |   x   |  x  |    x     |
//! | Read      |   -    |    -     |  x   |   -   |  -  |    x     |
//! | Write     |   x    |    x     |  -   |   x   |  x  |    x     |
//! | Sync      |   x    |    x     |  -   |   x   |  x  |    x     |
//! | SyncDir   |   -    |    x     |  -   |   x   |  x  |    x     |
//! | Rename    |   -    |    -     |  -   |   x   |  x  |    x     |
//! | SetLen    |   x    |    x     |  -   |   -   |  x  |    x     |
//! | Remove    |   -    |    x     |  -   |   x   |  x  |    x     |
//!
//! 41 of the 78 (operation x step) pairs apply (13 operations x 6 steps), all 41 covered, by 992
//! cases (plus one fault-free run per step that checks the preparations).

#[path = "common/queue.rs"]
mod queue_helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promrelay::queue::{Faults, FullPolicy, Op, Options, Queue, SyncPolicy};
use queue_helpers::{block, index_of, read_all_unacked, read_and_ack_all};

/// Every call of a case (preparation, fault, healing) must be done by then.
const CASE_DEADLINE: Duration = Duration::from_secs(20);
const CHUNK: u64 = 4096;
/// Three blocks of this size fill a chunk; the fourth rolls over.
const BLOCK: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Append,
    Rollover,
    Read,
    Flush,
    Cap,
    RecoveryFresh,
    RecoveryAfterCrash,
    RecoveryPositionLost,
}

impl Step {
    const ALL: [Step; 8] = [
        Step::Append,
        Step::Rollover,
        Step::Read,
        Step::Flush,
        Step::Cap,
        Step::RecoveryFresh,
        Step::RecoveryAfterCrash,
        Step::RecoveryPositionLost,
    ];

    /// The column of the coverage table.
    fn column(self) -> &'static str {
        match self {
            Step::Append => "append",
            Step::Rollover => "rollover",
            Step::Read => "read",
            Step::Flush => "flush",
            Step::Cap => "cap",
            Step::RecoveryFresh | Step::RecoveryAfterCrash | Step::RecoveryPositionLost => {
                "recovery"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Errno {
    Eio,
    Enospc,
}

impl Errno {
    fn error(self) -> io::Error {
        match self {
            Errno::Eio => io::Error::from_raw_os_error(5),
            Errno::Enospc => io::Error::from_raw_os_error(28),
        }
    }
}

/// Which occurrences of an armed operation fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Always,
    Nth(u32),
}

/// One injected fault: `op` fails with `errno` on the occurrences `when` says.
#[derive(Debug, Clone, Copy)]
struct Fault {
    op: Op,
    errno: Errno,
    when: When,
}

/// A `Faults` hook tests arm and disarm; it records which operations it failed.
#[derive(Default)]
struct Switch {
    state: Mutex<SwitchState>,
}

#[derive(Default)]
struct SwitchState {
    armed: Vec<Fault>,
    seen: BTreeMap<Op, u32>,
    fired: BTreeSet<Op>,
}

impl Switch {
    fn arm(&self, faults: &[Fault]) {
        let mut s = self.state.lock().expect("not poisoned");
        s.armed = faults.to_vec();
        s.seen.clear();
    }

    fn disarm(&self) {
        self.state.lock().expect("not poisoned").armed.clear();
    }

    fn fired(&self) -> BTreeSet<Op> {
        self.state.lock().expect("not poisoned").fired.clone()
    }
}

impl Faults for Switch {
    fn check(&self, op: Op, _path: &Path) -> Option<io::Error> {
        let mut s = self.state.lock().expect("not poisoned");
        let fault = s.armed.iter().find(|f| f.op == op).copied()?;
        let seen = s.seen.entry(op).or_default();
        *seen += 1;
        let fail = match fault.when {
            When::Always => true,
            When::Nth(n) => *seen == n,
        };
        if fail {
            s.fired.insert(op);
            Some(fault.errno.error())
        } else {
            None
        }
    }
}

/// What a case did, for the rule checks.
#[derive(Default)]
struct Ledger {
    /// Appends that returned Ok, in order.
    ok: Vec<u32>,
    /// Appends that returned an error (their block may or may not be there).
    failed: Vec<u32>,
    /// Blocks acknowledged (they may come back: at-least-once).
    acked: BTreeSet<u32>,
    next: u32,
}

impl Ledger {
    fn append(&mut self, q: &Queue) -> bool {
        let i = self.next;
        self.next += 1;
        match q.append(&block(i, BLOCK), 1) {
            Ok(()) => {
                self.ok.push(i);
                true
            }
            Err(_) => {
                self.failed.push(i);
                false
            }
        }
    }

    fn append_ok(&mut self, q: &Queue, n: u32) -> Result<(), String> {
        for _ in 0..n {
            if !self.append(q) {
                return Err(format!(
                    "append {} failed with no fault armed",
                    self.next - 1
                ));
            }
        }
        Ok(())
    }

    /// Reads and acknowledges `n` blocks.
    fn ack(&mut self, q: &Queue, n: usize) -> Result<(), String> {
        for _ in 0..n {
            let b = q
                .read()
                .map_err(|e| format!("read with no fault armed: {e}"))?
                .ok_or("nothing to read while preparing")?;
            self.acked.insert(index_of(&b.payload));
            q.ack(b.id);
        }
        Ok(())
    }
}

fn options(switch: &Arc<Switch>, sync: SyncPolicy) -> Options {
    Options {
        chunk_bytes: CHUNK,
        sync,
        faults: Some(Arc::clone(switch) as Arc<dyn Faults>),
        ..Options::default()
    }
}

/// The policy of a step: `Always` where the group commit's fsync is what is tested, else an
/// interval so long that the background flusher never runs during a case.
fn sync_for(step: Step) -> SyncPolicy {
    match step {
        Step::Append => SyncPolicy::Always,
        _ => SyncPolicy::Interval(Duration::from_secs(3600)),
    }
}

fn step_options(switch: &Arc<Switch>, step: Step) -> Options {
    let mut o = options(switch, sync_for(step));
    if step == Step::Cap {
        o.max_bytes = Some(8 * CHUNK);
        o.full_policy = FullPolicy::DropOldest;
    }
    o
}

fn open(dir: &Path, switch: &Arc<Switch>, step: Step) -> Result<Queue, String> {
    Queue::open(dir, step_options(switch, step)).map_err(|e| format!("open: {e}"))
}

/// Prepares the state a step starts from (no fault armed), arms `faults`, runs the step, disarms.
/// Returns the queue if it is open afterwards.
fn run_step(
    dir: &Path,
    switch: &Arc<Switch>,
    step: Step,
    faults: &[Fault],
    ledger: &mut Ledger,
) -> Result<Option<Queue>, String> {
    let queue_dir = dir.join("q");
    match step {
        Step::Append => {
            let q = open(&queue_dir, switch, step)?;
            ledger.append_ok(&q, 1)?;
            switch.arm(faults);
            ledger.append(&q);
            ledger.append(&q);
            switch.disarm();
            Ok(Some(q))
        }
        Step::Rollover => {
            let q = open(&queue_dir, switch, step)?;
            ledger.append_ok(&q, 3)?;
            switch.arm(faults);
            // The fourth block does not fit the first chunk: this append rolls over.
            ledger.append(&q);
            ledger.append(&q);
            switch.disarm();
            Ok(Some(q))
        }
        Step::Read => {
            let q = open(&queue_dir, switch, step)?;
            ledger.append_ok(&q, 7)?;
            switch.arm(faults);
            for _ in 0..10 {
                match q.read() {
                    Ok(Some(b)) => {
                        ledger.acked.insert(index_of(&b.payload));
                        q.ack(b.id);
                    }
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
            switch.disarm();
            q.rewind();
            Ok(Some(q))
        }
        Step::Flush => {
            let q = open(&queue_dir, switch, step)?;
            ledger.append_ok(&q, 8)?;
            ledger.ack(&q, 7)?;
            switch.arm(faults);
            let _ = q.flush();
            let _ = q.flush();
            switch.disarm();
            Ok(Some(q))
        }
        Step::Cap => {
            let q = open(&queue_dir, switch, step)?;
            // The cap is 8 chunks; 31 blocks of 1 KiB stay under it, the next appends drop the
            // oldest chunks.
            ledger.append_ok(&q, 31)?;
            switch.arm(faults);
            for _ in 0..6 {
                ledger.append(&q);
            }
            switch.disarm();
            if faults.is_empty() && q.stats().dropped_blocks == 0 {
                return Err("the cap step never reached the cap".into());
            }
            Ok(Some(q))
        }
        Step::RecoveryFresh => {
            switch.arm(faults);
            let q = Queue::open(&queue_dir, step_options(switch, step)).ok();
            switch.disarm();
            Ok(q)
        }
        Step::RecoveryAfterCrash => {
            prepare_after_crash(&queue_dir, switch, ledger)?;
            switch.arm(faults);
            let q = Queue::open(&queue_dir, step_options(switch, step)).ok();
            switch.disarm();
            Ok(q)
        }
        Step::RecoveryPositionLost => {
            let q = open(&queue_dir, switch, step)?;
            ledger.append_ok(&q, 8)?;
            q.close().map_err(|e| format!("close: {e}"))?;
            std::fs::remove_file(queue_dir.join("position")).map_err(|e| e.to_string())?;
            switch.arm(faults);
            let q = Queue::open(&queue_dir, step_options(switch, step)).ok();
            switch.disarm();
            Ok(q)
        }
    }
}

/// A directory as a crash leaves it: an acknowledged chunk whose deletion was interrupted (before
/// the position), a file with a chunk's name and nothing valid in it (after the head), and a torn
/// tail on the head chunk.
fn prepare_after_crash(
    dir: &Path,
    switch: &Arc<Switch>,
    ledger: &mut Ledger,
) -> Result<(), String> {
    let q = open(dir, switch, Step::RecoveryAfterCrash)?;
    ledger.append_ok(&q, 8)?;
    let first = chunk_files(dir).first().cloned().ok_or("no chunk")?;
    let saved = std::fs::read(&first).map_err(|e| e.to_string())?;
    ledger.ack(&q, 4)?;
    q.close().map_err(|e| format!("close: {e}"))?;
    if first.exists() {
        return Err("the acknowledged first chunk was not deleted".into());
    }
    std::fs::write(&first, saved).map_err(|e| e.to_string())?;
    let head = chunk_files(dir).last().cloned().ok_or("no chunk")?;
    let junk = dir.join("00000000000000ff.chunk");
    std::fs::write(junk, [0x55u8; 100]).map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&head)
        .map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut f, &[0xAA; 37]).map_err(|e| e.to_string())?;
    Ok(())
}

fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    queue_helpers::chunk_paths(dir)
}

/// After the step: the queue heals (opens, appends, reads, flushes, closes) and a reopen holds
/// what it must.
fn heal_and_check(
    dir: &Path,
    switch: &Arc<Switch>,
    step: Step,
    q: Option<Queue>,
    ledger: &mut Ledger,
) -> Result<(), String> {
    let queue_dir = dir.join("q");
    let q = match q {
        Some(q) => q,
        None => open(&queue_dir, switch, step).map_err(|e| format!("no heal: {e}"))?,
    };
    ledger
        .append_ok(&q, 3)
        .map_err(|e| format!("no heal: {e}"))?;
    let live = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_all_unacked(&q)))
        .map_err(|_| "no heal: reading the live queue failed".to_string())?;
    q.flush().map_err(|e| format!("no heal: flush: {e}"))?;
    q.close().map_err(|e| format!("no heal: close: {e}"))?;
    let q = Queue::open(
        &queue_dir,
        options(&Arc::new(Switch::default()), SyncPolicy::Never),
    )
    .map_err(|e| format!("reopen without faults: {e}"))?;
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_and_ack_all(&q)))
        .map_err(|_| "reading after reopen: garbage block".to_string())?;
    q.close().map_err(|e| format!("close: {e}"))?;

    if got.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "blocks out of order or twice after reopen: {got:?}"
        ));
    }
    let attempted: BTreeSet<u32> = ledger.ok.iter().chain(&ledger.failed).copied().collect();
    if let Some(stray) = got.iter().find(|i| !attempted.contains(i)) {
        return Err(format!("block {stray} was never appended"));
    }
    let have: BTreeSet<u32> = got.iter().copied().collect();
    let oldest_kept = got.first().copied().unwrap_or(u32::MAX);
    let lost: Vec<u32> = ledger
        .ok
        .iter()
        .copied()
        .filter(|i| !ledger.acked.contains(i) && !have.contains(i))
        .filter(|&i| step != Step::Cap || i > oldest_kept)
        .collect();
    if !lost.is_empty() {
        return Err(format!(
            "blocks whose append returned Ok and were not acknowledged are lost: {lost:?} \
             (reopen holds {got:?}; live read held {live:?})"
        ));
    }
    if step == Step::Cap && ledger.ok.last().is_some_and(|l| !have.contains(l)) {
        return Err("the cap dropped the newest block".into());
    }
    Ok(())
}

/// A directory on tmpfs when there is one: the matrix makes thousands of fsyncs, which are free
/// there and what the faults are injected into anyway.
fn temp_dir() -> Result<tempfile::TempDir, String> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return Ok(d);
    }
    tempfile::tempdir().map_err(|e| e.to_string())
}

/// Runs one case in a thread with a deadline; `Ok(fired ops)` or what broke the rule.
fn run_case(step: Step, faults: &[Fault]) -> Result<BTreeSet<Op>, String> {
    let (tx, rx) = mpsc::channel();
    let faults = faults.to_vec();
    std::thread::spawn(move || {
        let res = std::panic::catch_unwind(move || -> Result<BTreeSet<Op>, String> {
            let dir = temp_dir()?;
            let switch = Arc::new(Switch::default());
            let mut ledger = Ledger::default();
            let q = run_step(dir.path(), &switch, step, &faults, &mut ledger)?;
            let fired = switch.fired();
            heal_and_check(dir.path(), &switch, step, q, &mut ledger)?;
            Ok(fired)
        });
        let _ = tx.send(res.unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        }));
    });
    match rx.recv_timeout(CASE_DEADLINE) {
        Ok(res) => res,
        Err(_) => Err(format!("wedged: no answer within {CASE_DEADLINE:?}")),
    }
}

/// Every (op, step column) pair that some case must reach: the table in the module doc.
fn required_coverage() -> BTreeSet<(Op, &'static str)> {
    use Op::*;
    let rows: [(Op, &[&str]); 13] = [
        (CreateDir, &["recovery"]),
        (List, &["recovery"]),
        (Open, &["read", "flush", "cap", "recovery"]),
        (Create, &["rollover", "flush", "cap", "recovery"]),
        (Lock, &["recovery"]),
        (Stat, &["flush", "cap", "recovery"]),
        (Read, &["read", "recovery"]),
        (Write, &["append", "rollover", "flush", "cap", "recovery"]),
        (Sync, &["append", "rollover", "flush", "cap", "recovery"]),
        (SyncDir, &["rollover", "flush", "cap", "recovery"]),
        (Rename, &["flush", "cap", "recovery"]),
        (SetLen, &["append", "rollover", "cap", "recovery"]),
        (Remove, &["rollover", "flush", "cap", "recovery"]),
    ];
    rows.iter()
        .flat_map(|(op, cols)| cols.iter().map(move |c| (*op, *c)))
        .collect()
}

/// The cases of one step: every operation alone (every occurrence, or only the 1st, 2nd or 3rd,
/// with EIO and with ENOSPC), then the double faults that reach clean-up paths.
fn cases() -> Vec<(Step, Vec<Fault>)> {
    let mut out = Vec::new();
    for step in Step::ALL {
        for op in Op::ALL {
            for errno in [Errno::Eio, Errno::Enospc] {
                for when in [When::Always, When::Nth(1), When::Nth(2), When::Nth(3)] {
                    out.push((step, vec![Fault { op, errno, when }]));
                }
            }
        }
        let always = |op, errno| Fault {
            op,
            errno,
            when: When::Always,
        };
        for errno in [Errno::Eio, Errno::Enospc] {
            // A failed write, and the cut-back or the removal of a half-made chunk fails too.
            out.push((
                step,
                vec![always(Op::Write, errno), always(Op::SetLen, Errno::Eio)],
            ));
            // The same after a rollover: the header is written, the block is not.
            let second_write = Fault {
                op: Op::Write,
                errno,
                when: When::Nth(2),
            };
            out.push((step, vec![second_write, always(Op::SetLen, Errno::Eio)]));
            out.push((
                step,
                vec![always(Op::Write, errno), always(Op::Remove, Errno::Eio)],
            ));
            out.push((
                step,
                vec![always(Op::Sync, errno), always(Op::Remove, Errno::Eio)],
            ));
            // A full disk: the position's temporary cannot be made, so it is overwritten in
            // place, and that fails too.
            for second in [Op::Stat, Op::Open, Op::Remove, Op::Write, Op::Sync] {
                out.push((
                    step,
                    vec![always(Op::Create, Errno::Enospc), always(second, errno)],
                ));
            }
            // The rename of a junk chunk aside fails, and so does removing it.
            out.push((
                step,
                vec![always(Op::Rename, errno), always(Op::Remove, Errno::Eio)],
            ));
        }
    }
    out
}

/// The coverage table of the module doc, from what the cases reached.
fn coverage_table(covered: &BTreeSet<(Op, &'static str)>) -> String {
    let columns = ["append", "rollover", "read", "flush", "cap", "recovery"];
    let mut out = String::from("| op | append | rollover | read | flush | cap | recovery |\n");
    for op in Op::ALL {
        out.push_str(&format!("| {op:?} |"));
        for c in columns {
            out.push_str(if covered.contains(&(op, c)) {
                " x |"
            } else {
                " - |"
            });
        }
        out.push('\n');
    }
    out
}

#[test]
fn every_file_operation_failed_at_every_step_never_panics_wedges_or_loses_an_acknowledged_block() {
    // The steps themselves, with no fault: the preparations hold what the cases rely on.
    for step in Step::ALL {
        if let Err(why) = run_case(step, &[]) {
            panic!("{step:?} without a fault: {why}");
        }
    }
    let mut failures = Vec::new();
    let mut covered: BTreeSet<(Op, &'static str)> = BTreeSet::new();
    let all = cases();
    for (step, faults) in &all {
        match run_case(*step, faults) {
            Ok(fired) => {
                // A double fault covers its second operation only where it is a clean-up of the
                // first; either way every operation that fired counts for the step.
                covered.extend(fired.into_iter().map(|op| (op, step.column())));
            }
            Err(why) => failures.push(format!("{step:?} with {faults:?}: {why}")),
        }
    }
    eprintln!("{}", coverage_table(&covered));
    let missing: Vec<_> = required_coverage().difference(&covered).cloned().collect();
    let extra: Vec<_> = covered.difference(&required_coverage()).cloned().collect();
    eprintln!(
        "queue_faults: {} cases, {} (op x step) pairs covered, {} failed",
        all.len(),
        covered.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the rule:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    assert!(
        missing.is_empty(),
        "(op, step) pairs no case reached any more: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "(op, step) pairs reached that the table does not list (update it): {extra:?}"
    );
}
