//! Queue throughput: append under each sync policy and block size, concurrent appenders under
//! `always` (group commit), and read+ack. Each measured iteration writes a fixed volume into a fresh
//! queue and closes it (close fsyncs), so `interval` figures compare with
//! `dd bs=1M conv=fdatasync` on the same disk.
//!
//! `cargo bench --bench queue`; set `PROMRELAY_BENCH_DIR` to measure another disk than the
//! target directory's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use promrelay::queue::{Options, Queue, SyncPolicy};

fn bench_root() -> PathBuf {
    std::env::var_os("PROMRELAY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

fn opts(sync: SyncPolicy) -> Options {
    Options {
        sync,
        ..Options::default()
    }
}

/// Appends `blocks` blocks of `size` bytes from `threads` threads into a fresh queue, then closes it.
fn append_run(sync: SyncPolicy, size: usize, blocks: usize, threads: usize) -> Duration {
    let dir = tempfile::tempdir_in(bench_root()).expect("tempdir");
    let payload = vec![0xa5u8; size];
    let start = Instant::now();
    let q = Arc::new(Queue::open(dir.path(), opts(sync)).expect("open"));
    std::thread::scope(|s| {
        for _ in 0..threads {
            let q = Arc::clone(&q);
            let payload = &payload;
            s.spawn(move || {
                for _ in 0..blocks / threads {
                    q.append(payload, 1).expect("append");
                }
            });
        }
    });
    Arc::into_inner(q)
        .expect("sole owner")
        .close()
        .expect("close");
    start.elapsed()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    let policies = [
        ("interval", SyncPolicy::Interval(Duration::from_secs(1))),
        ("never", SyncPolicy::Never),
        ("always", SyncPolicy::Always),
    ];
    for (name, sync) in policies {
        for size in [4 << 10, 64 << 10, 1 << 20] {
            // 64 MiB per iteration; `always` fsyncs every block, so it gets fewer.
            let volume: usize = if sync == SyncPolicy::Always {
                8 << 20
            } else {
                64 << 20
            };
            let blocks = (volume / size).max(8);
            g.throughput(Throughput::Bytes((blocks * size) as u64));
            g.bench_with_input(
                BenchmarkId::new(name, format!("{}KiB", size >> 10)),
                &size,
                |b, &size| {
                    b.iter_custom(|n| (0..n).map(|_| append_run(sync, size, blocks, 1)).sum())
                },
            );
        }
    }
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_always_concurrent");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    let size = 4 << 10;
    let blocks = 1024;
    g.throughput(Throughput::Elements(blocks as u64));
    for threads in [1, 4, 16] {
        g.bench_with_input(BenchmarkId::new("4KiB", threads), &threads, |b, &t| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| append_run(SyncPolicy::Always, size, blocks, t))
                    .sum()
            })
        });
    }
    g.finish();
}

fn read_ack(c: &mut Criterion) {
    let mut g = c.benchmark_group("read_ack");
    g.sample_size(10);
    for size in [4 << 10, 64 << 10] {
        let blocks = (64 << 20) / size;
        g.throughput(Throughput::Bytes((blocks * size) as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{}KiB", size >> 10)),
            &size,
            |b, &size| {
                b.iter_custom(|n| {
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        let dir = tempfile::tempdir_in(bench_root()).expect("tempdir");
                        let q = Queue::open(dir.path(), opts(SyncPolicy::Never)).expect("open");
                        let payload = vec![0x5au8; size];
                        for _ in 0..blocks {
                            q.append(&payload, 1).expect("append");
                        }
                        let start = Instant::now();
                        while let Some(b) = q.read().expect("read") {
                            q.ack(b.id);
                        }
                        q.flush().expect("flush");
                        total += start.elapsed();
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, append, group_commit, read_ack);
criterion_main!(benches);
