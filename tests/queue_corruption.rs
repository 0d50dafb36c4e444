//! Damaged queue files: what survives, what is skipped, and what is counted.
//!
//! Each test builds a real queue of hundreds of blocks over many small chunk files, closes it, damages
//! the files the way disks and crashes do, reopens it and reads everything. Which blocks a damage
//! touched is worked out from the bytes themselves: `layout` parses the files with the documented
//! format (`queue-format.md`: a 32-byte chunk header, then frames of a 24-byte header and the payload)
//! and a block counts as damaged when any byte of its frame changed. Every payload encodes its own
//! index, so identity and order are checked, not only counts.
//!
//! Random damage is seeded; a failing case names its seed.

use std::path::{Path, PathBuf};

use promrelay::queue::{Options, Queue, SyncPolicy};
use queue_helpers::{
    Rng, block, chunk_paths, chunk_seq, copy_queue, index_of, reopen_and_read_all,
};

#[path = "common/queue.rs"]
mod queue_helpers;

const HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;
const FRAME_MAGIC: [u8; 4] = [0x0C, 0xB1, 0xC7, 0x5E];

/// Block `i` of 24..308 bytes, its length derived from it.
fn payload(i: u32) -> Vec<u8> {
    block(
        i,
        24 + ((i.wrapping_mul(2_654_435_761) >> 8) % 285) as usize,
    )
}

fn options(chunk_bytes: u64) -> Options {
    queue_helpers::options(chunk_bytes, SyncPolicy::Never)
}

/// Appends blocks `0..n` to a new queue in `dir` and closes it.
fn build(dir: &Path, n: u32, chunk_bytes: u64) {
    let q = Queue::open(dir, options(chunk_bytes)).expect("open");
    for i in 0..n {
        q.append(&payload(i), 1).expect("append");
    }
    q.close().expect("close");
}

/// One block as it lies in a chunk file.
#[derive(Debug, Clone)]
struct Frame {
    file: PathBuf,
    start: u64,
    end: u64,
    index: u32,
}

/// Parses the (undamaged) chunk files with the documented layout, in queue order.
fn layout(dir: &Path) -> Vec<Frame> {
    let mut frames = Vec::new();
    for path in chunk_paths(dir) {
        let bytes = std::fs::read(&path).expect("read chunk");
        assert_eq!(&bytes[..8], b"PRQCHUNK", "{}", path.display());
        let mut off = HEADER as usize;
        while off < bytes.len() {
            assert_eq!(
                bytes[off..off + 4],
                FRAME_MAGIC,
                "{} at {off}",
                path.display()
            );
            let len =
                u32::from_le_bytes(bytes[off + 4..off + 8].try_into().expect("4 bytes")) as usize;
            let end = off + FRAME_HEADER as usize + len;
            let p = &bytes[off + FRAME_HEADER as usize..end];
            frames.push(Frame {
                file: path.clone(),
                start: off as u64,
                end: end as u64,
                index: index_of(p),
            });
            off = end;
        }
    }
    frames
}

/// The bytes of every chunk file, to tell afterwards which frames a damage changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    chunk_paths(dir)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect()
}

/// Frames (as listed by `layout` of the original) whose bytes differ in the damaged copy.
fn damaged(frames: &[Frame], before: &[(PathBuf, Vec<u8>)], copy: &Path) -> Vec<bool> {
    frames
        .iter()
        .map(|f| {
            let name = f.file.file_name().expect("name");
            let old = &before
                .iter()
                .find(|(p, _)| p.file_name() == Some(name))
                .expect("file in snapshot")
                .1;
            match std::fs::read(copy.join(name)) {
                Ok(new) => {
                    let r = f.start as usize..f.end as usize;
                    new.get(r.clone()) != Some(&old[r])
                }
                Err(_) => true,
            }
        })
        .collect()
}

/// What the reader must count: one corrupt region per run of consecutive damaged frames in a file,
/// except a run that ends the last chunk file, which open cuts off as a torn tail.
struct Expected {
    indices: Vec<u32>,
    corrupt_regions: u64,
    corrupt_bytes: u64,
    torn_tail_bytes: u64,
}

fn expected(frames: &[Frame], damaged: &[bool]) -> Expected {
    let last_file = frames.last().map(|f| f.file.clone());
    let mut e = Expected {
        indices: Vec::new(),
        corrupt_regions: 0,
        corrupt_bytes: 0,
        torn_tail_bytes: 0,
    };
    let mut i = 0;
    while i < frames.len() {
        if !damaged[i] {
            e.indices.push(frames[i].index);
            i += 1;
            continue;
        }
        let run_start = frames[i].start;
        let mut j = i;
        while j + 1 < frames.len() && damaged[j + 1] && frames[j + 1].file == frames[i].file {
            j += 1;
        }
        let run_bytes = frames[j].end - run_start;
        let ends_file = j + 1 == frames.len() || frames[j + 1].file != frames[i].file;
        if ends_file && Some(&frames[i].file) == last_file.as_ref() {
            e.torn_tail_bytes += run_bytes;
        } else {
            e.corrupt_regions += 1;
            e.corrupt_bytes += run_bytes;
        }
        i = j + 1;
    }
    e
}

fn flip(path: &Path, at: u64, mask: u8) {
    let mut b = std::fs::read(path).expect("read");
    b[at as usize] ^= mask;
    std::fs::write(path, b).expect("write");
}

// ---------------------------------------------------------------------------------------------

#[test]
fn random_byte_flips_skip_only_damaged_blocks() {
    const CHUNK: u64 = 4096;
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path(), 400, CHUNK);
    let frames = layout(pristine.path());
    let before = snapshot(pristine.path());
    assert!(before.len() >= 10, "only {} chunk files", before.len());
    let total: u64 = before.iter().map(|(_, b)| b.len() as u64).sum();
    let mut damaged_blocks_seen = 0;
    for seed in 0..300u64 {
        let copy = copy_queue(pristine.path());
        let mut rng = Rng::new(seed);
        let flips = 1 + rng.below(6);
        let mut hits = Vec::new();
        for _ in 0..flips {
            // A uniformly random byte of all chunk files.
            let mut at = rng.below(total);
            let (path, _) = before
                .iter()
                .find(|(_, b)| {
                    let inside = at < b.len() as u64;
                    if !inside {
                        at -= b.len() as u64;
                    }
                    inside
                })
                .unwrap();
            let target = copy.path().join(path.file_name().unwrap());
            flip(&target, at, 1 + rng.below(255) as u8);
            hits.push(format!(
                "{}@{at}",
                path.file_name().unwrap().to_string_lossy()
            ));
        }
        let hurt = damaged(&frames, &before, copy.path());
        damaged_blocks_seen += hurt.iter().filter(|&&d| d).count();
        let want = expected(&frames, &hurt);
        let (got, stats) = reopen_and_read_all(copy.path(), options(CHUNK));
        let ctx = format!("seed {seed}, flipped {hits:?}");
        assert_eq!(got, want.indices, "{ctx}: every untouched block, in order");
        assert_eq!(
            stats.corrupt_blocks_skipped, want.corrupt_regions,
            "{ctx}: one count per damaged region; {stats:?}"
        );
        assert_eq!(
            stats.corrupt_bytes_skipped, want.corrupt_bytes,
            "{ctx}: {stats:?}"
        );
        assert_eq!(
            stats.torn_tail_bytes, want.torn_tail_bytes,
            "{ctx}: {stats:?}"
        );
    }
    assert!(damaged_blocks_seen > 300, "the flips hit too few blocks");
}

#[test]
fn zeroed_4k_page_in_middle_is_skipped_and_counted() {
    const CHUNK: u64 = 16 * 1024;
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path(), 300, CHUNK);
    let frames = layout(pristine.path());
    let before = snapshot(pristine.path());
    assert!(before.len() >= 3, "need a chunk in the middle");
    let middle = before[before.len() / 2].0.file_name().unwrap().to_owned();
    let copy = copy_queue(pristine.path());
    let path = copy.path().join(&middle);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4096..8192].fill(0);
    std::fs::write(&path, bytes).unwrap();

    let hurt = damaged(&frames, &before, copy.path());
    assert!(
        hurt.iter().filter(|&&d| d).count() >= 2,
        "a page holds several blocks"
    );
    let want = expected(&frames, &hurt);
    assert_eq!(want.corrupt_regions, 1);
    let (got, stats) = reopen_and_read_all(copy.path(), options(CHUNK));
    assert_eq!(got, want.indices, "every block outside the page, in order");
    assert_eq!(stats.corrupt_blocks_skipped, 1, "{stats:?}");
    assert_eq!(stats.corrupt_bytes_skipped, want.corrupt_bytes, "{stats:?}");
    assert_eq!(stats.torn_tail_bytes, 0, "{stats:?}");
}

#[test]
fn torn_tail_is_cut_at_every_byte_of_the_last_block() {
    const CHUNK: u64 = 4096;
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path(), 120, CHUNK);
    let frames = layout(pristine.path());
    let last = frames.last().unwrap().clone();
    assert_eq!(last.index, 119);
    let earlier: Vec<u32> = (0..119).collect();
    for cut in last.start + 1..last.end {
        let copy = copy_queue(pristine.path());
        let file = copy.path().join(last.file.file_name().unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let ctx = format!("cut at {cut} (last frame {}..{})", last.start, last.end);

        let q = Queue::open(copy.path(), options(CHUNK)).expect("open");
        assert_eq!(q.stats().torn_tail_bytes, cut - last.start, "{ctx}");
        let mut got = Vec::new();
        while let Some(b) = q.read().unwrap() {
            got.push(index_of(&b.payload));
        }
        assert_eq!(got, earlier, "{ctx}: all earlier blocks, not the torn one");
        q.append(&payload(500), 1)
            .expect("append after a torn tail");
        let b = q.read().unwrap().expect("the new block");
        assert_eq!(index_of(&b.payload), 500, "{ctx}");
        q.close().unwrap();

        let (got, stats) = reopen_and_read_all(copy.path(), options(CHUNK));
        let mut want = earlier.clone();
        want.push(500);
        assert_eq!(
            got, want,
            "{ctx}: after reopen, the new block follows the old ones"
        );
        assert_eq!(stats.torn_tail_bytes, 0, "{ctx}: the tail was already cut");
    }
}

#[test]
fn missing_middle_chunk_is_skipped_and_counted() {
    const CHUNK: u64 = 4096;
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path(), 400, CHUNK);
    let frames = layout(pristine.path());
    let chunks = chunk_paths(pristine.path());
    let gone = chunks[chunks.len() / 2].file_name().unwrap().to_owned();
    let copy = copy_queue(pristine.path());
    std::fs::remove_file(copy.path().join(&gone)).unwrap();

    let want: Vec<u32> = frames
        .iter()
        .filter(|f| f.file.file_name() != Some(&gone))
        .map(|f| f.index)
        .collect();
    assert!(want.len() < 400);
    let (got, stats) = reopen_and_read_all(copy.path(), options(CHUNK));
    assert_eq!(got, want, "every block of the other chunks, in order");
    assert_eq!(stats.chunks_skipped, 1, "{stats:?}");
    assert_eq!(stats.corrupt_blocks_skipped, 0, "{stats:?}");
}

/// A queue whose first 100 blocks were acknowledged and flushed (so its first chunks are deleted and
/// the position file points into the middle of a chunk), and the index of the oldest block still in
/// the files.
fn partly_acknowledged_queue(chunk_bytes: u64) -> (tempfile::TempDir, u32) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let q = Queue::open(dir.path(), options(chunk_bytes)).expect("open the queue");
    for i in 0..300 {
        q.append(&payload(i), 1).expect("append");
    }
    for i in 0..100 {
        let b = q.read().expect("read").expect("a block");
        assert_eq!(index_of(&b.payload), i);
        q.ack(b.id);
    }
    q.close().expect("close the queue");
    let oldest = layout(dir.path())[0].index;
    assert!(oldest > 0, "some chunks were deleted");
    assert!(
        oldest < 100,
        "the position is inside a chunk, after some acknowledged blocks"
    );
    (dir, oldest)
}

#[test]
fn damaged_position_file_falls_back_to_a_scan() {
    const CHUNK: u64 = 4096;
    let (pristine, oldest) = partly_acknowledged_queue(CHUNK);
    let good = std::fs::read(pristine.path().join("position")).unwrap();
    assert_eq!(good.len(), 28);
    let mut damages: Vec<(String, Vec<u8>)> = (0..good.len())
        .map(|i| {
            let mut b = good.clone();
            b[i] ^= 0x40;
            (format!("byte {i} flipped"), b)
        })
        .collect();
    damages.push(("empty".into(), Vec::new()));
    damages.push(("cut to 20 bytes".into(), good[..20].to_vec()));
    let mut long = good.clone();
    long.push(0);
    damages.push(("one byte too long".into(), long));
    damages.push(("garbage".into(), vec![0xA5; 28]));

    for (what, bytes) in damages {
        let copy = copy_queue(pristine.path());
        std::fs::write(copy.path().join("position"), &bytes).unwrap();
        let (got, stats) = reopen_and_read_all(copy.path(), options(CHUNK));
        // Every unacknowledged block (100..300) comes back; so do the acknowledged ones still in the
        // files (at least once), all in order.
        assert_eq!(got, (oldest..300).collect::<Vec<_>>(), "position {what}");
        assert_eq!(stats.position_fallbacks, 1, "position {what}: {stats:?}");
    }
}

#[test]
fn deleted_position_file_falls_back_to_a_scan() {
    const CHUNK: u64 = 4096;
    let (pristine, oldest) = partly_acknowledged_queue(CHUNK);
    let copy = copy_queue(pristine.path());
    std::fs::remove_file(copy.path().join("position")).unwrap();
    let (got, stats) = reopen_and_read_all(copy.path(), options(CHUNK));
    assert_eq!(got, (oldest..300).collect::<Vec<_>>());
    assert_eq!(stats.position_fallbacks, 1, "{stats:?}");
}

#[test]
fn damaged_chunk_header_loses_no_blocks() {
    const CHUNK: u64 = 4096;
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path(), 300, CHUNK);
    let all: Vec<u32> = (0..300).collect();
    let names: Vec<_> = chunk_paths(pristine.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert!(names.len() >= 5);
    for (k, name) in names.iter().enumerate() {
        let copy = copy_queue(pristine.path());
        let path = copy.path().join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        let mut rng = Rng::new(k as u64);
        for b in &mut bytes[..HEADER as usize] {
            *b = rng.below(256) as u8;
        }
        std::fs::write(&path, bytes).unwrap();
        let ctx = format!("header of {} replaced with garbage", name.to_string_lossy());

        let q = Queue::open(copy.path(), options(CHUNK)).expect("open");
        let mut got = Vec::new();
        while let Some(b) = q.read().unwrap() {
            got.push(index_of(&b.payload));
        }
        assert_eq!(
            got, all,
            "{ctx}: frames are tied to the file name, not the header"
        );
        let stats = q.stats();
        assert_eq!(stats.corrupt_blocks_skipped, 0, "{ctx}: {stats:?}");
        assert_eq!(stats.chunks_skipped, 0, "{ctx}: {stats:?}");
        q.append(&payload(1000), 1).expect("append");
        assert_eq!(index_of(&q.read().unwrap().unwrap().payload), 1000, "{ctx}");
        q.close().unwrap();
        let (got, _) = reopen_and_read_all(copy.path(), options(CHUNK));
        let mut want = all.clone();
        want.push(1000);
        assert_eq!(got, want, "{ctx}: after reopen");
    }
}

#[test]
fn garbage_file_with_chunk_name_never_blocks_open() {
    const CHUNK: u64 = 4096;
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path(), 200, CHUNK);
    let last = chunk_seq(chunk_paths(pristine.path()).last().unwrap());
    let all: Vec<u32> = (0..200).collect();
    let mut rng = Rng::new(7);
    let random: Vec<u8> = (0..5000).map(|_| rng.below(256) as u8).collect();
    let mut fake_header = b"PRQCHUNK".to_vec();
    fake_header.resize(32, 0);
    fake_header.extend_from_slice(&FRAME_MAGIC);
    fake_header.extend_from_slice(&[0xff; 100]);
    let cases: Vec<(&str, u64, Option<Vec<u8>>)> = vec![
        (
            "random bytes after the last chunk",
            last + 1,
            Some(random.clone()),
        ),
        (
            "7 random bytes after the last chunk",
            last + 1,
            Some(random[..7].to_vec()),
        ),
        (
            "a frame magic and junk after the last chunk",
            last + 1,
            Some(fake_header),
        ),
        (
            "random bytes far after the last chunk",
            last + 1000,
            Some(random.clone()),
        ),
        (
            "random bytes before the first chunk",
            0,
            Some(random.clone()),
        ),
        ("a directory after the last chunk", last + 1, None),
    ];
    for (what, seq, content) in cases {
        let copy = copy_queue(pristine.path());
        let path = copy.path().join(format!("{seq:016x}.chunk"));
        match &content {
            Some(bytes) => std::fs::write(&path, bytes).unwrap(),
            None => std::fs::create_dir(&path).unwrap(),
        }
        let q = Queue::open(copy.path(), options(CHUNK))
            .unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
        let mut got = Vec::new();
        while let Some(b) = q.read().unwrap() {
            got.push(index_of(&b.payload));
        }
        assert_eq!(got, all, "{what}: every real block, in order");
        q.append(&payload(1000), 1)
            .unwrap_or_else(|e| panic!("{what}: append: {e}"));
        assert_eq!(
            index_of(&q.read().unwrap().unwrap().payload),
            1000,
            "{what}"
        );
        q.close().unwrap();
        let (got, _) = reopen_and_read_all(copy.path(), options(CHUNK));
        let mut want = all.clone();
        want.push(1000);
        assert_eq!(got, want, "{what}: after reopen");
    }
}

#[test]
fn garbage_file_with_the_largest_chunk_name_never_blocks_open() {
    const CHUNK: u64 = 4096;
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path(), 200, CHUNK);
    let copy = copy_queue(pristine.path());
    std::fs::write(copy.path().join("ffffffffffffffff.chunk"), vec![0x5A; 300]).unwrap();
    let q = Queue::open(copy.path(), options(CHUNK)).expect("open");
    let mut got = Vec::new();
    while let Some(b) = q.read().unwrap() {
        got.push(index_of(&b.payload));
    }
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    q.append(&payload(1000), 1).expect("append");
    q.close().unwrap();
    let (got, _) = reopen_and_read_all(copy.path(), options(CHUNK));
    let mut want: Vec<u32> = (0..200).collect();
    want.push(1000);
    assert_eq!(
        got, want,
        "after reopen, the new block follows the old ones"
    );
}

#[test]
fn junk_file_with_chunk_name_is_set_aside_unchanged_and_not_counted_as_torn() {
    const CHUNK: u64 = 4096;
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path(), 200, CHUNK);
    let last = chunk_seq(chunk_paths(pristine.path()).last().unwrap());
    let copy = copy_queue(pristine.path());
    let mut rng = Rng::new(11);
    let junk: Vec<u8> = (0..5000).map(|_| rng.below(256) as u8).collect();
    let name = format!("{:016x}.chunk", last + 1);
    std::fs::write(copy.path().join(&name), &junk).unwrap();

    let q = Queue::open(copy.path(), options(CHUNK)).expect("open");
    let stats = q.stats();
    q.close().unwrap();
    let aside: Vec<PathBuf> = std::fs::read_dir(copy.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&name) && n != name
        })
        .collect();
    assert_eq!(aside.len(), 1, "the junk is kept for inspection: {aside:?}");
    let kept = std::fs::read(&aside[0]).unwrap();
    assert_eq!(
        kept.len(),
        junk.len(),
        "kept as it was found, not cut to its first 32 bytes"
    );
    assert!(kept == junk, "kept as it was found");
    assert_eq!(
        stats.torn_tail_bytes, 0,
        "junk is not a torn write: {stats:?}"
    );
    assert_eq!(stats.chunks_skipped, 1, "{stats:?}");
}

#[test]
fn empty_chunk_file_is_skipped() {
    const CHUNK: u64 = 4096;
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path(), 200, CHUNK);
    let last = chunk_seq(chunk_paths(pristine.path()).last().unwrap());
    let copy = copy_queue(pristine.path());
    // What a crash between creating the next chunk and writing its header leaves.
    std::fs::write(copy.path().join(format!("{:016x}.chunk", last + 1)), b"").unwrap();
    let all: Vec<u32> = (0..200).collect();

    let q = Queue::open(copy.path(), options(CHUNK)).expect("open");
    let mut got = Vec::new();
    while let Some(b) = q.read().unwrap() {
        got.push(index_of(&b.payload));
    }
    assert_eq!(got, all, "every block, in order");
    assert_eq!(q.stats().corrupt_blocks_skipped, 0);
    q.append(&payload(1000), 1)
        .expect("append after an empty chunk");
    assert_eq!(index_of(&q.read().unwrap().unwrap().payload), 1000);
    q.close().unwrap();

    // Now the empty file sits between the old chunks and the new one.
    let (got, stats) = reopen_and_read_all(copy.path(), options(CHUNK));
    let mut want = all.clone();
    want.push(1000);
    assert_eq!(
        got, want,
        "after reopen, with the empty chunk in the middle"
    );
    assert_eq!(stats.corrupt_blocks_skipped, 0, "{stats:?}");
}
