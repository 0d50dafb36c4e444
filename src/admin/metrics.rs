//! `/metrics`: the Prometheus text exposition format 0.0.4, written by hand into one `String`.
//!
//! # Guarantees
//! - Every family has `# HELP` and `# TYPE` lines and appears once, its samples together;
//!   a family with no samples (no storages yet) is left out, as Prometheus' clients do.
//! - Counters end in `_total`, gauges do not; every storage figure carries `storage="<id>"`, and
//!   for one tenant's queue of a multitenant storage also `tenant="<accountID>:<projectID>"`.
//! - Scrape figures are per job (`scrape_job="<job_name>"`), never per target, so their
//!   number of series does not grow with the number of discovered targets.
//! - Label values are escaped as the format asks (`\\`, `\"`, `\n`), so an id, URL or name
//!   from the config can never break a line.
//!
//! # Must not
//! Read anything itself: it renders the snapshots it is given (process figures included), so
//! its output is a pure function of its inputs and is tested as such.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::PoisonError;
use std::time::Duration;

use crate::forward::{SenderState, StorageStatus};
use crate::scrape::manager::TargetsView;
use crate::scrape::scrape_loop::Health;
use crate::stats::{DiscoverySnapshot, IngestSnapshot, ListenerSnapshot};

use super::process::ProcessStats;

/// The labels that name one queue: `storage`, and `tenant` for a tenant queue.
fn queue_labels(s: &StorageStatus) -> Vec<(&'static str, &str)> {
    let mut labels = vec![("storage", s.id.as_str())];
    if let Some(t) = &s.tenant {
        labels.push(("tenant", t.as_str()));
    }
    labels
}

/// The `Content-Type` of the text format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The states of `promrelay_storage_state`, each exported as 1 or 0 so a query can select any.
const STATES: [SenderState; 3] = [
    SenderState::Ok,
    SenderState::Retrying,
    SenderState::Dropping,
];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One per-storage figure: its name after `promrelay_`, its help, and how to read it. `None`
/// leaves the storage's sample out (a timestamp of something that has not happened yet).
struct StorageFigure {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&StorageStatus) -> Option<Value>,
}

#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

fn int(v: u64) -> Option<Value> {
    Some(Value::Int(v))
}

/// Unix milliseconds to Prometheus' base unit for timestamps (seconds, fractional).
fn ms_to_seconds(ms: Option<u64>) -> Option<Value> {
    ms.map(|ms| Value::Float(ms as f64 / 1000.0))
}

const STORAGE_FIGURES: &[StorageFigure] = &[
    StorageFigure {
        name: "pending_bytes",
        kind: Kind::Gauge,
        help: "Bytes in the storage's disk queue not yet acknowledged by the storage.",
        value: |s| int(s.pending_bytes),
    },
    StorageFigure {
        name: "pending_blocks",
        kind: Kind::Gauge,
        help: "Blocks in the storage's disk queue not yet acknowledged by the storage.",
        value: |s| int(s.pending_blocks),
    },
    StorageFigure {
        name: "oldest_pending_age_seconds",
        kind: Kind::Gauge,
        help: "Age of the oldest block not yet acknowledged by the storage; 0 when the queue is empty.",
        value: |s| Some(Value::Float(s.oldest_pending_age_seconds)),
    },
    StorageFigure {
        name: "sent_blocks_total",
        kind: Kind::Counter,
        help: "Blocks (pushes as received) the storage acknowledged with 2xx.",
        value: |s| int(s.sent_blocks_total),
    },
    StorageFigure {
        name: "sent_bytes_total",
        kind: Kind::Counter,
        help: "Compressed bytes of the requests the storage acknowledged.",
        value: |s| int(s.sent_bytes_total),
    },
    StorageFigure {
        name: "sent_samples_total",
        kind: Kind::Counter,
        help: "Samples the storage acknowledged.",
        value: |s| int(s.sent_samples_total),
    },
    StorageFigure {
        name: "requests_total",
        kind: Kind::Counter,
        help: "HTTP requests made to the storage, successful or not.",
        value: |s| int(s.requests_total),
    },
    StorageFigure {
        name: "dropped_blocks_total",
        kind: Kind::Counter,
        help: "Blocks dropped for any reason: refused by the storage (4xx) or over the queue's size cap.",
        value: |s| int(s.dropped_blocks_total),
    },
    StorageFigure {
        name: "dropped_samples_total",
        kind: Kind::Counter,
        help: "Samples dropped for any reason: refused by the storage (4xx) or over the queue's size cap.",
        value: |s| int(s.dropped_samples_total),
    },
    StorageFigure {
        name: "rejected_blocks_total",
        kind: Kind::Counter,
        help: "Blocks the storage refused for good with a non-retryable 4xx (part of dropped_blocks_total).",
        value: |s| int(s.rejected_blocks_total),
    },
    StorageFigure {
        name: "cap_dropped_blocks_total",
        kind: Kind::Counter,
        help: "Blocks dropped by the queue's size cap, oldest first (part of dropped_blocks_total).",
        value: |s| int(s.cap_dropped_blocks_total),
    },
    StorageFigure {
        name: "cap_dropped_bytes_total",
        kind: Kind::Counter,
        help: "Bytes dropped by the queue's size cap.",
        value: |s| int(s.cap_dropped_bytes_total),
    },
    StorageFigure {
        name: "corrupt_blocks_skipped_total",
        kind: Kind::Counter,
        help: "Damaged regions of the queue files skipped while reading.",
        value: |s| int(s.corrupt_blocks_skipped_total),
    },
    StorageFigure {
        name: "retries_total",
        kind: Kind::Counter,
        help: "Send attempts that failed with a retryable error (429, 5xx, timeout, connection).",
        value: |s| int(s.retries_total),
    },
    StorageFigure {
        name: "queue_write_errors_total",
        kind: Kind::Counter,
        help: "Appends to the storage's queue that failed (disk full, I/O errors).",
        value: |s| int(s.queue_write_errors_total),
    },
    StorageFigure {
        name: "last_error_timestamp_seconds",
        kind: Kind::Gauge,
        help: "When the storage's last error happened, Unix seconds; absent until one happens.",
        value: |s| ms_to_seconds(s.last_error_unix_ms),
    },
    StorageFigure {
        name: "last_success_timestamp_seconds",
        kind: Kind::Gauge,
        help: "When the storage last acknowledged a request, Unix seconds; absent until it does.",
        value: |s| ms_to_seconds(s.last_success_unix_ms),
    },
];

/// Writes the whole exposition for these snapshots into `out` (appending).
pub fn render(
    out: &mut String,
    storages: &[StorageStatus],
    ingest: &IngestSnapshot,
    process: &ProcessStats,
) {
    let mut w = Writer { out };
    w.storages(storages);
    w.ingest(ingest);
    w.process(process);
}

/// Appends the listener's counters (failed handshakes, 401, 429, web config reloads).
pub fn render_listener(out: &mut String, l: &ListenerSnapshot) {
    let mut w = Writer { out };
    let counters: [(&str, &str, u64); 4] = [
        (
            "promrelay_tls_handshake_failures_total",
            "TLS handshakes that failed: plain HTTP to the TLS port, a client certificate from an unknown CA, a timeout.",
            l.tls_handshake_failures,
        ),
        (
            "promrelay_unauthorized_requests_total",
            "Requests answered 401: missing or wrong basic-auth credentials.",
            l.unauthorized_requests,
        ),
        (
            "promrelay_throttled_requests_total",
            "Ingest requests answered 429 because --max-concurrent-inserts were busy for --insert-max-queue-duration.",
            l.throttled_requests,
        ),
        (
            "promrelay_rate_limited_requests_total",
            "Requests answered 429 by the web config's rate_limit.",
            l.rate_limited_requests,
        ),
    ];
    for (name, help, v) in counters {
        w.header(name, "counter", help);
        w.sample(name, &[], Value::Int(v));
    }
    let name = "promrelay_web_config_reloads_total";
    w.header(
        name,
        "counter",
        "Changes of the --web.config.file (or the files it names) seen, by result: applied, or refused with the old settings kept.",
    );
    w.sample(
        name,
        &[("result", "success")],
        Value::Int(l.web_config_reloads_ok),
    );
    w.sample(
        name,
        &[("result", "failure")],
        Value::Int(l.web_config_reloads_failed),
    );
}

/// Appends the discovery counters (named as Prometheus' `prometheus_sd_*`).
pub fn render_discovery(out: &mut String, d: &DiscoverySnapshot) {
    let mut w = Writer { out };
    let counters: [(&str, &str, u64); 3] = [
        (
            "promrelay_sd_http_failures_total",
            "http_sd_configs refreshes that failed (connection, status, content type, body); the previous targets stay.",
            d.http_failures,
        ),
        (
            "promrelay_sd_dns_lookups_total",
            "dns_sd_configs lookups of one name.",
            d.dns_lookups,
        ),
        (
            "promrelay_sd_dns_lookup_failures_total",
            "dns_sd_configs lookups without a usable answer (timeout, SERVFAIL, REFUSED); the name keeps its previous targets. NXDOMAIN is an answer.",
            d.dns_lookup_failures,
        ),
    ];
    for (name, help, v) in counters {
        w.header(name, "counter", help);
        w.sample(name, &[], Value::Int(v));
    }
}

struct Writer<'a> {
    out: &'a mut String,
}

impl Writer<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_help(self.out, help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    /// `name{k="v",...} value\n`; no braces when `labels` is empty.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label_value(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) => write_float(self.out, v),
        }
        self.out.push('\n');
    }

    fn storages(&mut self, storages: &[StorageStatus]) {
        if storages.is_empty() {
            return;
        }
        self.header(
            "promrelay_storage_info",
            "gauge",
            "Always 1: a storage's id with its (redacted) URL and configured name.",
        );
        for s in storages {
            let mut labels = queue_labels(s);
            labels.push(("url", &s.url));
            labels.push(("name", s.name.as_deref().unwrap_or("")));
            self.sample("promrelay_storage_info", &labels, Value::Int(1));
        }
        self.header(
            "promrelay_storage_state",
            "gauge",
            "1 for the sender's current state (ok, retrying, dropping), 0 for the others.",
        );
        for s in storages {
            let mut labels = queue_labels(s);
            labels.push(("state", ""));
            for state in STATES {
                if let Some(last) = labels.last_mut() {
                    last.1 = state.as_str();
                }
                self.sample(
                    "promrelay_storage_state",
                    &labels,
                    Value::Int(u64::from(s.state == state)),
                );
            }
        }
        let mut name = String::with_capacity(64);
        for figure in STORAGE_FIGURES {
            let values: Vec<(&StorageStatus, Value)> = storages
                .iter()
                .filter_map(|s| (figure.value)(s).map(|v| (s, v)))
                .collect();
            if values.is_empty() {
                continue;
            }
            name.clear();
            name.push_str("promrelay_");
            name.push_str(figure.name);
            self.header(&name, figure.kind.as_str(), figure.help);
            for (s, v) in values {
                self.sample(&name, &queue_labels(s), v);
            }
        }
    }

    fn ingest(&mut self, ingest: &IngestSnapshot) {
        if !ingest.samples.is_empty() {
            self.header(
                "promrelay_ingested_samples_total",
                "counter",
                "Samples accepted, by where they came from.",
            );
            for (source, n) in &ingest.samples {
                self.sample(
                    "promrelay_ingested_samples_total",
                    &[("source", source.as_str())],
                    Value::Int(*n),
                );
            }
        }
        if !ingest.accepted_requests.is_empty() {
            self.header(
                "promrelay_ingest_requests_total",
                "counter",
                "Requests accepted (answered 2xx), by where they came from.",
            );
            for (source, n) in &ingest.accepted_requests {
                self.sample(
                    "promrelay_ingest_requests_total",
                    &[("source", source.as_str())],
                    Value::Int(*n),
                );
            }
        }
        if !ingest.rejected_requests.is_empty() {
            self.header(
                "promrelay_rejected_requests_total",
                "counter",
                "Requests refused, by reason.",
            );
            for (reason, n) in &ingest.rejected_requests {
                self.sample(
                    "promrelay_rejected_requests_total",
                    &[("reason", reason.as_str())],
                    Value::Int(*n),
                );
            }
        }
        if !ingest.dropped_samples.is_empty() {
            self.header(
                "promrelay_ingest_dropped_samples_total",
                "counter",
                "Samples left out of accepted requests because storages cannot take them, by reason.",
            );
            for (reason, n) in &ingest.dropped_samples {
                self.sample(
                    "promrelay_ingest_dropped_samples_total",
                    &[("reason", reason.as_str())],
                    Value::Int(*n),
                );
            }
        }
        self.histogram(
            "promrelay_ingest_request_duration_seconds",
            "How long receiving a push took, accepted or refused.",
            &ingest.duration_buckets,
            ingest.duration_count,
            ingest.duration_sum_seconds,
        );
    }

    /// `buckets` are cumulative `(upper bound, count)` without `+Inf`, which is `count`.
    fn histogram(&mut self, name: &str, help: &str, buckets: &[(f64, u64)], count: u64, sum: f64) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut le = String::with_capacity(16);
        for (bound, n) in buckets {
            le.clear();
            write_float(&mut le, *bound);
            self.sample(&bucket, &[("le", &le)], Value::Int(*n));
        }
        self.sample(&bucket, &[("le", "+Inf")], Value::Int(count));
        self.sample(&format!("{name}_sum"), &[], Value::Float(sum));
        self.sample(&format!("{name}_count"), &[], Value::Int(count));
    }

    fn process(&mut self, p: &ProcessStats) {
        let figures: [(&str, Kind, &str, Option<Value>); 6] = [
            (
                "process_cpu_seconds_total",
                Kind::Counter,
                "Total user and system CPU time spent in seconds.",
                p.cpu_seconds.map(Value::Float),
            ),
            (
                "process_resident_memory_bytes",
                Kind::Gauge,
                "Resident memory size in bytes.",
                p.resident_memory_bytes.map(Value::Int),
            ),
            (
                "process_virtual_memory_bytes",
                Kind::Gauge,
                "Virtual memory size in bytes.",
                p.virtual_memory_bytes.map(Value::Int),
            ),
            (
                "process_open_fds",
                Kind::Gauge,
                "Number of open file descriptors.",
                p.open_fds.map(Value::Int),
            ),
            (
                "process_max_fds",
                Kind::Gauge,
                "Maximum number of open file descriptors.",
                p.max_fds.map(Value::Int),
            ),
            (
                "process_start_time_seconds",
                Kind::Gauge,
                "Start time of the process since unix epoch in seconds.",
                p.start_time_seconds.map(Value::Float),
            ),
        ];
        for (name, kind, help, value) in figures {
            if let Some(v) = value {
                self.header(name, kind.as_str(), help);
                self.sample(name, &[], v);
            }
        }
    }
}

/// One scrape job's figures on `/metrics`, summed over the targets the scraper publishes: a
/// few series per job, not per target, so thousands of discovered pods stay a few lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScrapeJobFigures {
    /// The job's `job_name` (exported as `scrape_job`, so it does not clash with the `job`
    /// label of whoever scrapes promrelay).
    pub job: String,
    /// Active targets whose last scrape succeeded.
    pub up: u64,
    /// Active targets whose last scrape failed.
    pub down: u64,
    /// Active targets not scraped yet.
    pub unknown: u64,
    /// Discovered targets this instance does not scrape (relabeled away, or another member's).
    pub dropped: u64,
    /// The longest last-scrape duration among the scraped targets, seconds.
    pub max_duration_seconds: f64,
    /// The mean last-scrape duration of the scraped targets, seconds; 0 before any scrape.
    pub mean_duration_seconds: f64,
}

/// Sums the scraper's view per job, jobs in name order.
pub fn scrape_figures(view: &TargetsView) -> Vec<ScrapeJobFigures> {
    let active = view.active.iter().map(|a| {
        let h = a.health.lock().unwrap_or_else(PoisonError::into_inner);
        (a.target.job.as_str(), h.health, h.last_scrape_duration)
    });
    summarize(
        active,
        view.dropped_total
            .iter()
            .map(|(job, n)| (job.as_str(), *n as u64)),
    )
}

/// [`scrape_figures`] over plain data: each active target's job, health and last duration, and
/// each job's count of dropped targets.
fn summarize<'a>(
    active: impl Iterator<Item = (&'a str, Health, Duration)>,
    dropped: impl Iterator<Item = (&'a str, u64)>,
) -> Vec<ScrapeJobFigures> {
    // Per job: its figures and the sum of its scraped targets' durations.
    let mut jobs: BTreeMap<&str, (ScrapeJobFigures, f64)> = BTreeMap::new();
    fn job_entry<'m, 'a>(
        jobs: &'m mut BTreeMap<&'a str, (ScrapeJobFigures, f64)>,
        job: &'a str,
    ) -> &'m mut (ScrapeJobFigures, f64) {
        jobs.entry(job).or_insert_with(|| {
            let figures = ScrapeJobFigures {
                job: job.to_owned(),
                ..ScrapeJobFigures::default()
            };
            (figures, 0.0)
        })
    }
    for (job, health, duration) in active {
        let (figures, duration_sum) = job_entry(&mut jobs, job);
        match health {
            Health::Up => figures.up += 1,
            Health::Down => figures.down += 1,
            Health::Unknown => {
                figures.unknown += 1;
                continue;
            }
        }
        let seconds = duration.as_secs_f64();
        figures.max_duration_seconds = figures.max_duration_seconds.max(seconds);
        *duration_sum += seconds;
    }
    for (job, n) in dropped {
        job_entry(&mut jobs, job).0.dropped += n;
    }
    jobs.into_values()
        .map(|(mut figures, duration_sum)| {
            let scraped = figures.up + figures.down;
            if scraped > 0 {
                figures.mean_duration_seconds = duration_sum / scraped as f64;
            }
            figures
        })
        .collect()
}

/// Reads one per-job figure.
type JobValue = fn(&ScrapeJobFigures) -> Value;

/// Appends the scraper's per-job figures; nothing when scraping is off or finds no target.
pub fn render_scrape(out: &mut String, jobs: &[ScrapeJobFigures]) {
    if jobs.is_empty() {
        return;
    }
    let mut w = Writer { out };
    w.header(
        "promrelay_scrape_targets",
        "gauge",
        "Targets this instance scrapes, by job and by the health of their last scrape (unknown: not scraped yet).",
    );
    for j in jobs {
        for (health, n) in [("up", j.up), ("down", j.down), ("unknown", j.unknown)] {
            w.sample(
                "promrelay_scrape_targets",
                &[("scrape_job", &j.job), ("health", health)],
                Value::Int(n),
            );
        }
    }
    let per_job: [(&str, &str, JobValue); 3] = [
        (
            "promrelay_scrape_dropped_targets",
            "Discovered targets this instance does not scrape: dropped by relabeling, or owned by other cluster members.",
            |j| Value::Int(j.dropped),
        ),
        (
            "promrelay_scrape_max_duration_seconds",
            "The longest of the last scrape durations of the job's targets.",
            |j| Value::Float(j.max_duration_seconds),
        ),
        (
            "promrelay_scrape_mean_duration_seconds",
            "The mean of the last scrape durations of the job's targets; 0 before the first scrape.",
            |j| Value::Float(j.mean_duration_seconds),
        ),
    ];
    for (name, help, value) in per_job {
        w.header(name, "gauge", help);
        for j in jobs {
            w.sample(name, &[("scrape_job", &j.job)], value(j));
        }
    }
}

/// A float as the text format reads it: Go's spellings for the special values, and the
/// shortest decimal that reads back as the same float otherwise (Rust's `Display`).
fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Label values: backslash, double quote and line feed are escaped; everything else is UTF-8 as is.
pub(super) fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text: backslash and line feed are escaped (a double quote is not, in this format).
fn escape_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- scrape figures ----

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn scrape_figures_count_targets_per_job_by_health_and_dropped() {
        let active = [
            ("pods", Health::Up, 10 * MS),
            ("pods", Health::Down, 30 * MS),
            ("pods", Health::Unknown, Duration::ZERO),
            ("nodes", Health::Up, 4 * MS),
        ];
        let figures = summarize(
            active.into_iter(),
            [("pods", 2), ("ingresses", 1)].into_iter(),
        );
        let counts: Vec<(&str, u64, u64, u64, u64)> = figures
            .iter()
            .map(|j| (j.job.as_str(), j.up, j.down, j.unknown, j.dropped))
            .collect();
        assert_eq!(
            counts,
            [
                ("ingresses", 0, 0, 0, 1),
                ("nodes", 1, 0, 0, 0),
                ("pods", 1, 1, 1, 2)
            ]
        );
    }

    #[test]
    fn scrape_durations_are_the_max_and_mean_of_scraped_targets_only() {
        let active = [
            ("pods", Health::Up, 10 * MS),
            ("pods", Health::Down, 30 * MS),
            // Not scraped yet: its zero duration would pull the mean down.
            ("pods", Health::Unknown, Duration::ZERO),
        ];
        let figures = summarize(active.into_iter(), std::iter::empty());
        assert_eq!(figures[0].max_duration_seconds, 0.03);
        assert_eq!(figures[0].mean_duration_seconds, 0.02);
    }

    #[test]
    fn scrape_figures_render_per_job_with_the_scrape_job_label() {
        let figures = summarize(
            [("a\"b", Health::Down, 5 * MS)].into_iter(),
            [("a\"b", 1)].into_iter(),
        );
        let mut out = String::new();
        render_scrape(&mut out, &figures);
        for expected in [
            "# TYPE promrelay_scrape_targets gauge\n",
            "promrelay_scrape_targets{scrape_job=\"a\\\"b\",health=\"up\"} 0\n",
            "promrelay_scrape_targets{scrape_job=\"a\\\"b\",health=\"down\"} 1\n",
            "promrelay_scrape_targets{scrape_job=\"a\\\"b\",health=\"unknown\"} 0\n",
            "promrelay_scrape_dropped_targets{scrape_job=\"a\\\"b\"} 1\n",
            "promrelay_scrape_max_duration_seconds{scrape_job=\"a\\\"b\"} 0.005\n",
            "promrelay_scrape_mean_duration_seconds{scrape_job=\"a\\\"b\"} 0.005\n",
        ] {
            assert!(out.contains(expected), "lacks {expected:?}:\n{out}");
        }
    }

    #[test]
    fn no_scrape_figures_without_jobs() {
        let mut out = String::new();
        render_scrape(&mut out, &[]);
        assert_eq!(out, "");
    }
}
