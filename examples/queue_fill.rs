//! Writes a fixed volume into a fresh queue and closes it (close fsyncs), printing MB/s: the
//! queue's side of `scripts/bench-queue-vs-dd.sh`, which runs `dd ... conv=fdatasync` beside it.
//!
//! `cargo run --release --example queue_fill -- DIR [MiB] [block KiB] [always|interval|never]`

use std::time::{Duration, Instant};

use promrelay::queue::{Options, Queue, SyncPolicy};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: queue_fill DIR [MiB=2048] [block KiB=64] [always|interval|never]");
        std::process::exit(2);
    };
    let mib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2048);
    let kib: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    let sync = match args.get(4).map(String::as_str) {
        Some("always") => SyncPolicy::Always,
        Some("never") => SyncPolicy::Never,
        _ => SyncPolicy::Interval(Duration::from_secs(1)),
    };
    let block = vec![0u8; kib << 10];
    let blocks = (mib << 20) / block.len();
    let start = Instant::now();
    let q = match Queue::open(
        dir,
        Options {
            sync,
            ..Options::default()
        },
    ) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("queue_fill: {e}");
            std::process::exit(1);
        }
    };
    for _ in 0..blocks {
        if let Err(e) = q.append(&block, 1) {
            eprintln!("queue_fill: {e}");
            std::process::exit(1);
        }
    }
    if let Err(e) = q.close() {
        eprintln!("queue_fill: {e}");
        std::process::exit(1);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.1} MB/s ({} blocks of {} KiB, {:.2} s)",
        (blocks * block.len()) as f64 / secs / 1e6,
        blocks,
        kib,
        secs
    );
}
