//! The plain reference conversion the proptests hold [`Converter`](crate::prompb::v2::Converter) to: decode
//! with prost into the generated 2.0 types, check the 2.0 rules, build the 1.0 prost structs. Slow
//! and allocating, obviously right.

use std::collections::HashSet;

use super::CUSTOM_BUCKETS_SCHEMA;
use super::proto;
use crate::prompb::{
    BucketSpan, Exemplar, Histogram, Label, MetricMetadata, Sample, TimeSeries, WriteRequest,
    histogram,
};

/// Why the reference refused a request (coarser than [`V2Error`](super::V2Error): the tests only
/// compare refusals, not their details).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// prost refused the bytes.
    Decode,
    /// A 2.0 rule (`symbols[0]`, a ref, label pairs) was broken.
    Rule,
}

/// What the reference makes of a request: the 1.0 request and how many NHCB samples it dropped.
pub fn convert(bytes: &[u8]) -> Result<(WriteRequest, u64), Refusal> {
    let req = <proto::Request as prost::Message>::decode(bytes).map_err(|_| Refusal::Decode)?;
    let symbols = &req.symbols;
    if symbols.first().is_some_and(|s| !s.is_empty())
        || (symbols.is_empty() && !req.timeseries.is_empty())
    {
        return Err(Refusal::Rule);
    }
    let symbol = |r: u32| symbols.get(r as usize).cloned().ok_or(Refusal::Rule);
    let labels = |refs: &[u32]| -> Result<Vec<Label>, Refusal> {
        if !refs.len().is_multiple_of(2) {
            return Err(Refusal::Rule);
        }
        refs.chunks(2)
            .map(|p| Ok(Label::new(symbol(p[0])?, symbol(p[1])?)))
            .collect()
    };
    let mut out = WriteRequest::default();
    let mut families = HashSet::new();
    let mut dropped = 0;
    for ts in &req.timeseries {
        let series_labels = labels(&ts.labels_refs)?;
        if let Some(m) = &ts.metadata {
            let (help, unit) = (symbol(m.help_ref)?, symbol(m.unit_ref)?);
            let name = series_labels.iter().find(|l| l.name == "__name__");
            if let Some(name) = name
                && (m.r#type != 0 || !help.is_empty() || !unit.is_empty())
            {
                let mut family = name.value.as_str();
                if [3, 4, 5].contains(&m.r#type) {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        if let Some(f) = family.strip_suffix(suffix)
                            && !f.is_empty()
                        {
                            family = f;
                            break;
                        }
                    }
                }
                if families.insert(family.to_string()) {
                    out.metadata.push(MetricMetadata {
                        r#type: m.r#type,
                        metric_family_name: family.to_string(),
                        help,
                        unit,
                    });
                }
            }
        }
        let exemplars = ts
            .exemplars
            .iter()
            .map(|e| {
                Ok(Exemplar {
                    labels: labels(&e.labels_refs)?,
                    value: e.value,
                    timestamp: e.timestamp,
                })
            })
            .collect::<Result<Vec<_>, Refusal>>()?;
        let samples: Vec<Sample> = ts
            .samples
            .iter()
            .map(|s| Sample {
                value: s.value,
                timestamp: s.timestamp,
            })
            .collect();
        let mut histograms = Vec::new();
        for h in &ts.histograms {
            if h.schema == CUSTOM_BUCKETS_SCHEMA {
                dropped += 1;
            } else {
                histograms.push(histogram_v1(h));
            }
        }
        if samples.is_empty() && histograms.is_empty() && exemplars.is_empty() {
            continue;
        }
        out.timeseries.push(TimeSeries {
            labels: series_labels,
            samples,
            exemplars,
            histograms,
        });
    }
    Ok((out, dropped))
}

fn histogram_v1(h: &proto::Histogram) -> Histogram {
    use proto::histogram::{Count, ZeroCount};
    let spans = |s: &[proto::BucketSpan]| {
        s.iter()
            .map(|s| BucketSpan {
                offset: s.offset,
                length: s.length,
            })
            .collect()
    };
    Histogram {
        count: h.count.as_ref().map(|c| match c {
            Count::CountInt(c) => histogram::Count::CountInt(*c),
            Count::CountFloat(c) => histogram::Count::CountFloat(*c),
        }),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count.as_ref().map(|c| match c {
            ZeroCount::ZeroCountInt(c) => histogram::ZeroCount::ZeroCountInt(*c),
            ZeroCount::ZeroCountFloat(c) => histogram::ZeroCount::ZeroCountFloat(*c),
        }),
        negative_spans: spans(&h.negative_spans),
        negative_deltas: h.negative_deltas.clone(),
        negative_counts: h.negative_counts.clone(),
        positive_spans: spans(&h.positive_spans),
        positive_deltas: h.positive_deltas.clone(),
        positive_counts: h.positive_counts.clone(),
        reset_hint: h.reset_hint,
        timestamp: h.timestamp,
        custom_values: h.custom_values.clone(),
    }
}
