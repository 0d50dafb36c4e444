//! The queue's locks never wait on each other in a cycle: under `--fsync always`, with fsyncs that
//! fail now and then, many threads appending at once and chunk files rolling over every few
//! appends, every append returns (with `Ok` or an fsync error) and the queue still closes.
//!
//! A hang is a test failure, not a hung suite: the scenario runs on its own thread and the test
//! waits for it with a deadline.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use promrelay::queue::{Faults, Op, Options, Queue, SyncPolicy};

/// Far more than the scenario needs when nothing hangs (well under a second on a busy machine).
const DEADLINE: Duration = Duration::from_secs(30);
const THREADS: usize = 8;
const APPENDS_PER_THREAD: u32 = 150;

/// Every fsync of a chunk file takes a moment (so a thread syncing during a rollover holds the
/// writer lock while others pile up on the group commit), and every `fail_every`-th one fails.
struct SlowFailingSyncs {
    syncs: AtomicU64,
    fail_every: u64,
}

impl Faults for SlowFailingSyncs {
    fn check(&self, op: Op, path: &Path) -> Option<io::Error> {
        if op != Op::Sync || path.extension().is_none_or(|x| x != "chunk") {
            return None;
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "a slow fsync, on the queue's own sync thread: widens the window the test needs"
        )]
        thread::sleep(Duration::from_micros(300));
        let n = self.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        n.is_multiple_of(self.fail_every)
            .then(|| io::Error::other("injected fsync failure (EIO)"))
    }
}

/// What one run of the scenario saw: appends that returned `Ok`, and those that failed.
struct Outcome {
    ok: u64,
    failed: u64,
}

/// `THREADS` threads append `APPENDS_PER_THREAD` blocks each to a queue with 4 KiB chunks (a
/// rollover every third append) under `SyncPolicy::Always`; then the queue is closed.
fn concurrent_appends_with_failing_fsyncs(dir: &Path, fail_every: u64) -> Outcome {
    let faults = Arc::new(SlowFailingSyncs {
        syncs: AtomicU64::new(0),
        fail_every,
    });
    let q = Arc::new(
        Queue::open(
            dir,
            Options {
                chunk_bytes: 4096,
                sync: SyncPolicy::Always,
                faults: Some(faults as Arc<dyn Faults>),
                ..Options::default()
            },
        )
        .expect("open"),
    );
    let start = Arc::new(Barrier::new(THREADS));
    let appenders: Vec<_> = (0..THREADS)
        .map(|t| {
            let q = Arc::clone(&q);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut outcome = Outcome { ok: 0, failed: 0 };
                for i in 0..APPENDS_PER_THREAD {
                    let payload = vec![(t as u8) ^ (i as u8); 1000];
                    match q.append(&payload, 1) {
                        Ok(()) => outcome.ok += 1,
                        Err(e) => {
                            assert!(e.is_retryable(), "an fsync failure is retryable: {e}");
                            outcome.failed += 1;
                        }
                    }
                }
                outcome
            })
        })
        .collect();
    let mut total = Outcome { ok: 0, failed: 0 };
    for a in appenders {
        let o = a.join().expect("an appender panicked");
        total.ok += o.ok;
        total.failed += o.failed;
    }
    let q = Arc::into_inner(q).expect("the appenders are done");
    // Closing fsyncs again; an injected failure there is fine, a hang is not.
    let _ = q.close();
    total
}

#[test]
fn failing_fsyncs_during_concurrent_appends_and_rollovers_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        // Fail one fsync in seven: often enough that group-commit waiters see a failure while
        // another thread is in the middle of a rollover.
        let outcome = concurrent_appends_with_failing_fsyncs(&path, 7);
        let _ = done.send(outcome);
    });
    let outcome = finished.recv_timeout(DEADLINE).unwrap_or_else(|_| {
        panic!(
            "{THREADS} threads appending with failing fsyncs did not finish within {DEADLINE:?}: \
             the queue's locks deadlocked"
        )
    });
    assert_eq!(
        outcome.ok + outcome.failed,
        THREADS as u64 * u64::from(APPENDS_PER_THREAD),
        "every append returned"
    );
    assert!(
        outcome.failed > 0,
        "some fsyncs failed, so some appends did"
    );
    assert!(outcome.ok > 0, "the other appends succeeded");
}
