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
//!   skipped and counted and reading resumes at the next valid block of the same file, a missing or
//!   unreadable chunk is skipped and counted, a damaged position file falls back to a scan from the
//!   oldest chunk. Only I/O errors on the directory itself or the lock stop an open.
//! - A failed write leaves nothing visible: the file is cut back to where it was. A failed fsync
//!   (under [`SyncPolicy::Always`]) fails the append, but the block was written and may still be
//!   delivered: a client retrying it makes a duplicate (at-least-once), never a loss.
//! - One owner per directory: a second open (this process or another) fails with [`QueueError::Locked`].
//!
//! # Must not
//! Know about HTTP, protobuf or other queues. Blocks are bytes plus a caller-defined item count
//! (the relay stores samples there so dropped data can be counted in samples).
//!
//! # Shape
//! Three locks, always taken in this order: `writer` (the head chunk being appended to), `reader`
//! (read and acknowledge positions, blocks in flight), `shared` (chunk list and counters both sides
//! update). The sync state has its own lock and is never held while taking another. A background
//! thread calls [`Queue::flush`] every sync interval: fsync (per policy), persist the position, delete
//! chunk files that are fully acknowledged (position first, then the files: deletion is idempotent).

mod format;
mod io;

pub use format::{CHUNK_HEADER_LEN, FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD};
pub use io::Faults;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tracing::{debug, warn};

use io::Io;

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
    /// Test hook: inject write and fsync failures.
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

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Another process, or another handle in this one, has the directory open.
    #[error("queue directory {dir} is in use by another promrelay (lock {lock} is held)")]
    Locked { dir: PathBuf, lock: PathBuf },
    /// A file operation failed (disk full, EIO, permissions...). Nothing half-written is visible.
    #[error("queue {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The queue is at its cap and its policy is [`FullPolicy::Reject`].
    #[error("queue is full: {pending_bytes} bytes pending, cap is {max_bytes} bytes")]
    Full { pending_bytes: u64, max_bytes: u64 },
    /// The block is larger than `Options::max_block_bytes`.
    #[error("block of {len} bytes is larger than the queue's limit of {max} bytes")]
    BlockTooLarge { len: usize, max: u32 },
}

impl QueueError {
    /// True when the caller should answer "try again later" (cap reached, disk full, I/O trouble)
    /// rather than "your data is bad".
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            QueueError::BlockTooLarge { .. } | QueueError::Locked { .. }
        )
    }

    /// True for [`QueueError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, QueueError::Full { .. })
    }

    /// True when the underlying error is "no space left" or "quota exceeded".
    pub fn is_disk_full(&self) -> bool {
        match self {
            QueueError::Io { source, .. } => io::is_no_space(source),
            _ => false,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> QueueError + 'a {
    move |source| QueueError::Io {
        op,
        path: path.to_path_buf(),
        source,
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

struct Writer {
    chunk: u64,
    file: Arc<File>,
    path: PathBuf,
    offset: u64,
    /// Appends so far; group commit waits until `synced >= ` an append's number.
    appends: u64,
    /// The last write failed and the file could not be cut back yet.
    needs_truncate: bool,
    buf: Vec<u8>,
}

/// A range of the queue handed out (a block) or passed over (damage, chunk boundary).
struct InFlight {
    start: Pos,
    end: Pos,
    acked: bool,
    /// Real block: payload bytes and item count (skips have `None`).
    block: Option<(u64, u32)>,
}

struct Reader {
    read: Pos,
    ack: Pos,
    persisted: Option<Pos>,
    inflight: VecDeque<InFlight>,
    file: Option<(u64, File)>,
}

#[derive(Default)]
struct Shared {
    chunks: BTreeMap<u64, ChunkMeta>,
    stats: Stats,
}

#[derive(Default)]
struct SyncState {
    synced: u64,
    failed_through: u64,
    in_progress: bool,
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    io: Io,
    writer: Mutex<Writer>,
    reader: Mutex<Reader>,
    shared: Mutex<Shared>,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
        std::fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        // A child process this one starts holds a copy of the lock's file description between
        // fork and exec, so a lock just released may look held for a moment: retry briefly.
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        loop {
            match lock_file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
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
        let io = Io::new(opts.faults.clone());
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
            sync: Mutex::new(SyncState::default()),
            sync_cv: Condvar::new(),
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
            if w.needs_truncate || w.offset + frame_len > self.inner.opts.chunk_bytes {
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

impl Inner {
    fn append(&self, payload: &[u8], count: u32) -> Result<u64, QueueError> {
        if payload.len() > self.opts.max_block_bytes as usize {
            return Err(QueueError::BlockTooLarge {
                len: payload.len(),
                max: self.opts.max_block_bytes,
            });
        }
        let frame_len = (FRAME_HEADER_LEN + payload.len()) as u64;
        let mut w = lock(&self.writer);
        if w.needs_truncate {
            let (file, path, offset) = (Arc::clone(&w.file), w.path.clone(), w.offset);
            file.set_len(offset)
                .map_err(|e| self.write_failed("cut back", &path, e))?;
            w.needs_truncate = false;
        }
        self.make_room(frame_len)?;
        if w.offset > CHUNK_HEADER_LEN && w.offset + frame_len > self.opts.chunk_bytes {
            self.rollover(&mut w)?;
        }
        let chunk = w.chunk;
        let offset = w.offset;
        let mut buf = std::mem::take(&mut w.buf);
        format::encode_frame(&mut buf, chunk, payload, count, now_ms());
        let res = self.io.write_all_at(&w.file, &w.path, offset, &buf);
        w.buf = buf;
        if let Err(e) = res {
            // Cut the torn bytes off so nothing half-written is ever read; if even that fails,
            // the next append tries again before writing.
            w.needs_truncate = w.file.set_len(offset).is_err();
            return Err(self.write_failed("write", &w.path, e));
        }
        w.offset += frame_len;
        w.appends += 1;
        let n = w.appends;
        let mut s = lock(&self.shared);
        if let Some(m) = s.chunks.get_mut(&chunk) {
            m.end = w.offset;
            m.blocks += 1;
            m.items += u64::from(count);
        }
        s.stats.appended_blocks += 1;
        s.stats.appended_bytes += payload.len() as u64;
        Ok(n)
    }

    fn write_failed(&self, op: &'static str, path: &Path, e: std::io::Error) -> QueueError {
        lock(&self.shared).stats.write_errors += 1;
        io_err(op, path)(e)
    }

    /// Enforces the size cap before a frame of `frame_len` bytes is written. Called with the
    /// writer lock held.
    fn make_room(&self, frame_len: u64) -> Result<(), QueueError> {
        let Some(max) = self.opts.max_bytes else {
            return Ok(());
        };
        let mut r = lock(&self.reader);
        let mut s = lock(&self.shared);
        let mut pending = pending_bytes(&s.chunks, r.ack);
        if pending + frame_len <= max {
            return Ok(());
        }
        if self.opts.full_policy == FullPolicy::Reject {
            return Err(QueueError::Full {
                pending_bytes: pending,
                max_bytes: max,
            });
        }
        let mut dropped_any = false;
        while pending + frame_len > max {
            // Only sealed chunks are dropped; the head keeps the newest data (it is at most one
            // chunk, an eighth of the cap).
            let Some((&oldest, _)) = s.chunks.range(r.ack.chunk..).next() else {
                break;
            };
            let Some((&next, _)) = s.chunks.range(oldest + 1..).next() else {
                break;
            };
            let m = s.chunks.get(&oldest).cloned().unwrap_or_default();
            let start = if oldest == r.ack.chunk {
                r.ack.offset
            } else {
                CHUNK_HEADER_LEN
            };
            let st = &mut s.stats;
            st.dropped_blocks += m.blocks.saturating_sub(m.acked_blocks);
            st.dropped_items += m.items.saturating_sub(m.acked_items);
            st.dropped_bytes += m.end.saturating_sub(start);
            if let Some(m) = s.chunks.get_mut(&oldest) {
                m.acked_blocks = m.blocks;
                m.acked_items = m.items;
            }
            let to = Pos {
                chunk: next,
                offset: CHUNK_HEADER_LEN,
            };
            r.ack = to;
            r.inflight.retain(|f| f.start >= to);
            if r.read < to {
                r.read = to;
                r.file = None;
            }
            pending = pending_bytes(&s.chunks, r.ack);
            dropped_any = true;
        }
        if dropped_any {
            warn!(dir = %self.dir.display(), "queue at its size cap: dropped the oldest chunk files");
            drop(s);
            self.persist_and_delete(&mut r)?;
        }
        Ok(())
    }

    /// Seals the head chunk and starts the next one. Called with the writer lock held.
    fn rollover(&self, w: &mut Writer) -> Result<(), QueueError> {
        if self.opts.sync != SyncPolicy::Never {
            if let Err(e) = self.io.sync(&w.file, &w.path) {
                lock(&self.shared).stats.sync_errors += 1;
                return Err(io_err("fsync", &w.path)(e));
            }
            let mut st = lock(&self.sync);
            st.synced = st.synced.max(w.appends);
        }
        let chunk = w.chunk + 1;
        let (file, path) = create_chunk(&self.dir, &self.io, chunk, self.opts.sync)
            .inspect_err(|_| lock(&self.shared).stats.write_errors += 1)?;
        w.chunk = chunk;
        w.file = Arc::new(file);
        w.path = path;
        w.offset = CHUNK_HEADER_LEN;
        lock(&self.shared).chunks.insert(
            chunk,
            ChunkMeta {
                end: CHUNK_HEADER_LEN,
                ..ChunkMeta::default()
            },
        );
        Ok(())
    }

    /// Waits until an fsync covers append number `n` (group commit).
    fn sync_through(&self, n: u64) -> Result<(), QueueError> {
        let mut st = lock(&self.sync);
        loop {
            if n <= st.failed_through && n > st.synced {
                return Err(self.sync_failed_error());
            }
            if st.synced >= n {
                return Ok(());
            }
            if !st.in_progress {
                break;
            }
            st = self.sync_cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.in_progress = true;
        drop(st);
        let (file, path, upto) = {
            let w = lock(&self.writer);
            (Arc::clone(&w.file), w.path.clone(), w.appends)
        };
        let res = self.io.sync(&file, &path);
        let mut st = lock(&self.sync);
        st.in_progress = false;
        let out = match res {
            Ok(()) => {
                st.synced = st.synced.max(upto);
                Ok(())
            }
            Err(e) => {
                // The pages this fsync covered are in doubt; a later fsync "succeeding" proves
                // nothing about them, so every append up to here reports the failure.
                st.failed_through = st.failed_through.max(upto);
                Err(io_err("fsync", &path)(e))
            }
        };
        drop(st);
        self.sync_cv.notify_all();
        if out.is_err() {
            lock(&self.shared).stats.sync_errors += 1;
        }
        out
    }

    fn sync_failed_error(&self) -> QueueError {
        let path = lock(&self.writer).path.clone();
        QueueError::Io {
            op: "fsync",
            path,
            source: std::io::Error::other("an earlier fsync covering this block failed"),
        }
    }

    fn read(&self) -> Result<Option<Block>, QueueError> {
        let mut r = lock(&self.reader);
        loop {
            let (end, next_chunk) = {
                let s = lock(&self.shared);
                let end = s.chunks.get(&r.read.chunk).map(|m| m.end);
                let next = s.chunks.range(r.read.chunk + 1..).next().map(|(k, _)| *k);
                (end, next)
            };
            let Some(end) = end else {
                // The chunk vanished (dropped by the cap) or never existed: move on.
                match next_chunk {
                    Some(next) => {
                        self.skip_to_chunk(&mut r, next);
                        continue;
                    }
                    None => return Ok(None),
                }
            };
            if r.read.offset >= end {
                match next_chunk {
                    Some(next) => {
                        self.skip_to_chunk(&mut r, next);
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            let chunk = r.read.chunk;
            let offset = r.read.offset;
            let path = self.dir.join(format::chunk_file_name(chunk));
            if r.file.as_ref().map(|(c, _)| *c) != Some(chunk) {
                match File::open(&path) {
                    Ok(f) => r.file = Some((chunk, f)),
                    Err(e) => {
                        warn!(file = %path.display(), error = %e, "queue chunk unreadable; skipping it");
                        lock(&self.shared).stats.chunks_skipped += 1;
                        let to = next_chunk.unwrap_or(chunk + 1);
                        self.forget_chunk(chunk);
                        self.skip_to_chunk(&mut r, to);
                        continue;
                    }
                }
            }
            let Some((_, file)) = r.file.as_ref() else {
                continue;
            };
            match read_frame(file, chunk, offset, end, self.opts.max_block_bytes) {
                Ok(Some((header, payload))) => {
                    let next = Pos {
                        chunk,
                        offset: offset + header.frame_len(),
                    };
                    let start = r.read;
                    r.inflight.push_back(InFlight {
                        start,
                        end: next,
                        acked: false,
                        block: Some((u64::from(header.len), header.count)),
                    });
                    r.read = next;
                    return Ok(Some(Block {
                        id: BlockId { chunk, offset },
                        payload,
                        count: header.count,
                        written_unix_ms: header.written_unix_ms,
                    }));
                }
                Ok(None) => {
                    let resume = resync(file, chunk, offset, end, self.opts.max_block_bytes)
                        .map_err(io_err("read", &path))?;
                    warn!(
                        file = %path.display(),
                        offset,
                        bytes = resume - offset,
                        "queue block damaged; skipped to the next valid block"
                    );
                    {
                        let mut s = lock(&self.shared);
                        s.stats.corrupt_blocks_skipped += 1;
                        s.stats.corrupt_bytes_skipped += resume - offset;
                    }
                    let to = Pos {
                        chunk,
                        offset: resume,
                    };
                    self.push_skip(&mut r, to);
                }
                Err(e) => return Err(io_err("read", &path)(e)),
            }
        }
    }

    fn forget_chunk(&self, chunk: u64) {
        let mut w = lock(&self.shared);
        if let Some(m) = w.chunks.get_mut(&chunk) {
            m.acked_blocks = m.blocks;
            m.acked_items = m.items;
        }
    }

    fn skip_to_chunk(&self, r: &mut Reader, chunk: u64) {
        r.file = None;
        self.push_skip(
            r,
            Pos {
                chunk,
                offset: CHUNK_HEADER_LEN,
            },
        );
    }

    /// Passes over a range that holds no block: it counts as acknowledged once what precedes it is.
    fn push_skip(&self, r: &mut Reader, to: Pos) {
        let start = r.read;
        r.inflight.push_back(InFlight {
            start,
            end: to,
            acked: true,
            block: None,
        });
        r.read = to;
        self.advance_ack(r);
    }

    fn ack(&self, id: BlockId) {
        let mut r = lock(&self.reader);
        let key = Pos {
            chunk: id.chunk,
            offset: id.offset,
        };
        if let Ok(i) = r.inflight.binary_search_by(|f| f.start.cmp(&key))
            && r.inflight[i].block.is_some()
        {
            r.inflight[i].acked = true;
            self.advance_ack(&mut r);
        }
    }

    /// Moves the acknowledged position over the acknowledged prefix of what is in flight.
    fn advance_ack(&self, r: &mut Reader) {
        let mut s = None;
        while r.inflight.front().is_some_and(|f| f.acked) {
            let Some(f) = r.inflight.pop_front() else {
                break;
            };
            r.ack = f.end;
            if let Some((bytes, items)) = f.block {
                let s = s.get_or_insert_with(|| lock(&self.shared));
                if let Some(m) = s.chunks.get_mut(&f.start.chunk) {
                    m.acked_blocks += 1;
                    m.acked_items += u64::from(items);
                }
                s.stats.acked_blocks += 1;
                s.stats.acked_bytes += bytes;
            }
        }
    }

    fn flush(&self) -> Result<(), QueueError> {
        if self.opts.sync != SyncPolicy::Never {
            let (file, path, upto) = {
                let w = lock(&self.writer);
                (Arc::clone(&w.file), w.path.clone(), w.appends)
            };
            if lock(&self.sync).synced < upto {
                if let Err(e) = self.io.sync(&file, &path) {
                    lock(&self.shared).stats.sync_errors += 1;
                    let mut st = lock(&self.sync);
                    st.failed_through = st.failed_through.max(upto);
                    return Err(io_err("fsync", &path)(e));
                }
                let mut st = lock(&self.sync);
                st.synced = st.synced.max(upto);
            }
        }
        let mut r = lock(&self.reader);
        self.persist_and_delete(&mut r)
    }

    /// Writes the acknowledged position if it moved, then deletes the chunk files before it.
    fn persist_and_delete(&self, r: &mut Reader) -> Result<(), QueueError> {
        let durable = self.opts.sync != SyncPolicy::Never;
        if r.persisted != Some(r.ack) {
            let path = self.dir.join(POSITION_FILE);
            let bytes = format::encode_position(r.ack.chunk, r.ack.offset);
            self.io
                .replace_file(&self.dir, &path, &bytes, durable)
                .map_err(io_err("write", &path))?;
            r.persisted = Some(r.ack);
        }
        let persisted = r.ack.chunk;
        let doomed: Vec<u64> = {
            let mut s = lock(&self.shared);
            let doomed: Vec<u64> = s.chunks.range(..persisted).map(|(k, _)| *k).collect();
            for c in &doomed {
                s.chunks.remove(c);
            }
            doomed
        };
        if doomed.is_empty() {
            return Ok(());
        }
        for c in &doomed {
            let path = self.dir.join(format::chunk_file_name(*c));
            match std::fs::remove_file(&path) {
                Ok(()) => debug!(file = %path.display(), "queue chunk fully acknowledged; deleted"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(file = %path.display(), error = %e, "could not delete queue chunk"),
            }
        }
        if durable {
            self.io
                .sync_dir(&self.dir)
                .map_err(io_err("fsync", &self.dir))?;
        }
        Ok(())
    }

    fn stats(&self) -> Stats {
        let r = lock(&self.reader);
        let ack = r.ack;
        drop(r);
        let mut s = lock(&self.shared);
        let pending = pending_bytes(&s.chunks, ack);
        if pending == 0 {
            // Self-healing: counts derived at open may drift if damage appears later.
            for m in s.chunks.values_mut() {
                m.acked_blocks = m.blocks;
                m.acked_items = m.items;
            }
        }
        let mut out = s.stats.clone();
        out.pending_bytes = pending;
        out.pending_blocks = s
            .chunks
            .range(ack.chunk..)
            .map(|(_, m)| m.blocks.saturating_sub(m.acked_blocks))
            .sum();
        out.chunk_files = s.chunks.len() as u64;
        let first = s
            .chunks
            .range(ack.chunk..)
            .map(|(c, m)| {
                let start = if *c == ack.chunk {
                    ack.offset
                } else {
                    CHUNK_HEADER_LEN
                };
                (*c, start, m.end)
            })
            .find(|(_, start, end)| start < end);
        drop(s);
        out.oldest_pending_unix_ms = first.and_then(|(c, start, end)| {
            let f = File::open(self.dir.join(format::chunk_file_name(c))).ok()?;
            let mut h = [0u8; FRAME_HEADER_LEN];
            f.read_exact_at(&mut h, start).ok()?;
            format::decode_frame_header(&h, MAX_FRAME_PAYLOAD, end - start)
                .map(|fh| fh.written_unix_ms)
        });
        out
    }
}

fn pending_bytes(chunks: &BTreeMap<u64, ChunkMeta>, ack: Pos) -> u64 {
    chunks
        .range(ack.chunk..)
        .map(|(c, m)| {
            let start = if *c == ack.chunk {
                ack.offset
            } else {
                CHUNK_HEADER_LEN
            };
            m.end.saturating_sub(start)
        })
        .sum()
}

/// Reads and checks the frame at `offset`; `Ok(None)` when it is damaged.
fn read_frame(
    file: &File,
    chunk: u64,
    offset: u64,
    end: u64,
    max_block: u32,
) -> std::io::Result<Option<(format::FrameHeader, Bytes)>> {
    let mut h = [0u8; FRAME_HEADER_LEN];
    if end - offset < FRAME_HEADER_LEN as u64 {
        return Ok(None);
    }
    file.read_exact_at(&mut h, offset)?;
    let Some(header) = format::decode_frame_header(&h, max_block, end - offset) else {
        return Ok(None);
    };
    let mut payload = vec![0u8; header.len as usize];
    file.read_exact_at(&mut payload, offset + FRAME_HEADER_LEN as u64)?;
    if !format::frame_crc_ok(chunk, &h, &payload) {
        return Ok(None);
    }
    Ok(Some((header, Bytes::from(payload))))
}

/// The offset of the first valid frame after damage at `offset`, or `end` when none follows.
fn resync(file: &File, chunk: u64, offset: u64, end: u64, max_block: u32) -> std::io::Result<u64> {
    let mut buf = vec![0u8; (end - offset) as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(format::find_next_frame(chunk, &buf, 1, max_block)
        .map(|f| offset + f.at as u64)
        .unwrap_or(end))
}

fn create_chunk(
    dir: &Path,
    io: &Io,
    chunk: u64,
    sync: SyncPolicy,
) -> Result<(File, PathBuf), QueueError> {
    let path = dir.join(format::chunk_file_name(chunk));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("create", &path))?;
    let header = format::encode_chunk_header(chunk, now_ms());
    let written = io
        .write_all_at(&file, &path, 0, &header)
        .map_err(io_err("write", &path))
        .and_then(|()| {
            if sync != SyncPolicy::Never {
                io.sync(&file, &path).map_err(io_err("fsync", &path))?;
                io.sync_dir(dir).map_err(io_err("fsync", dir))?;
            }
            Ok(())
        });
    if let Err(e) = written {
        // Leave no half-made chunk behind, or the next rollover would find its name taken.
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok((file, path))
}

struct Recovered {
    writer: Writer,
    start: Pos,
    persisted: Option<Pos>,
    chunks: BTreeMap<u64, ChunkMeta>,
    stats: Stats,
}

/// Rebuilds the queue's state from the directory. Only I/O errors on the directory fail it.
fn recover(dir: &Path, opts: &Options, io: &Io) -> Result<Recovered, QueueError> {
    let mut stats = Stats::default();
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = format::parse_chunk_file_name(name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();

    let pos_path = dir.join(POSITION_FILE);
    let position = match std::fs::read(&pos_path) {
        Ok(bytes) => match format::decode_position(&bytes) {
            Some((chunk, offset)) => Some(Pos { chunk, offset }),
            None => {
                warn!(file = %pos_path.display(), "queue position file damaged; re-reading from the oldest chunk");
                stats.position_fallbacks += 1;
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !seqs.is_empty() {
                warn!(file = %pos_path.display(), "queue position file missing; re-reading from the oldest chunk");
                stats.position_fallbacks += 1;
            }
            None
        }
        Err(e) => {
            warn!(file = %pos_path.display(), error = %e, "queue position file unreadable; re-reading from the oldest chunk");
            stats.position_fallbacks += 1;
            None
        }
    };

    // Chunks before the persisted position are acknowledged leftovers of an interrupted deletion.
    if let Some(p) = position {
        for &seq in seqs.iter().filter(|&&s| s < p.chunk) {
            let path = dir.join(format::chunk_file_name(seq));
            let _ = std::fs::remove_file(&path);
        }
        seqs.retain(|&s| s >= p.chunk);
    }

    // Files with nothing recoverable go before anything is scanned or cut: left in place they
    // would sort after the new head chunk, and a torn-tail cut would change them.
    let last_seq = seqs.last().copied();
    seqs.retain(|&seq| {
        let path = dir.join(format::chunk_file_name(seq));
        match junk(&path, seq, opts.max_block_bytes) {
            None => true,
            Some(len) if len < CHUNK_HEADER_LEN && Some(seq) == last_seq => {
                // A crash between creating the next chunk and writing its header: a torn
                // rollover, not damage.
                debug!(file = %path.display(), "queue chunk was created but never written; removing it");
                stats.torn_tail_bytes += len;
                let _ = std::fs::remove_file(&path);
                false
            }
            Some(_) => {
                let aside = path.with_extension("chunk.damaged");
                warn!(file = %path.display(), moved_to = %aside.display(), "queue chunk holds nothing valid; moving it aside");
                stats.chunks_skipped += 1;
                if let Err(e) = std::fs::rename(&path, &aside) {
                    warn!(file = %path.display(), error = %e, "could not move the damaged chunk aside; removing it");
                    let _ = std::fs::remove_file(&path);
                }
                false
            }
        }
    });

    let mut chunks = BTreeMap::new();
    let mut start = None;
    // A position in a chunk that is gone means that chunk (and any up to the next one) is missing.
    let mut prev: Option<u64> = position.map(|p| p.chunk.saturating_sub(1));
    let last = seqs.last().copied();
    for &seq in &seqs {
        if let Some(p) = prev
            && seq > p + 1
        {
            warn!(dir = %dir.display(), missing = seq - p - 1, after = p, "queue chunk files missing; skipping them");
            stats.chunks_skipped += seq - p - 1;
        }
        prev = Some(seq);
        let path = dir.join(format::chunk_file_name(seq));
        let from = match position {
            Some(p) if p.chunk == seq => p.offset.max(CHUNK_HEADER_LEN),
            _ => CHUNK_HEADER_LEN,
        };
        let is_head = Some(seq) == last;
        match scan_chunk(&path, seq, from, is_head, opts, io, &mut stats) {
            Ok(meta) => {
                start.get_or_insert(Pos {
                    chunk: seq,
                    offset: from.min(meta.end),
                });
                chunks.insert(seq, meta);
            }
            Err(e) => {
                warn!(file = %path.display(), error = %e, "queue chunk unreadable; skipping it");
                stats.chunks_skipped += 1;
            }
        }
    }

    // Appends go to the last chunk if it is healthy, else to a new one.
    let reuse = chunks.iter().next_back().and_then(|(&seq, m)| {
        let path = dir.join(format::chunk_file_name(seq));
        let file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        let mut h = [0u8; CHUNK_HEADER_LEN as usize];
        file.read_exact_at(&mut h, 0).ok()?;
        let header = format::decode_chunk_header(&h)?;
        (Some(seq) == last && header.seq == seq && m.end < opts.chunk_bytes)
            .then_some((seq, file, path, m.end))
    });
    let writer = match reuse {
        Some((chunk, file, path, offset)) => Writer {
            chunk,
            file: Arc::new(file),
            path,
            offset,
            appends: 0,
            needs_truncate: false,
            buf: Vec::new(),
        },
        None => {
            let after = seqs.last().copied().unwrap_or(0);
            let chunk = after
                .max(position.map(|p| p.chunk).unwrap_or(0))
                .checked_add(1)
                .ok_or_else(|| {
                    io_err("create a chunk in", dir)(std::io::Error::other(
                        "chunk sequence numbers are exhausted",
                    ))
                })?;
            let (file, path) = create_chunk(dir, io, chunk, opts.sync)?;
            chunks.insert(
                chunk,
                ChunkMeta {
                    end: CHUNK_HEADER_LEN,
                    ..ChunkMeta::default()
                },
            );
            start.get_or_insert(Pos {
                chunk,
                offset: CHUNK_HEADER_LEN,
            });
            Writer {
                chunk,
                file: Arc::new(file),
                path,
                offset: CHUNK_HEADER_LEN,
                appends: 0,
                needs_truncate: false,
                buf: Vec::new(),
            }
        }
    };
    let start = start.unwrap_or(Pos {
        chunk: writer.chunk,
        offset: CHUNK_HEADER_LEN,
    });
    let persisted = position.filter(|p| *p == start);
    Ok(Recovered {
        writer,
        start,
        persisted,
        chunks,
        stats,
    })
}

/// `Some(file length)` when a chunk file holds nothing recoverable: no intact header naming
/// `seq` and no valid frame. Read-only; an unreadable file is left to the scan (which skips it).
fn junk(path: &Path, seq: u64, max_block: u32) -> Option<u64> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut h = [0u8; CHUNK_HEADER_LEN as usize];
    if file.read_exact_at(&mut h, 0).is_ok()
        && format::decode_chunk_header(&h).is_some_and(|header| header.seq == seq)
    {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    file.read_exact_at(&mut buf, 0).ok()?;
    match format::find_next_frame(seq, &buf, 0, max_block) {
        Some(_) => None,
        None => Some(len),
    }
}

/// Counts the blocks of one chunk from `from` on. The head chunk is checked completely (CRC of
/// every frame) and a torn tail is cut off; sealed chunks are walked header by header and only
/// scanned completely where a header is damaged.
fn scan_chunk(
    path: &Path,
    seq: u64,
    from: u64,
    is_head: bool,
    opts: &Options,
    io: &Io,
    stats: &mut Stats,
) -> std::io::Result<ChunkMeta> {
    let file = OpenOptions::new().read(true).write(is_head).open(path)?;
    let len = file.metadata()?.len();
    let mut meta = ChunkMeta {
        end: len,
        ..ChunkMeta::default()
    };
    if from >= len {
        return Ok(meta);
    }
    let max = opts.max_block_bytes;
    if !is_head {
        let mut off = from;
        let mut h = [0u8; FRAME_HEADER_LEN];
        while off + FRAME_HEADER_LEN as u64 <= len {
            file.read_exact_at(&mut h, off)?;
            match format::decode_frame_header(&h, max, len - off) {
                Some(fh) => {
                    meta.blocks += 1;
                    meta.items += u64::from(fh.count);
                    off += fh.frame_len();
                }
                None => break,
            }
        }
        if off >= len {
            return Ok(meta);
        }
        // Damage: count what is still valid after it (the reader will skip and count the damage).
        let mut buf = vec![0u8; (len - off) as usize];
        file.read_exact_at(&mut buf, off)?;
        let mut at = 0;
        while let Some(f) = format::find_next_frame(seq, &buf, at, max) {
            meta.blocks += 1;
            meta.items += u64::from(f.header.count);
            at = f.at + f.header.frame_len() as usize;
        }
        return Ok(meta);
    }
    let mut buf = vec![0u8; (len - from) as usize];
    file.read_exact_at(&mut buf, from)?;
    let mut at = 0usize;
    let mut valid_end = 0usize;
    while let Some(f) = format::find_next_frame(seq, &buf, at, max) {
        meta.blocks += 1;
        meta.items += u64::from(f.header.count);
        at = f.at + f.header.frame_len() as usize;
        valid_end = at;
    }
    let valid_end = from + valid_end as u64;
    if valid_end < len {
        let cut = valid_end.max(CHUNK_HEADER_LEN.min(len));
        warn!(file = %path.display(), offset = cut, bytes = len - cut, "queue chunk has a torn tail; cutting it off");
        file.set_len(cut)?;
        if opts.sync != SyncPolicy::Never {
            io.sync(&file, path)?;
        }
        stats.torn_tail_bytes += len - cut;
        meta.end = cut;
    }
    Ok(meta)
}
