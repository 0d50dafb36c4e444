//! `GET /`: the status page a person reads, rendered on the server as one HTML document.
//!
//! # Guarantees
//! - Self-contained: its CSS (`page.css`) and its small script (`page.js`) are inlined; it loads
//!   nothing from anywhere (the machine may be offline) and needs no build step.
//! - Everything that came from the config or a storage (ids, names, URLs, error texts) is
//!   HTML-escaped, in text and in attributes alike.
//! - Works without JavaScript (a `<noscript>` meta refresh); with it, it refreshes every 2 s in
//!   place (`page.js` swaps the `#status` element).
//!
//! # Must not
//! Read anything itself: it renders the [`PageView`] it is given, so it is tested with fixed data.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::forward::StorageStatus;
use crate::ingest::IngestSnapshot;

use super::rates::{Rate, WINDOW};

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// What one rendering of the page shows.
pub struct PageView<'a> {
    pub storages: &'a [StorageStatus],
    pub ingest: &'a IngestSnapshot,
    /// Send rates by storage id; a storage without one shows a dash.
    pub rates: &'a HashMap<String, Rate>,
    pub ready: bool,
    /// The moment rendered, Unix milliseconds (ages of errors and successes are relative to it).
    pub now_unix_ms: u64,
}

/// The whole HTML document.
pub fn render(view: &PageView<'_>) -> String {
    let mut out = String::with_capacity(CSS.len() + JS.len() + 2048 + 1024 * view.storages.len());
    out.push_str(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>promrelay</title>\n\
         <noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>\n<style>\n",
    );
    out.push_str(CSS);
    out.push_str(
        "</style>\n</head>\n<body>\n<header><h1>promrelay</h1><nav>\
         <a href=\"api/v1/queues\">queues (JSON)</a><a href=\"metrics\">metrics</a></nav></header>\n\
         <div id=\"stale\" class=\"notice\" role=\"status\">Cannot reach promrelay: \
         showing the last data received.</div>\n<main id=\"status\">\n",
    );
    status(&mut out, view);
    out.push_str("</main>\n<script>\n");
    out.push_str(JS);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

/// The part `page.js` replaces on each refresh.
fn status(out: &mut String, v: &PageView<'_>) {
    let _ = writeln!(
        out,
        "<p class=\"meta\">Updated {} · send rates averaged over {} s</p>",
        clock_utc(v.now_unix_ms),
        WINDOW.as_secs()
    );
    if !v.ready {
        out.push_str(
            "<div class=\"notice\">Starting: the queues are being opened. \
             Pushes are refused until they are (<code>/-/ready</code> answers 503).</div>\n",
        );
    }
    ingest_cards(out, v.ingest);
    let _ = writeln!(out, "<h2>Storages ({})</h2>", v.storages.len());
    out.push_str(
        "<div class=\"table-scroll\"><table>\n<thead><tr><th>Storage</th><th>State</th><th class=\"num\">Backlog</th>\
         <th class=\"num\">Send rate</th><th class=\"num\">Sent</th>\
         <th class=\"num\">Dropped</th><th class=\"num\">Retries</th></tr></thead>\n",
    );
    if v.storages.is_empty() {
        let _ = write!(out, "<tbody><tr><td colspan=\"{COLUMNS}\" class=\"empty\">");
        out.push_str(if v.ready {
            "No storages are configured."
        } else {
            "No storages yet: the queues are being opened."
        });
        out.push_str("</td></tr></tbody>\n");
    }
    for s in v.storages {
        storage_rows(out, s, v.rates.get(&s.id), v.now_unix_ms);
    }
    out.push_str("</table></div>\n");
}

fn ingest_cards(out: &mut String, i: &IngestSnapshot) {
    out.push_str("<section class=\"cards\">\n");

    let samples: u64 = i.samples.iter().map(|(_, n)| n).sum();
    let detail: Vec<String> = i
        .samples
        .iter()
        .map(|(s, n)| format!("{} {}", s.as_str(), count(*n)))
        .collect();
    card(
        out,
        "Samples received",
        &count(samples),
        false,
        &detail.join(" · "),
    );

    let accepted: u64 = i.accepted_requests.iter().map(|(_, n)| n).sum();
    let detail: Vec<String> = i
        .accepted_requests
        .iter()
        .map(|(s, n)| format!("{} {}", s.as_str(), count(*n)))
        .collect();
    card(
        out,
        "Pushes accepted",
        &count(accepted),
        false,
        &detail.join(" · "),
    );

    let refused: u64 = i.rejected_requests.iter().map(|(_, n)| n).sum();
    let detail: Vec<String> = i
        .rejected_requests
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{} {}", r.as_str(), count(*n)))
        .collect();
    let detail = if detail.is_empty() {
        "none".to_owned()
    } else {
        detail.join(" · ")
    };
    card(out, "Pushes refused", &count(refused), refused > 0, &detail);

    let (value, detail) = if i.duration_count == 0 {
        ("–".to_owned(), "no pushes yet".to_owned())
    } else {
        (
            seconds_short(i.duration_sum_seconds / i.duration_count as f64),
            format!("mean over {} pushes", count(i.duration_count)),
        )
    };
    card(out, "Push latency", &value, false, &detail);

    out.push_str("</section>\n");
}

/// `value` and `detail` are made here from numbers and fixed names, not from outside text,
/// and are escaped all the same.
fn card(out: &mut String, label: &str, value: &str, bad: bool, detail: &str) {
    out.push_str("<div class=\"card\"><div class=\"label\">");
    escape(out, label);
    out.push_str(if bad {
        "</div><div class=\"value bad\">"
    } else {
        "</div><div class=\"value\">"
    });
    escape(out, value);
    out.push_str("</div><div class=\"sub\">");
    escape(out, detail);
    out.push_str("</div></div>\n");
}

/// Columns of the storage table; an error row spans them all.
const COLUMNS: usize = 7;

/// One `<tbody>` per storage: its figures, then its last error on a row of its own (error texts
/// are long; a column of their own would squeeze everything else).
fn storage_rows(out: &mut String, s: &StorageStatus, rate: Option<&Rate>, now_ms: u64) {
    let state = s.state.as_str();
    let _ = write!(out, "<tbody class=\"{state}\"><tr>");

    // Storage: its name (or id), URL, and id when a name hides it.
    out.push_str("<td class=\"storage\"><div class=\"name\">");
    escape(out, s.name.as_deref().unwrap_or(&s.id));
    out.push_str("</div><div class=\"url\">");
    escape(out, &s.url);
    out.push_str("</div>");
    if s.name.is_some() {
        out.push_str("<div class=\"sub\">");
        escape(out, &s.id);
        out.push_str("</div>");
    }
    out.push_str("</td>");

    let _ = write!(
        out,
        "<td class=\"state-cell\"><span class=\"state {state}\">{state}</span>"
    );
    match s.last_success_unix_ms {
        Some(ms) => {
            out.push_str("<div class=\"sub\"><span>last success</span> <span>");
            moment(out, ms, now_ms);
            out.push_str("</span></div>");
        }
        None => out.push_str("<div class=\"sub\">no success yet</div>"),
    }
    out.push_str("</td>");

    let _ = write!(
        out,
        "<td class=\"num\">{}<div class=\"sub\"><span>{}</span>",
        bytes(s.pending_bytes),
        blocks(s.pending_blocks)
    );
    if s.pending_blocks > 0 {
        let _ = write!(
            out,
            " · <span>oldest {}</span>",
            age(s.oldest_pending_age_seconds)
        );
    }
    out.push_str("</div></td>");
    match rate {
        Some(r) => {
            let _ = write!(
                out,
                "<td class=\"num\">{} samples/s<div class=\"sub\">{}/s</div></td>",
                count_f(r.samples_per_second),
                bytes(r.bytes_per_second.round() as u64)
            );
        }
        None => out.push_str("<td class=\"num\">–<div class=\"sub\">measuring</div></td>"),
    }
    let _ = write!(
        out,
        "<td class=\"num\">{} samples<div class=\"sub\"><span>{}</span> · <span>{}</span></div></td>",
        count(s.sent_samples_total),
        bytes(s.sent_bytes_total),
        blocks(s.sent_blocks_total)
    );
    let _ = write!(
        out,
        "<td class=\"num\"><span{}>{}</span><div class=\"sub\"><span>refused {}</span> · <span>over cap {}</span></div></td>",
        nonzero(s.dropped_blocks_total),
        blocks(s.dropped_blocks_total),
        count(s.rejected_blocks_total),
        count(s.cap_dropped_blocks_total)
    );
    let _ = write!(
        out,
        "<td class=\"num\">{}<div class=\"sub\" title=\"damaged regions of the queue files skipped while reading\"><span>corrupt <span{}>{}</span></span></div></td>",
        count(s.retries_total),
        nonzero(s.corrupt_blocks_skipped_total),
        count(s.corrupt_blocks_skipped_total)
    );
    out.push_str("</tr>");

    if let Some(text) = &s.last_error {
        let _ = write!(
            out,
            "<tr class=\"error-row\"><td colspan=\"{COLUMNS}\"><span class=\"error-label\">Last error</span>"
        );
        if let Some(ms) = s.last_error_unix_ms {
            out.push_str(" <span class=\"sub\">");
            moment(out, ms, now_ms);
            out.push_str("</span>");
        }
        out.push_str("<div class=\"error-text\" title=\"");
        escape(out, text);
        out.push_str("\">");
        escape(out, text);
        out.push_str("</div></td></tr>");
    }
    out.push_str("</tbody>\n");
}

/// `1 block`, `37 blocks`, `123k blocks`.
fn blocks(n: u64) -> String {
    if n == 1 {
        "1 block".to_owned()
    } else {
        format!("{} blocks", count(n))
    }
}

fn nonzero(n: u64) -> &'static str {
    if n > 0 { " class=\"nonzero\"" } else { "" }
}

/// `<time>` showing how long ago, with the UTC date and time on hover.
fn moment(out: &mut String, unix_ms: u64, now_ms: u64) {
    let ago = now_ms.saturating_sub(unix_ms) as f64 / 1000.0;
    let _ = write!(
        out,
        "<time datetime=\"{iso}\" title=\"{full}\">{} ago</time>",
        age(ago),
        iso = iso_utc(unix_ms),
        full = date_time_utc(unix_ms),
    );
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub(super) fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Bytes in binary units with one decimal: `512 B`, `12.3 MiB`.
pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    // Moves on at 1023.95 too, so rounding never prints `1024.0 KiB`.
    while v >= 1023.95 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A duration as a person reads it, two units at most: `12s`, `3m12s`, `2h05m`, `3d04h`.
pub(super) fn age(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "–".to_owned();
    }
    let s = seconds.floor() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// Short seconds for latencies: `850µs`, `12.5ms`, `1.20s`.
fn seconds_short(s: f64) -> String {
    if s < 0.001 {
        format!("{:.0}µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1}ms", s * 1e3)
    } else {
        format!("{s:.2}s")
    }
}

/// A count, exact below 10 000 and with an SI suffix above: `9999`, `12.3k`, `4.56M`.
pub(super) fn count(n: u64) -> String {
    if n < 10_000 {
        n.to_string()
    } else {
        count_f(n as f64)
    }
}

/// A rate or count with three significant figures: `0.5`, `42`, `12.3k`, `4.56M`.
fn count_f(v: f64) -> String {
    const UNITS: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    if !v.is_finite() || v < 0.0 {
        return "–".to_owned();
    }
    if v < 10.0 {
        // Small rates keep a decimal so a trickle does not read as 0.
        return if v == v.trunc() {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        };
    }
    let mut v = v;
    let mut unit = 0;
    while v >= 999.5 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    let digits = if unit == 0 || v >= 99.95 {
        0
    } else if v >= 9.995 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{}", UNITS[unit])
}

/// `(year, month, day, hour, minute, second)` in UTC of a Unix-milliseconds moment.
fn civil_utc(unix_ms: u64) -> (i64, u32, u32, u64, u64, u64) {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2024-05-01 12:34:56 UTC`.
pub(super) fn date_time_utc(unix_ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil_utc(unix_ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// `2024-05-01T12:34:56Z`.
fn iso_utc(unix_ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil_utc(unix_ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `12:34:56 UTC`.
fn clock_utc(unix_ms: u64) -> String {
    let (_, _, _, h, mi, s) = civil_utc(unix_ms);
    format!("{h:02}:{mi:02}:{s:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_binary_units_with_one_decimal() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(12_897_484), "12.3 MiB");
        assert_eq!(bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn ages_show_two_units_at_most() {
        assert_eq!(age(0.0), "0s");
        assert_eq!(age(59.9), "59s");
        assert_eq!(age(192.0), "3m12s");
        assert_eq!(age(7500.0), "2h05m");
        assert_eq!(age(3.0 * 86400.0 + 4.0 * 3600.0 + 59.0), "3d04h");
        assert_eq!(age(f64::NAN), "–");
    }

    #[test]
    fn counts_are_exact_when_small_and_short_when_large() {
        assert_eq!(count(9999), "9999");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(999_999), "1.00M");
        assert_eq!(count(4_560_000), "4.56M");
        assert_eq!(count_f(0.5), "0.5");
        assert_eq!(count_f(3.0), "3");
        assert_eq!(count_f(123.4), "123");
    }

    #[test]
    fn utc_dates_match_known_moments() {
        assert_eq!(date_time_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date_time_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(date_time_utc(1_714_566_896_789), "2024-05-01 12:34:56 UTC");
        assert_eq!(iso_utc(1_714_566_896_789), "2024-05-01T12:34:56Z");
    }

    #[test]
    fn html_escape_covers_text_and_attributes() {
        let mut out = String::new();
        escape(&mut out, r#"<a href="x" onclick='y'>&</a>"#);
        assert_eq!(
            out,
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
