//! Small helpers several modules need, written once: the wall clock in milliseconds, an error
//! with its sources on one line, user- or peer-supplied text made safe for a one-line message,
//! and a throttle for repeated log lines.
//!
//! Must not: depend on any other module of the crate (it sits below all of them), hold state of
//! its own (a [`LogThrottle`] lives in its caller), or grow into a grab bag: a helper belongs here
//! only when two top-level modules need it.

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is set before 1970).
///
/// `u64` because it counts; a remote-write sample timestamp is an `i64` and takes it with
/// `as i64`, exact until the year 292 million.
pub fn now_ms() -> u64 {
    #[expect(clippy::disallowed_methods, reason = "this is the one wall clock")]
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Lets a repeated log line through at most once per interval, whichever thread asks: the first
/// caller in each interval is told to log, the others not (what they would have said is counted
/// elsewhere).
#[derive(Debug)]
pub struct LogThrottle {
    every_ms: u64,
    last_ms: AtomicU64,
}

impl LogThrottle {
    pub const fn new(every: Duration) -> Self {
        LogThrottle {
            every_ms: every.as_millis() as u64,
            last_ms: AtomicU64::new(0),
        }
    }

    /// True for the first caller of each interval.
    pub fn due(&self) -> bool {
        let now = now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) >= self.every_ms
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// An error and its sources on one line (`outer: inner: innermost`).
pub fn error_chain(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Makes text from outside (a config value, a storage's answer) safe for a one-line message:
/// control characters, newlines included, are escaped as Rust does (`\n`, `\u{1b}`).
pub fn one_line(text: &str) -> String {
    one_line_max(text, usize::MAX)
}

/// [`one_line`], keeping at most `max_chars` characters of `text` and marking a cut with `…`.
pub fn one_line_max(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_add(3)));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_caller_through_per_interval() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert!(throttle.due());
        assert!(!throttle.due());
        assert!(!throttle.due());
        assert!(LogThrottle::new(Duration::ZERO).due());
    }

    #[test]
    fn one_line_escapes_newlines_and_other_control_characters() {
        assert_eq!(one_line("a\nb\r\nc\u{1b}"), "a\\nb\\r\\nc\\u{1b}");
        assert_eq!(one_line("plain text: ok"), "plain text: ok");
    }

    #[test]
    fn one_line_max_cuts_long_text_and_marks_the_cut() {
        let cut = one_line_max(&"x".repeat(1000), 300);
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.ends_with("x…"));
        assert_eq!(one_line_max("short", 300), "short");
        assert_eq!(one_line_max("exact", 5), "exact");
    }

    #[test]
    fn error_chain_joins_every_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
    }

    #[test]
    fn now_ms_is_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }
}
