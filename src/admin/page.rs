//! `GET /`: the status page a person reads, rendered on the server as one HTML document.
//!
//! # Guarantees
//! - Self-contained: its CSS (`page.css`) and its small script (`page.js`) are inlined; it loads
//!   nothing from anywhere (the machine may be offline) and needs no build step.
//! - Everything that came from the config or a storage (ids, names, URLs, error texts) is
//!   HTML-escaped, in text and in attributes alike: the page is a `maud` template, which escapes
//!   every value it splices in unless it is wrapped in `PreEscaped`, and only our own CSS and
//!   script are.
//! - Works without JavaScript (a `<noscript>` meta refresh); with it, it refreshes every 2 s in
//!   place (`page.js` swaps the `#status` element).
//!
//! # Must not
//! Read anything itself: it renders the [`PageView`] it is given, so it is tested with fixed data.

use std::collections::HashMap;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::forward::StorageStatus;
use crate::stats::IngestSnapshot;

use super::charts::{self, Chart, Tone};
use super::drain::Drain;
use super::history::{self, History, QueueHistory};
use super::rates::{Rate, WINDOW};

/// Our own files, inlined as they are: the only markup on the page that is not escaped.
const CSS: PreEscaped<&str> = PreEscaped(include_str!("page.css"));
const JS: PreEscaped<&str> = PreEscaped(include_str!("page.js"));

/// The `<head>` both admin pages share: charset, viewport, title and our CSS; with `refresh`,
/// a browser without scripts reloads every 5 s (with scripts, `page.js` refreshes in place).
pub(super) fn head(title: &str, refresh: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) }
            @if refresh {
                noscript { meta http-equiv="refresh" content="5"; }
            }
            style { (CSS) }
        }
    }
}

/// What one rendering of the page shows.
pub struct PageView<'a> {
    pub storages: &'a [StorageStatus],
    pub ingest: &'a IngestSnapshot,
    /// Send rates by [`StorageStatus::key`]; a storage without one shows a dash.
    pub rates: &'a HashMap<String, Rate>,
    pub ready: bool,
    /// The last 15 minutes, for the charts.
    pub history: &'a History,
    /// The moment rendered, Unix milliseconds (ages of errors and successes are relative to it).
    pub now_unix_ms: u64,
}

/// The whole HTML document.
pub fn render(view: &PageView<'_>) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("promrelay", true))
            body {
                header {
                    h1 { "promrelay" }
                    nav {
                        a href="api/v1/queues" { "queues (JSON)" }
                        a href="metrics" { "metrics" }
                    }
                }
                div #stale .notice role="status" {
                    "Cannot reach promrelay: showing the last data received."
                }
                main #status { (status(view)) }
                script { (JS) }
            }
        }
    }
    .into_string()
}

/// The part `page.js` replaces on each refresh.
fn status(v: &PageView<'_>) -> Markup {
    html! {
        p .meta {
            "Updated " (clock_utc(v.now_unix_ms))
            " · send rates averaged over " (WINDOW.as_secs()) " s"
        }
        @if !v.ready {
            div .notice {
                "Starting: the queues are being opened. A push waits for them, and gets 503 only "
                "if they are still not open after " (crate::ingest::OPEN_WAIT.as_secs()) " s; "
                code { "/-/ready" } " answers 503 until they are."
            }
        }
        (ingest_cards(v.ingest))
        (ingest_charts(v.history, v.now_unix_ms))
        h2 { "Storages (" (v.storages.len()) ")" }
        @if v.history.left_out > 0 {
            p .meta {
                "Charts for the first " (history::MAX_QUEUES) " queues only: "
                (v.history.left_out) " more have none."
            }
        }
        div .table-scroll {
            table {
                thead {
                    tr {
                        th { "Storage" }
                        th { "State" }
                        th .num { "Backlog" }
                        th .num { "Send rate" }
                        th .num { "Sent" }
                        th .num { "Dropped" }
                        th .num { "Retries" }
                    }
                }
                @if v.storages.is_empty() {
                    tbody {
                        tr {
                            td colspan=(COLUMNS) .empty {
                                @if v.ready {
                                    // At least one storage is always configured: only a
                                    // multitenant storage has no queue until its first push.
                                    "No queues yet: a multitenant storage opens one per tenant at the tenant's first push."
                                } @else {
                                    "No storages yet: the queues are being opened."
                                }
                            }
                        }
                    }
                }
                @for s in v.storages {
                    (storage_rows(s, v.rates.get(&s.key()), v.history.queue(&s.key()), v.now_unix_ms))
                }
            }
        }
    }
}

/// `name 12 · other 3` for counters by source or reason.
fn per_name<'a>(items: impl Iterator<Item = (&'a str, u64)>) -> String {
    items
        .map(|(name, n)| format!("{name} {}", count(n)))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn ingest_cards(i: &IngestSnapshot) -> Markup {
    let samples: u64 = i.samples.iter().map(|(_, n)| n).sum();
    let accepted: u64 = i.accepted_requests.iter().map(|(_, n)| n).sum();
    let refused: u64 = i.rejected_requests.iter().map(|(_, n)| n).sum();
    let refused_detail = per_name(
        i.rejected_requests
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.as_str(), *n)),
    );
    let (latency, latency_detail) = if i.duration_count == 0 {
        ("–".to_owned(), "no pushes yet".to_owned())
    } else {
        (
            seconds_short(i.duration_sum_seconds / i.duration_count as f64),
            format!("mean over {} pushes", count(i.duration_count)),
        )
    };
    html! {
        section .cards {
            (card(
                "Samples received",
                &count(samples),
                false,
                &per_name(i.samples.iter().map(|(s, n)| (s.as_str(), *n))),
            ))
            (card(
                "Pushes accepted",
                &count(accepted),
                false,
                &per_name(i.accepted_requests.iter().map(|(s, n)| (s.as_str(), *n))),
            ))
            (card(
                "Pushes refused",
                &count(refused),
                refused > 0,
                if refused_detail.is_empty() { "none" } else { &refused_detail },
            ))
            (card("Push latency", &latency, false, &latency_detail))
        }
    }
}

fn card(label: &str, value: &str, bad: bool, detail: &str) -> Markup {
    html! {
        div .card {
            div .label { (label) }
            div .value .bad[bad] { (value) }
            div .sub { (detail) }
        }
    }
}

/// Columns of the storage table; an error row spans them all.
const COLUMNS: usize = 7;

/// One `<tbody>` per storage: its figures, then its last error on a row of its own (error texts
/// are long; a column of their own would squeeze everything else).
fn storage_rows(
    s: &StorageStatus,
    rate: Option<&Rate>,
    history: Option<&QueueHistory>,
    now_ms: u64,
) -> Markup {
    let state = s.state.as_str();
    html! {
        tbody class=(state) {
            tr {
                // Storage: its name (or id), URL, and id when a name hides it.
                td .storage {
                    div .name { (s.name.as_deref().unwrap_or(&s.id)) }
                    div .url { (s.url) }
                    @if s.name.is_some() {
                        div .sub { (s.id) }
                    }
                    @if let Some(t) = &s.tenant {
                        div .sub { "tenant " (t) }
                    }
                }
                td .state-cell {
                    span class={ "state " (state) } { (state) }
                    @match s.last_success_unix_ms {
                        Some(ms) => div .sub {
                            span { "last success" } " " span { (moment(ms, now_ms)) }
                        },
                        None => div .sub { "no success yet" },
                    }
                }
                td .num {
                    (bytes(s.pending_bytes))
                    div .sub {
                        span { (blocks(s.pending_blocks)) }
                        @if s.pending_blocks > 0 {
                            " · " span { "oldest " (age(s.oldest_pending_age_seconds)) }
                        }
                    }
                }
                @match rate {
                    Some(r) => td .num {
                        (count_f(r.samples_per_second)) " samples/s"
                        div .sub { (bytes(r.bytes_per_second.round() as u64)) "/s" }
                    },
                    None => td .num { "–" div .sub { "measuring" } },
                }
                td .num {
                    (count(s.sent_samples_total)) " samples"
                    div .sub {
                        span { (bytes(s.sent_bytes_total)) } " · " span { (blocks(s.sent_blocks_total)) }
                    }
                }
                td .num {
                    span .nonzero[s.dropped_blocks_total > 0] { (blocks(s.dropped_blocks_total)) }
                    div .sub {
                        span { "refused " (count(s.rejected_blocks_total)) }
                        " · "
                        span { "over cap " (count(s.cap_dropped_blocks_total)) }
                    }
                }
                td .num {
                    (count(s.retries_total))
                    div .sub title="damaged regions of the queue files skipped while reading" {
                        span {
                            "corrupt "
                            span .nonzero[s.corrupt_blocks_skipped_total > 0] {
                                (count(s.corrupt_blocks_skipped_total))
                            }
                        }
                    }
                }
            }
            tr .chart-row {
                td colspan=(COLUMNS) {
                    @match history {
                        Some(h) => (queue_charts(s, h, now_ms)),
                        None => div .sub {
                            "No charts: only the first " (history::MAX_QUEUES)
                            " queues seen get a history."
                        },
                    }
                }
            }
            @if let Some(text) = &s.last_error {
                tr .error-row {
                    td colspan=(COLUMNS) {
                        span .error-label { "Last error" }
                        @if let Some(ms) = s.last_error_unix_ms {
                            " " span .sub { (moment(ms, now_ms)) }
                        }
                        div .error-text title=(text) { (text) }
                    }
                }
            }
        }
    }
}

/// The charts of the whole process: samples received and pushes refused.
fn ingest_charts(h: &History, now_ms: u64) -> Markup {
    let received: Vec<(u64, Option<f64>)> = h
        .ingest
        .iter()
        .map(|p| (p.at_unix_ms, p.samples_per_second))
        .collect();
    let scraped: Vec<(u64, Option<f64>)> = h
        .ingest
        .iter()
        .map(|p| (p.at_unix_ms, p.scraped_samples_per_second))
        .collect();
    let refused: Vec<(u64, Option<f64>)> = h
        .ingest
        .iter()
        .map(|p| (p.at_unix_ms, p.refused_total()))
        .collect();
    let scraping = scraped.iter().any(|(_, v)| v.is_some_and(|v| v > 0.0));
    html! {
        h2 { "Last " (history::WINDOW.as_secs() / 60) " minutes" }
        div .charts {
            (charts::render(&Chart {
                name: "Samples received",
                what: "Samples received a second",
                points: &received,
                format: &per_second,
                area: false,
                colour: "blue",
                note: None,
                now_unix_ms: now_ms,
            }))
            @if scraping {
                (charts::render(&Chart {
                    name: "Samples scraped",
                    what: "Samples scraped a second",
                    points: &scraped,
                    format: &per_second,
                    area: false,
                    colour: "blue",
                    note: None,
                    now_unix_ms: now_ms,
                }))
            }
            (charts::render(&Chart {
                name: "Pushes refused",
                what: "Pushes refused a second",
                points: &refused,
                format: &per_second,
                area: false,
                colour: "red",
                note: Some(refusal_reasons(h)),
                now_unix_ms: now_ms,
            }))
        }
    }
}

/// `12 refused: too_large 10 · bad_body 2`, from the rates of the whole window.
fn refusal_reasons(h: &History) -> (String, Tone) {
    let interval = history::INTERVAL.as_secs_f64();
    let mut by_reason: Vec<(&str, u64)> = crate::stats::Reject::ALL
        .iter()
        .enumerate()
        .map(|(i, reason)| {
            let total: f64 = h
                .ingest
                .iter()
                .filter_map(|p| p.refused_per_second.map(|r| r[i] * interval))
                .sum();
            (reason.as_str(), total.round() as u64)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    if by_reason.is_empty() {
        return ("none refused".to_owned(), Tone::Plain);
    }
    by_reason.sort_by_key(|r| std::cmp::Reverse(r.1));
    let total: u64 = by_reason.iter().map(|(_, n)| n).sum();
    (
        format!(
            "{} refused: {}",
            count(total),
            per_name(by_reason.into_iter())
        ),
        Tone::Bad,
    )
}

/// A queue's backlog, with when it drains, and its send rate.
fn queue_charts(s: &StorageStatus, h: &QueueHistory, now_ms: u64) -> Markup {
    let backlog: Vec<(u64, Option<f64>)> = h
        .points
        .iter()
        .map(|p| (p.at_unix_ms, Some(p.backlog_bytes as f64)))
        .collect();
    let sent: Vec<(u64, Option<f64>)> = h
        .points
        .iter()
        .map(|p| (p.at_unix_ms, p.sent_samples_per_second))
        .collect();
    let drain = h.drain();
    let tone = match drain {
        Drain::Measuring | Drain::Empty => Tone::Plain,
        Drain::Draining { .. } => Tone::Good,
        Drain::Steady { .. } => Tone::Warn,
        Drain::Growing { .. } => Tone::Bad,
    };
    let who = match (&s.name, &s.tenant) {
        (Some(name), Some(tenant)) => format!("{name}/{tenant}"),
        (Some(name), None) => name.clone(),
        (None, _) => s.key(),
    };
    html! {
        div .charts {
            (charts::render(&Chart {
                name: "Backlog",
                what: &format!("Backlog of {who}"),
                points: &backlog,
                format: &|v| bytes(v.round() as u64),
                area: true,
                colour: "amber",
                note: Some((drain.text(), tone)),
                now_unix_ms: now_ms,
            }))
            (charts::render(&Chart {
                name: "Send rate",
                what: &format!("Samples sent a second to {who}"),
                points: &sent,
                format: &per_second,
                area: false,
                colour: "green",
                note: None,
                now_unix_ms: now_ms,
            }))
        }
    }
}

/// `1.2k/s`.
fn per_second(v: f64) -> String {
    format!("{}/s", count_f(v))
}

/// `1 block`, `37 blocks`, `123k blocks`.
fn blocks(n: u64) -> String {
    if n == 1 {
        "1 block".to_owned()
    } else {
        format!("{} blocks", count(n))
    }
}

/// `<time>` showing how long ago, with the UTC date and time on hover.
fn moment(unix_ms: u64, now_ms: u64) -> Markup {
    let ago = now_ms.saturating_sub(unix_ms) as f64 / 1000.0;
    html! {
        time datetime=(iso_utc(unix_ms)) title=(date_time_utc(unix_ms)) { (age(ago)) " ago" }
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
}
