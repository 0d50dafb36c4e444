//! `GET /targets`: the scraper's targets grouped by job, with health, last scrape, duration and
//! error, a filter box, and the dropped targets with their reason. Rendered on the server; the same
//! self-contained style as the status page.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::page::escape;
use crate::prompb::Label;
use crate::scrape::manager::TargetsView;
use crate::scrape::scrape_loop::Health;

const CSS: &str = include_str!("page.css");

/// Filters rows by the text typed (matches labels, URL and error), without a round trip.
const FILTER_JS: &str = r#"
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('tr[data-text]').forEach(function (row) {
    row.style.display = row.getAttribute('data-text').indexOf(q) >= 0 ? '' : 'none';
  });
});
"#;

fn labels_text(out: &mut String, labels: &[Label]) {
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        escape(out, &l.name);
        out.push_str("=\"");
        escape(out, &l.value);
        out.push('"');
    }
}

fn ago(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    if s < 60 {
        format!("{s}s ago")
    } else if s < 3600 {
        format!("{}m{}s ago", s / 60, s % 60)
    } else {
        format!("{}h{}m ago", s / 3600, (s % 3600) / 60)
    }
}

/// The whole page; `None` view means scraping is not configured.
pub fn render(view: Option<&TargetsView>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut out = String::with_capacity(CSS.len() + 4096);
    out.push_str(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>promrelay targets</title>\n<style>\n",
    );
    out.push_str(CSS);
    out.push_str(
        "</style>\n</head>\n<body>\n<header><h1>Targets</h1><nav><a href=\"./\">status</a>\
         <a href=\"api/v1/targets\">targets (JSON)</a></nav></header>\n<main>\n",
    );
    let Some(view) = view else {
        out.push_str(
            "<p class=\"meta\">Scraping is off: start promrelay with <code>--scrape-config \
             FILE</code> to scrape targets.</p>\n</main>\n</body>\n</html>\n",
        );
        return out;
    };
    let up = view
        .active
        .iter()
        .filter(|a| {
            a.health
                .lock()
                .map(|h| h.health == Health::Up)
                .unwrap_or(false)
        })
        .count();
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} active targets ({} up), {} dropped.</p>\n\
         <input id=\"filter\" type=\"search\" placeholder=\"Filter by label, URL or error\" \
         style=\"width:100%;max-width:480px;padding:6px 8px;margin-bottom:8px\">",
        view.active.len(),
        up,
        view.dropped.len()
    );
    let mut jobs: Vec<&str> = view.active.iter().map(|a| a.target.job.as_str()).collect();
    jobs.dedup();
    for job in jobs {
        let targets: Vec<_> = view.active.iter().filter(|a| a.target.job == job).collect();
        out.push_str("<h2>");
        escape(&mut out, job);
        let _ = writeln!(
            out,
            " <span class=\"muted\">({})</span></h2>",
            targets.len()
        );
        out.push_str(
            "<div class=\"table-scroll\"><table><thead><tr><th>Endpoint</th><th>State</th>\
             <th>Labels</th><th>Last scrape</th><th class=\"num\">Duration</th>\
             <th class=\"num\">Samples</th><th>Error</th></tr></thead><tbody>\n",
        );
        for a in targets {
            let h = a.health.lock().map(|h| h.clone()).unwrap_or_default();
            let t = &a.target;
            let mut text = String::new();
            labels_text(&mut text, &t.labels);
            text.push(' ');
            escape(&mut text, t.scrape_url.as_str());
            text.push(' ');
            escape(&mut text, &h.last_error);
            out.push_str("<tr data-text=\"");
            out.push_str(&text.to_lowercase());
            out.push_str("\"><td><a href=\"");
            escape(&mut out, t.scrape_url.as_str());
            out.push_str("\">");
            escape(&mut out, t.scrape_url.as_str());
            let (class, word) = match h.health {
                Health::Up => ("ok", "up"),
                Health::Down => ("dropping", "down"),
                Health::Unknown => ("retrying", "unknown"),
            };
            let _ = write!(
                out,
                "</a></td><td><span class=\"state {class}\">{word}</span></td><td class=\"sub\">"
            );
            labels_text(&mut out, &t.labels);
            out.push_str("</td><td>");
            match h.last_scrape_unix_ms {
                Some(ms) => out.push_str(&ago(now, ms)),
                None => out.push_str("never"),
            }
            let _ = write!(
                out,
                "</td><td class=\"num\">{:.3}s</td><td class=\"num\">{}</td><td>",
                h.last_scrape_duration.as_secs_f64(),
                h.last_samples
            );
            escape(&mut out, &h.last_error);
            out.push_str("</td></tr>\n");
        }
        out.push_str("</tbody></table></div>\n");
    }
    if !view.dropped.is_empty() {
        let _ = writeln!(
            out,
            "<h2>Dropped <span class=\"muted\">({})</span></h2>\n<div class=\"table-scroll\">\
             <table><thead><tr><th>Job</th><th>Discovered labels</th><th>Reason</th></tr>\
             </thead><tbody>",
            view.dropped.len()
        );
        for d in &view.dropped {
            let mut text = String::new();
            labels_text(&mut text, &d.discovered_labels);
            text.push(' ');
            escape(&mut text, &d.reason.to_string());
            out.push_str("<tr data-text=\"");
            out.push_str(&text.to_lowercase());
            out.push_str("\"><td>");
            escape(&mut out, &d.job);
            out.push_str("</td><td class=\"sub\">");
            labels_text(&mut out, &d.discovered_labels);
            out.push_str("</td><td>");
            escape(&mut out, &d.reason.to_string());
            out.push_str("</td></tr>\n");
        }
        out.push_str("</tbody></table></div>\n");
    }
    out.push_str("</main>\n<script>\n");
    out.push_str(FILTER_JS);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
