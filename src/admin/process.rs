//! The `process_*` figures Prometheus' client libraries export, read from `/proc`.
//!
//! # Guarantees
//! - Each figure is read on its own; one that cannot be read or parsed (no `/proc`, a format
//!   we do not know) is `None` and left out of `/metrics`, never a panic or an error response.
//! - The parsers are pure functions over the files' text, tested with fixed text.
//!
//! # Must not
//! Use `unsafe` (no `sysconf`): like Prometheus' Go `procfs`, it takes the kernel's user-visible
//! clock tick (`USER_HZ`) as 100, and takes memory sizes from fields already in bytes or KiB.

use std::fs;
use std::path::Path;

/// `USER_HZ`: the unit of the clock-tick fields of `/proc/<pid>/stat`. The kernel fixes it at
/// 100 for user space on every architecture Rust's std targets (procfs' `userHZ` is the same).
const USER_HZ: f64 = 100.0;

/// The process figures at one moment; `None` where they could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads this process's figures from `/proc`.
    pub fn read() -> ProcessStats {
        Self::read_from(Path::new("/proc"))
    }

    /// Reads the figures of `<proc>/self` (a parameter so a test can point it elsewhere).
    fn read_from(proc: &Path) -> ProcessStats {
        let this = proc.join("self");
        let stat = fs::read_to_string(this.join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s));
        let boot_time = fs::read_to_string(proc.join("stat"))
            .ok()
            .and_then(|s| parse_boot_time(&s));
        ProcessStats {
            cpu_seconds: stat.map(|s| (s.utime_ticks + s.stime_ticks) as f64 / USER_HZ),
            resident_memory_bytes: fs::read_to_string(this.join("status"))
                .ok()
                .and_then(|s| parse_status_kib(&s, "VmRSS:"))
                .and_then(|kib| kib.checked_mul(1024)),
            virtual_memory_bytes: stat.map(|s| s.vsize_bytes),
            open_fds: fs::read_dir(this.join("fd"))
                .ok()
                .map(|d| d.filter(|e| e.is_ok()).count() as u64),
            max_fds: fs::read_to_string(this.join("limits"))
                .ok()
                .and_then(|s| parse_max_open_files(&s)),
            start_time_seconds: match (stat, boot_time) {
                (Some(s), Some(boot)) => Some(boot as f64 + s.start_ticks as f64 / USER_HZ),
                _ => None,
            },
        }
    }
}

/// The fields of `/proc/<pid>/stat` we export.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    utime_ticks: u64,
    stime_ticks: u64,
    /// Clock ticks after boot when the process started.
    start_ticks: u64,
    vsize_bytes: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `fields[0]` is field 3 (state) of proc(5); field n is `fields[n - 3]`.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
    })
}

/// The `btime` line of `/proc/stat`: boot time, Unix seconds.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `Key:   1234 kB` line of `/proc/<pid>/status`, in KiB.
fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix(key))?;
    let mut parts = rest.split_ascii_whitespace();
    let value = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then_some(value)
}

/// The soft limit of the `Max open files` line of `/proc/<pid>/limits`; `None` when unlimited.
fn parse_max_open_files(text: &str) -> Option<u64> {
    let rest = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    rest.split_ascii_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with a space and a ')' in it, as `prctl(PR_SET_NAME)` allows.
        let text = "4242 (we) ird) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 \
                    123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 17003 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                utime_ticks: 250,
                stime_ticks: 75,
                start_ticks: 123456,
                vsize_bytes: 987654321,
            })
        );
    }

    #[test]
    fn truncated_stat_is_none() {
        assert_eq!(parse_stat("4242 (x) S 1 2 3"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn status_rss_is_read_in_kib() {
        let text = "Name:\tpromrelay\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\nThreads:\t9\n";
        assert_eq!(parse_status_kib(text, "VmRSS:"), Some(2048));
        assert_eq!(parse_status_kib(text, "VmSwap:"), None);
    }

    #[test]
    fn max_open_files_takes_the_soft_limit_and_unlimited_is_none() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63448                63448                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_max_open_files(unlimited), None);
    }

    #[test]
    fn boot_time_is_the_btime_line() {
        let text = "cpu  1 2 3 4\nintr 5\nbtime 1700000000\nprocesses 42\n";
        assert_eq!(parse_boot_time(text), Some(1_700_000_000));
    }

    #[test]
    fn missing_proc_gives_no_figures() {
        let dir = tempfile::tempdir().expect("temporary directory");
        assert_eq!(ProcessStats::read_from(dir.path()), ProcessStats::default());
    }

    #[test]
    fn this_process_has_its_figures() {
        let p = ProcessStats::read();
        assert!(p.cpu_seconds.is_some_and(|c| c >= 0.0), "{p:?}");
        assert!(p.resident_memory_bytes.is_some_and(|b| b > 0), "{p:?}");
        assert!(p.virtual_memory_bytes.is_some_and(|b| b > 0), "{p:?}");
        assert!(p.open_fds.is_some_and(|n| n >= 3), "{p:?}");
        assert!(p.max_fds.is_some_and(|n| n > 0), "{p:?}");
        let now = crate::util::now_ms() as f64 / 1000.0;
        assert!(
            p.start_time_seconds
                .is_some_and(|t| t <= now + 1.0 && t > now - 86_400.0 * 365.0),
            "{p:?}"
        );
    }
}
