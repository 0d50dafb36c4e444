//! The ingest hot path on a realistic push (10,000 samples over 1,000 series of 10 labels):
//! one-pass validation against a full prost decode, snappy decompression and compression.
//!
//! Throughput is in bytes of *decompressed* protobuf for every benchmark, so the numbers compare
//! directly: a push costs decompress + validate per byte of protobuf.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use promrelay::prompb::{
    WriteRequest, compress, compress_into, decompress_bounded_into, example_write_request,
    validate_write_request,
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
    group.finish();
}

criterion_group!(benches, remote_write);
criterion_main!(benches);
