//! [`example_request`]: realistic 2.0 load for tests and benchmarks.

use std::collections::HashMap;

use super::proto;
use crate::prompb::example_write_request;

/// The 2.0 form of [`example_write_request`]`(series, samples_per_series, t0_ms)` as a sender
/// builds it: strings interned in `symbols` (`""` first) in order of first use; with
/// `metadata`, every series carries counter metadata with a help text, as Prometheus 3 sends.
pub fn example_request(
    series: usize,
    samples_per_series: usize,
    t0_ms: i64,
    metadata: bool,
) -> proto::Request {
    let v1 = example_write_request(series, samples_per_series, t0_ms);
    let mut symbols = vec![String::new()];
    let mut index: HashMap<String, u32> = HashMap::from([(String::new(), 0)]);
    let mut sym = |s: &str| -> u32 {
        if let Some(&i) = index.get(s) {
            return i;
        }
        let i = u32::try_from(symbols.len()).expect("fewer than 2^32 symbols");
        symbols.push(s.to_owned());
        index.insert(s.to_owned(), i);
        i
    };
    let help_ref = sym("Requests served, by handler, method and status.");
    let timeseries = v1
        .timeseries
        .iter()
        .map(|ts| proto::TimeSeries {
            labels_refs: ts
                .labels
                .iter()
                .flat_map(|l| [sym(&l.name), sym(&l.value)])
                .collect(),
            samples: ts
                .samples
                .iter()
                .map(|s| proto::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                    start_timestamp: 0,
                })
                .collect(),
            metadata: metadata.then_some(proto::Metadata {
                r#type: proto::metadata::MetricType::Counter as i32,
                help_ref,
                unit_ref: 0,
            }),
            ..Default::default()
        })
        .collect();
    proto::Request {
        symbols,
        timeseries,
    }
}
