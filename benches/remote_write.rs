//! The ingest hot path on a realistic push (10,000 samples over 1,000 series of 10 labels):
//! one-pass validation against a full prost decode, snappy decompression and compression.
//!
//! Throughput is in bytes of *decompressed* protobuf for every benchmark, so the numbers compare
//! directly: a push costs decompress + validate per byte of protobuf.
//!
//! `encodings` is the whole ingest cost of one such push per body encoding, in samples per second:
//! snappy (decompress, validate; the body is queued as it came), zstd and gzip (decompress,
//! validate, compress again as the snappy block the queues hold).
//!
//! `sender_merge` is the sender's batching of a backlog of small pushes (100 pushes of 50 series,
//! as many scrapers send) into one request: the old way (decompress, concatenate, compress) next
//! to the concatenation of the snappy blocks it does now.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use promrelay::prompb::{
    WriteRequest, compress, compress_into, concat_blocks_into, decompress_bounded_into,
    example_write_request, merge_into, validate_write_request,
};
use prost::Message;

fn remote_write(c: &mut Criterion) {
    let req = example_write_request(1_000, 10, 1_700_000_000_000);
    let protobuf = req.encode_to_vec();
    let body = compress(&protobuf);
    eprintln!(
        "request: {} series, 10,000 samples, {} bytes of protobuf, {} bytes of snappy",
        req.timeseries.len(),
        protobuf.len(),
        body.len()
    );

    let mut group = c.benchmark_group("remote_write");
    group.throughput(Throughput::Bytes(protobuf.len() as u64));

    group.bench_function("validate", |b| {
        b.iter(|| validate_write_request(black_box(&protobuf)))
    });
    group.bench_function("prost_decode", |b| {
        b.iter(|| WriteRequest::decode(black_box(&protobuf[..])))
    });
    let mut decompressed = Vec::new();
    group.bench_function("snappy_decompress", |b| {
        b.iter(|| decompress_bounded_into(black_box(&body), 64 << 20, &mut decompressed))
    });
    let mut compressed = Vec::new();
    group.bench_function("snappy_compress", |b| {
        b.iter(|| compress_into(black_box(&protobuf), &mut compressed))
    });
    // What the scraper and the text import call: a new Vec per block.
    group.bench_function("snappy_compress_vec", |b| {
        b.iter(|| compress(black_box(&protobuf)))
    });
    group.finish();
}

/// A push of 60,000 samples (about 2.6 MB of protobuf, as a Prometheus sends under load): its
/// buffers outgrow the CPU caches, where zero-filling them costs memory bandwidth.
fn large_push(c: &mut Criterion) {
    let protobuf = example_write_request(6_000, 10, 1_700_000_000_000).encode_to_vec();
    let body = compress(&protobuf);
    let mut group = c.benchmark_group("large_push");
    group.throughput(Throughput::Bytes(protobuf.len() as u64));
    let mut decompressed = Vec::new();
    group.bench_function("snappy_decompress", |b| {
        b.iter(|| decompress_bounded_into(black_box(&body), 64 << 20, &mut decompressed))
    });
    group.bench_function("snappy_compress_vec", |b| {
        b.iter(|| compress(black_box(&protobuf)))
    });
    group.finish();
}

/// The relay benchmark's push (`scripts/bench-vs-vmagent.sh`: 10,000 series of 10 labels, one
/// sample each, about 2.7 MB of protobuf): the two passes every snappy push needs, in samples per
/// second, so they compare with the whole process's samples per CPU-second.
fn relay_push(c: &mut Criterion) {
    let protobuf = example_write_request(10_000, 1, 1_700_000_000_000).encode_to_vec();
    let body = compress(&protobuf);
    let mut group = c.benchmark_group("relay_push");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("validate", |b| {
        b.iter(|| validate_write_request(black_box(&protobuf)))
    });
    let mut decompressed = Vec::new();
    group.bench_function("snappy_decompress", |b| {
        b.iter(|| decompress_bounded_into(black_box(&body), 64 << 20, &mut decompressed))
    });
    group.finish();
}

fn encodings(c: &mut Criterion) {
    use promrelay::ingest::encoding::{Encoding, decode};
    use std::io::Write;
    let req = example_write_request(1_000, 10, 1_700_000_000_000);
    let protobuf = req.encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&protobuf).expect("gzip in memory");
    let bodies = [
        (Encoding::Snappy, compress(&protobuf)),
        (
            Encoding::Zstd,
            // vmagent's level: zstd's fastest.
            zstd::bulk::compress(&protobuf, 1).expect("zstd in memory"),
        ),
        (Encoding::Gzip, gz.finish().expect("gzip in memory")),
    ];
    let mut group = c.benchmark_group("encodings");
    group.throughput(Throughput::Elements(10_000));
    let mut buf = Vec::new();
    for (encoding, body) in &bodies {
        eprintln!("{}: {} bytes on the wire", encoding.as_str(), body.len());
        group.bench_function(encoding.as_str(), |b| {
            b.iter(|| {
                let plain =
                    decode(*encoding, black_box(body), 64 << 20, &mut buf).expect("valid body");
                let summary = validate_write_request(plain).expect("valid protobuf");
                if *encoding != Encoding::Snappy {
                    black_box(compress(plain));
                }
                summary
            })
        });
    }
    group.finish();
}

fn sender_merge(c: &mut Criterion) {
    let pushes: Vec<Vec<u8>> = (0..100)
        .map(|i| example_write_request(50, 1, 1_700_000_000_000 + i * 1000).encode_to_vec())
        .collect();
    let blocks: Vec<Vec<u8>> = pushes.iter().map(|p| compress(p)).collect();
    let protobuf_len: usize = pushes.iter().map(Vec::len).sum();

    let mut group = c.benchmark_group("sender_merge");
    group.throughput(Throughput::Bytes(protobuf_len as u64));
    let (mut raw, mut one, mut out) = (Vec::new(), Vec::new(), Vec::new());
    group.bench_function("decompress_merge_compress", |b| {
        b.iter(|| {
            raw.clear();
            for block in black_box(&blocks) {
                decompress_bounded_into(block, usize::MAX, &mut one)
                    .expect("the bench's own blocks decode");
                merge_into(&mut raw, &one);
            }
            compress_into(&raw, &mut out);
        })
    });
    // What the sender does since: one header, the blocks' compressed bytes copied behind it.
    group.bench_function("concat_blocks", |b| {
        b.iter(|| concat_blocks_into(black_box(&blocks).iter().map(Vec::as_slice), &mut out))
    });
    group.finish();
}

criterion_group!(
    benches,
    remote_write,
    large_push,
    relay_push,
    encodings,
    sender_merge
);
criterion_main!(benches);
