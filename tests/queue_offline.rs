//! `promrelay queue verify` and `promrelay queue inspect`: the read-only tools, run as the real
//! binary on real queue directories (healthy, torn, damaged, foreign, several in a data dir, and
//! one held open by a `Queue`), and the library report they print.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::SystemTime;

use promrelay::queue::offline::{self, DamageKind, PositionReport};
use promrelay::queue::{Options, Queue, SyncPolicy};
use queue_helpers::{block, read_and_ack_all};

#[path = "common/queue.rs"]
mod queue_helpers;

/// Chunk files of 4 KiB hold five 700-byte blocks (frames of 724 bytes after a 32-byte header).
const CHUNK_BYTES: u64 = 4096;
const PAYLOAD: usize = 700;
const FRAME: u64 = 724;
const HEADER: u64 = 32;
const BLOCKS_PER_CHUNK: u64 = 5;

fn options() -> Options {
    queue_helpers::options(CHUNK_BYTES, SyncPolicy::Never)
}

/// A queue in `dir` holding `n` blocks; block `i` has item count `i + 1`.
fn build(dir: &Path, n: u32) {
    let q = Queue::open(dir, options()).expect("open the queue");
    for i in 0..n {
        q.append(&block(i, PAYLOAD), i + 1).expect("append");
    }
    q.close().expect("close the queue");
}

fn chunk(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.chunk"))
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).expect("read the chunk file");
    bytes[at as usize] ^= 0x40;
    std::fs::write(path, bytes).expect("write the chunk file");
}

fn promrelay(args: &[&str], paths: &[&Path]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_promrelay"))
        .args(args)
        .args(paths)
        .output()
        .expect("the promrelay binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

fn inspect_json(paths: &[&Path]) -> serde_json::Value {
    let out = promrelay(&["queue", "inspect", "--json"], paths);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON")
}

#[test]
fn verify_of_a_healthy_queue_lists_every_chunk_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 30);

    let out = promrelay(&["queue", "verify"], &[dir.path()]);

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("{}: intact\n", dir.path().display())),
        "{text}"
    );
    assert!(
        text.contains("position: valid: 0000000000000001.chunk offset 32"),
        "{text}"
    );
    for seq in 1..=6 {
        let line = format!("{seq:016x}.chunk: 3652 bytes, header ok (created ");
        assert!(text.contains(&line), "no {line:?} in {text}");
    }
    assert_eq!(
        text.matches("5 valid blocks, no damage").count(),
        6,
        "{text}"
    );
}

#[test]
fn verify_reports_a_flipped_byte_as_the_damaged_range_of_its_block_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 30);
    // The third block of chunk 2: frame bytes 1480..2204.
    flip(&chunk(dir.path(), 2), HEADER + 2 * FRAME + 100);

    let out = promrelay(&["queue", "verify"], &[dir.path()]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("{}: DAMAGED\n", dir.path().display())),
        "{text}"
    );
    assert!(
        text.contains("0000000000000002.chunk: 3652 bytes, header ok")
            && text.contains("4 valid blocks\n    damaged bytes 1480..2204 (724 bytes)\n"),
        "{text}"
    );
    assert_eq!(
        text.matches("5 valid blocks, no damage").count(),
        5,
        "{text}"
    );
}

#[test]
fn verify_finds_exactly_the_damage_the_reader_skips() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 30);
    flip(&chunk(dir.path(), 1), HEADER + 10);
    flip(&chunk(dir.path(), 3), HEADER + FRAME + 4); // a length field
    flip(&chunk(dir.path(), 3), HEADER + 3 * FRAME + 700);
    flip(&chunk(dir.path(), 5), HEADER + 4 * FRAME + 30); // the last block of a sealed chunk

    let report = offline::examine(dir.path()).unwrap();
    let damaged: Vec<(u64, u64, u64)> = report
        .chunks
        .iter()
        .flat_map(|c| c.damaged.iter().map(move |d| (c.seq, d.start, d.end)))
        .collect();
    let valid: u64 = report.chunks.iter().map(|c| c.valid.blocks).sum();

    let q = Queue::open(dir.path(), options()).unwrap();
    let read = read_and_ack_all(&q);
    let stats = q.stats();
    assert_eq!(valid, read.len() as u64);
    assert_eq!(damaged.len() as u64, stats.corrupt_blocks_skipped);
    assert_eq!(
        damaged.iter().map(|(_, s, e)| e - s).sum::<u64>(),
        stats.corrupt_bytes_skipped
    );
    assert_eq!(
        damaged,
        [
            (1, HEADER, HEADER + FRAME),
            (3, HEADER + FRAME, HEADER + 2 * FRAME),
            (3, HEADER + 3 * FRAME, HEADER + 4 * FRAME),
            (5, HEADER + 4 * FRAME, HEADER + 5 * FRAME),
        ]
    );
}

#[test]
fn verify_reports_a_torn_tail_on_the_last_chunk_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 28);
    let last = chunk(dir.path(), 6);
    let len = std::fs::metadata(&last).unwrap().len();
    assert_eq!(len, HEADER + 3 * FRAME);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 10)
        .unwrap();

    let out = promrelay(&["queue", "verify"], &[dir.path()]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let torn = format!(
        "2 valid blocks\n    torn tail bytes {}..{} (714 bytes)\n",
        HEADER + 2 * FRAME,
        len - 10
    );
    assert!(text.contains(&torn), "{text}");
    let report = offline::examine(dir.path()).unwrap();
    assert_eq!(report.chunks[5].damaged[0].kind, DamageKind::TornTail);
}

#[test]
fn damaged_position_file_fails_verify_and_inspect_counts_everything_pending() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 12);
    flip(&dir.path().join("position"), 9);

    let out = promrelay(&["queue", "verify"], &[dir.path()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("position: DAMAGED, wrong version or CRC (28 bytes;"),
        "{}",
        stdout(&out)
    );

    let json = inspect_json(&[dir.path()]);
    let q = &json[0];
    assert_eq!(q["position"]["state"], "damaged");
    assert_eq!(q["position"]["reason"], "wrong version or CRC");
    assert_eq!(q["pending"]["blocks"], 12);
    assert_eq!(q["pending"]["items"], (1..=12).sum::<u64>());
}

#[test]
fn inspect_json_shows_position_pending_times_and_the_next_cap_drop() {
    let dir = tempfile::tempdir().unwrap();
    let before = now_ms();
    {
        let q = Queue::open(dir.path(), options()).unwrap();
        for i in 0..30u32 {
            q.append(&block(i, PAYLOAD), i + 1).unwrap();
        }
        for _ in 0..12 {
            let b = q.read().unwrap().unwrap();
            q.ack(b.id);
        }
        q.close().unwrap();
    }
    let after = now_ms();

    let json = inspect_json(&[dir.path()]);

    let list = json.as_array().expect("an array of queues");
    assert_eq!(list.len(), 1);
    let q = &list[0];
    assert_eq!(q["dir"], dir.path().display().to_string());
    // Twelve acknowledged: chunks 1 and 2 are deleted, the position is the third block of chunk 3.
    assert_eq!(q["position"]["state"], "valid");
    assert_eq!(q["position"]["chunk"], 3);
    assert_eq!(q["position"]["offset"], HEADER + 2 * FRAME);
    let chunks = q["chunks"].as_array().unwrap();
    let files: Vec<&str> = chunks.iter().map(|c| c["file"].as_str().unwrap()).collect();
    assert_eq!(
        files,
        [
            "0000000000000003.chunk",
            "0000000000000004.chunk",
            "0000000000000005.chunk",
            "0000000000000006.chunk"
        ]
    );
    assert_eq!(chunks[0]["valid"]["blocks"], BLOCKS_PER_CHUNK);
    assert_eq!(chunks[0]["pending"]["blocks"], 3);
    assert_eq!(q["pending"]["blocks"], 18);
    assert_eq!(q["pending"]["bytes"], 18 * FRAME);
    assert_eq!(q["pending_file_bytes"], 18 * FRAME);
    assert_eq!(q["pending"]["items"], (13..=30).sum::<u64>());
    let oldest = q["oldest_block_unix_ms"].as_u64().unwrap();
    let oldest_pending = q["oldest_pending_unix_ms"].as_u64().unwrap();
    let newest = q["newest_block_unix_ms"].as_u64().unwrap();
    assert!(before <= oldest && oldest <= oldest_pending && oldest_pending <= newest);
    assert!(newest <= after);
    let drop = &q["cap_drops_next"];
    assert_eq!(drop["file"], "0000000000000003.chunk");
    assert_eq!(drop["pending"]["blocks"], 3);
    assert_eq!(drop["pending"]["items"], 13 + 14 + 15);
    assert_eq!(drop["file_bytes"], 3 * FRAME);
}

#[test]
fn inspect_text_names_the_chunk_the_cap_drops_next_or_says_the_head_is_never_dropped() {
    let big = tempfile::tempdir().unwrap();
    build(big.path(), 12);
    let small = tempfile::tempdir().unwrap();
    build(small.path(), 2);

    let out = promrelay(&["queue", "inspect"], &[big.path(), small.path()]);

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "size cap drops next: 0000000000000001.chunk: 5 blocks, {} bytes ({} bytes of file), 15 items",
            5 * FRAME,
            5 * FRAME
        )),
        "{text}"
    );
    assert!(
        text.contains("size cap drops next: nothing (the head chunk is never dropped)"),
        "{text}"
    );
    assert!(text.contains("pending: 12 blocks"), "{text}");
    assert!(text.contains("pending: 2 blocks"), "{text}");
}

#[test]
fn a_directory_that_is_not_a_queue_exits_2_naming_it() {
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), "not a queue").unwrap();
    let missing = foreign.path().join("nowhere");
    let file = foreign.path().join("notes.txt");

    for tool in ["verify", "inspect"] {
        for path in [foreign.path(), missing.as_path(), file.as_path()] {
            let out = promrelay(&["queue", tool], &[path]);
            assert_eq!(out.status.code(), Some(2), "{tool} {}", path.display());
            let err = stderr(&out);
            assert!(
                err.contains(&format!("{}: not a promrelay queue: ", path.display())),
                "{err}"
            );
        }
    }
}

#[test]
fn a_data_dir_is_verified_queue_by_queue_and_a_foreign_subdirectory_exits_2() {
    let data = tempfile::tempdir().unwrap();
    let queues = data.path().join("queues");
    build(&queues.join("a"), 7);
    build(&queues.join("b"), 12);
    build(&queues.join("c"), 3);
    flip(&chunk(&queues.join("b"), 2), HEADER + 30);

    let out = promrelay(&["queue", "verify"], &[data.path()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    for (name, verdict) in [("a", "intact"), ("b", "DAMAGED"), ("c", "intact")] {
        let line = format!("{}: {verdict}\n", queues.join(name).display());
        assert!(text.contains(&line), "no {line:?} in {text}");
    }

    let json = inspect_json(&[data.path()]);
    let pending: Vec<u64> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["pending"]["blocks"].as_u64().unwrap())
        .collect();
    assert_eq!(pending, [7, 11, 3]);

    std::fs::create_dir(queues.join("d")).unwrap();
    let out = promrelay(&["queue", "verify"], &[data.path()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "{}: not a promrelay queue",
            queues.join("d").display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_and_set_aside_chunks_fail_verify() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 20);
    std::fs::remove_file(chunk(dir.path(), 2)).unwrap();
    std::fs::write(
        dir.path().join("0000000000000009.chunk.damaged"),
        [7u8; 100],
    )
    .unwrap();

    let out = promrelay(&["queue", "verify"], &[dir.path()]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("missing chunk files: 0000000000000002.chunk\n"),
        "{text}"
    );
    assert!(
        text.contains("0000000000000009.chunk.damaged (100 bytes)"),
        "{text}"
    );
    let report = offline::examine(dir.path()).unwrap();
    assert_eq!(report.missing_chunks, [2]);
    assert_eq!(report.pending.blocks, 15);
}

/// Every file in `dir` with its length, modification time and contents.
fn snapshot(dir: &Path) -> Vec<(String, u64, SystemTime, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("list the directory")
        .map(|e| {
            let e = e.expect("a directory entry");
            let meta = e.metadata().expect("its metadata");
            (
                e.file_name().to_string_lossy().into_owned(),
                meta.len(),
                meta.modified().expect("its modification time"),
                std::fs::read(e.path()).expect("its bytes"),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn verify_and_inspect_beside_an_open_queue_succeed_and_change_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), options()).unwrap();
    for i in 0..17u32 {
        q.append(&block(i, PAYLOAD), 1).unwrap();
    }
    q.flush().unwrap();
    let before = snapshot(dir.path());

    let verify = promrelay(&["queue", "verify"], &[dir.path()]);
    let inspect = promrelay(&["queue", "inspect", "--json"], &[dir.path()]);

    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    assert_eq!(inspect.status.code(), Some(0), "{}", stderr(&inspect));
    assert_eq!(snapshot(dir.path()), before);
    // The queue still works and is still locked against a second owner.
    q.append(b"after", 1).unwrap();
    assert!(Queue::open(dir.path(), options()).is_err());
}

#[test]
fn verify_never_creates_a_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 3);
    std::fs::remove_file(dir.path().join("lock")).unwrap();
    let before = snapshot(dir.path());

    let out = promrelay(&["queue", "verify"], &[dir.path()]);

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn the_library_report_matches_a_fresh_queue() {
    let dir = tempfile::tempdir().unwrap();
    drop(Queue::open(dir.path(), options()).unwrap());

    let report = offline::examine(dir.path()).unwrap();

    assert!(report.is_intact());
    assert_eq!(
        report.position,
        PositionReport::Valid {
            chunk: 1,
            offset: HEADER
        }
    );
    assert_eq!(report.chunks.len(), 1);
    assert_eq!(report.pending.blocks, 0);
    assert_eq!(report.oldest_pending_unix_ms, None);
    assert_eq!(report.cap_drops_next, None);
}

#[test]
fn running_without_a_subcommand_still_takes_the_relay_flags() {
    let out = promrelay(&["--listen", "not-an-address"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--listen"), "{}", stderr(&out));
    let out = promrelay(&["--listen", ":0", "queue", "verify"], &[Path::new("/")]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "flags and a subcommand do not mix"
    );
}

fn now_ms() -> u64 {
    promrelay::util::now_ms()
}
