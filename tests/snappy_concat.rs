//! Snappy blocks concatenated without recompression ([`concat_blocks_into`]), which is how the
//! sender merges queued pushes into one request: Rust's snap decodes the result to the
//! concatenated inputs however they were split, and so do the Go decoders of real
//! VictoriaMetrics and Prometheus receivers.

mod common;

use common::Peers;
use common::relay::{Pushes, Relay, assert_both_hold_exactly};
use promrelay::prompb::{compress, concat_blocks_into, decompress_bounded};
use proptest::prelude::*;

/// Inputs that compress into copies near and far (repeated runs) as well as literals.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4_000),
        prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 1..40), 1..200usize),
            0..20
        )
        .prop_map(|runs| {
            runs.into_iter()
                .flat_map(|(run, times)| run.repeat(times))
                .collect()
        }),
    ]
}

proptest! {
    #[test]
    fn concatenated_blocks_decode_to_the_concatenated_pieces(
        input in payload(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        cuts.extend([0, input.len()]);
        cuts.sort_unstable();
        let blocks: Vec<Vec<u8>> = cuts.windows(2).map(|w| compress(&input[w[0]..w[1]])).collect();

        let mut merged = Vec::new();
        concat_blocks_into(blocks.iter().map(Vec::as_slice), &mut merged).unwrap();

        prop_assert_eq!(decompress_bounded(&merged, input.len()).unwrap(), input);
    }
}

/// Pushes queued while both storages are down reach them merged (the sender concatenates what
/// waits in the queue), so the requests VictoriaMetrics and Prometheus decode are concatenated
/// blocks. A small `max_block_bytes` makes several merged requests, in order.
#[tokio::test]
async fn pushes_merged_while_storages_were_down_are_decoded_by_go_receivers() {
    let (mut vm, mut prometheus) = tokio::join!(
        Peers::victoria_metrics().start(),
        Peers::prometheus_receiver().start()
    );
    let relay = Relay::with_storages(&[vm.remote_write_url(), prometheus.remote_write_url()])
        .storage_setting("max_block_bytes: 64KiB")
        .start()
        .await;
    let pushes = Pushes::new("snappy_concat_merged", 200, 50);
    tokio::join!(vm.stop(), prometheus.stop());

    relay.push_all_accepted(&pushes).await;
    for i in 0..2 {
        relay
            .wait_for_queue(i, "every push waiting", |q| q["pending_blocks"] == 200)
            .await;
    }
    tokio::join!(vm.start_again(), prometheus.start_again());

    assert_both_hold_exactly(&vm, &prometheus, &pushes).await;
    for queue in relay.wait_until_drained().await {
        assert_eq!(queue["sent_blocks_total"], 200, "{queue}");
        assert_eq!(queue["rejected_blocks_total"], 0, "{queue}");
        // Every request either failed and was retried, or was taken. A merged request a
        // storage refused would be resent block by block: about 200 requests, not a dozen.
        let taken =
            queue["requests_total"].as_u64().unwrap() - queue["retries_total"].as_u64().unwrap();
        eprintln!("{}: 200 pushes in {taken} requests", queue["url"]);
        assert!(
            (2..=50).contains(&taken),
            "merged requests were taken: {queue}"
        );
    }
    let prometheus_log = prometheus.log().to_lowercase();
    assert!(
        !prometheus_log.contains("out of order") && !prometheus_log.contains("snappy"),
        "prometheus complains:\n{}",
        prometheus.log_tail()
    );
}
