//! The writing side: append with group commit, the size cap (drop oldest or refuse), rollover to a
//! new chunk file, and creating chunk files.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, warn};

use super::commit::Turn;
use super::error::io_err;
use super::io::Io;
use super::{
    CHUNK_HEADER_LEN, ChunkMeta, FRAME_HEADER_LEN, FullPolicy, Inner, Pos, QueueError, SyncPolicy,
    format, ledger::pending_bytes, lock, now_ms,
};

pub(super) struct Writer {
    pub(super) chunk: u64,
    /// The head chunk's file; `None` once it was given back (deleted) while chunk `chunk + 1`
    /// could not be created yet: the next append creates it before writing. (Keeping the deleted
    /// file open would keep its space taken.)
    pub(super) file: Option<Arc<File>>,
    pub(super) path: PathBuf,
    pub(super) offset: u64,
    /// Appends so far; group commit waits until `synced >= ` an append's number.
    pub(super) appends: u64,
    /// The last write failed and the file could not be cut back yet.
    pub(super) needs_truncate: bool,
    /// Give the head chunk's space back once the reader has acknowledged all of it (see
    /// [`Inner::give_back_acked_head`]): set at open when the head holds blocks, and when an
    /// append finds the disk full.
    pub(super) give_back: bool,
}

impl Writer {
    /// Appends to `file` (chunk `chunk`) from `offset` on.
    pub(super) fn new(chunk: u64, file: File, path: PathBuf, offset: u64) -> Writer {
        Writer {
            chunk,
            file: Some(Arc::new(file)),
            path,
            offset,
            appends: 0,
            needs_truncate: false,
            give_back: offset > CHUNK_HEADER_LEN,
        }
    }

    /// Where the next frame goes.
    fn end(&self) -> Pos {
        Pos {
            chunk: self.chunk,
            offset: self.offset,
        }
    }
}

impl Inner {
    pub(super) fn append(&self, payload: &[u8], count: u32) -> Result<u64, QueueError> {
        if payload.len() > self.opts.max_block_bytes as usize {
            return Err(QueueError::BlockTooLarge {
                len: payload.len(),
                max: self.opts.max_block_bytes,
            });
        }
        let frame_len = (FRAME_HEADER_LEN + payload.len()) as u64;
        let mut w = lock(&self.writer);
        let appended = self.append_locked(&mut w, payload, count, frame_len);
        if appended.as_ref().is_err_and(QueueError::is_disk_full) {
            w.give_back = true;
        }
        appended
    }

    fn append_locked(
        &self,
        w: &mut Writer,
        payload: &[u8],
        count: u32,
        frame_len: u64,
    ) -> Result<u64, QueueError> {
        self.give_back_acked_head(w)?;
        let mut file = match w.file.clone() {
            None => self.start_next_chunk(w)?,
            Some(file) => {
                if w.needs_truncate {
                    self.io
                        .set_len(&file, &w.path, w.offset)
                        .map_err(|e| self.write_failed("cut back", &w.path, e))?;
                    w.needs_truncate = false;
                }
                file
            }
        };
        self.make_room(frame_len)?;
        if w.offset > CHUNK_HEADER_LEN && w.offset + frame_len > self.opts.chunk_bytes {
            file = self.rollover(w, &file)?;
        }
        let chunk = w.chunk;
        let offset = w.offset;
        // Header and payload go to the file as two pieces: copying a payload of up to a few
        // MB behind its header cost more than the second write (2.4% of the relay's CPU).
        let header = format::frame_header(chunk, payload, count, now_ms());
        let res = self
            .io
            .write_all_at(&file, &w.path, offset, &[&header, payload]);
        if let Err(e) = res {
            // Cut the torn bytes off so nothing half-written is ever read; if even that fails,
            // the next append tries again before writing.
            w.needs_truncate = self.io.set_len(&file, &w.path, offset).is_err();
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

    pub(super) fn write_failed(
        &self,
        op: &'static str,
        path: &Path,
        e: std::io::Error,
    ) -> QueueError {
        lock(&self.shared).stats.write_errors += 1;
        io_err(op, path)(e)
    }

    /// Enforces the size cap before a frame of `frame_len` bytes is written. Called with the
    /// writer lock held.
    pub(super) fn make_room(&self, frame_len: u64) -> Result<(), QueueError> {
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

    /// Seals the head chunk (`file`) and starts the next one, whose file it returns. Called with
    /// the writer lock held.
    fn rollover(&self, w: &mut Writer, file: &File) -> Result<Arc<File>, QueueError> {
        if self.opts.sync != SyncPolicy::Never {
            if let Err(e) = self.io.sync(file, &w.path) {
                lock(&self.shared).stats.sync_errors += 1;
                return Err(io_err("fsync", &w.path)(e));
            }
            self.commit.synced(w.appends);
        }
        self.start_next_chunk(w)
    }

    /// Creates chunk `w.chunk + 1` and makes it the head; returns its file. Called with the writer
    /// lock held.
    fn start_next_chunk(&self, w: &mut Writer) -> Result<Arc<File>, QueueError> {
        let chunk = next_chunk(&self.dir, w.chunk)?;
        let (file, path) = create_chunk(&self.dir, &self.io, chunk, self.opts.sync)
            .inspect_err(|_| lock(&self.shared).stats.write_errors += 1)?;
        let file = Arc::new(file);
        w.chunk = chunk;
        w.file = Some(Arc::clone(&file));
        w.path = path;
        w.offset = CHUNK_HEADER_LEN;
        w.needs_truncate = false;
        lock(&self.shared).chunks.insert(
            chunk,
            ChunkMeta {
                end: CHUNK_HEADER_LEN,
                ..ChunkMeta::default()
            },
        );
        Ok(file)
    }

    /// Whether the reader has acknowledged everything up to the writer's end.
    pub(super) fn head_is_acknowledged(&self, w: &Writer) -> bool {
        let r = lock(&self.reader);
        r.ack == w.end() && r.inflight.is_empty()
    }

    /// A head chunk is otherwise deleted only once rollover has sealed it, so one that filled the
    /// disk would keep it full after the reader caught up, and every append would fail for good.
    /// When `w.give_back` asks for it and every block in the head is acknowledged, this gives the
    /// space back: the position moves to the start of the next chunk (which does not exist yet),
    /// the head chunk is deleted, then the next one is created. A crash in between is recovered
    /// like an interrupted deletion. Called with the writer lock held.
    pub(super) fn give_back_acked_head(&self, w: &mut Writer) -> Result<(), QueueError> {
        if !w.give_back || w.file.is_none() {
            return Ok(());
        }
        if w.offset <= CHUNK_HEADER_LEN {
            // An empty head holds no space worth giving back.
            w.give_back = false;
            return Ok(());
        }
        if !self.head_is_acknowledged(w) {
            return Ok(());
        }
        let mut r = lock(&self.reader);
        let to = Pos {
            chunk: next_chunk(&self.dir, w.chunk)?,
            offset: CHUNK_HEADER_LEN,
        };
        let was = (r.read, r.ack);
        r.read = to;
        r.ack = to;
        r.file = None;
        let persisted = self.persist_and_delete(&mut r);
        if r.persisted != Some(to) {
            // The position could not be written: nothing changed on disk.
            (r.read, r.ack) = was;
            return persisted;
        }
        drop(r);
        debug!(dir = %self.dir.display(), chunk = w.chunk, "queue head chunk fully acknowledged; gave its space back");
        // Its blocks are delivered: no append waits for an fsync of them any more.
        self.commit.synced(w.appends);
        w.file = None;
        w.give_back = false;
        // Only the directory fsync after the deletion can have failed here.
        persisted?;
        self.start_next_chunk(w).map(drop)
    }

    /// Waits until an fsync covers append number `n` (group commit). Takes the writer lock only
    /// after group commit's lock is released (the `Turn` is a plain value).
    pub(super) fn sync_through(&self, n: u64) -> Result<(), QueueError> {
        let leader = match self.commit.wait_for(n) {
            Turn::Covered => return Ok(()),
            Turn::Failed => return Err(self.sync_failed_error()),
            Turn::Lead(leader) => leader,
        };
        let (file, path, upto) = {
            let w = lock(&self.writer);
            (w.file.clone(), w.path.clone(), w.appends)
        };
        // Without a head file every append so far was in a chunk given back: nothing to sync.
        let res = file.map_or(Ok(()), |file| self.io.sync(&file, &path));
        leader.finish(upto, res.is_ok());
        res.map_err(|e| {
            // The pages this fsync covered are in doubt: every append up to here reports it.
            lock(&self.shared).stats.sync_errors += 1;
            io_err("fsync", &path)(e)
        })
    }

    fn sync_failed_error(&self) -> QueueError {
        let path = lock(&self.writer).path.clone();
        QueueError::Io {
            op: "fsync",
            path,
            source: std::io::Error::other("an earlier fsync covering this block failed"),
        }
    }
}

/// The sequence number after `chunk`.
pub(super) fn next_chunk(dir: &Path, chunk: u64) -> Result<u64, QueueError> {
    chunk.checked_add(1).ok_or_else(|| {
        io_err("create a chunk in", dir)(std::io::Error::other(
            "chunk sequence numbers are exhausted",
        ))
    })
}

pub(super) fn create_chunk(
    dir: &Path,
    io: &Io,
    chunk: u64,
    sync: SyncPolicy,
) -> Result<(File, PathBuf), QueueError> {
    let path = dir.join(format::chunk_file_name(chunk));
    let file = match io.create_new(&path) {
        // No chunk lives past the head: a file with the next name is one a failed rollover
        // made and could not remove (the next open would remove it too). Replace it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            io.remove_file(&path).and_then(|()| io.create_new(&path))
        }
        other => other,
    }
    .map_err(io_err("create", &path))?;
    let header = format::encode_chunk_header(chunk, now_ms());
    let written = io
        .write_all_at(&file, &path, 0, &[&header])
        .map_err(io_err("write", &path))
        .and_then(|()| {
            if sync != SyncPolicy::Never {
                io.sync(&file, &path).map_err(io_err("fsync", &path))?;
                io.sync_dir(dir).map_err(io_err("fsync", dir))?;
            }
            Ok(())
        });
    if let Err(e) = written {
        // Leave no half-made chunk behind (should this fail, the next attempt replaces it).
        drop(file);
        let _ = io.remove_file(&path);
        return Err(e);
    }
    Ok((file, path))
}
