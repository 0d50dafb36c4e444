//! What tenants cost a push: [`Fanout::push`] of a 1,000-sample block (100 series of 10 samples)
//! into the queues (page-cache writes, `--fsync never`), in samples per second.
//!
//! - `two_plain`: two ordinary storages, the push without a tenant: the path every push took
//!   before tenants existed, and still takes when no multitenant storage is configured.
//! - `plain_and_multitenant`: one ordinary storage and a multitenant one, the push with a tenant
//!   whose queue is open: the same two appends, plus the tenant lookup and the per-push list of
//!   target queues. The difference between the two is what tenants cost.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use promrelay::config::Config;
use promrelay::forward::{Fanout, Tenant};
use promrelay::prompb::{compress, example_write_request};
use prost::Message;

const SAMPLES: u32 = 1_000;

fn fanout(dir: &std::path::Path, multitenant: bool) -> Fanout {
    let second = if multitenant {
        "--remote-write-multitenant-url"
    } else {
        "--remote-write-url"
    };
    let mut args = vec![
        "promrelay".to_owned(),
        "--data-dir".to_owned(),
        dir.display().to_string(),
        "--fsync".to_owned(),
        "never".to_owned(),
        "--queue-max-bytes".to_owned(),
        "256MiB".to_owned(),
        "--remote-write-url".to_owned(),
        "http://127.0.0.1:1/api/v1/write".to_owned(),
    ];
    args.extend([second.to_owned(), "http://127.0.0.1:2".to_owned()]);
    let cfg = Config::from_args(args).expect("valid flags");
    Fanout::open(&cfg).expect("open the queues")
}

fn tenants(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let block = Bytes::from(compress(
        &example_write_request(100, 10, 1_700_000_000_000).encode_to_vec(),
    ));
    let mut group = c.benchmark_group("tenants");
    group.throughput(Throughput::Elements(u64::from(SAMPLES)));
    for (name, multitenant, tenant) in [
        ("two_plain", false, None),
        ("plain_and_multitenant", true, Some(Tenant::new(1, 2))),
    ] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fanout = fanout(dir.path(), multitenant);
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(fanout.push(black_box(block.clone()), SAMPLES, tenant))
                    .expect("queued")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tenants);
criterion_main!(benches);
