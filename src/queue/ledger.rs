//! What both sides share and what is made durable: the chunk list with its counters, the
//! persisted read position (written before acknowledged chunk files are deleted), and the figures.

use std::collections::BTreeMap;

use tracing::{debug, warn};

use super::error::io_err;
use super::reader::Reader;
use super::{
    CHUNK_HEADER_LEN, ChunkMeta, FRAME_HEADER_LEN, Inner, MAX_FRAME_PAYLOAD, POSITION_FILE, Pos,
    QueueError, Stats, SyncPolicy, format, lock,
};

#[derive(Default)]
pub(super) struct Shared {
    pub(super) chunks: BTreeMap<u64, ChunkMeta>,
    pub(super) stats: Stats,
}

impl Inner {
    pub(super) fn flush(&self) -> Result<(), QueueError> {
        self.give_back_acked_head(&mut lock(&self.writer))?;
        if self.opts.sync != SyncPolicy::Never {
            let (file, path, upto) = {
                let w = lock(&self.writer);
                (w.file.clone(), w.path.clone(), w.appends)
            };
            if let Some(file) = file
                && self.commit.synced_through() < upto
            {
                if let Err(e) = self.io.sync(&file, &path) {
                    lock(&self.shared).stats.sync_errors += 1;
                    self.commit.failed(upto);
                    return Err(io_err("fsync", &path)(e));
                }
                self.commit.synced(upto);
            }
        }
        let mut r = lock(&self.reader);
        self.persist_and_delete(&mut r)
    }

    /// Writes the acknowledged position if it moved, then deletes the chunk files before it.
    pub(super) fn persist_and_delete(&self, r: &mut Reader) -> Result<(), QueueError> {
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
            match self.io.remove_file(&path) {
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

    pub(super) fn stats(&self) -> Stats {
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
        let first = pending_ranges(&s.chunks, ack).find(|(_, start, end)| start < end);
        drop(s);
        out.oldest_pending_unix_ms = first.and_then(|(c, start, end)| {
            let path = self.dir.join(format::chunk_file_name(c));
            let f = self.io.open(&path, false).ok()?;
            let mut h = [0u8; FRAME_HEADER_LEN];
            self.io.read_exact_at(&f, &path, &mut h, start).ok()?;
            format::decode_frame_header(&h, MAX_FRAME_PAYLOAD, end - start)
                .map(|fh| fh.written_unix_ms)
        });
        out
    }
}

pub(super) fn pending_bytes(chunks: &BTreeMap<u64, ChunkMeta>, ack: Pos) -> u64 {
    pending_ranges(chunks, ack)
        .map(|(_, start, end)| end.saturating_sub(start))
        .sum()
}

/// Per chunk from the acknowledged one on: `(chunk, start, end)` of the bytes not yet
/// acknowledged (the acknowledged offset in its own chunk, just past the header in later ones).
fn pending_ranges(
    chunks: &BTreeMap<u64, ChunkMeta>,
    ack: Pos,
) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
    chunks.range(ack.chunk..).map(move |(&c, m)| {
        let start = if c == ack.chunk {
            ack.offset
        } else {
            CHUNK_HEADER_LEN
        };
        (c, start, m.end)
    })
}
