//! `GET /api/v1/targets`: the scraper's targets in Prometheus' JSON shape, so tools written for
//! Prometheus' API (and vmagent's) read it unchanged. The HTML page beside it is `targets.rs`.
//!
//! Guarantees: field names and value formats are Prometheus' (`lastScrape` as RFC 3339 with
//! milliseconds, its zero time for "never scraped"; intervals as Go durations); with scraping off
//! the answer is a success with no targets.
//!
//! Must not: change what the scraper does; it reads the [`TargetsView`] the scraper publishes.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use crate::config::format_go_duration;
use crate::prompb::Label;
use crate::scrape::manager::{ActiveTarget, TargetsView};
use crate::scrape::targets::DroppedTarget;

/// Prometheus' `/api/v1/targets` response over `view` (`None`: scraping is not configured),
/// serialized straight from the scraper's targets: with 10,000 discovered targets of ~45 labels
/// each, building a `serde_json::Value` tree first took ~180 MB for one request (heaptrack),
/// memory glibc then kept. Object keys are written in sorted order, as before.
pub fn render(view: Option<&TargetsView>) -> Response<'_> {
    Response { view }
}

/// See [`render`].
pub struct Response<'a> {
    view: Option<&'a TargetsView>,
}

impl Serialize for Response<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("data", &Data { view: self.view })?;
        map.serialize_entry("status", "success")?;
        map.end()
    }
}

struct Data<'a> {
    view: Option<&'a TargetsView>,
}

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(view) = self.view else {
            let mut map = serializer.serialize_map(Some(2))?;
            map.serialize_entry("activeTargets", &[(); 0])?;
            map.serialize_entry("droppedTargets", &[(); 0])?;
            return map.end();
        };
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("activeTargets", &Each(&view.active))?;
        // As Prometheus 2.47+: every job's count of dropped targets, listed or not.
        map.serialize_entry("droppedTargetCounts", &view.dropped_total)?;
        map.serialize_entry("droppedTargets", &Each(&view.dropped))?;
        map.end()
    }
}

/// A slice written as a JSON array of its items' API objects.
struct Each<'a, T>(&'a [T]);

impl<'a, T> Serialize for Each<'a, T>
where
    Api<'a, T>: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(&Api(item))?;
        }
        seq.end()
    }
}

/// One target as the API shows it.
struct Api<'a, T>(&'a T);

impl Serialize for Api<'_, ActiveTarget> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let h = self
            .0
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let t = &self.0.target;
        let mut map = serializer.serialize_map(Some(12))?;
        map.serialize_entry("discoveredLabels", &Labels(t.discovered_labels.iter()))?;
        map.serialize_entry("globalUrl", t.scrape_url.as_str())?;
        map.serialize_entry("health", &h.health)?;
        map.serialize_entry("labels", &Labels(pairs(&t.labels)))?;
        map.serialize_entry("lastError", &h.last_error)?;
        map.serialize_entry("lastSamples", &h.last_samples)?;
        map.serialize_entry("lastScrape", &rfc3339(h.last_scrape_unix_ms))?;
        map.serialize_entry("lastScrapeDuration", &h.last_scrape_duration.as_secs_f64())?;
        map.serialize_entry("scrapeInterval", &format_go_duration(t.interval))?;
        map.serialize_entry("scrapePool", &t.job)?;
        map.serialize_entry("scrapeTimeout", &format_go_duration(t.timeout))?;
        map.serialize_entry("scrapeUrl", t.scrape_url.as_str())?;
        map.end()
    }
}

impl Serialize for Api<'_, DroppedTarget> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("discoveredLabels", &Labels(d.discovered_labels.iter()))?;
        map.serialize_entry("reason", &d.reason.to_string())?;
        map.serialize_entry("scrapePool", &d.job)?;
        map.end()
    }
}

/// Labels as a JSON object, keys sorted (as Prometheus' and the earlier `Value` map wrote
/// them); a later label of a repeated name wins, as in a map.
struct Labels<I>(I);

impl<'a, I> Serialize for Labels<I>
where
    I: Iterator<Item = (&'a str, &'a str)> + Clone,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut names = self.0.clone().map(|(n, _)| n);
        let mut sorted_unique = true;
        if let Some(mut last) = names.next() {
            for n in names {
                sorted_unique &= last < n;
                last = n;
            }
        }
        if sorted_unique {
            return serializer.collect_map(self.0.clone());
        }
        let map: std::collections::BTreeMap<&str, &str> = self.0.clone().collect();
        serializer.collect_map(map)
    }
}

/// [`Labels`] of a `Label` slice.
fn pairs(labels: &[Label]) -> impl Iterator<Item = (&str, &str)> + Clone {
    labels.iter().map(Label::as_pair)
}

fn rfc3339(unix_ms: Option<u64>) -> String {
    match unix_ms {
        Some(ms) => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        // Prometheus' zero time for "never scraped".
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scrape::targets::DropReason;

    #[test]
    fn never_scraped_is_prometheus_zero_time() {
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn scraping_off_answers_success_with_no_targets() {
        let v = serde_json::to_value(render(None)).expect("serializes");
        assert_eq!(v["status"], "success");
        assert_eq!(v["data"]["activeTargets"], json!([]));
        assert_eq!(v["data"]["droppedTargets"], json!([]));
    }

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn dropped_targets_and_counts_are_written_in_prometheus_shape() {
        let view = TargetsView {
            active: Vec::new(),
            dropped: vec![DroppedTarget {
                job: "pods".to_owned(),
                discovered_labels: vec![label("__address__", "10.0.0.1:9100"), label("a", "\"")]
                    .into(),
                reason: DropReason::Relabeling,
            }],
            dropped_total: [("pods".to_owned(), 900)].into(),
        };
        let text = serde_json::to_string(&render(Some(&view))).expect("serializes");
        assert_eq!(
            text,
            r#"{"data":{"activeTargets":[],"droppedTargetCounts":{"pods":900},"droppedTargets":[{"discoveredLabels":{"__address__":"10.0.0.1:9100","a":"\""},"reason":"dropped by relabel_configs","scrapePool":"pods"}]},"status":"success"}"#
        );
    }

    #[test]
    fn labels_out_of_order_are_written_sorted_with_the_last_of_a_name() {
        let labels = [label("b", "1"), label("a", "2"), label("b", "3")];
        let text = serde_json::to_string(&Labels(pairs(&labels))).expect("serializes");
        assert_eq!(text, r#"{"a":"2","b":"3"}"#);
    }
}
