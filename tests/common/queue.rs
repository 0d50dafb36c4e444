//! The queue tests' shared vocabulary: self-checking blocks, reading everything back, reopening,
//! a seeded random source, and looking at a queue directory's chunk files.
//!
//! Include it with `#[path = "common/queue.rs"] mod queue_helpers;` (the queue tests do not need
//! the end-to-end helpers of `common/mod.rs`).

#![allow(
    dead_code,
    reason = "each test file uses a different part of this vocabulary"
)]

use std::path::{Path, PathBuf};

use promrelay::queue::{Options, Queue, Stats, SyncPolicy};

/// Options with chunk files of `chunk_bytes` (tests use a few KiB so rollover really happens).
pub fn options(chunk_bytes: u64, sync: SyncPolicy) -> Options {
    Options {
        chunk_bytes,
        sync,
        ..Options::default()
    }
}

/// Block `i`: its index, its length, then filler derived from both; `len` bytes in all (at
/// least 8), so [`index_of`] can tell a block from garbage or a half-written one.
pub fn block(i: u32, len: usize) -> Vec<u8> {
    let len = len.max(8);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&i.to_le_bytes());
    v.extend_from_slice(&(len as u32).to_le_bytes());
    v.extend((8..len).map(|j| (i as usize * 131 + j * 17) as u8));
    v
}

/// The index of a block made by [`block`]; panics on anything else.
pub fn index_of(p: &[u8]) -> u32 {
    assert!(p.len() >= 8, "garbage block of {} bytes", p.len());
    let i = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
    let len = u32::from_le_bytes([p[4], p[5], p[6], p[7]]) as usize;
    assert_eq!(p, block(i, len), "garbage or half-written block");
    i
}

/// Reads every block, acknowledging each; returns their indices.
pub fn read_and_ack_all(q: &Queue) -> Vec<u32> {
    let mut got = Vec::new();
    while let Some(b) = q.read().expect("read") {
        got.push(index_of(&b.payload));
        q.ack(b.id);
    }
    got
}

/// Reads every block without acknowledging any; returns their indices.
pub fn read_all_unacked(q: &Queue) -> Vec<u32> {
    let mut got = Vec::new();
    while let Some(b) = q.read().expect("read") {
        got.push(index_of(&b.payload));
    }
    got
}

/// Opens the queue in `dir` with `opts`, reads (and acknowledges) every block, closes it; returns
/// the indices and the figures.
pub fn reopen_and_read_all(dir: &Path, opts: Options) -> (Vec<u32>, Stats) {
    let q = Queue::open(dir, opts).expect("reopen must not fail");
    let got = read_and_ack_all(&q);
    let stats = q.stats();
    q.close().expect("close");
    (got, stats)
}

/// The chunk files of a queue directory, in sequence order.
pub fn chunk_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "chunk"))
        .collect();
    v.sort();
    v
}

/// The sequence number a chunk file's name carries.
pub fn chunk_seq(path: &Path) -> u64 {
    let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
    u64::from_str_radix(stem, 16).expect("chunk name")
}

/// Copies a closed queue's files (not its lock) into a fresh directory.
pub fn copy_queue(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("temp dir");
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        if e.file_name() != "lock" {
            std::fs::copy(e.path(), to.path().join(e.file_name())).expect("copy");
        }
    }
    to
}

/// A seeded xorshift64* source: reproducible "random" choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
