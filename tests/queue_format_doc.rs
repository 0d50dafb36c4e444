//! `scripts/check-queue.py`, written from queue-format.md alone, must read what the queue writes:
//! this pins the document to the code.

use promrelay::queue::{Options, Queue, SyncPolicy};

#[test]
fn offline_checker_from_the_format_document_reads_real_queue_files() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Queue::open(
            dir.path(),
            Options {
                chunk_bytes: 4096,
                sync: SyncPolicy::Never,
                ..Options::default()
            },
        )
        .unwrap();
        for i in 0..30u32 {
            q.append(&vec![i as u8; 700], 1).unwrap();
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-queue.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .output()
        .expect("python3 runs (it is on every machine of this project's kind)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(
            *line,
            format!("{:016x}.chunk header ok 5 blocks 0 bad bytes", i + 1)
        );
    }
}
