//! When a storage's backlog drains at the current rate: the estimate the status page writes
//! under the backlog chart ("drains in ~7 min at the current rate").
//!
//! # Guarantees
//! - The trend is the least-squares slope of the backlog over the points of the last
//!   [`FIT_WINDOW`] (not the difference of two points), so one block sent or queued between two
//!   samples does not swing the verdict.
//! - Fewer than [`MIN_POINTS`] points, or points spanning less than [`MIN_SPAN_SECONDS`], give
//!   [`Drain::Measuring`]: no verdict from too little.
//! - A backlog that changes by less than [`STEADY_PER_HOUR`] of itself an hour is steady, neither
//!   draining nor growing: a time to drain of days is no promise to make.
//!
//! # Must not
//! Read clocks or counters: it is given the points, so it is tested with fixed data.

use std::time::Duration;

use super::page::{age, bytes};

/// The span of points the trend is fitted over: the current rate, not the last 15 minutes'.
pub const FIT_WINDOW: Duration = Duration::from_secs(60);
/// Points needed for a trend.
pub const MIN_POINTS: usize = 3;
/// Seconds the points must span for a trend.
pub const MIN_SPAN_SECONDS: f64 = 9.0;
/// A backlog changing by less than this share of itself in an hour is steady.
pub const STEADY_PER_HOUR: f64 = 0.01;
/// Below this many bytes a second a backlog is steady whatever its size (a few bytes a second
/// is noise, not a trend).
const STEADY_BYTES_PER_SECOND: f64 = 1.0;

/// The verdict on a backlog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Drain {
    /// Too few points yet for a trend.
    Measuring,
    /// Nothing is waiting.
    Empty,
    /// Shrinking; at the fitted rate it is empty in `seconds`.
    Draining { seconds: f64, bytes_per_second: f64 },
    /// Growing at `bytes_per_second`: it never drains at this rate.
    Growing { bytes_per_second: f64 },
    /// Neither: `bytes` wait and stay.
    Steady { bytes: u64 },
}

impl Drain {
    /// `measuring`, `empty`, `draining`, `growing` or `steady`: the JSON's `state`.
    pub fn state(&self) -> &'static str {
        match self {
            Drain::Measuring => "measuring",
            Drain::Empty => "empty",
            Drain::Draining { .. } => "draining",
            Drain::Growing { .. } => "growing",
            Drain::Steady { .. } => "steady",
        }
    }

    /// The sentence a person reads.
    pub fn text(&self) -> String {
        match *self {
            Drain::Measuring => "measuring the trend".to_owned(),
            Drain::Empty => "empty".to_owned(),
            Drain::Draining {
                seconds,
                bytes_per_second,
            } => format!(
                "drains in {} at the current rate (shrinking by {}/min)",
                approximately(seconds),
                bytes((-bytes_per_second * 60.0).round() as u64)
            ),
            Drain::Growing { bytes_per_second } => format!(
                "growing by {}/min: never drains at this rate",
                bytes((bytes_per_second * 60.0).round() as u64)
            ),
            Drain::Steady { bytes: b } => format!("steady at {}: not draining", bytes(b)),
        }
    }

    /// Bytes a second of the fitted trend: negative while draining, 0 when steady or empty.
    pub fn bytes_per_second(&self) -> Option<f64> {
        match *self {
            Drain::Measuring => None,
            Drain::Empty | Drain::Steady { .. } => Some(0.0),
            Drain::Draining {
                bytes_per_second, ..
            }
            | Drain::Growing { bytes_per_second } => Some(bytes_per_second),
        }
    }

    /// Seconds until empty: 0 when empty, `None` when it does not drain (or is being measured).
    pub fn seconds(&self) -> Option<f64> {
        match *self {
            Drain::Empty => Some(0.0),
            Drain::Draining { seconds, .. } => Some(seconds),
            _ => None,
        }
    }
}

/// The verdict on a backlog from its points `(seconds, bytes)`, oldest first; only those within
/// [`FIT_WINDOW`] of the last one count.
pub fn estimate(points: &[(f64, f64)]) -> Drain {
    let Some(&(last_t, current)) = points.last() else {
        return Drain::Measuring;
    };
    if current <= 0.0 {
        return Drain::Empty;
    }
    let window = FIT_WINDOW.as_secs_f64();
    let start = points.partition_point(|&(t, _)| last_t - t > window);
    let recent = &points[start..];
    if recent.len() < MIN_POINTS || last_t - recent[0].0 < MIN_SPAN_SECONDS {
        return Drain::Measuring;
    }
    let Some(slope) = least_squares_slope(recent) else {
        return Drain::Measuring;
    };
    let steady_below = (current * STEADY_PER_HOUR / 3600.0).max(STEADY_BYTES_PER_SECOND);
    if slope.abs() < steady_below {
        Drain::Steady {
            bytes: current.round() as u64,
        }
    } else if slope < 0.0 {
        Drain::Draining {
            seconds: current / -slope,
            bytes_per_second: slope,
        }
    } else {
        Drain::Growing {
            bytes_per_second: slope,
        }
    }
}

/// The slope of the least-squares line through `points`; `None` when their times are all one.
fn least_squares_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for &(t, v) in points {
        covariance += (t - mean_t) * (v - mean_v);
        variance += (t - mean_t) * (t - mean_t);
    }
    (variance > 0.0).then(|| covariance / variance)
}

/// `~45s`, `~7 min`, `~2h10m`: a duration that is an estimate, rounded as one.
fn approximately(seconds: f64) -> String {
    if seconds < 60.0 {
        return "under a minute".to_owned();
    }
    if seconds < 3600.0 {
        return format!("~{} min", (seconds / 60.0).round() as u64);
    }
    format!("~{}", age(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points every 5 s from `values`.
    fn every_5s(values: &[f64]) -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 * 5.0, *v))
            .collect()
    }

    #[test]
    fn no_points_is_measuring() {
        assert_eq!(estimate(&[]), Drain::Measuring);
    }

    #[test]
    fn too_few_points_is_measuring() {
        assert_eq!(estimate(&every_5s(&[1000.0, 900.0])), Drain::Measuring);
    }

    #[test]
    fn points_spanning_too_little_time_are_measuring() {
        let points = [(0.0, 1000.0), (1.0, 900.0), (2.0, 800.0), (3.0, 700.0)];
        assert_eq!(estimate(&points), Drain::Measuring);
    }

    #[test]
    fn a_backlog_of_zero_is_empty_whatever_came_before() {
        assert_eq!(estimate(&[(0.0, 0.0)]), Drain::Empty);
        assert_eq!(estimate(&every_5s(&[5e6, 3e6, 1e6, 0.0])), Drain::Empty);
    }

    #[test]
    fn a_flat_backlog_is_steady() {
        let verdict = estimate(&every_5s(&[4096.0; 13]));
        assert_eq!(verdict, Drain::Steady { bytes: 4096 });
        assert_eq!(verdict.text(), "steady at 4.0 KiB: not draining");
    }

    #[test]
    fn a_growing_backlog_never_drains() {
        // 3 MiB a minute, in 5 s steps.
        let step = 3.0 * 1024.0 * 1024.0 / 12.0;
        let values: Vec<f64> = (0..13).map(|i| 1e6 + step * i as f64).collect();
        let verdict = estimate(&every_5s(&values));
        let Drain::Growing { bytes_per_second } = verdict else {
            panic!("expected growing, got {verdict:?}");
        };
        assert!((bytes_per_second * 60.0 - 3.0 * 1024.0 * 1024.0).abs() < 1.0);
        assert_eq!(
            verdict.text(),
            "growing by 3.0 MiB/min: never drains at this rate"
        );
        assert_eq!(verdict.seconds(), None);
    }

    #[test]
    fn a_shrinking_backlog_drains_at_the_fitted_rate() {
        // 1 MiB a minute off 7 MiB: the last point holds 7 MiB, so 7 minutes to go.
        let mib = 1024.0 * 1024.0;
        let values: Vec<f64> = (0..13).map(|i| 8.0 * mib - mib * i as f64 / 12.0).collect();
        let verdict = estimate(&every_5s(&values));
        let seconds = verdict.seconds().expect("it drains");
        assert!((seconds - 420.0).abs() < 0.5, "{seconds}");
        assert_eq!(
            verdict.text(),
            "drains in ~7 min at the current rate (shrinking by 1.0 MiB/min)"
        );
    }

    #[test]
    fn noise_around_a_trend_does_not_change_the_verdict() {
        // Shrinking by 1000 B/s, with every other point 20 kB off either way: the last two
        // points alone would say "growing", the fit says draining at about 1000 B/s.
        let values: Vec<f64> = (0..13)
            .map(|i| {
                let noise = if i % 2 == 0 { 20_000.0 } else { -20_000.0 };
                1e6 - 5000.0 * i as f64 + noise
            })
            .collect();
        assert!(values[12] > values[11], "the last step goes up");
        let verdict = estimate(&every_5s(&values));
        let rate = verdict.bytes_per_second().expect("a trend");
        assert!(matches!(verdict, Drain::Draining { .. }), "{verdict:?}");
        assert!((rate + 1000.0).abs() < 300.0, "{rate}");
    }

    #[test]
    fn only_the_last_minute_counts() {
        // Grew for ten minutes, then shrank for the last minute: it is draining now.
        let mut values: Vec<f64> = (0..120).map(|i| 1000.0 * i as f64).collect();
        let top = values[119];
        values.extend((1..=12).map(|i| top - 5000.0 * i as f64));
        assert!(matches!(
            estimate(&every_5s(&values)),
            Drain::Draining { .. }
        ));
    }

    #[test]
    fn a_change_of_under_one_percent_an_hour_is_steady() {
        // 100 MB growing by 100 B/s is 0.36 % an hour.
        let values: Vec<f64> = (0..13).map(|i| 1e8 + 500.0 * i as f64).collect();
        assert!(matches!(estimate(&every_5s(&values)), Drain::Steady { .. }));
    }

    #[test]
    fn long_estimates_read_in_hours() {
        assert_eq!(approximately(30.0), "under a minute");
        assert_eq!(approximately(419.0), "~7 min");
        assert_eq!(approximately(7800.0), "~2h10m");
    }
}
