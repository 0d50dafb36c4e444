//! A full disk does not wedge ingest: with the data directory on a small real filesystem and the
//! storage down, pushes are accepted until the disk is full and then answered 503; once the storage
//! is back and has every accepted sample, pushes are accepted again, without help, also after a
//! restart.
//!
//! Needs root (it mounts a tmpfs); it fails, not skips, without it.

mod common;
#[path = "common/tmpfs.rs"]
mod tmpfs;

use common::relay::{FakeStorage, Pushes, Relay};
use tmpfs::Tmpfs;

/// Pushes of `pushes` from number `from` on until the relay answers 503; returns the numbers it
/// accepted. Panics on any other answer, or if the disk never fills.
async fn push_until_disk_full(relay: &Relay, pushes: &Pushes, from: usize) -> Vec<usize> {
    let mut accepted = Vec::new();
    for i in from..pushes.count() {
        let (status, body) = relay.push(&pushes.request(i)).await;
        match status {
            204 => accepted.push(i),
            503 => {
                assert!(
                    body.contains("No space left on device"),
                    "a full disk says so: {body}"
                );
                return accepted;
            }
            other => panic!("push {i}: {other} {body}"),
        }
    }
    panic!("{} pushes never filled the disk", pushes.count());
}

/// Every push that is not in `accepted`.
fn refused(pushes: &Pushes, accepted: &[usize]) -> Vec<usize> {
    (0..pushes.count())
        .filter(|i| !accepted.contains(i))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_accepted_again_once_the_backlog_that_filled_the_disk_is_delivered() {
    let disk = Tmpfs::mount("256k");
    let mut storage = FakeStorage::new().start().await;
    let mut relay = Relay::with_storages(&[storage.url()])
        .data_dir(disk.path())
        .start()
        .await;
    // About 7 KiB per push in the queue: a 256 KiB disk fills after some 30.
    let backlog = Pushes::new("relay_disk_full_backlog", 400, 1000);

    storage.stop().await;
    let accepted = push_until_disk_full(&relay, &backlog, 0).await;
    assert!(accepted.len() > 10, "accepted {} pushes", accepted.len());
    let (status, body) = relay.push(&backlog.request(accepted.len() + 1)).await;
    assert_eq!(status, 503, "the disk is still full: {body}");

    storage.start_again().await;
    storage
        .every_sample_of(&backlog.expected_without(&refused(&backlog, &accepted)))
        .await;
    relay.wait_until_drained().await;

    let after = Pushes::new("relay_disk_full_after", 2, 1000);
    relay.push_accepted(&after.request(0)).await;

    // The same again, delivered across a restart.
    storage.stop().await;
    let second = Pushes::new("relay_disk_full_second", 400, 1000);
    let accepted = push_until_disk_full(&relay, &second, 0).await;
    assert!(!accepted.is_empty(), "the disk had room again");
    storage.start_again().await;
    storage
        .every_sample_of(&second.expected_without(&refused(&second, &accepted)))
        .await;
    relay.wait_until_drained().await;
    let exit = relay.terminate().await;
    assert!(exit.success(), "relay exited with {exit}");
    relay.start_again().await;

    relay.push_accepted(&after.request(1)).await;
    storage.every_sample_of(&after.expected()).await;
}
