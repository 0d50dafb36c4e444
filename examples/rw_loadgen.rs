//! A small remote-write load generator: the client side of `scripts/bench-vs-vmagent.sh`.
//!
//! It pushes pre-encoded, snappy-compressed `WriteRequest`s to one URL over `--connections`
//! keep-alive HTTP/1.1 connections, either as fast as the receiver answers (closed loop, the
//! default) or at a fixed `--rate` of pushes per second (open loop with bounded concurrency: a push
//! that is late starts as soon as a connection is free). It stops after `--duration`, after
//! `--pushes`, or on SIGINT/SIGTERM, waits for the pushes in flight, and prints one `result` line
//! on stdout with `key=value` fields that the script parses, plus a readable summary on stderr.
//!
//! The load is shaped like what a Prometheus server sends: each push holds `--series` distinct
//! series (10 labels each, from [`promrelay::prompb::example_write_request`]) with
//! `--samples-per-series` samples each; the default 10,000 × 1 is one remote-write shard's batch
//! with Prometheus' `max_samples_per_send: 10000` (samples of one batch are of different series).
//! The ring of bodies is `--shards` disjoint sets of series (one Prometheus holding shards ×
//! series series) times `--scrapes` consecutive scrapes 15 s apart, so no two bodies in the ring
//! are equal and timestamps advance from one scrape to the next. Bodies are encoded before the
//! clock starts: sending one costs the generator a reference count and the socket writes, which
//! keeps it light beside the proxy on a 2-core machine.
//!
//! For a listener with TLS and basic auth, `--ca-file` trusts that CA for https URLs and
//! `--basic-auth USER:PASSWORD` sends the credentials with every push (the header is encoded once).
//!
//! `cargo run --release --example rw_loadgen -- --url http://127.0.0.1:8431/api/v1/write
//! --connections 4 --duration 20s`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use promrelay::prompb::{WriteRequest, compress, example_write_request};
use prost::Message;

#[derive(Parser, Debug)]
#[command(about = "Pushes realistic Prometheus remote-write requests to one URL")]
struct Args {
    /// Push endpoint, e.g. http://127.0.0.1:8431/api/v1/write
    #[arg(long)]
    url: String,
    /// Concurrent keep-alive connections (pushes in flight at most)
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Stop starting pushes after this long (e.g. 20s, 500ms, 2m)
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many pushes have been started
    #[arg(long)]
    pushes: Option<u64>,
    /// Pushes per second for all connections together; 0 means as fast as answered
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Distinct series per push
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Samples per series per push (15 s apart)
    #[arg(long, default_value_t = 1)]
    samples_per_series: usize,
    /// Disjoint sets of series in the ring (one source with shards × series series)
    #[arg(long, default_value_t = 8)]
    shards: usize,
    /// Consecutive scrapes of every shard in the ring
    #[arg(long, default_value_t = 8)]
    scrapes: usize,
    /// Per-request timeout
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,
    /// PEM file of a CA to trust for https URLs (e.g. the benchmark's own CA)
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// Basic-auth credentials sent with every push, as USER:PASSWORD
    #[arg(long)]
    basic_auth: Option<String>,
    /// Print the ring's size and exit without sending
    #[arg(long)]
    dry_run: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1e3,
        "" | "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Counters shared by the workers; each push is counted once, when its answer (or error) arrives.
#[derive(Default)]
struct Tally {
    started: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    /// The first few failure reasons, for the summary.
    reasons: std::sync::Mutex<Vec<String>>,
    /// Latency of every accepted push, in microseconds (a few MB for a long run).
    latencies_us: std::sync::Mutex<Vec<u32>>,
}

impl Tally {
    fn fail(&self, reason: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut r = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() < 5 && !r.contains(&reason) {
            r.push(reason);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.series == 0 || args.samples_per_series == 0 {
        bail!("--connections, --series and --samples-per-series must be at least 1");
    }
    if args.shards == 0 || args.scrapes == 0 {
        bail!("--shards and --scrapes must be at least 1");
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a non-negative number");
    }
    let built = Instant::now();
    let ring = build_ring(&args);
    let raw: usize = ring.iter().map(|b| b.raw_len).sum();
    let sent: usize = ring.iter().map(|b| b.body.len()).sum();
    eprintln!(
        "rw_loadgen: ring of {} bodies, {} samples each, {:.2} MB protobuf / {:.2} MB snappy per push on average, built in {:.1} s",
        ring.len(),
        args.series * args.samples_per_series,
        raw as f64 / ring.len() as f64 / 1e6,
        sent as f64 / ring.len() as f64 / 1e6,
        built.elapsed().as_secs_f64()
    );
    if args.dry_run {
        return Ok(());
    }
    // One thread is plenty for a few hundred pushes a second, and leaves the machine to the proxy.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run(args, ring.into_iter().map(|b| b.body).collect()))
}

/// The HTTP/1.1 client of all connections: trusts `--ca-file` if given, and sends `--basic-auth`
/// as a default header (encoded once, marked sensitive so it never shows in debug output).
fn build_client(args: &Args) -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a default TLS provider; install ring once for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(args.connections)
        .timeout(args.timeout);
    if let Some(path) = &args.ca_file {
        let pem =
            std::fs::read(path).with_context(|| format!("reading --ca-file {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("parsing --ca-file {}", path.display()))?;
        if certs.is_empty() {
            bail!("--ca-file {} holds no certificate", path.display());
        }
        for cert in certs {
            b = b.add_root_certificate(cert);
        }
    }
    if let Some(creds) = &args.basic_auth {
        if !creds.contains(':') {
            bail!("--basic-auth must be USER:PASSWORD");
        }
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(creds);
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Basic {token}"))
            .context("--basic-auth does not make a valid header")?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        b = b.default_headers(headers);
    }
    b.build().context("building the HTTP client")
}

struct Encoded {
    body: Bytes,
    raw_len: usize,
}

/// Encodes shards × scrapes distinct bodies: shard `h` holds series `h*series..(h+1)*series` of one
/// large source, scrape `s` moves every timestamp `s * samples_per_series * 15 s` on and raises the
/// counters accordingly. Ordered scrape-major, so consecutive pushes carry different series.
fn build_ring(args: &Args) -> Vec<Encoded> {
    const T0_MS: i64 = 1_700_000_000_000;
    let step_ms = 15_000 * args.samples_per_series as i64;
    let source = example_write_request(args.series * args.shards, args.samples_per_series, T0_MS);
    let mut shards: Vec<WriteRequest> = Vec::with_capacity(args.shards);
    let mut series = source.timeseries.into_iter();
    for _ in 0..args.shards {
        shards.push(WriteRequest {
            timeseries: series.by_ref().take(args.series).collect(),
            metadata: Vec::new(),
        });
    }
    let mut ring = Vec::with_capacity(args.shards * args.scrapes);
    for scrape in 0..args.scrapes {
        for shard in &mut shards {
            if scrape > 0 {
                for ts in &mut shard.timeseries {
                    // A counter's rate per sample is the gap between its first two samples, or 1.
                    let rate = match ts.samples.as_slice() {
                        [a, b, ..] => b.value - a.value,
                        _ => 1.0,
                    };
                    for s in &mut ts.samples {
                        s.timestamp += step_ms;
                        s.value += rate * args.samples_per_series as f64;
                    }
                }
            }
            let raw = shard.encode_to_vec();
            ring.push(Encoded {
                body: Bytes::from(compress(&raw)),
                raw_len: raw.len(),
            });
        }
    }
    ring
}

async fn run(args: Args, ring: Vec<Bytes>) -> anyhow::Result<()> {
    let client = build_client(&args)?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let ring = Arc::new(ring);
    let url: Arc<str> = args.url.as_str().into();
    let samples_per_push = (args.series * args.samples_per_series) as u64;
    let start = tokio::time::Instant::now();
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let deadline = args.duration.map(|d| start + d);
    let limit = args.pushes.unwrap_or(u64::MAX);

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let (client, tally, stop, ring, url) = (
            client.clone(),
            Arc::clone(&tally),
            Arc::clone(&stop),
            Arc::clone(&ring),
            Arc::clone(&url),
        );
        workers.spawn(async move {
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let n = tally.started.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                if let Some(iv) = interval {
                    let due = start + iv.mul_f64(n as f64);
                    if deadline.is_some_and(|d| due >= d) {
                        break;
                    }
                    tokio::time::sleep_until(due).await;
                }
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    break;
                }
                let body = ring[(n % ring.len() as u64) as usize].clone();
                let sent = Instant::now();
                let answer = client
                    .post(&*url)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(resp) => {
                        let status = resp.status();
                        // Read the answer to the end so the connection goes back to the pool.
                        let text = resp.bytes().await.unwrap_or_default();
                        if status.is_success() {
                            let us = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                            tally
                                .latencies_us
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(us);
                        } else {
                            let text = String::from_utf8_lossy(&text);
                            tally.fail(format!("HTTP {status}: {}", text.trim()));
                        }
                    }
                    Err(e) => tally.fail(format!("{e}")),
                }
            }
        });
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let all_done = async { while workers.join_next().await.is_some() {} };
    tokio::pin!(all_done);
    tokio::select! {
        _ = &mut all_done => {}
        _ = term.recv() => { stop.store(true, Ordering::Relaxed); all_done.await; }
        _ = tokio::signal::ctrl_c() => { stop.store(true, Ordering::Relaxed); all_done.await; }
    }
    let secs = start.elapsed().as_secs_f64();

    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let mut lat =
        std::mem::take(&mut *tally.latencies_us.lock().unwrap_or_else(|e| e.into_inner()));
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1e3
        }
    };
    let reasons = tally
        .reasons
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .join(" | ");
    eprintln!(
        "rw_loadgen: {ok} pushes accepted, {failed} failed in {secs:.2} s: {:.1} pushes/s, {:.0} samples/s, latency p50 {:.1} ms p99 {:.1} ms{}",
        ok as f64 / secs,
        (ok * samples_per_push) as f64 / secs,
        pct(0.5),
        pct(0.99),
        if reasons.is_empty() {
            String::new()
        } else {
            format!("; failures: {reasons}")
        }
    );
    println!(
        "result pushes_ok={ok} pushes_failed={failed} seconds={secs:.3} pushes_per_s={:.2} samples_per_push={samples_per_push} samples_ok={} p50_ms={:.2} p99_ms={:.2}",
        ok as f64 / secs,
        ok * samples_per_push,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
