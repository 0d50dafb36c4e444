//! Ingest counters: what came in, from where, and what was refused and why.
//!
//! Owns [`IngestMetrics`], the lock-free counters bumped on the hot path by every source of data
//! (the `ingest` module's HTTP endpoints and the `scrape` module's loops), and [`IngestSnapshot`], the
//! copy the `admin` module renders on `/metrics` and the status page.
//!
//! [`ListenerMetrics`] counts what the listener turns away before any protocol sees a request
//! (failed TLS handshakes, 401, 429). [`DiscoveryMetrics`] counts the scraper's discovery
//! refreshes that failed.
//!
//! It sits below both sources so neither imports the other for it. Must not: depend on any
//! other module of the crate, lock, or allocate when counting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Where samples came from (the `source` label of `promrelay_ingested_samples_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    RemoteWrite,
    Import,
    Scrape,
    /// OTLP/HTTP metrics pushes (samples counted after translation, histograms as one each).
    Otlp,
    /// Remote-write 2.0 requests (converted to 1.0 at ingest).
    RemoteWriteV2,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::RemoteWrite,
        Source::Import,
        Source::Scrape,
        Source::Otlp,
        Source::RemoteWriteV2,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Source::RemoteWrite => "remote_write",
            Source::Import => "import",
            Source::Scrape => "scrape",
            Source::Otlp => "otlp",
            Source::RemoteWriteV2 => "remote_write_v2",
        }
    }
}

/// Why samples of an accepted request were left out (the `reason` label of
/// `promrelay_ingest_dropped_samples_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Remote-write 2.0 native histograms with custom buckets (schema -53), which 1.0 storages
    /// older than Prometheus 3 refuse.
    CustomBucketsHistogram,
    /// OTLP data points refused inside an accepted request (delta temporality, names that
    /// escape to nothing, unsupported exponential scales); the sender is told which in the
    /// answer's `partial_success`. Counted in data points.
    OtlpRefusedPoints,
}

impl DropReason {
    pub const ALL: [DropReason; 2] = [
        DropReason::CustomBucketsHistogram,
        DropReason::OtlpRefusedPoints,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::CustomBucketsHistogram => "custom_buckets_histogram",
            DropReason::OtlpRefusedPoints => "otlp_refused_points",
        }
    }
}

/// Why a request was refused (the `reason` label of `promrelay_rejected_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    /// 400: not snappy, not protobuf, not a valid exposition.
    BadBody,
    /// 413: over `--max-request-bytes`, compressed or decompressed.
    TooLarge,
    /// 415: unsupported Content-Encoding or Content-Type.
    UnsupportedMediaType,
    /// 503: a queue could not take the data (disk full, `queue_full: reject`).
    QueueUnavailable,
    /// 400: the tenant in an `/insert/<tenant>/...` path is not `accountID[:projectID]`.
    BadTenant,
    /// 503: a push for a new tenant while a multitenant storage has `max_tenants` tenant queues.
    TooManyTenants,
}

impl Reject {
    pub const ALL: [Reject; 6] = [
        Reject::BadBody,
        Reject::TooLarge,
        Reject::UnsupportedMediaType,
        Reject::QueueUnavailable,
        Reject::BadTenant,
        Reject::TooManyTenants,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::BadBody => "bad_body",
            Reject::TooLarge => "too_large",
            Reject::UnsupportedMediaType => "unsupported_media_type",
            Reject::QueueUnavailable => "queue_unavailable",
            Reject::BadTenant => "bad_tenant",
            Reject::TooManyTenants => "too_many_tenants",
        }
    }
    pub fn status(self) -> u16 {
        match self {
            Reject::BadBody => 400,
            Reject::TooLarge => 413,
            Reject::UnsupportedMediaType => 415,
            Reject::QueueUnavailable => 503,
            Reject::BadTenant => 400,
            Reject::TooManyTenants => 503,
        }
    }
}

/// Upper bounds (seconds) of the request-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The ingest counters of one process.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    samples: [AtomicU64; Source::ALL.len()],
    accepted_requests: [AtomicU64; Source::ALL.len()],
    rejected: [AtomicU64; Reject::ALL.len()],
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// Cumulative bucket counts of accepted and rejected remote-write/import requests.
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
}

/// A copy of [`IngestMetrics`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestSnapshot {
    /// `(source, samples)`.
    pub samples: Vec<(Source, u64)>,
    /// `(source, accepted requests)`.
    pub accepted_requests: Vec<(Source, u64)>,
    /// `(reason, refused requests)`.
    pub rejected_requests: Vec<(Reject, u64)>,
    /// `(reason, samples left out of accepted requests)`.
    pub dropped_samples: Vec<(DropReason, u64)>,
    /// `(upper bound seconds, cumulative count)` for each bucket, without `+Inf`.
    pub duration_buckets: Vec<(f64, u64)>,
    pub duration_count: u64,
    pub duration_sum_seconds: f64,
}

fn source_index(s: Source) -> usize {
    Source::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

fn reject_index(r: Reject) -> usize {
    Reject::ALL.iter().position(|x| *x == r).unwrap_or(0)
}

impl IngestMetrics {
    /// Counts an accepted request and its samples.
    pub fn accepted(&self, source: Source, samples: u64) {
        let i = source_index(source);
        self.samples[i].fetch_add(samples, Ordering::Relaxed);
        self.accepted_requests[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts samples left out of an accepted request.
    pub fn dropped(&self, reason: DropReason, samples: u64) {
        let i = DropReason::ALL
            .iter()
            .position(|x| *x == reason)
            .unwrap_or(0);
        self.dropped[i].fetch_add(samples, Ordering::Relaxed);
    }

    /// Counts a refused request.
    pub fn rejected(&self, reason: Reject) {
        self.rejected[reject_index(reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a request took.
    pub fn observe_duration(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> IngestSnapshot {
        IngestSnapshot {
            samples: Source::ALL
                .iter()
                .map(|s| (*s, self.samples[source_index(*s)].load(Ordering::Relaxed)))
                .collect(),
            accepted_requests: Source::ALL
                .iter()
                .map(|s| {
                    (
                        *s,
                        self.accepted_requests[source_index(*s)].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            rejected_requests: Reject::ALL
                .iter()
                .map(|r| (*r, self.rejected[reject_index(*r)].load(Ordering::Relaxed)))
                .collect(),
            dropped_samples: DropReason::ALL
                .iter()
                .zip(&self.dropped)
                .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
                .collect(),
            duration_buckets: DURATION_BUCKETS
                .iter()
                .enumerate()
                .map(|(i, le)| (*le, self.duration_buckets[i].load(Ordering::Relaxed)))
                .collect(),
            duration_count: self.duration_count.load(Ordering::Relaxed),
            duration_sum_seconds: self.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// The listener's counters: clients turned away before any protocol saw their request.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    tls_handshake_failures: AtomicU64,
    unauthorized: AtomicU64,
    throttled: AtomicU64,
    rate_limited: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

/// A copy of [`ListenerMetrics`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ListenerSnapshot {
    /// TLS handshakes that failed (plain HTTP to the TLS port, unknown CA, timeouts).
    pub tls_handshake_failures: u64,
    /// Requests answered 401 (no or wrong basic-auth credentials).
    pub unauthorized_requests: u64,
    /// Ingest requests answered 429 past `--max-concurrent-inserts`.
    pub throttled_requests: u64,
    /// Requests answered 429 by the web config's `rate_limit`.
    pub rate_limited_requests: u64,
    /// Web config reloads applied.
    pub web_config_reloads_ok: u64,
    /// Web config reloads refused (the old settings stayed).
    pub web_config_reloads_failed: u64,
}

impl ListenerMetrics {
    /// Counts a failed TLS handshake; returns the new total.
    pub fn tls_handshake_failed(&self) -> u64 {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed) + 1
    }
    /// Counts a 401.
    pub fn unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a 429 for the concurrency bound.
    pub fn throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a 429 for the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a web config reload, applied (`ok`) or refused.
    pub fn reloaded(&self, ok: bool) {
        let c = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> ListenerSnapshot {
        ListenerSnapshot {
            tls_handshake_failures: self.tls_handshake_failures.load(Ordering::Relaxed),
            unauthorized_requests: self.unauthorized.load(Ordering::Relaxed),
            throttled_requests: self.throttled.load(Ordering::Relaxed),
            rate_limited_requests: self.rate_limited.load(Ordering::Relaxed),
            web_config_reloads_ok: self.reloads_ok.load(Ordering::Relaxed),
            web_config_reloads_failed: self.reloads_failed.load(Ordering::Relaxed),
        }
    }
}

/// Discovery counters, each named after Prometheus' own (`prometheus_sd_http_failures_total`,
/// `prometheus_sd_dns_lookups_total`, `prometheus_sd_dns_lookup_failures_total`).
#[derive(Debug, Default)]
pub struct DiscoveryMetrics {
    http_failures: AtomicU64,
    dns_lookups: AtomicU64,
    dns_lookup_failures: AtomicU64,
}

/// A copy of [`DiscoveryMetrics`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiscoverySnapshot {
    /// `http_sd` refreshes that failed (the previous targets were kept).
    pub http_failures: u64,
    /// `dns_sd` lookups of one name, answered or not.
    pub dns_lookups: u64,
    /// `dns_sd` lookups that got no usable answer (the name kept its previous targets).
    pub dns_lookup_failures: u64,
}

impl DiscoveryMetrics {
    /// Counts a failed `http_sd` refresh.
    pub fn http_failed(&self) {
        self.http_failures.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a `dns_sd` lookup, and whether it failed.
    pub fn dns_looked_up(&self, failed: bool) {
        self.dns_lookups.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.dns_lookup_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub fn snapshot(&self) -> DiscoverySnapshot {
        DiscoverySnapshot {
            http_failures: self.http_failures.load(Ordering::Relaxed),
            dns_lookups: self.dns_lookups.load(Ordering::Relaxed),
            dns_lookup_failures: self.dns_lookup_failures.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_lookups_count_failures_apart() {
        let m = DiscoveryMetrics::default();
        m.dns_looked_up(false);
        m.dns_looked_up(true);
        m.http_failed();
        assert_eq!(
            m.snapshot(),
            DiscoverySnapshot {
                http_failures: 1,
                dns_lookups: 2,
                dns_lookup_failures: 1
            }
        );
    }

    #[test]
    fn dropped_samples_are_counted_by_reason() {
        let m = IngestMetrics::default();
        m.dropped(DropReason::CustomBucketsHistogram, 3);
        m.dropped(DropReason::CustomBucketsHistogram, 2);
        m.dropped(DropReason::OtlpRefusedPoints, 4);
        assert_eq!(
            m.snapshot().dropped_samples,
            [
                (DropReason::CustomBucketsHistogram, 5),
                (DropReason::OtlpRefusedPoints, 4)
            ]
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = IngestMetrics::default();
        m.observe_duration(Duration::from_micros(700));
        m.observe_duration(Duration::from_millis(30));
        let s = m.snapshot();
        assert_eq!(s.duration_count, 2);
        assert_eq!(s.duration_buckets[0], (0.0005, 0));
        assert_eq!(s.duration_buckets[1], (0.001, 1));
        assert_eq!(s.duration_buckets[6], (0.05, 2));
        assert_eq!(s.duration_buckets[11], (5.0, 2));
    }

    #[test]
    fn samples_are_counted_per_source() {
        let m = IngestMetrics::default();
        m.accepted(Source::RemoteWrite, 10);
        m.accepted(Source::Import, 3);
        m.rejected(Reject::TooLarge);
        m.accepted(Source::RemoteWriteV2, 4);
        let s = m.snapshot();
        assert_eq!(s.samples[4], (Source::RemoteWriteV2, 4));
        assert_eq!(s.samples[0], (Source::RemoteWrite, 10));
        assert_eq!(s.samples[1], (Source::Import, 3));
        assert_eq!(s.accepted_requests[0], (Source::RemoteWrite, 1));
        assert_eq!(s.rejected_requests[1], (Reject::TooLarge, 1));
    }
}
