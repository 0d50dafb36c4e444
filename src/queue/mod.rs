//! A durable FIFO of opaque byte blocks in one directory: the persistent queue of one storage.
//!
//! # Owns
//! One directory: numbered chunk files of framed blocks, one position file, one lock file. The byte
//! layout is `queue-format.md` at the repository root (and [`format`], which the golden tests pin).
//!
//! # Guarantees
//! - [`Queue::append`] returns only after the block is in the file (the OS has it); with
//!   [`SyncPolicy::Always`] only after an fsync covers it (group commit: concurrent appends share one).
//! - Blocks are read in append order. The persisted position moves only over a gap-free prefix of
//!   acknowledged blocks, so after a crash nothing unacknowledged is lost and at most the blocks
//!   acknowledged since the last position write come again (at-least-once).
//! - Opening never fails because of what the files contain: a torn tail is cut off, a damaged block is
//!   skipped and counted and reading resumes at the next valid block of the same file, a missing
//!   chunk (or a directory with a chunk's name) is skipped and counted, a damaged position file falls back to a scan from the oldest
//!   chunk. Only I/O errors stop an open (on the directory, the lock, or reading a chunk file):
//!   skipping a chunk that could not be read would let the position pass it and delete it unsent,
//!   so the open fails and succeeds again once the fault is gone. [`Queue::read`] likewise returns
//!   an I/O error, and skips nothing, until the chunk can be read.
//! - Every file operation goes through `io.rs`, so tests fail any of them at any step
//!   (`tests/queue_faults.rs`): none panics, wedges the queue or loses a block whose append
//!   returned Ok, and the queue heals when the fault goes away.
//! - A failed write leaves nothing visible: the file is cut back to where it was. A failed fsync
//!   (under [`SyncPolicy::Always`]) fails the append, but the block was written and may still be
//!   delivered: a client retrying it makes a duplicate (at-least-once), never a loss.
//! - A full disk heals by itself: an append refused for lack of space leaves the queue as it was,
//!   and once everything written is acknowledged the head chunk's space is given back (at open, and
//!   after an append found the disk full), so appends resume without a restart.
//! - One owner per directory: a second open (this process or another) fails with [`QueueError::Locked`].
//!
//! # Must not
//! Know about HTTP, protobuf or other queues. Blocks are bytes plus a caller-defined item count
//! (the relay stores samples there so dropped data can be counted in samples).
//!
//! # Shape
//! Three locks, always taken in this order: `writer` (the head chunk being appended to), `reader`
//! (read and acknowledge positions, blocks in flight), `shared` (chunk list and counters both sides
//! update). Group commit's state (`commit.rs`) is innermost: its lock is private to that file and
//! its methods touch nothing else, so it cannot be held while another is taken. A background
//! thread calls [`Queue::flush`] every sync interval: fsync (per policy), persist the position, delete
//! chunk files that are fully acknowledged (position first, then the files: deletion is idempotent).
//!
//! # Files (one per job)
//! - `mod.rs` (this file): the contract, [`Options`], the public types and [`Queue`]'s API.
//! - `error.rs`: [`QueueError`].
//! - `format.rs`: the bytes of chunk headers, frames and the position file (`queue-format.md`).
//! - `io.rs`: the one layer every file operation goes through, and the [`Faults`] hook on it.
//! - `writer.rs`: append, waiting for group commit, the size cap, rollover, creating chunk files.
//! - `commit.rs`: group commit's state (which appends an fsync covered, or failed to).
//! - `reader.rs`: reading in order, skipping damage, acknowledgements and the acknowledged prefix.
//! - `ledger.rs`: the chunk list and counters both sides share, flush (fsync, persist the
//!   position, delete acknowledged chunks) and [`Stats`].
//! - `recovery.rs`: rebuilding the state from the directory at open.
//! - `offline.rs`: read-only examination for `promrelay queue verify|inspect` (takes no lock).

mod commit;
mod error;
mod format;
mod io;
mod ledger;
pub mod offline;
mod reader;
mod recovery;
mod writer;

pub use error::QueueError;
pub use format::{CHUNK_HEADER_LEN, FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD};
pub use io::{Faults, Op};

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tracing::warn;

use commit::GroupCommit;
use error::io_err;
use io::Io;
use ledger::{Shared, pending_bytes};
use reader::Reader;
use recovery::recover;
use writer::Writer;
// The wall clock for frame and chunk headers, shared with the rest of the crate.
use crate::util::now_ms;

/// Default size at which a chunk file is sealed and a new one started. 32 MiB keeps the start-up
/// scan of the head file short and lets a size cap drop data in steps of a few percent, while
/// rollover (two fsyncs and a directory fsync) stays rare: once per 32 MiB.
pub const DEFAULT_CHUNK_BYTES: u64 = 32 << 20;
/// Smallest chunk size accepted (tests use a few KiB so rollover really happens).
pub const MIN_CHUNK_BYTES: u64 = 4096;

const POSITION_FILE: &str = "position";
const LOCK_FILE: &str = "lock";

/// When appended data is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every append waits for an fsync that covers it; concurrent appends share one fsync.
    Always,
    /// fsync in the background every interval, and on close (default: 1 s).
    Interval(Duration),
    /// Never fsync: survives a process crash (the OS has the data), not a power loss.
    Never,
}

/// What an append does when the queue is at its size cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullPolicy {
    /// Drop the oldest chunk files (counted in `dropped_*`) to make room.
    DropOldest,
    /// Refuse the append with [`QueueError::Full`] so the caller can answer 429/503.
    Reject,
}

/// How a queue behaves. `Options::default()` is what production uses unless configured.
#[derive(Clone)]
pub struct Options {
    /// Size at which a chunk file is sealed (clamped to at least [`MIN_CHUNK_BYTES`], and to at most
    /// an eighth of `max_bytes` so the cap can drop in small steps).
    pub chunk_bytes: u64,
    /// Cap on pending bytes (frames from the acknowledged position to the end); `None` = no cap.
    pub max_bytes: Option<u64>,
    pub full_policy: FullPolicy,
    pub sync: SyncPolicy,
    /// Largest block accepted by `append`, and the largest length recovery believes.
    pub max_block_bytes: u32,
    /// Test hook: make any file operation fail, or a write tear (see [`Faults`]).
    pub faults: Option<Arc<dyn Faults>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            max_bytes: None,
            full_policy: FullPolicy::DropOldest,
            sync: SyncPolicy::Interval(Duration::from_secs(1)),
            max_block_bytes: 64 << 20,
            faults: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("chunk_bytes", &self.chunk_bytes)
            .field("max_bytes", &self.max_bytes)
            .field("full_policy", &self.full_policy)
            .field("sync", &self.sync)
            .field("max_block_bytes", &self.max_block_bytes)
            .field("faults", &self.faults.is_some())
            .finish()
    }
}

/// Identifies a block handed out by [`Queue::read`], to acknowledge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId {
    chunk: u64,
    offset: u64,
}

/// A block read from the queue.
#[derive(Debug, Clone)]
pub struct Block {
    pub id: BlockId,
    pub payload: Bytes,
    /// The item count given to `append` (the relay: samples).
    pub count: u32,
    /// When it was appended (Unix milliseconds).
    pub written_unix_ms: u64,
}

/// A snapshot of the queue's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of frames between the acknowledged position and the end (what a crash would re-read).
    pub pending_bytes: u64,
    /// Blocks after the gap-free acknowledged prefix (a block acknowledged out of order still
    /// counts until the blocks before it are acknowledged too, as it would come again after a crash).
    pub pending_blocks: u64,
    /// Append time of the oldest unacknowledged block.
    pub oldest_pending_unix_ms: Option<u64>,
    pub chunk_files: u64,
    pub appended_blocks: u64,
    pub appended_bytes: u64,
    pub acked_blocks: u64,
    pub acked_bytes: u64,
    /// Dropped to honour the size cap.
    pub dropped_blocks: u64,
    pub dropped_bytes: u64,
    /// Sum of the item counts of dropped blocks.
    pub dropped_items: u64,
    /// Damaged regions skipped while reading (each region counts once, however many blocks it held).
    pub corrupt_blocks_skipped: u64,
    pub corrupt_bytes_skipped: u64,
    /// Chunk files that were missing or unreadable and were skipped.
    pub chunks_skipped: u64,
    /// Bytes cut off the end of the last chunk at open (a write torn by a crash).
    pub torn_tail_bytes: u64,
    /// Appends refused because of an I/O error.
    pub write_errors: u64,
    /// fsyncs that failed.
    pub sync_errors: u64,
    /// Opens that found the position file damaged and started from the oldest chunk.
    pub position_fallbacks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    chunk: u64,
    offset: u64,
}

#[derive(Debug, Default, Clone)]
struct ChunkMeta {
    /// End of the data that may be read: file length for sealed chunks, the published write end
    /// for the head.
    end: u64,
    /// Blocks known in this chunk (pending at open, plus appended since).
    blocks: u64,
    items: u64,
    acked_blocks: u64,
    acked_items: u64,
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    io: Io,
    writer: Mutex<Writer>,
    reader: Mutex<Reader>,
    shared: Mutex<Shared>,
    /// Group commit's state: the innermost lock, only ever taken inside `commit.rs`.
    commit: GroupCommit,
    notify: Arc<tokio::sync::Notify>,
    _lock: File,
}

/// A durable FIFO of byte blocks in one directory. Cheap to share behind an `Arc`: appends may come
/// from many threads; reading and acknowledging are meant for one consumer.
pub struct Queue {
    inner: Arc<Inner>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    flusher: Option<JoinHandle<()>>,
    closed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a queue lock leaves state that is still consistent on disk (the files
    // are the truth), so poisoning is not worth propagating.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Queue {
    /// Opens (or creates) the queue in `dir`, recovering from whatever a crash or damage left.
    pub fn open(dir: impl AsRef<Path>, mut opts: Options) -> Result<Queue, QueueError> {
        let dir = dir.as_ref().to_path_buf();
        opts.chunk_bytes = opts.chunk_bytes.max(MIN_CHUNK_BYTES);
        if let Some(max) = opts.max_bytes {
            opts.chunk_bytes = opts.chunk_bytes.min(max / 8).max(MIN_CHUNK_BYTES);
        }
        opts.max_block_bytes = opts.max_block_bytes.min(MAX_FRAME_PAYLOAD);
        let io = Io::new(opts.faults.clone());
        io.create_dir_all(&dir)
            .map_err(io_err("create directory", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = io
            .open_lock_file(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        // A child process this one starts holds a copy of the lock's file description between
        // fork and exec, so a lock just released may look held for a moment: retry briefly.
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        loop {
            match io.try_lock(&lock_file, &lock_path) {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    #[expect(
                        clippy::disallowed_methods,
                        reason = "Queue::open is synchronous and runs on a blocking thread"
                    )]
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(QueueError::Locked {
                        dir,
                        lock: lock_path,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
            }
        }
        let recovered = recover(&dir, &opts, &io)?;
        let inner = Arc::new(Inner {
            dir,
            io,
            writer: Mutex::new(recovered.writer),
            reader: Mutex::new(Reader {
                read: recovered.start,
                ack: recovered.start,
                persisted: recovered.persisted,
                inflight: VecDeque::new(),
                file: None,
            }),
            shared: Mutex::new(Shared {
                chunks: recovered.chunks,
                stats: recovered.stats,
            }),
            commit: GroupCommit::default(),
            notify: Arc::new(tokio::sync::Notify::new()),
            opts,
            _lock: lock_file,
        });
        // A new queue, or one recovered without a valid position, gets its position file at once:
        // a crash before the first flush then does not look like a lost position file.
        if lock(&inner.reader).persisted.is_none() {
            let mut r = lock(&inner.reader);
            inner.persist_and_delete(&mut r)?;
        }
        // A head chunk whose every block was delivered before the restart gives its space back now,
        // in case it is what filled the disk.
        if let Err(e) = inner.give_back_acked_head(&mut lock(&inner.writer)) {
            warn!(dir = %inner.dir.display(), error = %e, "could not give back the space of the acknowledged head chunk; appends will try again");
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let period = match inner.opts.sync {
            SyncPolicy::Interval(d) => d.max(Duration::from_millis(10)),
            _ => Duration::from_secs(1),
        };
        let bg = Arc::clone(&inner);
        let flusher = std::thread::Builder::new()
            .name("queue-flush".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(period)
                {
                    if let Err(e) = bg.flush() {
                        warn!(dir = %bg.dir.display(), error = %e, "queue background flush failed");
                    }
                }
            })
            .map_err(io_err("spawn flush thread for", &inner.dir))?;
        Ok(Queue {
            inner,
            stop: Some(stop),
            flusher: Some(flusher),
            closed: AtomicBool::new(false),
        })
    }

    /// The directory this queue lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends one block. Returns once the block is in the file (and fsynced, under
    /// [`SyncPolicy::Always`]). `count` is stored with it (the relay: number of samples).
    pub fn append(&self, payload: &[u8], count: u32) -> Result<(), QueueError> {
        let n = self.inner.append(payload, count)?;
        self.inner.notify.notify_one();
        if self.inner.opts.sync == SyncPolicy::Always {
            self.inner.sync_through(n)?;
        }
        Ok(())
    }

    /// Whether an append of `len` bytes would be accepted now under [`FullPolicy::Reject`] (always
    /// true for other policies). Lets a caller with several queues refuse before appending to any.
    pub fn would_accept(&self, len: usize) -> bool {
        let (Some(max), FullPolicy::Reject) =
            (self.inner.opts.max_bytes, self.inner.opts.full_policy)
        else {
            return true;
        };
        self.fits_cap(len, max)
    }

    /// Whether a frame for a block of `len` bytes fits under the cap `max` beside what is pending.
    fn fits_cap(&self, len: usize, max: u64) -> bool {
        let ack = lock(&self.inner.reader).ack;
        let pending = pending_bytes(&lock(&self.inner.shared).chunks, ack);
        pending + (FRAME_HEADER_LEN + len) as u64 <= max
    }

    /// Whether appending a block of `len` bytes now would only write into the current chunk file:
    /// no fsync (policy `always`), no rollover (which fsyncs the sealed chunk) and no dropping of
    /// old chunks for the cap. A caller on an async runtime may append such a block in place and
    /// hand the others to a thread. A hint: another append may change the answer meanwhile.
    pub fn append_is_quick(&self, len: usize) -> bool {
        if self.inner.opts.sync == SyncPolicy::Always {
            return false;
        }
        {
            let w = lock(&self.inner.writer);
            let frame_len = (FRAME_HEADER_LEN + len) as u64;
            if w.needs_truncate
                || w.file.is_none()
                || w.offset + frame_len > self.inner.opts.chunk_bytes
                || (w.give_back && self.inner.head_is_acknowledged(&w))
            {
                return false;
            }
        }
        self.inner
            .opts
            .max_bytes
            .is_none_or(|max| self.fits_cap(len, max))
    }

    /// The next unread block, or `None` when the reader has caught up with the writer. Damaged
    /// regions and missing chunks on the way are skipped, counted and logged.
    pub fn read(&self) -> Result<Option<Block>, QueueError> {
        self.inner.read()
    }

    /// Acknowledges a block returned by [`Queue::read`]; acknowledgements may come in any order.
    /// Unknown or already dropped ids are ignored.
    pub fn ack(&self, id: BlockId) {
        self.inner.ack(id)
    }

    /// Forgets blocks handed out but not acknowledged: the next [`Queue::read`] returns them again.
    pub fn rewind(&self) {
        let mut r = lock(&self.inner.reader);
        // Keep the acknowledged prefix logic simple: drop everything in flight, restart from `ack`.
        r.inflight.clear();
        r.read = r.ack;
    }

    /// Notified after every append: a consumer waits on it when [`Queue::read`] returned `None`.
    pub fn notifier(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.inner.notify)
    }

    /// fsync (unless the policy is `Never`), persist the acknowledged position, delete chunk files
    /// that are fully acknowledged. The background thread calls this every sync interval.
    pub fn flush(&self) -> Result<(), QueueError> {
        self.inner.flush()
    }

    /// A snapshot of the figures.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Flushes and releases the directory. Dropping the queue does the same, logging errors.
    pub fn close(mut self) -> Result<(), QueueError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), QueueError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        drop(self.stop.take());
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        self.inner.flush()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            warn!(dir = %self.inner.dir.display(), error = %e, "queue flush on close failed");
        }
    }
}
