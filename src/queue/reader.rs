//! The reading side: hand out blocks in order, skip damage and missing chunks, take
//! acknowledgements in any order and move the acknowledged position over their gap-free prefix.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;

use bytes::Bytes;
use tracing::warn;

use super::error::io_err;
use super::io::{Io, is_not_a_file};
use super::{
    Block, BlockId, CHUNK_HEADER_LEN, FRAME_HEADER_LEN, Inner, Pos, QueueError, format, lock,
};

/// A range of the queue handed out (a block) or passed over (damage, chunk boundary).
pub(super) struct InFlight {
    pub(super) start: Pos,
    pub(super) end: Pos,
    pub(super) acked: bool,
    /// Real block: payload bytes and item count (skips have `None`).
    pub(super) block: Option<(u64, u32)>,
}

pub(super) struct Reader {
    pub(super) read: Pos,
    pub(super) ack: Pos,
    pub(super) persisted: Option<Pos>,
    pub(super) inflight: VecDeque<InFlight>,
    pub(super) file: Option<(u64, File)>,
}

impl Inner {
    pub(super) fn read(&self) -> Result<Option<Block>, QueueError> {
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
                match self.io.open(&path, false) {
                    Ok(f) => r.file = Some((chunk, f)),
                    Err(e) if is_not_a_file(&e) => {
                        warn!(file = %path.display(), error = %e, "queue chunk missing; skipping it");
                        lock(&self.shared).stats.chunks_skipped += 1;
                        let to = next_chunk.unwrap_or(chunk + 1);
                        self.forget_chunk(chunk);
                        self.skip_to_chunk(&mut r, to);
                        continue;
                    }
                    // Any other error may pass (EIO, EMFILE): skipping the chunk would let the
                    // acknowledged position pass it and its blocks be deleted unsent.
                    Err(e) => return Err(io_err("open", &path)(e)),
                }
            }
            let Some((_, file)) = r.file.as_ref() else {
                continue;
            };
            match read_frame(
                &self.io,
                file,
                &path,
                chunk,
                offset,
                end,
                self.opts.max_block_bytes,
            ) {
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
                    let resume = resync(
                        &self.io,
                        file,
                        &path,
                        (chunk, offset, end),
                        self.opts.max_block_bytes,
                    )
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

    pub(super) fn forget_chunk(&self, chunk: u64) {
        let mut w = lock(&self.shared);
        if let Some(m) = w.chunks.get_mut(&chunk) {
            m.acked_blocks = m.blocks;
            m.acked_items = m.items;
        }
    }

    pub(super) fn skip_to_chunk(&self, r: &mut Reader, chunk: u64) {
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
    pub(super) fn push_skip(&self, r: &mut Reader, to: Pos) {
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

    pub(super) fn ack(&self, id: BlockId) {
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
    pub(super) fn advance_ack(&self, r: &mut Reader) {
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
}

/// Reads and checks the frame at `offset`; `Ok(None)` when it is damaged.
fn read_frame(
    io: &Io,
    file: &File,
    path: &Path,
    chunk: u64,
    offset: u64,
    end: u64,
    max_block: u32,
) -> std::io::Result<Option<(format::FrameHeader, Bytes)>> {
    let mut h = [0u8; FRAME_HEADER_LEN];
    if end - offset < FRAME_HEADER_LEN as u64 {
        return Ok(None);
    }
    io.read_exact_at(file, path, &mut h, offset)?;
    let Some(header) = format::decode_frame_header(&h, max_block, end - offset) else {
        return Ok(None);
    };
    // Read into fresh memory without zero-filling it first: the memset of a push-sized buffer
    // was 2% of the relay's CPU. The reader's file handle is its own (`Reader::file`).
    let payload_at = offset + FRAME_HEADER_LEN as u64;
    let payload = io.read_vec_at(file, path, header.len as usize, payload_at)?;
    if !format::frame_crc_ok(chunk, &h, &payload) {
        return Ok(None);
    }
    Ok(Some((header, Bytes::from(payload))))
}

/// The offset of the first valid frame after damage at `offset`, or `end` when none follows.
fn resync(
    io: &Io,
    file: &File,
    path: &Path,
    (chunk, offset, end): (u64, u64, u64),
    max_block: u32,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; (end - offset) as usize];
    io.read_exact_at(file, path, &mut buf, offset)?;
    Ok(format::find_next_frame(chunk, &buf, 1, max_block)
        .map(|f| offset + f.at as u64)
        .unwrap_or(end))
}
