//! The fake Kubernetes API server of the tests (tests/common/fake_kube/) as a standalone process,
//! for `scripts/bench-discovery.sh` and for trying a discovery client by hand.
//!
//! `cargo run --release --example fake_kube_apiserver -- --pods 10000 --storm-rate 1000 --storm-seconds 60`
//! then `kill -USR1 PID` for each storm.
//!
//! It loads the fixture cluster (tests/fixtures/kubernetes/) and `--pods` generated pods in
//! namespace `load` (shaped as the fixture's web pod), prints `listening on URL` and then, when it
//! gets SIGUSR1 (so a benchmark starts the storm once its clients have listed), makes
//! `--storm-rate` changes a second for `--storm-seconds`: half of them modify a pod (its Ready
//! condition flips and an annotation changes), half replace one (a pod is deleted and a new one
//! with a new name and IP added), so the pod count stays the same. It prints `storm start` and
//! `storm done` around each storm (one per SIGUSR1) and serves until killed.

#[path = "../tests/common/fake_kube/mod.rs"]
mod fake_kube;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use fake_kube::{FakeKube, Resource, fixtures};

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Generated pods in namespace `load`, beside the fixture cluster.
    #[arg(long, default_value_t = 0)]
    pods: u32,
    /// Changes a second during the storm.
    #[arg(long, default_value_t = 0)]
    storm_rate: u32,
    /// How long the storm lasts.
    #[arg(long, default_value_t = 0)]
    storm_seconds: u64,
    /// Changes the history keeps before a resourceVersion is too old (410 Gone).
    #[arg(long, default_value_t = 20_000)]
    history: usize,
    /// Print every request on stderr.
    #[arg(long)]
    print_requests: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut builder = FakeKube::builder()
        .listen(args.listen)
        .history_limit(args.history)
        .without_request_log();
    if args.print_requests {
        builder = builder.print_requests();
    }
    let kube = builder.start().await;
    kube.load_all_fixtures();
    let template = fixtures::pod("web-7d4b9c8f6-x2x9k");
    for i in 0..args.pods {
        kube.add(fixtures::fleet_pod(&template, i));
    }
    println!("listening on {}", kube.url());
    let mut usr1 = signal(SignalKind::user_defined1()).expect("listen for SIGUSR1");
    let mut fleet = Fleet {
        live: (0..args.pods).collect(),
        next: args.pods,
        changes: 0,
    };
    while usr1.recv().await.is_some() {
        println!("storm start");
        storm(&kube, &template, &args, &mut fleet).await;
        println!("storm done");
    }
}

/// The generated pods alive now, and the index the next new one gets.
struct Fleet {
    live: Vec<u32>,
    next: u32,
    changes: u64,
}

/// Makes `storm_rate` changes (watch events) a second, in 100 batches a second: a modification is
/// one event, a replacement two (DELETED, then ADDED).
async fn storm(kube: &FakeKube, template: &serde_json::Value, args: &Args, fleet: &mut Fleet) {
    let Fleet {
        live,
        next,
        changes: total,
    } = fleet;
    let mut changes: u64 = 0;
    let mut operations: u64 = 0;
    let start = Instant::now();
    let end = start + Duration::from_secs(args.storm_seconds);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut rng = fastrand::Rng::with_seed(11);
    while Instant::now() < end {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * f64::from(args.storm_rate)) as u64;
        while changes < due && !live.is_empty() {
            let slot = rng.usize(..live.len());
            let name = format!("fleet-{:06}", live[slot]);
            operations += 1;
            if operations.is_multiple_of(2) {
                kube.modify_with(Resource::Pods, "load", &name, |pod| {
                    let ready = pod["status"]["conditions"][2]["status"] == "True";
                    let flipped = if ready { "False" } else { "True" };
                    pod["status"]["conditions"][2]["status"] = json!(flipped);
                    pod["metadata"]["annotations"]["fake/change"] = json!(total.to_string());
                });
                changes += 1;
            } else {
                kube.delete(Resource::Pods, "load", &name);
                kube.add(fixtures::fleet_pod(template, *next));
                live[slot] = *next;
                *next += 1;
                changes += 2;
            }
        }
    }
    eprintln!(
        "storm: {changes} changes (watch events) in {:.1}s",
        start.elapsed().as_secs_f64()
    );
}
