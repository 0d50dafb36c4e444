//! The queue's on-disk structures, byte for byte. `queue-format.md` at the repository root is the
//! prose version of this file; the golden-byte tests below pin both.
//!
//! FROZEN: the layouts here are an on-disk format. Never reorder, resize or reuse a field; a change
//! needs a new version number and a reader for the old one.

use crc32fast::Hasher;

/// First 8 bytes of every chunk file.
pub const CHUNK_MAGIC: [u8; 8] = *b"PRQCHUNK";
/// Version written in chunk and position headers.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the chunk file header; the first frame starts here.
pub const CHUNK_HEADER_LEN: u64 = 32;
/// Marks the start of every frame; recovery searches for it to resynchronise after damage.
/// Stored little-endian: bytes `0C B1 C7 5E`.
pub const FRAME_MAGIC: u32 = 0x5EC7_B10C;
/// Length of a frame header; the payload follows it.
pub const FRAME_HEADER_LEN: usize = 24;
/// The largest payload the format allows (a larger length field is "impossible" and marks damage).
pub const MAX_FRAME_PAYLOAD: u32 = 256 << 20;
/// First 4 bytes of the position file.
pub const POSITION_MAGIC: [u8; 4] = *b"PRQP";
/// Length of the position file.
pub const POSITION_LEN: usize = 28;

/// File name of chunk `seq`: 16 lowercase hex digits, so names sort in sequence order.
pub fn chunk_file_name(seq: u64) -> String {
    format!("{seq:016x}.chunk")
}

/// The sequence number in a chunk file name, or `None` when the name is not a chunk's.
pub fn parse_chunk_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".chunk")?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Chunk header: magic, version, sequence, creation time, CRC-32 of the 28 bytes before it.
pub fn encode_chunk_header(seq: u64, created_unix_ms: u64) -> [u8; CHUNK_HEADER_LEN as usize] {
    let mut h = [0u8; CHUNK_HEADER_LEN as usize];
    h[0..8].copy_from_slice(&CHUNK_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&seq.to_le_bytes());
    h[20..28].copy_from_slice(&created_unix_ms.to_le_bytes());
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A chunk header that passed its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub seq: u64,
    pub created_unix_ms: u64,
}

/// Decodes a chunk header; `None` when magic, version or CRC is wrong.
pub fn decode_chunk_header(h: &[u8]) -> Option<ChunkHeader> {
    if h.len() < CHUNK_HEADER_LEN as usize || h[0..8] != CHUNK_MAGIC {
        return None;
    }
    if le_u32(&h[28..32]) != crc32fast::hash(&h[0..28]) || le_u32(&h[8..12]) != FORMAT_VERSION {
        return None;
    }
    Some(ChunkHeader {
        seq: le_u64(&h[12..20]),
        created_unix_ms: le_u64(&h[20..28]),
    })
}

/// Writes one frame (header and payload) for chunk `seq` into `out`, replacing its contents.
///
/// Layout: magic u32 | payload length u32 | item count u32 | written-at Unix ms u64 | CRC-32 u32 |
/// payload. The CRC covers the chunk sequence (so a frame copied into another file is invalid),
/// the first 20 header bytes and the payload. (The queue itself writes [`frame_header`] and the
/// payload apart; tests and tools build whole frames here.)
#[cfg(test)]
pub fn encode_frame(out: &mut Vec<u8>, seq: u64, payload: &[u8], count: u32, written_unix_ms: u64) {
    out.clear();
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&frame_header(seq, payload, count, written_unix_ms));
    out.extend_from_slice(payload);
}

/// The header [`encode_frame`] writes before `payload`, on its own: the queue writes it and the
/// payload as two pieces rather than copy the payload behind it.
pub fn frame_header(
    seq: u64,
    payload: &[u8],
    count: u32,
    written_unix_ms: u64,
) -> [u8; FRAME_HEADER_LEN] {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[8..12].copy_from_slice(&count.to_le_bytes());
    h[12..20].copy_from_slice(&written_unix_ms.to_le_bytes());
    let crc = frame_crc(seq, &h[0..20], payload);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

fn frame_crc(seq: u64, header20: &[u8], payload: &[u8]) -> u32 {
    let mut h = Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(header20);
    h.update(payload);
    h.finalize()
}

/// The header fields of a frame, before its CRC is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub count: u32,
    pub written_unix_ms: u64,
    pub crc: u32,
}

impl FrameHeader {
    /// Bytes the whole frame takes in the file.
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// Decodes a frame header. `None` when the magic is wrong or the length is impossible: over
/// `max_payload`, or past `available` bytes (the bytes from the frame start to the end of valid data).
pub fn decode_frame_header(h: &[u8], max_payload: u32, available: u64) -> Option<FrameHeader> {
    if h.len() < FRAME_HEADER_LEN || le_u32(&h[0..4]) != FRAME_MAGIC {
        return None;
    }
    let fh = FrameHeader {
        len: le_u32(&h[4..8]),
        count: le_u32(&h[8..12]),
        written_unix_ms: le_u64(&h[12..20]),
        crc: le_u32(&h[20..24]),
    };
    if fh.len > max_payload.min(MAX_FRAME_PAYLOAD) || fh.frame_len() > available {
        return None;
    }
    Some(fh)
}

/// Whether `payload` matches the CRC in `header_bytes` (the frame's first 24 bytes) for chunk `seq`.
pub fn frame_crc_ok(seq: u64, header_bytes: &[u8], payload: &[u8]) -> bool {
    header_bytes.len() >= FRAME_HEADER_LEN
        && frame_crc(seq, &header_bytes[0..20], payload) == le_u32(&header_bytes[20..24])
}

/// A valid frame found inside a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundFrame {
    /// Offset of the frame start inside the buffer.
    pub at: usize,
    pub header: FrameHeader,
}

/// Checks the frame at `buf[at..]` completely (magic, length, CRC).
pub fn frame_at(seq: u64, buf: &[u8], at: usize, max_payload: u32) -> Option<FoundFrame> {
    let rest = buf.get(at..)?;
    let header = decode_frame_header(rest, max_payload, rest.len() as u64)?;
    let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + header.len as usize];
    frame_crc_ok(seq, rest, payload).then_some(FoundFrame { at, header })
}

/// The first valid frame starting at or after `from`: how recovery resynchronises after damage.
pub fn find_next_frame(seq: u64, buf: &[u8], from: usize, max_payload: u32) -> Option<FoundFrame> {
    let hay = buf.get(from..)?;
    let magic = FRAME_MAGIC.to_le_bytes();
    memchr::memmem::find_iter(hay, &magic).find_map(|i| frame_at(seq, buf, from + i, max_payload))
}

/// Position file: magic, version, chunk sequence, offset in that chunk, CRC-32 of the 24 bytes before.
pub fn encode_position(seq: u64, offset: u64) -> [u8; POSITION_LEN] {
    let mut p = [0u8; POSITION_LEN];
    p[0..4].copy_from_slice(&POSITION_MAGIC);
    p[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    p[8..16].copy_from_slice(&seq.to_le_bytes());
    p[16..24].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&p[0..24]);
    p[24..28].copy_from_slice(&crc.to_le_bytes());
    p
}

/// Decodes a position file; `None` when it is damaged in any way.
pub fn decode_position(p: &[u8]) -> Option<(u64, u64)> {
    if p.len() != POSITION_LEN || p[0..4] != POSITION_MAGIC {
        return None;
    }
    if le_u32(&p[24..28]) != crc32fast::hash(&p[0..24]) || le_u32(&p[4..8]) != FORMAT_VERSION {
        return None;
    }
    Some((le_u64(&p[8..16]), le_u64(&p[16..24])))
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    // Golden values computed independently with Python's struct and zlib.crc32.
    #[test]
    fn chunk_header_golden_bytes() {
        let h = encode_chunk_header(0x0102, 1_700_000_000_000);
        assert_eq!(
            hex(&h),
            concat!(
                "5052514348554e4b", // "PRQCHUNK"
                "01000000",         // version 1
                "0201000000000000", // seq 0x102
                "0068e5cf8b010000", // created 1_700_000_000_000 ms
                "b7824ee5",         // CRC-32 of the 28 bytes before
            )
        );
        assert_eq!(
            decode_chunk_header(&h),
            Some(ChunkHeader {
                seq: 0x0102,
                created_unix_ms: 1_700_000_000_000
            })
        );
    }

    #[test]
    fn frame_golden_bytes() {
        let mut out = Vec::new();
        encode_frame(&mut out, 7, b"abc", 5, 1_700_000_000_000);
        assert_eq!(
            hex(&out),
            concat!(
                "0cb1c75e",         // magic
                "03000000",         // payload length 3
                "05000000",         // item count 5
                "0068e5cf8b010000", // written at
                "05276b51",         // CRC-32 of seq 7 LE ++ 20 header bytes ++ payload
                "616263",           // payload
            )
        );
    }

    #[test]
    fn position_golden_bytes() {
        let p = encode_position(3, 4096);
        assert_eq!(
            hex(&p),
            concat!(
                "50525150",         // "PRQP"
                "01000000",         // version
                "0300000000000000", // seq 3
                "0010000000000000", // offset 4096
                "1c42bdf3",         // CRC-32 of the 24 bytes before
            )
        );
        assert_eq!(decode_position(&p), Some((3, 4096)));
    }

    #[test]
    fn chunk_file_names_sort_in_sequence_order() {
        assert_eq!(chunk_file_name(0xab), "00000000000000ab.chunk");
        assert!(chunk_file_name(9) < chunk_file_name(10));
        assert_eq!(parse_chunk_file_name("00000000000000ab.chunk"), Some(0xab));
        assert_eq!(parse_chunk_file_name("00000000000000AB.chunk"), None);
        assert_eq!(parse_chunk_file_name("ab.chunk"), None);
        assert_eq!(parse_chunk_file_name("00000000000000ab.chunk.tmp"), None);
    }

    #[test]
    fn frame_is_tied_to_its_chunk_sequence() {
        let mut out = Vec::new();
        encode_frame(&mut out, 7, b"payload", 1, 1);
        assert!(frame_at(7, &out, 0, MAX_FRAME_PAYLOAD).is_some());
        assert!(frame_at(8, &out, 0, MAX_FRAME_PAYLOAD).is_none());
    }

    #[test]
    fn impossible_length_is_not_a_frame() {
        let mut out = Vec::new();
        encode_frame(&mut out, 1, b"payload", 1, 1);
        out[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_frame_header(&out, MAX_FRAME_PAYLOAD, out.len() as u64).is_none());
    }

    #[test]
    fn resync_finds_the_frame_after_garbage() {
        let mut a = Vec::new();
        encode_frame(&mut a, 1, b"first", 1, 1);
        let mut buf = vec![0x0c, 0xb1, 0xc7, 0x5e, 0xff, 0xff]; // a magic followed by junk
        buf.extend_from_slice(&a);
        let found = find_next_frame(1, &buf, 0, MAX_FRAME_PAYLOAD).expect("frame after garbage");
        assert_eq!(found.at, 6);
        assert_eq!(found.header.len, 5);
    }

    #[test]
    fn damaged_position_is_rejected() {
        let mut p = encode_position(3, 4096);
        p[10] ^= 1;
        assert_eq!(decode_position(&p), None);
        assert_eq!(decode_position(&p[..20]), None);
    }
}
