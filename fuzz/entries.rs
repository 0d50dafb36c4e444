//! The fuzz targets' bodies, shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/*.rs`) and
//! the corpus replay test (`tests/fuzz_corpora.rs`), so the corpora that fuzzing grows are
//! replayed on stable by `scripts/test.sh` through exactly the same code.
//!
//! Each entry takes arbitrary bytes and must never panic, never loop, and hold its property:
//! - decoders (remote-write 1.0 and 2.0, snappy, zstd, gzip, OTLP, text and OpenMetrics): a
//!   refusal is an error value, an acceptance stays within its bounds, and where an oracle exists
//!   (prost for 1.0 and 2.0, the `snap` crate for snappy, the parser's full path for its fast
//!   path) the answer agrees with it;
//! - config loaders (relay YAML, scrape config, web config, relabel rules): an error or a config,
//!   never a panic;
//! - the queue: recovery over damaged chunk files returns every block whose frame was not touched
//!   (in order, byte for byte), and `queue verify` over any directory reports instead of failing.
//!
//! Every `ENTRIES` name is a directory under `fuzz/corpus/` and a binary under
//! `fuzz/fuzz_targets/`.

// The replay test uses every entry through ENTRIES; the fuzz binaries use one each.
#![allow(dead_code, reason = "each fuzz binary calls one entry")]

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use promrelay::config::{Config, parse_web_config};
use promrelay::exposition::parse::{Entry, Format, Item, Parser};
use promrelay::ingest::encoding::{self, Encoding};
use promrelay::otlp::{self, Settings};
use promrelay::prompb::v2::{Converter, V2Error, oracle};
use promrelay::prompb::{self, WireError, WriteRequest, validate_write_request};
use promrelay::queue::{self, Options, Queue, SyncPolicy};
use promrelay::relabel::{self, RelabelConfig};
use promrelay::scrape;
use prost::Message;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every entry by name, in the order `scripts/fuzz.sh` runs them.
pub const ENTRIES: &[(&str, Target)] = &[
    ("remote_write_v1", remote_write_v1),
    ("snappy", snappy),
    ("remote_write_v2", remote_write_v2),
    ("zstd_gzip", zstd_gzip),
    ("otlp_protobuf", otlp_protobuf),
    ("otlp_json", otlp_json),
    ("text_parser", text_parser),
    ("openmetrics_parser", openmetrics_parser),
    ("relabel", relabel_rules),
    ("relay_config", relay_config),
    ("scrape_config", scrape_config),
    ("web_config", web_config),
    ("queue_recovery", queue_recovery),
    ("queue_verify", queue_verify),
];

/// The decompressed-size bound the decoder entries use (small, so bombs are cheap to find).
const LIMIT: usize = 1 << 20;

/// Remote-write 1.0: the one-pass validator never accepts what prost refuses, and counts what
/// prost decodes.
pub fn remote_write_v1(data: &[u8]) {
    let Ok(summary) = validate_write_request(data) else {
        return;
    };
    let req = WriteRequest::decode(data).expect("the validator accepted bytes prost refuses");
    let count = |f: fn(&prompb::TimeSeries) -> usize| req.timeseries.iter().map(f).sum::<usize>();
    assert_eq!(summary.series, req.timeseries.len() as u64, "series");
    assert_eq!(
        summary.samples,
        count(|t| t.samples.len()) as u64,
        "samples"
    );
    assert_eq!(
        summary.histograms,
        count(|t| t.histograms.len()) as u64,
        "histograms"
    );
    assert_eq!(
        summary.exemplars,
        count(|t| t.exemplars.len()) as u64,
        "exemplars"
    );
    assert_eq!(summary.metadata, req.metadata.len() as u64, "metadata");
}

/// Snappy: the bounded decoder returns what `snap` returns, or refuses past the bound, and never
/// allocates past it. The first two bytes choose the bound.
pub fn snappy(data: &[u8]) {
    let (limit, body) = split_limit(data);
    let ours = prompb::decompress_bounded(body, limit);
    // `snap` allocates the declared length before checking anything (up to 4 GiB), so it is
    // asked only about bodies that declare a length within the bound.
    match snap::raw::decompress_len(body) {
        Ok(declared) if declared <= limit => {}
        declared => {
            assert!(
                ours.is_err(),
                "accepted a body declaring {declared:?} bytes, past the bound {limit}"
            );
            return;
        }
    }
    let theirs = snap::raw::Decoder::new().decompress_vec(body);
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => {
            assert!(
                ours.len() <= limit,
                "{} bytes past the bound {limit}",
                ours.len()
            );
            assert_eq!(ours, theirs, "decoded bytes differ from snap's");
        }
        (Ok(ours), Err(e)) => panic!("accepted {} bytes snap refuses: {e}", ours.len()),
        (Err(e), Ok(theirs)) => panic!(
            "refused a {}-byte body within the bound {limit}: {e}",
            theirs.len()
        ),
        (Err(_), Err(_)) => {}
    }
}

/// Remote-write 2.0: the wire walk agrees with "prost decode, then convert" (the reference in
/// `prompb::v2::oracle`), byte for byte in the 1.0 output, and stays within the bound. The one
/// allowed difference: protobuf groups (wire types 3 and 4), which prost skips and the walk
/// refuses on purpose.
pub fn remote_write_v2(data: &[u8]) {
    let (limit, body) = split_limit(data);
    let mut out = Vec::new();
    let ours = Converter::new().convert(body, limit, &mut out);
    match (ours, oracle::convert(body)) {
        (Ok(summary), Ok((want, dropped))) => {
            assert!(out.len() <= limit, "output past the bound");
            let got = WriteRequest::decode(&out[..]).expect("the 1.0 output decodes");
            assert_eq!(
                got.encode_to_vec(),
                want.encode_to_vec(),
                "converted request differs"
            );
            assert_eq!(summary.dropped_custom_bucket_histograms, dropped);
            assert_eq!(summary.series, want.timeseries.len() as u64);
        }
        (Ok(summary), Err(refusal)) => {
            panic!("converter accepted {summary:?}, the reference refused: {refusal:?}")
        }
        (Err(err), Ok(_)) => assert!(
            err.is_too_large()
                || matches!(
                    err,
                    V2Error::Wire(WireError::UnsupportedWireType {
                        wire_type: 3 | 4,
                        ..
                    })
                ),
            "refused {err} though the reference converts it"
        ),
        (Err(_), Err(_)) => {}
    }
}

/// zstd and gzip request bodies: the first byte picks the coding; a decoded body is never past
/// the bound, and a refusal is an error value.
pub fn zstd_gzip(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (limit, body) = split_limit(rest);
    let coding = if pick & 1 == 0 {
        Encoding::Zstd
    } else {
        Encoding::Gzip
    };
    let mut buf = Vec::new();
    if let Ok(decoded) = encoding::decode(coding, body, limit, &mut buf) {
        assert!(
            decoded.len() <= limit,
            "{} bytes past the bound {limit}",
            decoded.len()
        );
    }
}

/// OTLP protobuf bodies: decoded by the OTLP types, then translated as ingest does.
pub fn otlp_protobuf(data: &[u8]) {
    otlp_translate(data, otlp::Format::Protobuf);
}

/// OTLP JSON bodies: decoded by the OTLP JSON mapping, then translated as ingest does.
pub fn otlp_json(data: &[u8]) {
    otlp_translate(data, otlp::Format::Json);
}

fn otlp_translate(data: &[u8], format: otlp::Format) {
    let Ok(req) = otlp::decode_request(data, format) else {
        return;
    };
    let settings = Settings {
        max_output_bytes: LIMIT,
        ..Settings::default()
    };
    let t = otlp::translate(&req, &settings);
    assert!(
        t.over_limit || t.request.encoded_len() <= LIMIT + (64 << 10),
        "translation ran far past its bound"
    );
    let samples: usize = t.request.timeseries.iter().map(|s| s.samples.len()).sum();
    assert_eq!(t.samples, samples as u64, "sample count");
}

/// Prometheus text format: the scrape fast path (`next_with`, used for series seen in earlier
/// scrapes) gives exactly what the full path gives.
pub fn text_parser(data: &[u8]) {
    parse_both_ways(data, Format::PrometheusText);
}

/// OpenMetrics text, semantic checks included: same property as [`text_parser`].
pub fn openmetrics_parser(data: &[u8]) {
    parse_both_ways(data, Format::OpenMetrics);
}

/// A sample as both paths see it: series text, value bits, timestamp.
type Seen = (String, u64, Option<i64>);

fn parse_both_ways(data: &[u8], format: Format) {
    // The full path: every entry, until the first error.
    let mut full: Vec<Seen> = Vec::new();
    let mut full_error = false;
    for (n, entry) in Parser::new(data, format).enumerate() {
        assert!(n <= data.len(), "more entries than bytes: the parser loops");
        match entry {
            Ok(Entry::Sample(s)) => {
                full.push((s.series.to_owned(), s.value.to_bits(), s.timestamp_ms))
            }
            Ok(_) => {}
            Err(_) => {
                full_error = true;
                break;
            }
        }
    }
    // The fast path, knowing every series the full path saw (as a scrape cache would from the
    // previous scrape of the same target).
    let known: HashSet<String> = full.iter().map(|s| s.0.clone()).collect();
    let mut fast: Vec<Seen> = Vec::new();
    let mut fast_error = false;
    let mut parser = Parser::new(data, format);
    let mut steps = 0usize;
    while let Some(item) = parser.next_with(|series| known.get(series).cloned()) {
        steps += 1;
        assert!(
            steps <= data.len() + 1,
            "more samples than bytes: the parser loops"
        );
        match item {
            Ok(Item::Known {
                key,
                value,
                timestamp_ms,
            }) => fast.push((key, value.to_bits(), timestamp_ms)),
            Ok(Item::Sample(s)) => {
                fast.push((s.series.to_owned(), s.value.to_bits(), s.timestamp_ms))
            }
            Err(_) => {
                fast_error = true;
                break;
            }
        }
    }
    assert_eq!(
        full_error, fast_error,
        "one path refused, the other did not"
    );
    assert_eq!(full, fast, "the fast path read other samples");
}

/// Relabel rules as YAML (Go regexes included): load, compile, and apply to a label set; a bad
/// rule is an error, and applying never panics.
pub fn relabel_rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(configs) = serde_saphyr::from_str::<Vec<RelabelConfig>>(text) else {
        return;
    };
    let Ok(compiled) = relabel::compile_all(&configs) else {
        return;
    };
    let mut labels = vec![
        prompb::Label::new("__address__", "10.0.0.1:9100"),
        prompb::Label::new("__meta_kubernetes_pod_name", "web-0"),
        prompb::Label::new("job", "node"),
        prompb::Label::new("ünïcode", "ß\u{0}\u{feff}"),
    ];
    relabel::process(&mut labels, &compiled);
}

/// The relay's YAML config file, loaded as `--config-file` would load it.
pub fn relay_config(data: &[u8]) {
    with_file("promrelay.yml", data, |path| {
        let _ = Config::from_args([
            "promrelay",
            "--remote-write-url",
            "http://127.0.0.1:8428/api/v1/write",
            "--config-file",
            path.to_str().expect("temp paths are UTF-8"),
        ]);
    });
}

/// A Prometheus scrape config (`-promscrape.config` / `--scrape-config`).
pub fn scrape_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    with_file("prometheus.yml", data, |path| {
        let _ = scrape::config::parse(path, text);
    });
}

/// The web config file (`--web.config.file`): TLS, basic auth, headers.
pub fn web_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    with_file("web.yml", data, |path| {
        let _ = parse_web_config(path, text);
    });
}

/// Queue recovery over damaged chunks. The input is a script: blocks to append (one byte of
/// length, then the payload), then damage (`0xFF`, then pairs of offset bytes and xor masks
/// applied to the chunk files as one byte stream). After reopening, every block whose frame no
/// damage touched must come back, in order, byte for byte; recovery must end.
pub fn queue_recovery(data: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = || Options {
        chunk_bytes: 256,
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let (blocks, damage) = split_script(data);
    // Per block, where its frame lies in the byte stream of all chunk files in name order.
    let mut frames = Vec::new();
    {
        let q = Queue::open(dir.path(), opts()).expect("open a new queue");
        for payload in &blocks {
            q.append(payload, 1).expect("append");
        }
        q.close().expect("close");
    }
    // Where each block's frame lies, from the files the writer left.
    let chunks = chunk_files(dir.path());
    let mut stream_len = 0usize;
    let mut offsets = Vec::new();
    for path in &chunks {
        offsets.push(stream_len);
        stream_len += fs::metadata(path).expect("chunk metadata").len() as usize;
    }
    {
        let mut next = 0usize;
        for (file, path) in chunks.iter().enumerate() {
            let bytes = fs::read(path).expect("read chunk");
            let header = queue::CHUNK_HEADER_LEN as usize;
            let frame_header = queue::FRAME_HEADER_LEN;
            let mut at = header;
            while at + frame_header <= bytes.len() && next < blocks.len() {
                let len =
                    u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
                let end = at + frame_header + len;
                frames.push((offsets[file] + at, offsets[file] + end));
                next += 1;
                at = end;
            }
        }
        assert_eq!(
            frames.len(),
            blocks.len(),
            "every appended block has a frame"
        );
    }
    // Apply the damage to the byte stream of all chunk files.
    let mut touched = vec![false; blocks.len()];
    if stream_len > 0 {
        let mut files: Vec<Vec<u8>> = chunks
            .iter()
            .map(|p| fs::read(p).expect("read chunk"))
            .collect();
        for pair in damage.chunks_exact(3) {
            let mask = pair[2];
            if mask == 0 {
                continue;
            }
            let at = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % stream_len;
            let file = offsets
                .iter()
                .rposition(|&o| o <= at)
                .expect("offset 0 is a file start");
            files[file][at - offsets[file]] ^= mask;
            for (i, (start, end)) in frames.iter().enumerate() {
                if (*start..*end).contains(&at) {
                    touched[i] = true;
                }
            }
        }
        for (path, bytes) in chunks.iter().zip(&files) {
            fs::write(path, bytes).expect("write damaged chunk");
        }
    }
    let q = Queue::open(dir.path(), opts()).expect("recovery never fails on file contents");
    let mut got = Vec::new();
    for _ in 0..=blocks.len() * 2 + 2 {
        match q.read() {
            Ok(Some(block)) => {
                got.push(block.payload.to_vec());
                q.ack(block.id);
            }
            Ok(None) => break,
            Err(e) => panic!("read failed on damaged files: {e}"),
        }
    }
    assert!(
        q.read().expect("read").is_none(),
        "more blocks came back than twice the number written: the reader loops"
    );
    let intact: Vec<&Vec<u8>> = blocks
        .iter()
        .zip(&touched)
        .filter(|(_, t)| !**t)
        .map(|(b, _)| b)
        .collect();
    let mut want = intact.iter().peekable();
    for block in &got {
        if want.peek().is_some_and(|w| **w == block) {
            want.next();
        }
    }
    assert!(
        want.peek().is_none(),
        "an intact block was lost: {} intact, {} read back",
        intact.len(),
        got.len()
    );
}

/// `promrelay queue verify` over a directory of arbitrary files: the input names files from a
/// small set (lock, position, chunks, damaged chunks, strangers) and gives their bytes.
pub fn queue_verify(data: &[u8]) {
    const NAMES: &[&str] = &[
        "lock",
        "position",
        "position.tmp",
        "0000000000000001.chunk",
        "0000000000000002.chunk",
        "0000000000000007.chunk",
        "00000000000000ff.chunk",
        "0000000000000003.chunk.damaged",
        "README",
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rest = data;
    while let [pick, len_lo, len_hi, tail @ ..] = rest {
        let name = NAMES[usize::from(*pick) % NAMES.len()];
        let len = usize::from(u16::from_le_bytes([*len_lo, *len_hi])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        fs::write(dir.path().join(name), bytes).expect("write test file");
        rest = next;
    }
    if let Ok(report) = queue::offline::examine(dir.path()) {
        let _ = report.verify_text();
        let _ = report.is_intact();
    }
}

/// Splits off a bound from the first two bytes (0..=64 KiB), leaving the body.
fn split_limit(data: &[u8]) -> (usize, &[u8]) {
    match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (LIMIT, data),
    }
}

/// Splits a queue script into payloads and damage bytes. Payloads never hold the frame magic,
/// so a damaged frame cannot reveal a valid-looking frame inside another block's payload (a
/// forgery that needs its CRC-32 computed, which the property does not cover).
fn split_script(data: &[u8]) -> (Vec<Vec<u8>>, &[u8]) {
    let mut blocks = Vec::new();
    let mut rest = data;
    while let [len, tail @ ..] = rest {
        if *len == 0xFF {
            return (blocks, tail);
        }
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        let mut payload = payload.to_vec();
        for i in 0..payload.len().saturating_sub(3) {
            if payload[i..i + 4] == [0x0C, 0xB1, 0xC7, 0x5E] {
                payload[i] = 0;
            }
        }
        if !payload.is_empty() && blocks.len() < 64 {
            blocks.push(payload);
        }
        rest = next;
    }
    (blocks, &[])
}

fn chunk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("list queue dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "chunk"))
        .collect();
    files.sort();
    files
}

fn with_file(name: &str, data: &[u8], f: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    fs::write(&path, data).expect("write test file");
    f(&path);
}
