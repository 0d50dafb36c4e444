//! A full disk and failing fsyncs: appends fail with an error the relay can answer 503 for, nothing
//! half-written is ever read, the queue works again once space is back, and a reopen holds exactly the
//! blocks whose append returned `Ok`.
//!
//! The disk is simulated with the queue's `Faults` hook: `Disk` has a byte budget that every write
//! through the queue's I/O layer spends; a write that does not fit fails with `StorageFull`, and a
//! tearing disk writes the bytes that still fit before failing (what a real filesystem does when it
//! runs out of blocks in the middle of a write). The last tests use a real full filesystem (a small
//! tmpfs, mounted for the test: they need root, and fail without it).

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use promrelay::queue::{Faults, Op, Options, Queue, QueueError, SyncPolicy};
use queue_helpers::{
    Rng, block, chunk_paths, index_of, read_all_unacked as read_all, read_and_ack_all,
};

#[path = "common/queue.rs"]
mod queue_helpers;
#[path = "common/tmpfs.rs"]
mod tmpfs;

use tmpfs::Tmpfs;

/// Taken (shared) by every test that opens a queue, and exclusively by a test while it spawns a
/// process (`mount`, `umount`): a child inherits the queue's lock-file descriptor between fork and
/// exec, so a spawn in another thread can make a just-closed queue look locked to the next open.
static SPAWNS: RwLock<()> = RwLock::new(());

fn no_spawns() -> RwLockReadGuard<'static, ()> {
    SPAWNS.read().unwrap_or_else(|p| p.into_inner())
}

/// A simulated disk: a budget of free bytes, optionally torn writes, and fsyncs that can be made to
/// fail.
#[derive(Default)]
struct Disk {
    state: Mutex<DiskState>,
}

#[derive(Default)]
struct DiskState {
    free: u64,
    tear: bool,
    failing_syncs: u32,
    full_writes: u64,
}

impl Disk {
    fn with_free(free: u64) -> Arc<Disk> {
        let d = Disk::default();
        d.state.lock().expect("not poisoned").free = free;
        Arc::new(d)
    }

    fn unlimited() -> Arc<Disk> {
        Disk::with_free(u64::MAX)
    }

    fn tearing(self: Arc<Self>) -> Arc<Self> {
        self.state.lock().expect("not poisoned").tear = true;
        self
    }

    fn set_free(&self, free: u64) {
        self.state.lock().expect("not poisoned").free = free;
    }

    /// Space is back.
    fn free_up(&self) {
        self.set_free(u64::MAX);
    }

    fn fail_next_chunk_syncs(&self, n: u32) {
        self.state.lock().expect("not poisoned").failing_syncs = n;
    }

    fn full_writes(&self) -> u64 {
        self.state.lock().expect("not poisoned").full_writes
    }
}

impl Faults for Disk {
    fn before_write(&self, _path: &Path, len: usize) -> Option<(usize, io::Error)> {
        let mut s = self.state.lock().expect("not poisoned");
        if len as u64 <= s.free {
            s.free -= len as u64;
            return None;
        }
        let written = if s.tear { s.free as usize } else { 0 };
        s.free = 0;
        s.full_writes += 1;
        Some((written, io::Error::from(io::ErrorKind::StorageFull)))
    }

    fn check(&self, op: Op, path: &Path) -> Option<io::Error> {
        let mut s = self.state.lock().expect("not poisoned");
        if op == Op::Sync && s.failing_syncs > 0 && path.extension().is_some_and(|x| x == "chunk") {
            s.failing_syncs -= 1;
            return Some(io::Error::other("injected fsync failure (EIO)"));
        }
        None
    }
}

fn options(disk: &Arc<Disk>, chunk_bytes: u64, sync: SyncPolicy) -> Options {
    Options {
        chunk_bytes,
        sync,
        faults: Some(Arc::clone(disk) as Arc<dyn Faults>),
        ..Options::default()
    }
}

fn reopen_and_read_all(dir: &Path, chunk_bytes: u64) -> (Vec<u32>, promrelay::queue::Stats) {
    queue_helpers::reopen_and_read_all(dir, queue_helpers::options(chunk_bytes, SyncPolicy::Never))
}

/// Appends blocks of `len` bytes, numbered from `from`, until one fails; returns the error and the
/// numbers that were accepted.
fn fill(q: &Queue, from: u32, len: usize) -> (QueueError, Vec<u32>) {
    let mut ok = Vec::new();
    for i in from..from + 100_000 {
        match q.append(&block(i, len), 1) {
            Ok(()) => ok.push(i),
            Err(e) => return (e, ok),
        }
    }
    panic!("the disk never filled up");
}

#[test]
fn append_on_a_full_disk_fails_with_a_disk_full_error() {
    let _serial = no_spawns();
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::with_free(10_000);
    let q = Queue::open(dir.path(), options(&disk, 64 * 1024, SyncPolicy::Never)).unwrap();
    let (err, ok) = fill(&q, 0, 500);
    assert!(!ok.is_empty());
    assert!(err.is_disk_full(), "{err}");
    assert!(err.is_retryable(), "a full disk is worth a retry: {err}");
    assert_eq!(q.stats().write_errors, 1);
    let again = q.append(&block(9999, 500), 1).unwrap_err();
    assert!(again.is_disk_full(), "still full: {again}");
    assert_eq!(q.stats().write_errors, 2);
}

#[test]
fn torn_write_on_a_full_disk_is_never_read() {
    let _serial = no_spawns();
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::unlimited().tearing();
    let q = Queue::open(dir.path(), options(&disk, 64 * 1024, SyncPolicy::Never)).unwrap();
    // Room for 10 frames of 24 + 1000 bytes and half of the 11th.
    disk.set_free(10 * 1024 + 512);
    let (err, ok) = fill(&q, 0, 1000);
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(ok, (0..10).collect::<Vec<_>>());
    assert_eq!(disk.full_writes(), 1);
    assert_eq!(read_all(&q), ok, "the torn block is not read");
    disk.free_up();
    q.close().unwrap();

    let chunk = dir.path().join("0000000000000001.chunk");
    assert_eq!(
        std::fs::metadata(&chunk).unwrap().len(),
        32 + 10 * 1024,
        "the torn bytes were cut off the file"
    );
    let (got, stats) = reopen_and_read_all(dir.path(), 64 * 1024);
    assert_eq!(got, ok, "after reopen: exactly the accepted blocks");
    assert_eq!(
        stats.torn_tail_bytes, 0,
        "nothing was left to cut: {stats:?}"
    );
}

#[test]
fn appends_work_again_once_space_is_back() {
    let _serial = no_spawns();
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::with_free(20_000).tearing();
    let q = Queue::open(dir.path(), options(&disk, 64 * 1024, SyncPolicy::Never)).unwrap();
    let (err, mut ok) = fill(&q, 0, 700);
    assert!(err.is_disk_full(), "{err}");
    disk.free_up();
    for i in 1000..1010 {
        q.append(&block(i, 700), 1).expect("space is back");
        ok.push(i);
    }
    assert_eq!(read_all(&q), ok, "old blocks, then the new ones");
}

/// 4 KiB chunks and blocks of 1000 bytes: three frames fill a chunk, the fourth needs a new one.
/// Returns the queue with the disk full just as the fourth append has to start chunk 2.
fn full_when_a_new_chunk_is_due(dir: &Path, disk: &Arc<Disk>) -> (Queue, Vec<u32>) {
    let q = Queue::open(dir, options(disk, 4096, SyncPolicy::Never)).expect("open the queue");
    let mut ok = Vec::new();
    for i in 0..3 {
        q.append(&block(i, 1000), 1)
            .expect("append while there is room");
        ok.push(i);
    }
    // Room for part of the next chunk's 32-byte header only.
    disk.set_free(10);
    let err = q
        .append(&block(3, 1000), 1)
        .expect_err("append with the disk full");
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(disk.full_writes(), 1, "the new chunk's header did not fit");
    (q, ok)
}

#[test]
fn every_append_on_a_full_disk_reports_disk_full_also_when_a_new_chunk_is_due() {
    let _serial = no_spawns();
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::unlimited().tearing();
    let (q, _) = full_when_a_new_chunk_is_due(dir.path(), &disk);
    for i in 4..8 {
        let err = q.append(&block(i, 1000), 1).unwrap_err();
        assert!(
            err.is_disk_full(),
            "append {i} on a disk that is still full must say so (the relay answers 503): {err}"
        );
    }
}

#[test]
fn appends_resume_when_space_is_back_after_a_full_disk_interrupted_a_new_chunk() {
    let _serial = no_spawns();
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::unlimited().tearing();
    let (q, mut ok) = full_when_a_new_chunk_is_due(dir.path(), &disk);
    disk.free_up();
    for i in 10..20 {
        q.append(&block(i, 1000), 1)
            .unwrap_or_else(|e| panic!("space is back, append {i} must work: {e}"));
        ok.push(i);
    }
    assert_eq!(read_all(&q), ok);
    q.close().unwrap();
    let (got, _) = reopen_and_read_all(dir.path(), 4096);
    assert_eq!(got, ok, "after reopen");
}

#[test]
fn reopen_holds_exactly_the_blocks_whose_append_returned_ok() {
    let _serial = no_spawns();
    const CHUNK: u64 = 4096;
    for seed in 1..=100u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng::new(seed);
        let disk = Disk::unlimited();
        disk.state.lock().expect("not poisoned").tear = rng.below(4) != 0;
        let q = Queue::open(dir.path(), options(&disk, CHUNK, SyncPolicy::Never)).unwrap();
        let mut ok = Vec::new();
        let mut read = Vec::new();
        let mut refused = 0;
        for i in 0..300u32 {
            match rng.below(20) {
                0 => disk.set_free(rng.below(3000)), // the disk fills up
                1 => disk.free_up(),                 // space is back
                _ => {}
            }
            let len = 8 + rng.below(1500) as usize;
            match q.append(&block(i, len), 1) {
                Ok(()) => ok.push(i),
                Err(e) if e.is_disk_full() => refused += 1,
                Err(e) => panic!("seed {seed}: append {i}: not a disk-full error: {e}"),
            }
            if rng.below(4) == 0 {
                // Whatever is read is a whole, accepted block, in order.
                while let Some(b) = q.read().expect("read") {
                    read.push(index_of(&b.payload));
                }
                assert_eq!(read, ok, "seed {seed}: read while the disk is full");
            }
        }
        assert!(refused > 0, "seed {seed}: the disk never filled up");
        disk.free_up();
        q.close().unwrap();
        let (got, _) = reopen_and_read_all(dir.path(), CHUNK);
        assert_eq!(
            got, ok,
            "seed {seed}: exactly the accepted blocks, in order"
        );
    }
}

#[test]
fn full_disk_at_close_loses_no_block() {
    let _serial = no_spawns();
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::unlimited();
    let q = Queue::open(dir.path(), options(&disk, 4096, SyncPolicy::Never)).unwrap();
    for i in 0..20 {
        q.append(&block(i, 500), 1).unwrap();
    }
    for i in 0..10 {
        let b = q.read().unwrap().unwrap();
        assert_eq!(index_of(&b.payload), i);
        q.ack(b.id);
    }
    disk.set_free(0);
    let err = q.close().expect_err("the position file cannot be written");
    assert!(err.is_disk_full(), "{err}");
    let (got, _) = reopen_and_read_all(dir.path(), 4096);
    let first = *got.first().expect("blocks");
    assert!(first <= 10, "unacknowledged blocks lost: {got:?}");
    assert_eq!(
        got,
        (first..20).collect::<Vec<_>>(),
        "every unacknowledged block; acknowledged ones may come again"
    );
}

#[test]
fn failed_fsync_under_always_fails_the_append_and_is_counted() {
    let _serial = no_spawns();
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::unlimited();
    let q = Queue::open(dir.path(), options(&disk, 64 * 1024, SyncPolicy::Always)).unwrap();
    q.append(&block(0, 100), 1).unwrap();
    disk.fail_next_chunk_syncs(1);
    let err = q
        .append(&block(1, 100), 1)
        .expect_err("an append whose fsync failed must not report success");
    assert!(err.is_retryable(), "{err}");
    let stats = q.stats();
    assert_eq!(stats.sync_errors, 1, "{stats:?}");
    q.append(&block(2, 100), 1)
        .expect("the next fsync works, and so does the next append");
    assert_eq!(q.stats().sync_errors, 1);
}

#[test]
fn a_head_chunk_given_back_before_its_successor_fits_is_followed_by_the_next_append() {
    let _serial = no_spawns();
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::unlimited();
    let q = Queue::open(dir.path(), options(&disk, 64 * 1024, SyncPolicy::Never)).unwrap();
    let ok: Vec<u32> = (0..5).collect();
    for &i in &ok {
        q.append(&block(i, 1000), 1).unwrap();
    }
    disk.set_free(0);
    assert!(q.append(&block(5, 1000), 1).unwrap_err().is_disk_full());
    assert_eq!(read_and_ack_all(&q), ok);
    // Room for the new position (28 bytes) but not for the next chunk's header (32).
    disk.set_free(40);
    let err = q.append(&block(6, 1000), 1).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(
        chunk_paths(dir.path()).is_empty(),
        "the acknowledged head chunk was given back"
    );
    assert_eq!(q.stats().pending_blocks, 0);

    disk.free_up();
    q.append(&block(7, 1000), 1)
        .expect("space is back: the next append creates the next chunk");
    assert_eq!(read_all(&q), vec![7]);
    q.close().unwrap();
    let (got, stats) = reopen_and_read_all(dir.path(), 64 * 1024);
    assert_eq!(got, vec![7], "after reopen");
    assert_eq!(stats.chunks_skipped, 0, "no chunk looks missing: {stats:?}");
}

/// The chunk files in `dir` with their lengths.
fn chunk_files(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    chunk_paths(dir)
        .into_iter()
        .map(|p| {
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            (p, len)
        })
        .collect()
}

/// Production's chunk size (32 MiB) on a 1 MiB disk: everything is in the head chunk.
fn one_chunk_fills_the_disk() -> Options {
    Options {
        sync: SyncPolicy::Interval(Duration::from_secs(1)),
        ..Options::default()
    }
}

#[test]
fn appends_resume_once_the_reader_has_caught_up_with_a_head_chunk_that_filled_the_disk() {
    let fs = Tmpfs::mount_holding("1m", Some(&SPAWNS));
    let _serial = no_spawns();
    let dir = fs.path().join("queue");
    let q = Queue::open(&dir, one_chunk_fills_the_disk()).unwrap();
    let (err, ok) = fill(&q, 0, 1000);
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(chunk_files(&dir).len(), 1, "one head chunk holds it all");

    assert_eq!(read_and_ack_all(&q), ok, "the storage took every block");
    let more: Vec<u32> = (10_000..10_020).collect();
    for &i in &more {
        q.append(&block(i, 1000), 1).unwrap_or_else(|e| {
            panic!("the acknowledged head chunk must give its space back; append {i}: {e}")
        });
    }
    let files = chunk_files(&dir);
    assert_eq!(files.len(), 1, "the acknowledged chunk is gone: {files:?}");
    assert!(
        files[0].1 < 64 * 1024,
        "only the new blocks take space: {files:?}"
    );
    q.close().unwrap();
    let q = Queue::open(&dir, one_chunk_fills_the_disk()).unwrap();
    assert_eq!(read_all(&q), more, "after reopen: exactly the new blocks");
}

#[test]
fn a_restart_gives_back_the_space_of_a_fully_acknowledged_head_chunk() {
    let fs = Tmpfs::mount_holding("1m", Some(&SPAWNS));
    let _serial = no_spawns();
    let dir = fs.path().join("queue");
    let q = Queue::open(&dir, one_chunk_fills_the_disk()).unwrap();
    let (err, ok) = fill(&q, 0, 1000);
    assert!(err.is_disk_full(), "{err}");
    q.close().unwrap();
    // Another run delivers the backlog and stops without appending.
    let q = Queue::open(&dir, one_chunk_fills_the_disk()).unwrap();
    assert_eq!(read_and_ack_all(&q), ok);
    q.close().unwrap();

    let q = Queue::open(&dir, one_chunk_fills_the_disk()).unwrap();
    let files = chunk_files(&dir);
    assert!(
        files.iter().all(|(_, len)| *len < 64 * 1024),
        "open gave the acknowledged head chunk's space back: {files:?}"
    );
    let more: Vec<u32> = (10_000..10_020).collect();
    for &i in &more {
        q.append(&block(i, 1000), 1)
            .unwrap_or_else(|e| panic!("after a restart, append {i} must work: {e}"));
    }
    assert_eq!(read_all(&q), more, "nothing acknowledged comes again");
}

#[test]
fn real_enospc_is_a_disk_full_error_and_heals_when_space_is_freed() {
    let fs = Tmpfs::mount_holding("256k", Some(&SPAWNS));
    let _serial = no_spawns();
    let dir = fs.path().join("queue");
    let opts = || Options {
        chunk_bytes: 16 * 1024,
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let q = Queue::open(&dir, opts()).unwrap();
    let (err, ok) = fill(&q, 0, 1000);
    assert!(err.is_disk_full(), "{err}");
    assert!(
        ok.len() > 100,
        "a 256 KiB disk holds more than {} blocks",
        ok.len()
    );
    // Nothing half-written is read; acknowledging everything lets the queue delete its chunk files.
    let mut got = Vec::new();
    while let Some(b) = q.read().unwrap() {
        got.push(index_of(&b.payload));
        q.ack(b.id);
    }
    assert_eq!(got, ok);
    q.flush().expect("flush frees space");
    let more: Vec<u32> = (10_000..10_020).collect();
    for &i in &more {
        q.append(&block(i, 1000), 1)
            .unwrap_or_else(|e| panic!("space is back, append {i} must work: {e}"));
    }
    q.close().unwrap();
    let q = Queue::open(&dir, opts()).unwrap();
    assert_eq!(
        read_all(&q),
        more,
        "after reopen: exactly the accepted, unacknowledged blocks"
    );
}
