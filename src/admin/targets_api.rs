//! `GET /api/v1/targets`: the scraper's targets in Prometheus' JSON shape, so tools written for
//! Prometheus' API (and vmagent's) read it unchanged. The HTML page beside it is `targets.rs`.
//!
//! Guarantees: field names and value formats are Prometheus' (`lastScrape` as RFC 3339 with
//! milliseconds, its zero time for "never scraped"; intervals as Go durations); with scraping off
//! the answer is a success with no targets.
//!
//! Must not: change what the scraper does; it reads the [`TargetsView`] the scraper publishes.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::config::format_go_duration;
use crate::prompb::Label;
use crate::scrape::manager::TargetsView;

/// Prometheus' `/api/v1/targets` response; `None` means scraping is not configured.
pub fn render(view: Option<&TargetsView>) -> Value {
    let Some(view) = view else {
        return json!({"status": "success", "data": {"activeTargets": [], "droppedTargets": []}});
    };
    let active: Vec<Value> = view
        .active
        .iter()
        .map(|a| {
            let h = a.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let t = &a.target;
            json!({
                "discoveredLabels": labels_json(&t.discovered_labels),
                "labels": labels_json(&t.labels),
                "scrapePool": t.job,
                "scrapeUrl": t.scrape_url.as_str(),
                "globalUrl": t.scrape_url.as_str(),
                "lastError": h.last_error,
                "lastScrape": rfc3339(h.last_scrape_unix_ms),
                "lastScrapeDuration": h.last_scrape_duration.as_secs_f64(),
                "lastSamples": h.last_samples,
                "health": h.health,
                "scrapeInterval": format_go_duration(t.interval),
                "scrapeTimeout": format_go_duration(t.timeout),
            })
        })
        .collect();
    let dropped: Vec<Value> = view
        .dropped
        .iter()
        .map(|d| {
            json!({
                "discoveredLabels": labels_json(&d.discovered_labels),
                "scrapePool": d.job,
                "reason": d.reason.to_string(),
            })
        })
        .collect();
    // As Prometheus 2.47+: every job's count of dropped targets, listed or not.
    json!({"status": "success", "data": {
        "activeTargets": active,
        "droppedTargets": dropped,
        "droppedTargetCounts": view.dropped_total,
    }})
}

fn labels_json(labels: &[Label]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
            .collect(),
    )
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
    use super::*;

    #[test]
    fn never_scraped_is_prometheus_zero_time() {
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn scraping_off_answers_success_with_no_targets() {
        let v = render(None);
        assert_eq!(v["status"], "success");
        assert_eq!(v["data"]["activeTargets"], json!([]));
        assert_eq!(v["data"]["droppedTargets"], json!([]));
    }
}
