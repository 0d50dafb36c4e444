//! Read-only examination of queue directories: what `promrelay queue verify` and
//! `promrelay queue inspect` print.
//!
//! # Owns
//! Finding the queue directories under a path (a data dir's `queues/<id>/`, or one queue dir), and
//! reading every byte of their chunk and position files into a [`QueueReport`]: valid blocks,
//! damaged byte ranges, the position, what is pending, what the size cap would drop next.
//!
//! # Guarantees
//! - Frames are judged exactly as the queue's reader and recovery judge them: by the decoders of
//!   `format.rs` (magic, length, CRC tied to the file's sequence number), resynchronising
//!   after damage at the next offset where a frame passes every check (`FrameScan`).
//! - Read-only: files are opened for reading only, the lock is neither created nor taken, nothing
//!   is written, renamed or removed. It is safe beside a running promrelay; a block being appended
//!   at that very moment may then look like a torn tail, and a chunk file the relay deletes while
//!   it is being read is reported as gone, not as damage.
//!
//! # Must not
//! Repair anything (recovery on open does that), or depend on a configuration: it judges lengths
//! against the format's limit ([`super::MAX_FRAME_PAYLOAD`]), not a storage's `max_block_bytes`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::format::{self, FoundFrame};
use super::{CHUNK_HEADER_LEN, MAX_FRAME_PAYLOAD, POSITION_FILE};

/// Suffix recovery gives a chunk file it found nothing valid in.
const SET_ASIDE_SUFFIX: &str = ".chunk.damaged";

/// Why a path could not be examined.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The path is neither a queue directory (no chunk, position or set-aside file) nor a data
    /// directory (no `queues/` subdirectory), or does not exist.
    #[error("{}: not a promrelay queue: {reason}", path.display())]
    NotAQueue { path: PathBuf, reason: String },
    /// Listing a directory failed (permissions, I/O error).
    #[error("{}: cannot {op}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl OfflineError {
    fn io<'a>(
        op: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> OfflineError + 'a {
        move |source| OfflineError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The queue directories `path` stands for: itself when it is a queue directory, else every
/// directory under `path/queues/` when it is a data directory (sorted by name).
pub fn queue_dirs(path: &Path) -> Result<Vec<PathBuf>, OfflineError> {
    let not_a_queue = |reason: &str| OfflineError::NotAQueue {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_a_queue("not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_a_queue("no such directory"));
        }
        Err(e) => return Err(OfflineError::io("read", path)(e)),
    }
    if looks_like_queue(path)? {
        return Ok(vec![path.to_path_buf()]);
    }
    let queues = path.join("queues");
    if !queues.is_dir() {
        return Err(not_a_queue(
            "it holds no chunk or position file (a queue directory) and no queues/ subdirectory (a data directory)",
        ));
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(&queues).map_err(OfflineError::io("list", &queues))? {
        let entry = entry.map_err(OfflineError::io("list", &queues))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn looks_like_queue(dir: &Path) -> Result<bool, OfflineError> {
    for entry in std::fs::read_dir(dir).map_err(OfflineError::io("list", dir))? {
        let entry = entry.map_err(OfflineError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == POSITION_FILE
            || format::parse_chunk_file_name(name).is_some()
            || name.ends_with(SET_ASIDE_SUFFIX)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One piece of a chunk file after its header, as [`FrameScan`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// A frame that passes every check.
    Frame(FoundFrame),
    /// Bytes `start..end` hold no valid frame; `end` is the next valid frame or the end of data.
    Damaged { start: usize, end: usize },
}

/// Walks a chunk's bytes from an offset to the end, frame by frame, and over damage to the next
/// offset where a frame passes every check: the reader's rule, applied to every byte.
pub(crate) struct FrameScan<'a> {
    seq: u64,
    buf: &'a [u8],
    at: usize,
    max_payload: u32,
}

impl<'a> FrameScan<'a> {
    /// Scans `buf` (a whole chunk file of sequence `seq`) from offset `from`.
    pub(crate) fn new(seq: u64, buf: &'a [u8], from: usize, max_payload: u32) -> Self {
        FrameScan {
            seq,
            buf,
            at: from,
            max_payload,
        }
    }
}

impl Iterator for FrameScan<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        if self.at >= self.buf.len() {
            return None;
        }
        if let Some(f) = format::frame_at(self.seq, self.buf, self.at, self.max_payload) {
            self.at += f.header.frame_len() as usize;
            return Some(Span::Frame(f));
        }
        let start = self.at;
        let end = format::find_next_frame(self.seq, self.buf, start + 1, self.max_payload)
            .map_or(self.buf.len(), |f| f.at);
        self.at = end;
        Some(Span::Damaged { start, end })
    }
}

/// The state of the position file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PositionReport {
    /// Intact: the first block not yet acknowledged is at `offset` in chunk `chunk`.
    Valid { chunk: u64, offset: u64 },
    /// No position file (recovery re-reads everything from the oldest chunk).
    Missing,
    /// The file fails its checks (recovery re-reads everything from the oldest chunk).
    Damaged { bytes: u64, reason: &'static str },
    /// The file could not be read.
    Unreadable { error: String },
}

/// The state of a chunk file's 32-byte header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HeaderReport {
    /// Intact and naming the file's own sequence number.
    Valid { created_unix_ms: u64 },
    /// Intact, but naming another sequence number than the file name.
    OtherSequence { seq: u64 },
    /// The file is shorter than a header: a rollover torn by a crash when it is the last chunk.
    Short,
    /// Wrong magic, version or CRC.
    Damaged,
}

/// What a damaged byte range is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// Inside a chunk, valid frames follow it: the reader skips it and counts it.
    Damaged,
    /// At the end of the last chunk: a write torn by a crash (recovery cuts it off), or a block
    /// being appended by a running relay at the moment of reading.
    TornTail,
}

/// A byte range of a chunk file that holds no valid frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedRange {
    /// Offset of the first damaged byte in the file.
    pub start: u64,
    /// Offset just past the last damaged byte.
    pub end: u64,
    pub kind: DamageKind,
}

/// Blocks, their bytes (frame headers included, as the queue counts them) and items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub blocks: u64,
    pub bytes: u64,
    pub items: u64,
}

impl Tally {
    fn add_frame(&mut self, f: &FoundFrame) {
        self.blocks += 1;
        self.bytes += f.header.frame_len();
        self.items += u64::from(f.header.count);
    }
}

/// Where a chunk stands relative to the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkRole {
    /// Wholly before the position: acknowledged, left by an interrupted deletion (the next open
    /// deletes it).
    Acknowledged,
    /// Holds pending data (or could: it is at or after the position).
    Pending,
}

/// Everything found in one chunk file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkReport {
    pub file: String,
    pub seq: u64,
    /// File length.
    pub bytes: u64,
    pub header: HeaderReport,
    pub role: ChunkRole,
    /// Valid blocks in the whole file (acknowledged or not).
    pub valid: Tally,
    /// Valid blocks at or after the position.
    pub pending: Tally,
    /// Bytes from the position (or the first frame) to the end of the file, damage included:
    /// what the queue counts as pending and what the size cap weighs.
    pub pending_file_bytes: u64,
    pub damaged: Vec<DamagedRange>,
    pub oldest_block_unix_ms: Option<u64>,
    pub newest_block_unix_ms: Option<u64>,
    /// Append time of the first pending block in this chunk.
    pub first_pending_unix_ms: Option<u64>,
}

impl ChunkReport {
    /// The header is intact and names this file's sequence number.
    pub fn header_is_valid(&self) -> bool {
        matches!(self.header, HeaderReport::Valid { .. })
    }

    /// No damage in the header or the frames.
    pub fn is_intact(&self) -> bool {
        self.header_is_valid() && self.damaged.is_empty()
    }
}

/// A file that could not be examined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileProblem {
    pub file: String,
    pub error: String,
}

/// A chunk file recovery moved aside (`<name>.chunk.damaged`): out of the queue, kept for a look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetAside {
    pub file: String,
    pub bytes: u64,
}

/// What the size cap would drop first: the oldest pending chunk that is not the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapDrop {
    pub file: String,
    /// The pending blocks it holds (what `dropped_blocks`/`dropped_items` would count).
    pub pending: Tally,
    /// What `dropped_bytes` would count.
    pub file_bytes: u64,
}

/// Everything found in one queue directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueReport {
    pub dir: String,
    pub position: PositionReport,
    pub chunks: Vec<ChunkReport>,
    /// Sequence numbers missing between the position's chunk (or the first chunk) and the last.
    pub missing_chunks: Vec<u64>,
    /// Chunk files listed but gone when opened: a running relay deleted them (acknowledged).
    pub vanished: Vec<String>,
    /// Chunk files that could not be read.
    pub unreadable: Vec<FileProblem>,
    pub set_aside: Vec<SetAside>,
    /// Pending blocks, counted from the position as recovery would (from the oldest chunk when
    /// the position is not valid).
    pub pending: Tally,
    pub pending_file_bytes: u64,
    pub oldest_pending_unix_ms: Option<u64>,
    pub oldest_block_unix_ms: Option<u64>,
    pub newest_block_unix_ms: Option<u64>,
    /// `None` when only the head chunk holds pending data: the cap never drops the head.
    pub cap_drops_next: Option<CapDrop>,
}

impl QueueReport {
    /// True when every byte checked out: a valid position (or none and no chunk), no damaged
    /// header, frame or file, no missing or unreadable chunk, nothing set aside.
    pub fn is_intact(&self) -> bool {
        let position_ok = match self.position {
            PositionReport::Valid { .. } => true,
            PositionReport::Missing => self.chunks.is_empty(),
            PositionReport::Damaged { .. } | PositionReport::Unreadable { .. } => false,
        };
        position_ok
            && self.chunks.iter().all(ChunkReport::is_intact)
            && self.missing_chunks.is_empty()
            && self.unreadable.is_empty()
            && self.set_aside.is_empty()
    }
}

/// Reads every file of the queue directory `dir` (read-only) and reports what it holds.
pub fn examine(dir: &Path) -> Result<QueueReport, OfflineError> {
    if !looks_like_queue(dir)? {
        return Err(OfflineError::NotAQueue {
            path: dir.to_path_buf(),
            reason: "it holds no chunk, position or set-aside chunk file".to_owned(),
        });
    }
    let mut seqs = Vec::new();
    let mut set_aside = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(OfflineError::io("list", dir))? {
        let entry = entry.map_err(OfflineError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = format::parse_chunk_file_name(name) {
            seqs.push(seq);
        } else if name.ends_with(SET_ASIDE_SUFFIX) {
            let bytes = entry.metadata().map_or(0, |m| m.len());
            set_aside.push(SetAside {
                file: name.to_owned(),
                bytes,
            });
        }
    }
    seqs.sort_unstable();
    set_aside.sort_by(|a, b| a.file.cmp(&b.file));

    let position = read_position(&dir.join(POSITION_FILE));
    let start = match position {
        PositionReport::Valid { chunk, offset } => Some((chunk, offset)),
        _ => None,
    };
    let last = seqs.last().copied();
    let mut report = QueueReport {
        dir: dir.display().to_string(),
        position,
        chunks: Vec::new(),
        missing_chunks: Vec::new(),
        vanished: Vec::new(),
        unreadable: Vec::new(),
        set_aside,
        pending: Tally::default(),
        pending_file_bytes: 0,
        oldest_pending_unix_ms: None,
        oldest_block_unix_ms: None,
        newest_block_unix_ms: None,
        cap_drops_next: None,
    };
    // Recovery counts a gap from the position's chunk on, or from the first chunk without one.
    let mut prev = start.map(|(chunk, _)| chunk.saturating_sub(1));
    for &seq in &seqs {
        let name = format::chunk_file_name(seq);
        let role = match start {
            Some((chunk, _)) if seq < chunk => ChunkRole::Acknowledged,
            _ => ChunkRole::Pending,
        };
        if role == ChunkRole::Pending {
            if let Some(p) = prev {
                report.missing_chunks.extend(p.saturating_add(1)..seq);
            }
            prev = Some(seq);
        }
        let bytes = match std::fs::read(dir.join(&name)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.vanished.push(name);
                continue;
            }
            Err(e) => {
                report.unreadable.push(FileProblem {
                    file: name,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let from = match start {
            Some((chunk, offset)) if chunk == seq => offset.max(CHUNK_HEADER_LEN),
            _ => CHUNK_HEADER_LEN,
        };
        let chunk = examine_chunk(name, seq, &bytes, role, from, Some(seq) == last);
        report.pending.blocks += chunk.pending.blocks;
        report.pending.bytes += chunk.pending.bytes;
        report.pending.items += chunk.pending.items;
        report.pending_file_bytes += chunk.pending_file_bytes;
        report.oldest_block_unix_ms =
            min_opt(report.oldest_block_unix_ms, chunk.oldest_block_unix_ms);
        report.newest_block_unix_ms = report.newest_block_unix_ms.max(chunk.newest_block_unix_ms);
        report.chunks.push(chunk);
    }
    report.oldest_pending_unix_ms = report.chunks.iter().find_map(|c| c.first_pending_unix_ms);
    let pending_chunks: Vec<&ChunkReport> = report
        .chunks
        .iter()
        .filter(|c| c.role == ChunkRole::Pending)
        .collect();
    if let [oldest, _, ..] = pending_chunks.as_slice() {
        report.cap_drops_next = Some(CapDrop {
            file: oldest.file.clone(),
            pending: oldest.pending,
            file_bytes: oldest.pending_file_bytes,
        });
    }
    Ok(report)
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn read_position(path: &Path) -> PositionReport {
    match std::fs::read(path) {
        Ok(bytes) => match format::decode_position(&bytes) {
            Some((chunk, offset)) => PositionReport::Valid { chunk, offset },
            None => PositionReport::Damaged {
                bytes: bytes.len() as u64,
                reason: if bytes.len() != format::POSITION_LEN {
                    "wrong size"
                } else if bytes[0..4] != format::POSITION_MAGIC {
                    "wrong magic"
                } else {
                    "wrong version or CRC"
                },
            },
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PositionReport::Missing,
        Err(e) => PositionReport::Unreadable {
            error: e.to_string(),
        },
    }
}

fn examine_chunk(
    file: String,
    seq: u64,
    bytes: &[u8],
    role: ChunkRole,
    pending_from: u64,
    is_last: bool,
) -> ChunkReport {
    let header = if bytes.len() < CHUNK_HEADER_LEN as usize {
        HeaderReport::Short
    } else {
        match format::decode_chunk_header(bytes) {
            Some(h) if h.seq == seq => HeaderReport::Valid {
                created_unix_ms: h.created_unix_ms,
            },
            Some(h) => HeaderReport::OtherSequence { seq: h.seq },
            None => HeaderReport::Damaged,
        }
    };
    let mut chunk = ChunkReport {
        file,
        seq,
        bytes: bytes.len() as u64,
        header,
        role,
        valid: Tally::default(),
        pending: Tally::default(),
        pending_file_bytes: match role {
            ChunkRole::Pending => (bytes.len() as u64).saturating_sub(pending_from),
            ChunkRole::Acknowledged => 0,
        },
        damaged: Vec::new(),
        oldest_block_unix_ms: None,
        newest_block_unix_ms: None,
        first_pending_unix_ms: None,
    };
    let spans = FrameScan::new(seq, bytes, CHUNK_HEADER_LEN as usize, MAX_FRAME_PAYLOAD);
    for span in spans {
        match span {
            Span::Frame(f) => {
                chunk.valid.add_frame(&f);
                let t = f.header.written_unix_ms;
                if role == ChunkRole::Pending && f.at as u64 >= pending_from {
                    chunk.pending.add_frame(&f);
                    chunk.first_pending_unix_ms.get_or_insert(t);
                }
                chunk.oldest_block_unix_ms = min_opt(chunk.oldest_block_unix_ms, Some(t));
                chunk.newest_block_unix_ms = chunk.newest_block_unix_ms.max(Some(t));
            }
            Span::Damaged { start, end } => chunk.damaged.push(DamagedRange {
                start: start as u64,
                end: end as u64,
                kind: if is_last && end == bytes.len() {
                    DamageKind::TornTail
                } else {
                    DamageKind::Damaged
                },
            }),
        }
    }
    chunk
}

impl QueueReport {
    /// What `promrelay queue verify` prints for this queue: a verdict line, then per chunk file
    /// its valid blocks and each damaged byte range, then anything else wrong.
    pub fn verify_text(&self) -> String {
        let mut out = String::new();
        let verdict = if self.is_intact() {
            "intact"
        } else {
            "DAMAGED"
        };
        let _ = writeln!(out, "{}: {verdict}", self.dir);
        let _ = writeln!(out, "  position: {}", self.position);
        for c in &self.chunks {
            let _ = write!(
                out,
                "  {}: {} bytes, header {}, {} valid blocks",
                c.file, c.bytes, c.header, c.valid.blocks
            );
            if c.damaged.is_empty() {
                out.push_str(", no damage\n");
                continue;
            }
            out.push('\n');
            for d in &c.damaged {
                let _ = writeln!(
                    out,
                    "    {} bytes {}..{} ({} bytes)",
                    match d.kind {
                        DamageKind::Damaged => "damaged",
                        DamageKind::TornTail => "torn tail",
                    },
                    d.start,
                    d.end,
                    d.end - d.start
                );
            }
        }
        self.write_problems(&mut out);
        out
    }

    /// What `promrelay queue inspect` prints for this queue.
    pub fn inspect_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.dir);
        let _ = writeln!(out, "  position: {}", self.position);
        let total: u64 = self.chunks.iter().map(|c| c.bytes).sum();
        let _ = writeln!(out, "  chunks: {} files, {total} bytes", self.chunks.len());
        for c in &self.chunks {
            let _ = write!(
                out,
                "    {}: {} bytes, header {}, {} blocks, {} pending",
                c.file, c.bytes, c.header, c.valid.blocks, c.pending.blocks
            );
            if c.role == ChunkRole::Acknowledged {
                out.push_str(" (acknowledged; the next open deletes it)");
            }
            if !c.damaged.is_empty() {
                let bytes: u64 = c.damaged.iter().map(|d| d.end - d.start).sum();
                let _ = write!(out, ", {bytes} damaged bytes");
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "  pending: {} blocks, {} bytes ({} bytes of files), {} items",
            self.pending.blocks, self.pending.bytes, self.pending_file_bytes, self.pending.items
        );
        let _ = writeln!(
            out,
            "  oldest pending block: {}",
            time_text(self.oldest_pending_unix_ms)
        );
        let _ = writeln!(
            out,
            "  oldest block: {}, newest block: {}",
            time_text(self.oldest_block_unix_ms),
            time_text(self.newest_block_unix_ms)
        );
        match &self.cap_drops_next {
            Some(d) => {
                let _ = writeln!(
                    out,
                    "  size cap drops next: {}: {} blocks, {} bytes ({} bytes of file), {} items",
                    d.file, d.pending.blocks, d.pending.bytes, d.file_bytes, d.pending.items
                );
            }
            None => {
                out.push_str("  size cap drops next: nothing (the head chunk is never dropped)\n")
            }
        }
        self.write_problems(&mut out);
        out
    }

    fn write_problems(&self, out: &mut String) {
        if !self.missing_chunks.is_empty() {
            let names: Vec<String> = self
                .missing_chunks
                .iter()
                .map(|&s| format::chunk_file_name(s))
                .collect();
            let _ = writeln!(out, "  missing chunk files: {}", names.join(", "));
        }
        for p in &self.unreadable {
            let _ = writeln!(out, "  unreadable: {}: {}", p.file, p.error);
        }
        for a in &self.set_aside {
            let _ = writeln!(
                out,
                "  set aside by recovery (nothing valid in it; remove it after a look): {} ({} bytes)",
                a.file, a.bytes
            );
        }
        for v in &self.vanished {
            let _ = writeln!(
                out,
                "  gone while reading (deleted by a running relay): {v}"
            );
        }
    }
}

impl std::fmt::Display for PositionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PositionReport::Valid { chunk, offset } => write!(
                f,
                "valid: {} offset {offset}",
                format::chunk_file_name(*chunk)
            ),
            PositionReport::Missing => {
                f.write_str("MISSING (a start re-reads everything from the oldest chunk)")
            }
            PositionReport::Damaged { bytes, reason } => write!(
                f,
                "DAMAGED, {reason} ({bytes} bytes; a start re-reads everything from the oldest chunk)"
            ),
            PositionReport::Unreadable { error } => write!(f, "UNREADABLE: {error}"),
        }
    }
}

impl std::fmt::Display for HeaderReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderReport::Valid { created_unix_ms } => {
                write!(f, "ok (created {})", time_text(Some(*created_unix_ms)))
            }
            HeaderReport::OtherSequence { seq } => {
                write!(f, "DAMAGED (names chunk {seq:016x}, not this file's)")
            }
            HeaderReport::Short => f.write_str("DAMAGED (file shorter than a header)"),
            HeaderReport::Damaged => f.write_str("DAMAGED (magic, version or CRC wrong)"),
        }
    }
}

/// RFC 3339 in UTC with milliseconds, or "none".
fn time_text(unix_ms: Option<u64>) -> String {
    match unix_ms {
        Some(ms) => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        None => "none".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        format::encode_frame(&mut out, seq, payload, 1, 1);
        out
    }

    #[test]
    fn scan_steps_over_garbage_to_the_next_valid_frame_and_reports_its_range() {
        let mut buf = frame(9, b"first");
        buf.extend_from_slice(&[0x0c, 0xb1, 0xc7, 0x5e, 1, 2, 3]); // a magic, then junk
        let second_at = buf.len();
        buf.extend_from_slice(&frame(9, b"second"));
        let spans: Vec<Span> = FrameScan::new(9, &buf, 0, MAX_FRAME_PAYLOAD).collect();
        assert_eq!(spans.len(), 3);
        assert!(matches!(spans[0], Span::Frame(f) if f.at == 0));
        assert_eq!(
            spans[1],
            Span::Damaged {
                start: 29,
                end: second_at
            }
        );
        assert!(matches!(spans[2], Span::Frame(f) if f.at == second_at));
    }

    #[test]
    fn scan_of_a_frame_from_another_chunk_is_all_damage() {
        let buf = frame(9, b"payload");
        let spans: Vec<Span> = FrameScan::new(10, &buf, 0, MAX_FRAME_PAYLOAD).collect();
        assert_eq!(
            spans,
            [Span::Damaged {
                start: 0,
                end: buf.len()
            }]
        );
    }
}
