//! The scrape parser on realistic expositions: a real node_exporter body
//! (`tests/fixtures/node_exporter.prom`, 507 samples) and a generated exposition of 1,000 series
//! (counters, gauges and histograms with four to five labels each) in both formats.
//!
//! Each iteration does what a scrape loop does: parses every entry and reads every label pair.
//! Two groups measure the same work: `parse_bytes` in MB/s of body, `parse_samples` in samples/s.
//! `scrape_batch` measures the whole of a scrape's CPU work on a body (parse, labels through the
//! scrape cache, encode, compress), in samples/s; `200_bodies_compressed` takes 200 targets' own
//! bodies and caches in turn, as the scraper's memory sees them. Its caches keep the target labels
//! once, as a loop's do; `SCRAPE_UNSHARED=1` keeps them in every series instead, to measure what
//! that costs.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use promrelay::exposition::parse::{Entry, Format, Parser};
use promrelay::exposition::series::SeriesOptions;
use promrelay::prompb::{Label, WriteRequestEncoder};
use promrelay::scrape::cache::ScrapeCache;
use promrelay::scrape::scrape_loop::{BatchLimits, build_batch};

const NODE_EXPORTER: &[u8] = include_bytes!("../tests/fixtures/node_exporter.prom");

/// A 1,000-series exposition: 25 counters and 10 gauges of 20 series each, and 3 histograms of
/// 10 label sets with 8 buckets, a sum and a count each: 500 + 200 + 300 samples.
fn generated(format: Format) -> String {
    let om = format == Format::OpenMetrics;
    let mut out = String::new();
    let paths = [
        "/",
        "/api/v1/query",
        "/api/v1/query_range",
        "/metrics",
        "/-/healthy",
    ];
    let codes = ["200", "404", "500", "503"];
    for f in 0..25 {
        let family = format!("app_requests_{f}");
        let counter = if om {
            family.clone()
        } else {
            format!("{family}_total")
        };
        let _ = writeln!(out, "# HELP {counter} Requests handled, by path and code.");
        let _ = writeln!(out, "# TYPE {counter} counter");
        for (i, (path, code)) in paths
            .iter()
            .flat_map(|p| codes.iter().map(move |c| (p, c)))
            .enumerate()
        {
            let _ = writeln!(
                out,
                "{family}_total{{job=\"app\",instance=\"10.1.2.{f}:8080\",path=\"{path}\",code=\"{code}\"}} {}",
                1_000 * f + 37 * i
            );
        }
    }
    for f in 0..10 {
        let _ = writeln!(out, "# HELP app_pool_bytes_{f} Bytes in use per pool.");
        let _ = writeln!(out, "# TYPE app_pool_bytes_{f} gauge");
        for i in 0..20 {
            let _ = writeln!(
                out,
                "app_pool_bytes_{f}{{job=\"app\",instance=\"10.1.2.3:8080\",pool=\"pool-{i}\"}} {}e+06",
                1.0 + f64::from(i) * 0.123_456
            );
        }
    }
    let bounds = ["0.005", "0.01", "0.05", "0.1", "0.5", "1.0", "10.0", "+Inf"];
    for h in 0..3 {
        let name = format!("app_request_duration_seconds_{h}");
        let _ = writeln!(out, "# HELP {name} Request latency.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for s in 0..10 {
            let labels = format!("job=\"app\",instance=\"10.1.2.3:8080\",handler=\"h{s}\"");
            let mut count = 0;
            for (b, le) in bounds.iter().enumerate() {
                count += b * 3;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}.25", count * 2);
            let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    out
}

/// Parses `body` the way a scrape loop does; returns a checksum so nothing is optimised out.
fn scrape(body: &[u8], format: Format, checks: bool) -> f64 {
    let mut parser = Parser::new(body, format);
    if !checks {
        parser = parser.without_semantic_checks();
    }
    let mut sum = 0.0;
    for entry in parser {
        if let Ok(Entry::Sample(s)) = entry {
            sum += s.value;
            for (name, value) in s.labels.iter() {
                sum += (name.len() + value.len()) as f64;
            }
        }
    }
    sum
}

fn count_samples(body: &[u8], format: Format) -> u64 {
    Parser::new(body, format)
        .map(|e| e.expect("benchmark input parses"))
        .filter(|e| matches!(e, Entry::Sample(_)))
        .count() as u64
}

fn bench_inputs(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    per_sample: bool,
) {
    let text = generated(Format::PrometheusText);
    let om = generated(Format::OpenMetrics);
    let inputs: [(&str, &[u8], Format, bool); 4] = [
        (
            "node_exporter/text",
            NODE_EXPORTER,
            Format::PrometheusText,
            true,
        ),
        (
            "1000_series/text",
            text.as_bytes(),
            Format::PrometheusText,
            true,
        ),
        (
            "1000_series/openmetrics",
            om.as_bytes(),
            Format::OpenMetrics,
            true,
        ),
        (
            "1000_series/openmetrics_grammar_only",
            om.as_bytes(),
            Format::OpenMetrics,
            false,
        ),
    ];
    for (name, body, format, checks) in inputs {
        group.throughput(if per_sample {
            Throughput::Elements(count_samples(body, format))
        } else {
            Throughput::Bytes(body.len() as u64)
        });
        group.bench_function(name, |b| b.iter(|| scrape(black_box(body), format, checks)));
    }
}

fn parse(c: &mut Criterion) {
    for (name, body, format) in [
        (
            "node_exporter",
            NODE_EXPORTER.to_vec(),
            Format::PrometheusText,
        ),
        (
            "1000_series text",
            generated(Format::PrometheusText).into_bytes(),
            Format::PrometheusText,
        ),
        (
            "1000_series openmetrics",
            generated(Format::OpenMetrics).into_bytes(),
            Format::OpenMetrics,
        ),
    ] {
        eprintln!(
            "{name}: {} bytes, {} samples",
            body.len(),
            count_samples(&body, format)
        );
    }
    let mut group = c.benchmark_group("parse_bytes");
    group.measurement_time(Duration::from_secs(4));
    bench_inputs(&mut group, false);
    group.finish();
    let mut group = c.benchmark_group("parse_samples");
    group.measurement_time(Duration::from_secs(4));
    bench_inputs(&mut group, true);
    group.finish();
}

/// What a scrape loop does with a body after fetching it: parse, labels through the target's
/// scrape cache (cold: a new target; warm: every later scrape), encode, and compress the batch.
fn scrape_batch(c: &mut Criterion) {
    let target = vec![
        Label::new("instance", "10.1.2.3:9100"),
        Label::new("job", "node"),
    ];
    let opts = SeriesOptions {
        target_labels: &target,
        ..Default::default()
    };
    let limits = BatchLimits {
        honor_timestamps: true,
        sample_limit: 0,
    };
    // A loop's cache keeps the target labels once (ScrapeCache::share_labels).
    let mut shared = Vec::new();
    promrelay::prompb::encode_labels_into(
        target.iter().map(|l| (l.name.as_str(), l.value.as_str())),
        &mut shared,
    );
    let new_cache = || {
        let mut cache = ScrapeCache::default();
        if std::env::var_os("SCRAPE_UNSHARED").is_none() {
            cache
                .share_labels(&shared)
                .expect("an empty cache takes any set");
        }
        cache
    };
    let text = generated(Format::PrometheusText);
    // SCRAPE_BODY=FILE adds a body of your own (for example the one bench-scrape.sh serves).
    let own =
        std::env::var_os("SCRAPE_BODY").map(|f| std::fs::read(f).expect("SCRAPE_BODY is readable"));
    let mut group = c.benchmark_group("scrape_batch");
    group.measurement_time(Duration::from_secs(4));
    let mut inputs = vec![
        ("node_exporter", NODE_EXPORTER),
        ("1000_series", text.as_bytes()),
    ];
    if let Some(own) = &own {
        inputs.push(("SCRAPE_BODY", own));
    }
    for (name, body) in inputs {
        group.throughput(Throughput::Elements(count_samples(
            body,
            Format::PrometheusText,
        )));
        let mut batch = WriteRequestEncoder::new();
        let mut scrape_body = |body: &[u8], cache: &mut ScrapeCache, compress: bool| {
            cache.begin();
            build_batch(
                body,
                Format::PrometheusText,
                &opts,
                limits,
                1,
                cache,
                &mut batch,
            )
            .expect("benchmark input scrapes");
            cache.finish(&mut batch, 1);
            let n = if compress {
                promrelay::prompb::compress(batch.as_bytes()).len()
            } else {
                batch.as_bytes().len()
            };
            batch.clear();
            n
        };
        let mut run = |cache: &mut ScrapeCache, compress: bool| scrape_body(body, cache, compress);
        group.bench_function(format!("{name}/cold_cache"), |b| {
            b.iter(|| run(&mut new_cache(), false))
        });
        let mut cache = new_cache();
        group.bench_function(format!("{name}/warm_cache"), |b| {
            b.iter(|| run(&mut cache, false))
        });
        group.bench_function(format!("{name}/warm_cache_compressed"), |b| {
            b.iter(|| run(&mut cache, true))
        });
        // 300 targets scraped in turn: each scrape finds its cache gone from the CPU's caches.
        let mut caches: Vec<ScrapeCache> = (0..300).map(|_| new_cache()).collect();
        for cache in &mut caches {
            run(cache, false);
        }
        let mut next = 0;
        group.bench_function(format!("{name}/warm_cache_300_targets_compressed"), |b| {
            b.iter(|| {
                next = (next + 1) % caches.len();
                run(&mut caches[next], true)
            })
        });
        // As the scraper meets them: 200 targets, each with its own body in its own memory
        // (22 MB of bodies, past the L2 cache) and its own cache, scraped in turn.
        let bodies: Vec<Vec<u8>> = (0..200).map(|_| body.to_vec()).collect();
        let mut caches: Vec<ScrapeCache> = (0..200).map(|_| new_cache()).collect();
        for (body, cache) in bodies.iter().zip(&mut caches) {
            scrape_body(body, cache, false);
        }
        let mut next = 0;
        group.bench_function(format!("{name}/200_bodies_compressed"), |b| {
            b.iter(|| {
                next = (next + 1) % bodies.len();
                scrape_body(&bodies[next], &mut caches[next], true)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse, scrape_batch);
criterion_main!(benches);
