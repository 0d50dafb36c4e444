//! The status page's charts of the last 15 minutes: inline SVG drawn on the server from the
//! rings of `history.rs`, so a person sees the shape before reading a figure.
//!
//! # Guarantees
//! - Each chart is a `<figure>`: its name and current value as text, an `<svg role="img">` whose
//!   `<title>` says the same in words (now, highest, lowest) for screen readers, the y axis'
//!   extremes (0 and the highest value) and the time axis' ends (15 min ago, now) as text.
//! - Every chart of the page spans the same window ending at the moment rendered, so charts line
//!   up, and a history shorter than the window fills only its right-hand part.
//! - A missing value (no rate yet) or a gap between points longer than [`MAX_GAP`] breaks the
//!   line: nothing is drawn where nothing was measured.
//! - Text spliced in is escaped by `maud`; the SVG is built from numbers only.
//!
//! # Must not
//! Read the history itself: it draws the points it is given.

use std::fmt::Write as _;

use maud::{Markup, html};

use super::history::{MAX_GAP, WINDOW};

/// The SVG's own units; the CSS stretches it to the figure's width.
const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 60.0;
/// Room above the highest point, so a line at the top is not cut by the edge.
const TOP: f64 = 3.0;

/// How a chart's note reads: its colour, not its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Plain => "note",
            Tone::Good => "note good",
            Tone::Warn => "note warn",
            Tone::Bad => "note bad",
        }
    }
}

/// One chart.
pub struct Chart<'a> {
    /// Its heading, for example `Backlog`.
    pub name: &'a str,
    /// What it shows in words, for the `<title>`: `Backlog of vm-1`.
    pub what: &'a str,
    /// `(Unix ms, value)`, oldest first; `None` where there is no value.
    pub points: &'a [(u64, Option<f64>)],
    /// How a value reads: `12.3 MiB`, `1.2k/s`.
    pub format: &'a dyn Fn(f64) -> String,
    /// Filled below the line (an amount, like a backlog) rather than a line alone (a rate).
    pub area: bool,
    /// The line's colour class (`blue`, `red`, `green`).
    pub colour: &'a str,
    /// A sentence under the chart, for example when the backlog drains.
    pub note: Option<(String, Tone)>,
    /// The moment rendered, Unix ms: the right edge.
    pub now_unix_ms: u64,
}

/// The chart as a `<figure>`.
pub fn render(c: &Chart<'_>) -> Markup {
    let window_ms = WINDOW.as_millis() as u64;
    let start = c.now_unix_ms.saturating_sub(window_ms);
    let shown: Vec<(u64, Option<f64>)> = c
        .points
        .iter()
        .copied()
        .filter(|(t, _)| *t >= start && *t <= c.now_unix_ms)
        .map(|(t, v)| (t, v.filter(|v| v.is_finite())))
        .collect();
    let values = || shown.iter().filter_map(|(_, v)| *v);
    let highest = values().fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let lowest = values().fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
    let current = shown.last().and_then(|(_, v)| *v);
    let top = highest.unwrap_or(0.0).max(0.0);
    let segments = segments(&shown, start, window_ms, top);
    let format = c.format;
    let title = match (current, highest, lowest) {
        (Some(now), Some(hi), Some(lo)) => format!(
            "{} over the last {} minutes: now {}, highest {}, lowest {}",
            c.what,
            WINDOW.as_secs() / 60,
            format(now),
            format(hi),
            format(lo)
        ),
        (None, Some(hi), Some(lo)) => format!(
            "{} over the last {} minutes: highest {}, lowest {}, no value now",
            c.what,
            WINDOW.as_secs() / 60,
            format(hi),
            format(lo)
        ),
        _ => format!("{}: no values yet", c.what),
    };
    html! {
        figure .chart {
            figcaption {
                span .label { (c.name) }
                span .value { (current.map_or_else(|| "–".to_owned(), format)) }
            }
            div .plot {
                svg class={ "spark " (c.colour) } viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
                    preserveAspectRatio="none" role="img" {
                    title { (title) }
                    line .base x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
                    line .top x1="0" y1=(TOP) x2=(WIDTH) y2=(TOP) {}
                    @for s in &segments {
                        @if c.area {
                            polygon .area points=(s.area) {}
                        }
                        polyline .line points=(s.line) {}
                    }
                }
                span .y-top { (highest.map_or_else(|| "–".to_owned(), |h| format(h.max(0.0)))) }
                span .y-bottom { (format(0.0)) }
            }
            div .x-axis {
                span { "−" (WINDOW.as_secs() / 60) " min" }
                @if shown.is_empty() {
                    span { "no points yet: one every " (super::history::INTERVAL.as_secs()) " s" }
                }
                span { "now" }
            }
            @if let Some((text, tone)) = &c.note {
                div class=(tone.class()) { (text) }
            }
        }
    }
}

/// One unbroken run of points as SVG point lists.
struct Segment {
    line: String,
    area: String,
}

/// The runs of `points` between missing values and gaps, in SVG coordinates.
fn segments(points: &[(u64, Option<f64>)], start: u64, window_ms: u64, top: f64) -> Vec<Segment> {
    let x = |t: u64| t.saturating_sub(start) as f64 / window_ms as f64 * WIDTH;
    let y = |v: f64| {
        if top > 0.0 {
            TOP + (1.0 - (v.max(0.0) / top)) * (HEIGHT - TOP)
        } else {
            HEIGHT
        }
    };
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut previous: Option<u64> = None;
    for &(t, v) in points {
        let Some(v) = v else {
            previous = None;
            continue;
        };
        let joined = previous.is_some_and(|p| t.saturating_sub(p) <= MAX_GAP.as_millis() as u64);
        if !joined {
            runs.push(Vec::new());
        }
        if let Some(run) = runs.last_mut() {
            run.push((x(t), y(v)));
        }
        previous = Some(t);
    }
    let interval_width = super::history::INTERVAL.as_millis() as f64 / window_ms as f64 * WIDTH;
    runs.into_iter()
        .map(|mut run| {
            if let [(x1, y1)] = run[..] {
                // A lone point: a short level stroke ending at it, so it shows.
                run.insert(0, ((x1 - interval_width).max(0.0), y1));
            }
            let mut line = String::with_capacity(run.len() * 12);
            for (i, (px, py)) in run.iter().enumerate() {
                let sep = if i == 0 { "" } else { " " };
                let _ = write!(line, "{sep}{px:.1},{py:.1}");
            }
            let first_x = run.first().map_or(0.0, |p| p.0);
            let last_x = run.last().map_or(0.0, |p| p.0);
            let area = format!("{line} {last_x:.1},{HEIGHT:.1} {first_x:.1},{HEIGHT:.1}");
            Segment { line, area }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 10_000_000;

    fn render_points(points: &[(u64, Option<f64>)]) -> String {
        let format = |v: f64| format!("{v:.0} B");
        render(&Chart {
            name: "Backlog",
            what: "Backlog of <vm>",
            points,
            format: &format,
            area: true,
            colour: "blue",
            note: Some(("drains in ~7 min".to_owned(), Tone::Good)),
            now_unix_ms: NOW,
        })
        .into_string()
    }

    /// Every `points="..."` attribute of `element` in `html`, as coordinate pairs.
    fn point_lists(html: &str, element: &str) -> Vec<Vec<(f64, f64)>> {
        html.split(&format!("<{element} "))
            .skip(1)
            .filter_map(|rest| rest.split("points=\"").nth(1)?.split('"').next())
            .map(|list| {
                list.split(' ')
                    .map(|pair| {
                        let (x, y) = pair.split_once(',').expect("x,y");
                        (x.parse().expect("x"), y.parse().expect("y"))
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_point_per_value_from_left_to_right_and_the_highest_at_the_top() {
        let html = render_points(&[
            (NOW - 10_000, Some(0.0)),
            (NOW - 5000, Some(50.0)),
            (NOW, Some(100.0)),
        ]);
        let lines = point_lists(&html, "polyline");
        assert_eq!(lines.len(), 1, "{html}");
        let line = &lines[0];
        assert_eq!(line.len(), 3);
        assert!(line.windows(2).all(|w| w[0].0 < w[1].0), "{line:?}");
        assert_eq!(line[2], (WIDTH, TOP));
        assert_eq!(line[0].1, HEIGHT);
    }

    #[test]
    fn the_axis_extremes_and_current_value_are_text() {
        let html = render_points(&[(NOW - 5000, Some(300.0)), (NOW, Some(120.0))]);
        assert!(
            html.contains(r#"<span class="value">120 B</span>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<span class="y-top">300 B</span>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<span class="y-bottom">0 B</span>"#),
            "{html}"
        );
        assert!(html.contains("now"));
    }

    #[test]
    fn the_title_says_the_chart_in_words_and_is_escaped() {
        let html = render_points(&[(NOW - 5000, Some(300.0)), (NOW, Some(120.0))]);
        assert!(
            html.contains(
                "<title>Backlog of &lt;vm&gt; over the last 15 minutes: now 120 B, highest 300 B, lowest 120 B</title>"
            ),
            "{html}"
        );
    }

    #[test]
    fn a_missing_value_breaks_the_line() {
        let html = render_points(&[
            (NOW - 20_000, Some(1.0)),
            (NOW - 15_000, Some(2.0)),
            (NOW - 10_000, None),
            (NOW - 5000, Some(3.0)),
            (NOW, Some(4.0)),
        ]);
        let lines = point_lists(&html, "polyline");
        assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
    }

    #[test]
    fn a_gap_in_time_breaks_the_line() {
        let html = render_points(&[
            (NOW - 60_000, Some(1.0)),
            (NOW - 55_000, Some(1.0)),
            (NOW, Some(1.0)),
        ]);
        let lines = point_lists(&html, "polyline");
        assert_eq!(lines.len(), 2, "{html}");
    }

    #[test]
    fn a_lone_point_is_drawn_as_a_short_stroke() {
        let html = render_points(&[(NOW, Some(5.0))]);
        let lines = point_lists(&html, "polyline");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), 2);
        assert!(lines[0][0].0 < lines[0][1].0);
    }

    #[test]
    fn an_area_chart_closes_each_run_down_to_the_axis() {
        let html = render_points(&[(NOW - 5000, Some(1.0)), (NOW, Some(2.0))]);
        let areas = point_lists(&html, "polygon");
        assert_eq!(areas.len(), 1);
        let area = &areas[0];
        assert_eq!(area.len(), 4);
        assert_eq!(area[2], (WIDTH, HEIGHT));
    }

    #[test]
    fn points_older_than_the_window_are_left_out() {
        let old = NOW - WINDOW.as_millis() as u64 - 5000;
        let html = render_points(&[(old, Some(1e9)), (NOW - 5000, Some(1.0)), (NOW, Some(2.0))]);
        assert!(html.contains(r#"<span class="y-top">2 B</span>"#), "{html}");
    }

    #[test]
    fn no_points_says_so() {
        let html = render_points(&[]);
        assert!(html.contains("no points yet"), "{html}");
        assert!(html.contains("no values yet"), "{html}");
        assert!(point_lists(&html, "polyline").is_empty());
    }

    #[test]
    fn the_note_is_shown_with_its_tone() {
        let html = render_points(&[(NOW, Some(1.0))]);
        assert!(
            html.contains(r#"<div class="note good">drains in ~7 min</div>"#),
            "{html}"
        );
    }
}
