//! The Python sketch in queue-format.md, written from the document alone, must read what the queue
//! writes and count what `promrelay queue verify` counts: this pins the document to the code.

use std::path::Path;

use promrelay::queue::offline;
use promrelay::queue::{Options, Queue, SyncPolicy};

/// The ```python block of queue-format.md.
fn sketch_from_the_format_document() -> String {
    let doc = include_str!("../queue-format.md");
    let start = doc
        .find("```python\n")
        .expect("queue-format.md has a ```python block")
        + 10;
    let len = doc[start..].find("```").expect("the python block ends");
    doc[start..start + len].to_owned()
}

fn run_sketch(dir: &Path) -> String {
    let script = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(script.path(), sketch_from_the_format_document()).expect("write the sketch");
    let out = std::process::Command::new("python3")
        .arg(script.path())
        .arg(dir)
        .output()
        .expect("python3 runs (it is on every machine of this project's kind)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the sketch prints UTF-8")
}

#[test]
fn format_document_sketch_counts_what_verify_counts_on_real_queue_files() {
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
    // Damage inside sealed chunks: a payload byte, a length field, a chunk header.
    for (seq, at) in [(2u64, 32 + 724 + 500), (4, 32 + 2 * 724 + 5), (5, 3)] {
        let path = dir.path().join(format!("{seq:016x}.chunk"));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
    }

    let text = run_sketch(dir.path());
    let report = offline::examine(dir.path()).unwrap();

    let expected: Vec<String> = report
        .chunks
        .iter()
        .map(|c| {
            let header = if c.header_is_valid() {
                "header ok"
            } else {
                "HEADER DAMAGED"
            };
            let bad: u64 = c.damaged.iter().map(|d| d.end - d.start).sum();
            format!(
                "{} {header} {} blocks {bad} bad bytes",
                c.file, c.valid.blocks
            )
        })
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, expected);
    assert_eq!(
        lines[1],
        "0000000000000002.chunk header ok 4 blocks 724 bad bytes"
    );
    assert_eq!(
        lines[4],
        "0000000000000005.chunk HEADER DAMAGED 5 blocks 0 bad bytes"
    );
}
