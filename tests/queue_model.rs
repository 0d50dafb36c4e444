//! Model test: random sequences of append / read / ack / flush / close+reopen against a plain
//! in-memory model. Close persists the position, so the model is exact: after a reopen the queue
//! yields the blocks after the gap-free acknowledged prefix, in order (blocks acknowledged after a
//! gap come again: that is the at-least-once promise, nothing else may).

use promrelay::queue::{BlockId, Options, Queue, SyncPolicy};
use proptest::prelude::*;
use queue_helpers::{block, options};

#[path = "common/queue.rs"]
mod queue_helpers;

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Read,
    /// Acknowledge the in-flight block at this index (modulo the number in flight).
    Ack(usize),
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..3000).prop_map(Op::Append),
        4 => Just(Op::Read),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

struct ModelBlock {
    payload: Vec<u8>,
    read: bool,
    acked: bool,
    id: Option<BlockId>,
}

fn opts() -> Options {
    options(4096, SyncPolicy::Never)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut q = Some(Queue::open(dir.path(), opts()).expect("open"));
    // Blocks not yet behind the persisted gap-free acknowledged prefix, in append order.
    let mut model: Vec<ModelBlock> = Vec::new();
    let mut next = 0u32;
    for op in ops {
        let queue = q.as_ref().expect("queue open");
        match op {
            Op::Append(len) => {
                let p = block(next, len + 8);
                next += 1;
                queue.append(&p, 1).expect("append");
                model.push(ModelBlock {
                    payload: p,
                    read: false,
                    acked: false,
                    id: None,
                });
            }
            Op::Read => {
                let got = queue.read().expect("read");
                let want = model.iter_mut().find(|b| !b.read);
                match (got, want) {
                    (None, None) => {}
                    (Some(g), Some(w)) => {
                        prop_assert_eq!(&g.payload[..], &w.payload[..]);
                        w.read = true;
                        w.id = Some(g.id);
                    }
                    (g, w) => {
                        return Err(TestCaseError::fail(format!(
                            "queue gave {:?}, model expected {:?}",
                            g.map(|b| b.payload.len()),
                            w.map(|b| b.payload.len())
                        )));
                    }
                }
            }
            Op::Ack(i) => {
                let inflight: Vec<usize> = model
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.read && !b.acked)
                    .map(|(i, _)| i)
                    .collect();
                if !inflight.is_empty() {
                    let k = inflight[i % inflight.len()];
                    queue.ack(model[k].id.expect("read blocks have ids"));
                    model[k].acked = true;
                }
            }
            Op::Flush => queue.flush().expect("flush"),
            Op::Reopen => {
                q.take().expect("queue").close().expect("close");
                let prefix = model.iter().take_while(|b| b.acked).count();
                model.drain(..prefix);
                for b in &mut model {
                    b.read = false;
                    b.acked = false;
                    b.id = None;
                }
                q = Some(Queue::open(dir.path(), opts()).expect("reopen"));
            }
        }
        let st = q.as_ref().expect("queue").stats();
        // Pending means "after the gap-free acknowledged prefix", like pending_bytes.
        let pending = model.iter().skip_while(|b| b.acked).count() as u64;
        prop_assert_eq!(st.pending_blocks, pending, "pending blocks");
    }
    // Finally everything unacknowledged comes out in order after one more reopen.
    q.take().expect("queue").close().expect("close");
    let prefix = model.iter().take_while(|b| b.acked).count();
    let want: Vec<&[u8]> = model[prefix..].iter().map(|b| &b.payload[..]).collect();
    let queue = Queue::open(dir.path(), opts()).expect("final open");
    let mut got = Vec::new();
    while let Some(b) = queue.read().expect("read") {
        got.push(b.payload.to_vec());
    }
    let got: Vec<&[u8]> = got.iter().map(|v| &v[..]).collect();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn queue_matches_model_across_reopens(ops in prop::collection::vec(op(), 1..200)) {
        run(ops)?;
    }
}
