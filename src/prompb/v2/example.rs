//! [`RequestBuilder`] and [`example_request`]: 2.0 requests built as a sender builds them, for
//! tests and benchmarks (encoded by prost from the generated types, never by our own encoder).

use std::collections::HashMap;

use super::proto;
use crate::prompb::{Label, TimeSeries, WriteRequest, example_write_request};

/// Builds a 2.0 request as a sender does: every string interned once in `symbols`, `""` first.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    request: proto::Request,
    index: HashMap<String, u32>,
}

impl Default for RequestBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestBuilder {
    pub fn new() -> Self {
        RequestBuilder {
            request: proto::Request {
                symbols: vec![String::new()],
                timeseries: Vec::new(),
            },
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    /// The ref of `s`, interned on first use.
    pub fn symbol(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = u32::try_from(self.request.symbols.len()).expect("fewer than 2^32 symbols");
        self.request.symbols.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }

    /// The name/value refs of `labels`, in order.
    pub fn label_refs(&mut self, labels: &[Label]) -> Vec<u32> {
        labels
            .iter()
            .flat_map(|l| [self.symbol(&l.name), self.symbol(&l.value)])
            .collect()
    }

    /// Appends a series with `labels` and nothing else; fill it through [`Self::last`].
    pub fn series(&mut self, labels: &[Label]) -> &mut proto::TimeSeries {
        let labels_refs = self.label_refs(labels);
        self.request.timeseries.push(proto::TimeSeries {
            labels_refs,
            ..Default::default()
        });
        self.last()
    }

    /// Appends the 2.0 form of a 1.0 series' labels and float samples.
    pub fn v1_series(&mut self, ts: &TimeSeries) -> &mut proto::TimeSeries {
        let series = self.series(&ts.labels);
        series.samples = ts
            .samples
            .iter()
            .map(|s| proto::Sample {
                value: s.value,
                timestamp: s.timestamp,
                start_timestamp: 0,
            })
            .collect();
        series
    }

    /// The series appended last.
    ///
    /// # Panics
    /// When no series was appended yet.
    pub fn last(&mut self) -> &mut proto::TimeSeries {
        self.request
            .timeseries
            .last_mut()
            .expect("a series was appended")
    }

    /// The request so far.
    pub fn request(&self) -> &proto::Request {
        &self.request
    }

    /// The request so far, to change freely (for example to break a rule on purpose).
    pub fn request_mut(&mut self) -> &mut proto::Request {
        &mut self.request
    }

    pub fn build(self) -> proto::Request {
        self.request
    }
}

impl From<&WriteRequest> for RequestBuilder {
    /// The 2.0 form of a 1.0 request's series and float samples.
    fn from(v1: &WriteRequest) -> Self {
        let mut b = RequestBuilder::new();
        for ts in &v1.timeseries {
            b.v1_series(ts);
        }
        b
    }
}

/// The 2.0 form of [`example_write_request`]`(series, samples_per_series, t0_ms)`; with
/// `metadata`, every series carries counter metadata with a help text, as Prometheus 3 sends.
pub fn example_request(
    series: usize,
    samples_per_series: usize,
    t0_ms: i64,
    metadata: bool,
) -> proto::Request {
    let mut b = RequestBuilder::from(&example_write_request(series, samples_per_series, t0_ms));
    if metadata {
        let help_ref = b.symbol("Requests served, by handler, method and status.");
        for ts in &mut b.request_mut().timeseries {
            ts.metadata = Some(proto::Metadata {
                r#type: proto::metadata::MetricType::Counter as i32,
                help_ref,
                unit_ref: 0,
            });
        }
    }
    b.build()
}
