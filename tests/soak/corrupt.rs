//! Damages one block of a stopped relay's queue, and says exactly which numbered samples it held,
//! so the accounting can tell a loss to corruption (counted, expected) from an unexplained one.
//!
//! The block is chosen in a sealed chunk (not the one being appended to) that is still pending
//! (at or after the persisted position), among the blocks holding numbered samples; one byte in
//! the middle of its payload is flipped, so its CRC fails and the reader skips exactly it
//! (queue-format.md, "Reading").

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use promrelay::prompb::{WriteRequest, decompress_bounded};
use prost::Message;

use super::load::{METRIC, SampleId};

const CHUNK_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;
const FRAME_MAGIC: [u8; 4] = [0x0C, 0xB1, 0xC7, 0x5E];

/// What was damaged.
#[derive(Debug)]
pub struct Damage {
    pub chunk: PathBuf,
    pub offset: usize,
    /// The numbered samples of the damaged block.
    pub samples: HashSet<SampleId>,
}

/// Damages a pending block with numbered samples in a sealed chunk of the queue in `dir`;
/// `None` when there is no such block (no sealed pending chunk yet).
pub fn damage_one_block(dir: &Path) -> Option<Damage> {
    let (pos_seq, pos_offset) = position(dir);
    let mut chunks: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_suffix(".chunk")?.to_owned();
            Some((u64::from_str_radix(&name, 16).ok()?, p))
        })
        .collect();
    chunks.sort();
    chunks.pop(); // the chunk being appended to
    for (seq, path) in chunks.into_iter().filter(|(s, _)| *s >= pos_seq) {
        let mut bytes = fs::read(&path).ok()?;
        let start = if seq == pos_seq {
            pos_offset.max(CHUNK_HEADER)
        } else {
            CHUNK_HEADER
        };
        for (at, payload_len) in frames(&bytes, start) {
            let payload = &bytes[at + FRAME_HEADER..at + FRAME_HEADER + payload_len];
            let samples = numbered_samples(payload);
            if samples.is_empty() {
                continue;
            }
            let flip = at + FRAME_HEADER + payload_len / 2;
            bytes[flip] ^= 0x5A;
            fs::write(&path, &bytes).expect("write the damaged chunk");
            return Some(Damage {
                chunk: path,
                offset: flip,
                samples,
            });
        }
    }
    None
}

/// `(chunk sequence, offset)` of the persisted position, `(0, 0)` when there is none.
fn position(dir: &Path) -> (u64, usize) {
    match fs::read(dir.join("position")) {
        Ok(b) if b.len() == 28 && &b[0..4] == b"PRQP" => {
            let seq = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
            let offset = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
            (seq, usize::try_from(offset).expect("offset fits"))
        }
        _ => (0, 0),
    }
}

/// The frames of an undamaged chunk from `start`: `(offset, payload length)`.
fn frames(bytes: &[u8], start: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = start;
    while at + FRAME_HEADER <= bytes.len() && bytes[at..at + 4] == FRAME_MAGIC {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        if at + FRAME_HEADER + len > bytes.len() {
            break;
        }
        out.push((at, len));
        at += FRAME_HEADER + len;
    }
    out
}

/// The numbered samples in a block's payload (a snappy-compressed `WriteRequest`).
pub fn numbered_samples(payload: &[u8]) -> HashSet<SampleId> {
    let Ok(raw) = decompress_bounded(payload, 64 << 20) else {
        return HashSet::new();
    };
    let Ok(req) = WriteRequest::decode(&raw[..]) else {
        return HashSet::new();
    };
    let mut out = HashSet::new();
    for ts in &req.timeseries {
        let label = |n: &str| {
            ts.labels
                .iter()
                .find(|l| l.name == n)
                .map(|l| l.value.as_str())
        };
        if label("__name__") != Some(METRIC) {
            continue;
        }
        let (Some(conn), Some(s)) = (
            label("conn").and_then(|v| v.parse().ok()),
            label("s").and_then(|v| v.parse().ok()),
        ) else {
            continue;
        };
        out.extend(ts.samples.iter().map(|x| (conn, s, x.timestamp)));
    }
    out
}
