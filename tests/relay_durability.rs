//! What the relay promises about acknowledged data: it waits on disk while a storage is down,
//! survives SIGKILL and SIGTERM, and reaches the storage once it is back.

mod common;

use std::time::{Duration, Instant};

use common::Peers;
use common::relay::{FakeStorage, Pushes, Relay};

#[tokio::test]
async fn stopped_storage_backlog_grows_and_drains_after_restart() {
    let mut vm = Peers::victoria_metrics().start().await;
    let other = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[vm.remote_write_url(), other.url()])
        .start()
        .await;
    let pushes = Pushes::new("relay_backlog", 20, 10);

    vm.stop().await;
    relay.push_all_accepted(&pushes).await;

    let at_the_other = other
        .samples_at_least(pushes.metric(), pushes.sample_count())
        .await;
    assert_eq!(at_the_other, pushes.expected());
    let backlog = relay
        .wait_for_queue(0, "20 blocks waiting, retrying", |q| {
            q["pending_blocks"] == 20 && q["state"] == "retrying"
        })
        .await;
    assert!(backlog["pending_bytes"].as_u64() > Some(0), "{backlog}");
    assert!(!backlog["last_error"].is_null(), "{backlog}");
    let other_queue = relay.queue(1).await;
    assert_eq!(other_queue["pending_blocks"], 0, "{other_queue}");
    assert_eq!(other_queue["state"], "ok", "{other_queue}");

    vm.start_again().await;

    let at_vm = vm
        .export_at_least(pushes.metric(), pushes.sample_count())
        .await;
    assert_eq!(at_vm, pushes.expected());
    let drained = relay
        .wait_for_queue(0, "drained and ok", |q| {
            q["pending_blocks"] == 0 && q["state"] == "ok"
        })
        .await;
    assert_eq!(drained["pending_bytes"], 0, "{drained}");
    assert_eq!(drained["sent_blocks_total"], 20, "{drained}");
    assert_eq!(drained["dropped_blocks_total"], 0, "{drained}");
}

#[tokio::test]
async fn acknowledged_pushes_survive_sigkill_while_storage_is_down() {
    let mut storage = FakeStorage::new().start().await;
    let mut relay = Relay::with_storages(&[storage.url()]).start().await;
    let pushes = Pushes::new("relay_sigkill_down", 30, 5);

    storage.stop().await;
    relay.push_all_accepted(&pushes).await;
    relay.kill().await;
    relay.start_again().await;

    let queue = relay.queue(0).await;
    assert_eq!(queue["pending_blocks"], 30, "{queue}");
    storage.start_again().await;
    storage.every_sample_of(&pushes.expected()).await;
    relay.wait_until_drained().await;
}

#[tokio::test]
async fn concurrent_pushes_with_fsync_always_survive_sigkill() {
    let mut first = FakeStorage::new().start().await;
    let mut second = FakeStorage::new().start().await;
    let mut relay = Relay::with_storages(&[first.url(), second.url()])
        .arg("--fsync")
        .arg("always")
        .start()
        .await;
    // One metric per client: each client keeps its own series in order.
    let clients: Vec<Pushes> = (0..4)
        .map(|c| Pushes::new(&format!("relay_fsync_always_{c}"), 15, 3))
        .collect();

    first.stop().await;
    second.stop().await;
    tokio::join!(
        relay.push_all_accepted(&clients[0]),
        relay.push_all_accepted(&clients[1]),
        relay.push_all_accepted(&clients[2]),
        relay.push_all_accepted(&clients[3]),
    );
    relay.kill().await;
    relay.start_again().await;
    first.start_again().await;
    second.start_again().await;

    for pushes in &clients {
        first.every_sample_of(&pushes.expected()).await;
        second.every_sample_of(&pushes.expected()).await;
    }
    relay.wait_until_drained().await;
}

#[tokio::test]
async fn sigkill_during_sending_loses_nothing() {
    // A slow storage and one or two blocks per request make a backlog that drains for a while.
    let storage = FakeStorage::new()
        .answering_after(Duration::from_millis(30))
        .start()
        .await;
    let mut relay = Relay::with_storages(&[storage.url()])
        .storage_setting("max_block_bytes: 1KiB")
        .start()
        .await;
    let pushes = Pushes::new("relay_sigkill_sending", 100, 5);

    relay.push_all_accepted(&pushes).await;
    common::eventually(
        "the storage to have taken a few requests",
        common::EVENTUALLY_TIMEOUT,
        || async {
            let taken = storage.accepted_requests().len();
            if taken >= 3 {
                Ok(())
            } else {
                Err(format!("{taken}"))
            }
        },
    )
    .await;
    relay.kill().await;
    let taken_before_kill = storage.accepted_requests().len();
    assert!(
        common::sample_count(&storage.series(pushes.metric())) < pushes.sample_count(),
        "the backlog was still draining at the kill"
    );
    relay.start_again().await;

    storage.every_sample_of(&pushes.expected()).await;
    relay.wait_until_drained().await;
    assert!(storage.accepted_requests().len() > taken_before_kill);
}

#[tokio::test]
async fn sigterm_exits_zero_promptly_and_restart_resumes() {
    let mut storage = FakeStorage::new().start().await;
    let mut relay = Relay::with_storages(&[storage.url()]).start().await;
    let pushes = Pushes::new("relay_sigterm", 10, 5);

    // Down, so the sender is busy retrying when the signal comes.
    storage.stop().await;
    relay.push_all_accepted(&pushes).await;
    let asked = Instant::now();
    let exit = relay.terminate().await;
    let took = asked.elapsed();

    assert!(exit.success(), "relay exited with {exit}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    relay.start_again().await;
    let queue = relay.queue(0).await;
    assert_eq!(queue["pending_blocks"], 10, "{queue}");
    storage.start_again().await;
    let received = storage
        .samples_at_least(pushes.metric(), pushes.sample_count())
        .await;
    assert_eq!(received, pushes.expected());
    relay.wait_until_drained().await;
}
