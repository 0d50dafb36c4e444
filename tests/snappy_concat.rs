//! Snappy blocks concatenated without recompression ([`concat_blocks_into`]), which is how the
//! sender merges queued pushes into one request: Rust's snap decodes the result to the
//! concatenated inputs however they were split.

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
