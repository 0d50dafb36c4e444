//! Remote-write 2.0 in, in samples per second: the 2.0 -> 1.0 conversion as ingest does it (one
//! walk over the wire, writing 1.0 bytes) next to the obvious alternative (prost-decode the 2.0
//! request, build the 1.0 structs, prost-encode them), and the whole ingest cost of a 2.0 push
//! (snappy decompress, convert, snappy compress) next to a 1.0 push of the same samples (snappy
//! decompress, validate; the body is queued as it came).
//!
//! Two shapes: 1,000 series x 10 samples (the 1.0 benchmark's push), and 2,000 series x 1 sample
//! with metadata on every series (what Prometheus 3 sends: one sample per series per push).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use promrelay::prompb::v2::{Converter, example_request, proto};
use promrelay::prompb::{
    self, Label, MetricMetadata, Sample, TimeSeries, WriteRequest, compress,
    decompress_bounded_into, validate_write_request,
};
use prost::Message;

const LIMIT: usize = 64 << 20;

/// The alternative to the wire walk: decode with prost, convert the structs, encode with prost.
fn prost_decode_then_convert(bytes: &[u8]) -> Vec<u8> {
    let req = proto::Request::decode(bytes).expect("valid");
    let sym = |r: u32| req.symbols[r as usize].clone();
    let mut families = std::collections::HashSet::new();
    let mut out = WriteRequest::default();
    for ts in &req.timeseries {
        let labels: Vec<Label> = ts
            .labels_refs
            .chunks(2)
            .map(|p| Label::new(sym(p[0]), sym(p[1])))
            .collect();
        if let Some(m) = &ts.metadata
            && let Some(name) = labels.iter().find(|l| l.name == "__name__")
            && families.insert(name.value.clone())
        {
            out.metadata.push(MetricMetadata {
                r#type: m.r#type,
                metric_family_name: name.value.clone(),
                help: sym(m.help_ref),
                unit: sym(m.unit_ref),
            });
        }
        out.timeseries.push(TimeSeries {
            labels,
            samples: ts
                .samples
                .iter()
                .map(|s| Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                })
                .collect(),
            ..Default::default()
        });
    }
    out.encode_to_vec()
}

fn shape(c: &mut Criterion, name: &str, series: usize, samples_per_series: usize, metadata: bool) {
    let v2 =
        example_request(series, samples_per_series, 1_700_000_000_000, metadata).encode_to_vec();
    let v1 = prompb::example_write_request(series, samples_per_series, 1_700_000_000_000)
        .encode_to_vec();
    let (v2_body, v1_body) = (compress(&v2), compress(&v1));
    eprintln!(
        "{name}: {} samples; 2.0: {} bytes of protobuf, {} of snappy; 1.0: {} bytes, {} of snappy",
        series * samples_per_series,
        v2.len(),
        v2_body.len(),
        v1.len(),
        v1_body.len()
    );

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements((series * samples_per_series) as u64));
    let mut converter = Converter::new();
    let mut out = Vec::new();
    group.bench_function("v2_convert_wire_walk", |b| {
        b.iter(|| converter.convert(black_box(&v2), LIMIT, &mut out))
    });
    group.bench_function("v2_prost_decode_then_convert", |b| {
        b.iter(|| prost_decode_then_convert(black_box(&v2)))
    });
    let mut decompressed = Vec::new();
    group.bench_function("v2_ingest_decompress_convert_compress", |b| {
        b.iter(|| {
            decompress_bounded_into(black_box(&v2_body), LIMIT, &mut decompressed).expect("snappy");
            converter
                .convert(&decompressed, LIMIT, &mut out)
                .expect("valid");
            compress(&out)
        })
    });
    group.bench_function("v1_ingest_decompress_validate", |b| {
        b.iter(|| {
            decompress_bounded_into(black_box(&v1_body), LIMIT, &mut decompressed).expect("snappy");
            validate_write_request(&decompressed)
        })
    });
    group.finish();
}

fn remote_write_v2(c: &mut Criterion) {
    shape(c, "v2_1000x10", 1_000, 10, false);
    shape(c, "v2_2000x1_metadata", 2_000, 1, true);
}

criterion_group!(benches, remote_write_v2);
criterion_main!(benches);
