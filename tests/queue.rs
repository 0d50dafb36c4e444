//! The queue's behaviours, one per test. Tiny chunk files so rollover, caps and deletion happen.

use std::sync::Arc;
use std::time::Duration;

use promrelay::queue::{FullPolicy, Options, Queue, QueueError, SyncPolicy};

#[path = "common/queue.rs"]
mod queue_helpers;

use queue_helpers::{block, chunk_paths, options, read_and_ack_all};

fn small() -> Options {
    options(4096, SyncPolicy::Never)
}

#[test]
fn blocks_come_back_in_append_order() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), small()).unwrap();
    for i in 0..100 {
        q.append(&block(i, 100), 1).unwrap();
    }
    assert_eq!(read_and_ack_all(&q), (0..100).collect::<Vec<u32>>());
}

#[test]
fn unacknowledged_blocks_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Queue::open(dir.path(), small()).unwrap();
        for i in 0..50 {
            q.append(&block(i, 300), 1).unwrap();
        }
        // Read some without acknowledging.
        for _ in 0..10 {
            q.read().unwrap().unwrap();
        }
    }
    let q = Queue::open(dir.path(), small()).unwrap();
    assert_eq!(read_and_ack_all(&q), (0..50).collect::<Vec<u32>>());
}

#[test]
fn acknowledged_blocks_do_not_come_back_after_close() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Queue::open(dir.path(), small()).unwrap();
        for i in 0..20 {
            q.append(&block(i, 500), 1).unwrap();
        }
        for _ in 0..15 {
            let b = q.read().unwrap().unwrap();
            q.ack(b.id);
        }
        q.close().unwrap();
    }
    let q = Queue::open(dir.path(), small()).unwrap();
    assert_eq!(read_and_ack_all(&q), (15..20).collect::<Vec<u32>>());
}

#[test]
fn position_moves_only_over_a_gap_free_acknowledged_prefix() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Queue::open(dir.path(), small()).unwrap();
        for i in 0..5 {
            q.append(&block(i, 10), 1).unwrap();
        }
        let blocks: Vec<_> = (0..5).map(|_| q.read().unwrap().unwrap()).collect();
        // Acknowledge 0, 2, 3, 4 but not 1.
        for i in [0usize, 2, 3, 4] {
            q.ack(blocks[i].id);
        }
        assert_eq!(q.stats().pending_blocks, 4);
        q.close().unwrap();
    }
    let q = Queue::open(dir.path(), small()).unwrap();
    assert_eq!(read_and_ack_all(&q), (1..5).collect::<Vec<u32>>());
}

#[test]
fn rollover_creates_new_chunks_and_acknowledged_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), small()).unwrap();
    for i in 0..40 {
        q.append(&block(i, 1000), 1).unwrap();
    }
    assert!(chunk_paths(dir.path()).len() >= 10);
    assert_eq!(read_and_ack_all(&q).len(), 40);
    q.flush().unwrap();
    assert_eq!(chunk_paths(dir.path()).len(), 1);
    assert_eq!(q.stats().pending_bytes, 0);
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _q = Queue::open(dir.path(), small()).unwrap();
    match Queue::open(dir.path(), small()) {
        Err(QueueError::Locked { .. }) => {}
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn lock_is_released_on_close() {
    let dir = tempfile::tempdir().unwrap();
    Queue::open(dir.path(), small()).unwrap().close().unwrap();
    Queue::open(dir.path(), small()).unwrap();
}

#[test]
fn size_cap_drops_the_oldest_data_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(
        dir.path(),
        Options {
            max_bytes: Some(64 * 1024),
            ..small()
        },
    )
    .unwrap();
    for i in 0..200 {
        q.append(&block(i, 1000), 7).unwrap();
    }
    let st = q.stats();
    assert!(st.pending_bytes <= 64 * 1024, "{st:?}");
    assert!(st.dropped_blocks > 0);
    assert_eq!(st.dropped_items, st.dropped_blocks * 7);
    let got = read_and_ack_all(&q);
    assert_eq!(got.len() as u64 + st.dropped_blocks, 200);
    // What is left is the newest data, in order.
    assert_eq!(got, (got[0]..200).collect::<Vec<u32>>());
}

#[test]
fn reject_policy_refuses_appends_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(
        dir.path(),
        Options {
            max_bytes: Some(64 * 1024),
            full_policy: FullPolicy::Reject,
            ..small()
        },
    )
    .unwrap();
    let mut accepted = 0;
    let err = loop {
        match q.append(&block(accepted, 1000), 1) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
    };
    assert!(err.is_full(), "{err}");
    assert_eq!(q.stats().dropped_blocks, 0);
    assert_eq!(read_and_ack_all(&q).len() as u32, accepted);
    // Once drained, appends are accepted again.
    q.append(&block(0, 1000), 1).unwrap();
}

#[test]
fn oversized_block_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(
        dir.path(),
        Options {
            max_block_bytes: 100,
            ..small()
        },
    )
    .unwrap();
    let err = q.append(&[0u8; 101], 1).unwrap_err();
    assert!(matches!(err, QueueError::BlockTooLarge { .. }));
    assert!(!err.is_retryable());
}

#[test]
fn stats_count_pending_and_oldest_age() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), small()).unwrap();
    assert_eq!(q.stats().oldest_pending_unix_ms, None);
    q.append(b"hello", 3).unwrap();
    q.append(b"world", 4).unwrap();
    let st = q.stats();
    assert_eq!(st.pending_blocks, 2);
    assert_eq!(st.appended_blocks, 2);
    assert_eq!(st.appended_bytes, 10);
    assert!(st.oldest_pending_unix_ms.is_some());
    let b = q.read().unwrap().unwrap();
    assert_eq!(b.count, 3);
    q.ack(b.id);
    let st = q.stats();
    assert_eq!(st.pending_blocks, 1);
    assert_eq!(st.acked_blocks, 1);
}

#[test]
fn rewind_hands_out_unacknowledged_blocks_again() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), small()).unwrap();
    for i in 0..3 {
        q.append(&block(i, 10), 1).unwrap();
    }
    let a = q.read().unwrap().unwrap();
    q.ack(a.id);
    q.read().unwrap().unwrap();
    q.rewind();
    assert_eq!(
        read_and_ack_all(&q),
        vec![1, 2],
        "rewind restarts after the acknowledged prefix"
    );
}

#[test]
fn concurrent_appends_under_always_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let q = Arc::new(
        Queue::open(
            dir.path(),
            Options {
                sync: SyncPolicy::Always,
                chunk_bytes: 64 * 1024,
                ..Options::default()
            },
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for i in 0..50u32 {
                    q.append(&block(t * 1000 + i, 200), 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let got = read_and_ack_all(&q);
    assert_eq!(got.len(), 400);
    // Each thread's blocks are in that thread's order.
    for t in 0..8u32 {
        let mine: Vec<u32> = got.iter().copied().filter(|v| v / 1000 == t).collect();
        assert_eq!(mine, (0..50).map(|i| t * 1000 + i).collect::<Vec<_>>());
    }
}

#[test]
fn interval_policy_flushes_position_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(
        dir.path(),
        Options {
            sync: SyncPolicy::Interval(Duration::from_millis(20)),
            ..small()
        },
    )
    .unwrap();
    q.append(b"x", 1).unwrap();
    let b = q.read().unwrap().unwrap();
    q.ack(b.id);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !dir.path().join("position").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "position never written"
        );
        #[expect(
            clippy::disallowed_methods,
            reason = "a synchronous test polling for a file until a deadline"
        )]
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn new_queue_writes_its_position_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let _q = Queue::open(dir.path(), small()).unwrap();
    assert!(dir.path().join("position").exists());
}

#[test]
fn append_is_quick_only_while_the_block_fits_the_current_chunk_without_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), small()).unwrap();
    assert!(q.append_is_quick(100));
    // A block that would not fit the 4 KiB chunk rolls over (and fsyncs the sealed one).
    assert!(!q.append_is_quick(8192));
    while q.append_is_quick(500) {
        q.append(&block(1, 500), 1).unwrap();
    }
    assert_eq!(
        chunk_paths(dir.path()).len(),
        1,
        "quick appends never rolled over"
    );

    let dir = tempfile::tempdir().unwrap();
    let always = Options {
        sync: SyncPolicy::Always,
        ..small()
    };
    let q = Queue::open(dir.path(), always).unwrap();
    assert!(!q.append_is_quick(100), "every append fsyncs");
}

#[test]
fn a_quick_append_never_rolls_over_or_drops_for_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let capped = Options {
        max_bytes: Some(32 * 1024),
        full_policy: FullPolicy::DropOldest,
        ..small()
    };
    let q = Queue::open(dir.path(), capped).unwrap();
    let (mut slow, mut dropped) = (0, 0);
    for i in 0..300 {
        let len = 100 + (i as usize * 37) % 900;
        let quick = q.append_is_quick(len);
        let (chunks, before) = (chunk_paths(dir.path()).len(), q.stats().dropped_blocks);
        q.append(&block(i, len), 1).unwrap();
        let after = q.stats().dropped_blocks;
        if quick {
            assert_eq!(
                chunk_paths(dir.path()).len(),
                chunks,
                "append {i} was quick but rolled over"
            );
            assert_eq!(after, before, "append {i} was quick but dropped blocks");
        } else {
            slow += 1;
        }
        dropped += after - before;
    }
    assert!(
        dropped > 0 && slow > 0,
        "the cap and rollovers were reached"
    );
}
