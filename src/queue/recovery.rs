//! Rebuilding a queue's state from its directory at open: list the chunk files, read the position,
//! remove or set aside files with nothing recoverable, count blocks, cut a torn tail, pick the
//! chunk appends go to. Only I/O errors on the directory itself fail it.

use std::collections::BTreeMap;
use std::path::Path;

use tracing::{debug, warn};

use super::error::io_err;
use super::io::{Io, is_not_a_file};
use super::ledger::pending_bytes;
use super::writer::{Writer, create_chunk, next_chunk};
use super::{
    CHUNK_HEADER_LEN, ChunkMeta, FRAME_HEADER_LEN, Options, POSITION_FILE, Pos, QueueError, Stats,
    SyncPolicy, format,
};

pub(super) struct Recovered {
    pub(super) writer: Writer,
    pub(super) start: Pos,
    pub(super) persisted: Option<Pos>,
    pub(super) chunks: BTreeMap<u64, ChunkMeta>,
    pub(super) stats: Stats,
}

/// Rebuilds the queue's state from the directory. Only I/O errors on the directory fail it.
pub(super) fn recover(dir: &Path, opts: &Options, io: &Io) -> Result<Recovered, QueueError> {
    let mut stats = Stats::default();
    let mut seqs = Vec::new();
    for name in io.list_dir(dir).map_err(io_err("list", dir))? {
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = format::parse_chunk_file_name(name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();

    let pos_path = dir.join(POSITION_FILE);
    let position = match io.read_file(&pos_path) {
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
            let _ = io.remove_file(&path);
        }
        seqs.retain(|&s| s >= p.chunk);
    }

    // Files with nothing recoverable go before anything is scanned or cut: left in place they
    // would sort after the new head chunk, and a torn-tail cut would change them.
    let last_seq = seqs.last().copied();
    seqs.retain(|&seq| {
        let path = dir.join(format::chunk_file_name(seq));
        match junk(io, &path, seq, opts.max_block_bytes) {
            None => true,
            Some(len) if len < CHUNK_HEADER_LEN && Some(seq) == last_seq => {
                // A crash between creating the next chunk and writing its header: a torn
                // rollover, not damage.
                debug!(file = %path.display(), "queue chunk was created but never written; removing it");
                stats.torn_tail_bytes += len;
                let _ = io.remove_file(&path);
                false
            }
            Some(_) => {
                let aside = path.with_extension("chunk.damaged");
                warn!(file = %path.display(), moved_to = %aside.display(), "queue chunk holds nothing valid; moving it aside");
                stats.chunks_skipped += 1;
                if let Err(e) = io.rename(&path, &aside) {
                    warn!(file = %path.display(), error = %e, "could not move the damaged chunk aside; removing it");
                    let _ = io.remove_file(&path);
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
            Err(e) if is_not_a_file(&e) => {
                warn!(file = %path.display(), error = %e, "queue chunk is not a file; skipping it");
                stats.chunks_skipped += 1;
            }
            // Skipping a chunk that could not be read (EIO, ENOMEM...) would let the position
            // pass it and the next open delete it: a transient fault would lose its blocks. Fail
            // the open instead; it heals when the fault goes away.
            Err(e) => return Err(io_err("read", &path)(e)),
        }
    }

    // Appends go to the last chunk if it is healthy, else to a new one.
    let reuse = chunks.iter().next_back().and_then(|(&seq, m)| {
        let path = dir.join(format::chunk_file_name(seq));
        let file = io.open(&path, true).ok()?;
        let mut h = [0u8; CHUNK_HEADER_LEN as usize];
        io.read_exact_at(&file, &path, &mut h, 0).ok()?;
        let header = format::decode_chunk_header(&h)?;
        // A full one that is wholly acknowledged is kept too: it is given back right after open
        // (see `Inner::give_back_acked_head`), which needs no space, where starting a new chunk
        // beside it would fail on a disk it filled.
        let acked = start.is_some_and(|s| pending_bytes(&chunks, s) == 0);
        (Some(seq) == last && header.seq == seq && (m.end < opts.chunk_bytes || acked))
            .then_some((seq, file, path, m.end))
    });
    let writer = match reuse {
        Some((chunk, file, path, offset)) => Writer::new(chunk, file, path, offset),
        None => {
            let after = seqs.last().copied().unwrap_or(0);
            let chunk = next_chunk(dir, after.max(position.map(|p| p.chunk).unwrap_or(0)))?;
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
            Writer::new(chunk, file, path, CHUNK_HEADER_LEN)
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
pub(super) fn junk(io: &Io, path: &Path, seq: u64, max_block: u32) -> Option<u64> {
    let file = io.open(path, false).ok()?;
    let len = io.len(&file, path).ok()?;
    let mut h = [0u8; CHUNK_HEADER_LEN as usize];
    if io.read_exact_at(&file, path, &mut h, 0).is_ok()
        && format::decode_chunk_header(&h).is_some_and(|header| header.seq == seq)
    {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    io.read_exact_at(&file, path, &mut buf, 0).ok()?;
    match format::find_next_frame(seq, &buf, 0, max_block) {
        Some(_) => None,
        None => Some(len),
    }
}

/// Counts the blocks of one chunk from `from` on. The head chunk is checked completely (CRC of
/// every frame) and a torn tail is cut off; sealed chunks are walked header by header and only
/// scanned completely where a header is damaged.
pub(super) fn scan_chunk(
    path: &Path,
    seq: u64,
    from: u64,
    is_head: bool,
    opts: &Options,
    io: &Io,
    stats: &mut Stats,
) -> std::io::Result<ChunkMeta> {
    let file = io.open(path, is_head)?;
    let len = io.len(&file, path)?;
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
            io.read_exact_at(&file, path, &mut h, off)?;
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
        io.read_exact_at(&file, path, &mut buf, off)?;
        let mut at = 0;
        while let Some(f) = format::find_next_frame(seq, &buf, at, max) {
            meta.blocks += 1;
            meta.items += u64::from(f.header.count);
            at = f.at + f.header.frame_len() as usize;
        }
        return Ok(meta);
    }
    let mut buf = vec![0u8; (len - from) as usize];
    io.read_exact_at(&file, path, &mut buf, from)?;
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
        io.set_len(&file, path, cut)?;
        if opts.sync != SyncPolicy::Never {
            io.sync(&file, path)?;
        }
        stats.torn_tail_bytes += len - cut;
        meta.end = cut;
    }
    Ok(meta)
}
