//! `GET /targets`: the scraper's targets grouped by job, with health, last scrape, duration and
//! error, a filter box, and the dropped targets with their reason. Rendered on the server; the same
//! self-contained style as the status page.
//!
//! Like the status page it is a `maud` template: labels, URLs and error texts (which come from
//! discovery and from the targets themselves) are escaped wherever they go, attributes included.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use url::Url;

use super::page::{age, head};
use crate::prompb::Label;
use crate::scrape::manager::TargetsView;
use crate::scrape::scrape_loop::{Health, TargetHealth};

/// Filters rows by the text typed (matches labels, URL and error), without a round trip.
const FILTER_JS: PreEscaped<&str> = PreEscaped(
    r#"
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('tr[data-text]').forEach(function (row) {
    row.style.display = row.getAttribute('data-text').indexOf(q) >= 0 ? '' : 'none';
  });
});
"#,
);

/// `a="1", b="2"`, as plain text (the template escapes it where it goes).
fn labels_text<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (i, (name, value)) in labels.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        out.push_str(value);
        out.push('"');
    }
    out
}

/// What the filter box matches a row against: all its words, lowercased.
fn filter_text(parts: &[&str]) -> String {
    parts.join(" ").to_lowercase()
}

/// The whole page; `None` view means scraping is not configured.
pub fn render(view: Option<&TargetsView>) -> String {
    let now = crate::util::now_ms();
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("promrelay targets", false))
            body {
                header {
                    h1 { "Targets" }
                    nav {
                        a href="./" { "status" }
                        a href="api/v1/targets" { "targets (JSON)" }
                    }
                }
                main {
                    @match view {
                        None => p .meta {
                            "Scraping is off: start promrelay with "
                            code { "--scrape-config FILE" } " to scrape targets."
                        },
                        Some(view) => (targets(view, now)),
                    }
                }
                @if view.is_some() {
                    script { (FILTER_JS) }
                }
            }
        }
    }
    .into_string()
}

fn targets(view: &TargetsView, now_ms: u64) -> Markup {
    let healths: Vec<TargetHealth> = view
        .active
        .iter()
        .map(|a| a.health.lock().map(|h| h.clone()).unwrap_or_default())
        .collect();
    let up = healths.iter().filter(|h| h.health == Health::Up).count();
    let dropped_total: usize = view.dropped_total.values().sum();
    let mut jobs: Vec<&str> = view.active.iter().map(|a| a.target.job.as_str()).collect();
    jobs.dedup();
    html! {
        p .meta {
            (view.active.len()) " active targets (" (up) " up), "
            (dropped_total) " dropped."
        }
        input #filter type="search" placeholder="Filter by label, URL or error"
            style="width:100%;max-width:480px;padding:6px 8px;margin-bottom:8px";
        @for job in jobs {
            @let rows: Vec<usize> = (0..view.active.len())
                .filter(|&i| view.active[i].target.job == job)
                .collect();
            h2 { (job) " " span .muted { "(" (rows.len()) ")" } }
            div .table-scroll {
                table {
                    thead {
                        tr {
                            th { "Endpoint" }
                            th { "State" }
                            th { "Labels" }
                            th { "Last scrape" }
                            th .num { "Duration" }
                            th .num { "Samples" }
                            th { "Error" }
                        }
                    }
                    tbody {
                        @for i in rows {
                            @let t = &view.active[i].target;
                            (target_row(&t.labels, &t.scrape_url, &healths[i], now_ms))
                        }
                    }
                }
            }
        }
        @if dropped_total > 0 {
            h2 { "Dropped " span .muted { "(" (dropped_total) ")" } }
            @if dropped_total > view.dropped.len() {
                p .meta {
                    "Listing " (view.dropped.len()) " of them: at most "
                    "--scrape-max-dropped-targets per job, each with all its discovered labels."
                }
            }
            div .table-scroll {
                table {
                    thead { tr { th { "Job" } th { "Discovered labels" } th { "Reason" } } }
                    tbody {
                        @for d in &view.dropped {
                            @let labels = labels_text(d.discovered_labels.iter());
                            @let reason = d.reason.to_string();
                            tr data-text=(filter_text(&[&labels, &reason])) {
                                td { (d.job) }
                                td .sub { (labels) }
                                td { (reason) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One active target's row.
fn target_row(labels: &[Label], url: &Url, h: &TargetHealth, now_ms: u64) -> Markup {
    let labels = labels_text(labels.iter().map(Label::as_pair));
    let (class, word) = match h.health {
        Health::Up => ("ok", "up"),
        Health::Down => ("dropping", "down"),
        Health::Unknown => ("retrying", "unknown"),
    };
    html! {
        tr data-text=(filter_text(&[&labels, url.as_str(), &h.last_error])) {
            td { a href=(url) { (url) } }
            td { span class={ "state " (class) } { (word) } }
            td .sub { (labels) }
            td {
                @match h.last_scrape_unix_ms {
                    Some(ms) => { (age(now_ms.saturating_sub(ms) as f64 / 1000.0)) " ago" },
                    None => "never",
                }
            }
            td .num { (format!("{:.3}", h.last_scrape_duration.as_secs_f64())) "s" }
            td .num { (h.last_samples) }
            td { (h.last_error) }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scrape::targets::{DropReason, DroppedTarget};

    const HOSTILE: &str = "<script>alert(1)</script>\" onclick=\"x";

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn page_without_scraping_says_how_to_turn_it_on() {
        let html = render(None);
        assert!(html.contains("--scrape-config"));
    }

    #[test]
    fn empty_view_renders_counts() {
        let html = render(Some(&TargetsView::default()));
        assert!(html.contains("0 active targets (0 up), 0 dropped."));
        assert!(html.contains("id=\"filter\""));
    }

    #[test]
    fn target_labels_and_scrape_errors_are_escaped_in_text_and_attributes() {
        let url = Url::parse("http://127.0.0.1:9100/metrics?q=\"<b>").expect("a valid URL");
        let health = TargetHealth {
            health: Health::Down,
            last_scrape_unix_ms: Some(1_000),
            last_scrape_duration: Duration::from_millis(12),
            last_error: HOSTILE.to_owned(),
            last_samples: 0,
        };
        let row = target_row(&[label("team", HOSTILE)], &url, &health, 61_000).into_string();
        assert!(!row.contains("<script"), "{row}");
        assert!(!row.contains("\" onclick"), "{row}");
        assert!(
            row.contains(
                "<td class=\"sub\">team=&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot; onclick=&quot;x&quot;</td>"
            ),
            "label text: {row}"
        );
        assert!(
            row.contains("<td>&lt;script&gt;alert(1)&lt;/script&gt;&quot; onclick=&quot;x</td>"),
            "error text: {row}"
        );
        // The filter attribute holds the quote of `team="..."` escaped, so it stays one attribute.
        assert!(
            row.starts_with("<tr data-text=\"team=&quot;&lt;script&gt;"),
            "{row}"
        );
        assert!(row.contains("1m00s ago"), "{row}");
    }

    #[test]
    fn dropped_target_labels_and_job_are_escaped() {
        let view = TargetsView {
            active: Vec::new(),
            dropped: vec![DroppedTarget {
                job: HOSTILE.to_owned(),
                discovered_labels: vec![label("__address__", HOSTILE)].into(),
                reason: DropReason::Relabeling,
            }],
            dropped_total: [(HOSTILE.to_owned(), 1)].into(),
        };
        let html = render(Some(&view));
        // The page's own filter script is the only one.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(!html.contains("\" onclick"), "{html}");
        assert!(
            html.contains("<td>&lt;script&gt;alert(1)&lt;/script&gt;&quot; onclick=&quot;x</td>")
        );
    }

    #[test]
    fn dropped_targets_beyond_the_listed_ones_are_counted_and_said() {
        let view = TargetsView {
            active: Vec::new(),
            dropped: vec![DroppedTarget {
                job: "pods".to_owned(),
                discovered_labels: vec![label("__address__", "10.0.0.1:9100")].into(),
                reason: DropReason::Relabeling,
            }],
            dropped_total: [("pods".to_owned(), 900)].into(),
        };
        let html = render(Some(&view));
        assert!(html.contains("900 dropped."), "{html}");
        assert!(html.contains("Listing 1 of them"), "{html}");
    }
}
