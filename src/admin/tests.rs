//! The admin routes driven through the router with fixed data.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use tower::ServiceExt;

use super::{StatusSource, router};
use crate::forward::{SenderState, StorageStatus};
use crate::stats::{DropReason, IngestSnapshot, Reject, Source};

/// A storage with every figure distinct and non-zero, so a test can tell them apart.
pub(crate) fn storage(id: &str) -> StorageStatus {
    StorageStatus {
        id: id.to_owned(),
        name: None,
        tenant: None,
        url: format!("http://{id}.example:8428/api/v1/write"),
        state: SenderState::Ok,
        pending_bytes: 12_897_484,
        pending_blocks: 37,
        oldest_pending_age_seconds: 192.5,
        sent_blocks_total: 1001,
        sent_bytes_total: 1002,
        sent_samples_total: 1003,
        requests_total: 1004,
        dropped_blocks_total: 1005,
        dropped_samples_total: 1006,
        rejected_blocks_total: 1007,
        cap_dropped_blocks_total: 1008,
        cap_dropped_bytes_total: 1009,
        corrupt_blocks_skipped_total: 1010,
        retries_total: 1011,
        queue_write_errors_total: 1012,
        last_error: Some("HTTP 503: service unavailable".to_owned()),
        last_error_unix_ms: Some(1_714_566_896_789),
        last_success_unix_ms: Some(1_714_566_900_000),
    }
}

fn ingest() -> IngestSnapshot {
    IngestSnapshot {
        samples: vec![
            (Source::RemoteWrite, 123_456),
            (Source::Import, 78),
            (Source::Scrape, 0),
        ],
        accepted_requests: vec![
            (Source::RemoteWrite, 400),
            (Source::Import, 3),
            (Source::Scrape, 0),
        ],
        rejected_requests: vec![
            (Reject::BadBody, 2),
            (Reject::TooLarge, 1),
            (Reject::UnsupportedMediaType, 0),
            (Reject::QueueUnavailable, 0),
        ],
        dropped_samples: vec![(DropReason::CustomBucketsHistogram, 7)],
        duration_buckets: vec![(0.001, 100), (0.01, 380), (0.1, 404), (1.0, 405)],
        duration_count: 406,
        duration_sum_seconds: 2.75,
    }
}

struct Fixed {
    storages: Vec<StorageStatus>,
    ingest: IngestSnapshot,
    ready: AtomicBool,
}

impl StatusSource for Fixed {
    fn storages(&self) -> Vec<StorageStatus> {
        self.storages.clone()
    }
    fn ingest(&self) -> IngestSnapshot {
        self.ingest.clone()
    }
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

fn fixed(storages: Vec<StorageStatus>) -> Arc<Fixed> {
    Arc::new(Fixed {
        storages,
        ingest: ingest(),
        ready: AtomicBool::new(true),
    })
}

/// Three storages in the three states, one of them with hostile text everywhere.
fn mixed() -> Vec<StorageStatus> {
    let a = storage("vm-a1b2");
    let mut b = storage("mimir-c3d4");
    b.name = Some("mimir".to_owned());
    b.state = SenderState::Retrying;
    let mut c = storage("evil");
    c.state = SenderState::Dropping;
    c.name = Some("say \"hi\"\\\nbye".to_owned());
    c.url = "http://u:xxxxx@h/?q=\"a\"\\b\n<script>".to_owned();
    c.last_error = Some("<img src=x onerror=alert(1)> & \"quoted\" 'single'".to_owned());
    vec![a, b, c]
}

async fn get(source: Arc<dyn StatusSource>, path: &str) -> (StatusCode, HeaderMap, String) {
    let request = Request::get(path)
        .body(Body::empty())
        .expect("a valid request");
    let response = router(source)
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("the body is read");
    let body = String::from_utf8(body.to_vec()).expect("the body is UTF-8");
    (status, headers, body)
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn metrics_text(storages: Vec<StorageStatus>) -> String {
    let (status, _, body) = get(fixed(storages), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    body
}

/// The sample lines of `family` (its name followed by `{` or a space).
fn samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

// ---- /api/v1/queues ----

#[tokio::test]
async fn queues_json_has_design_field_names() {
    let (_, _, body) = get(fixed(vec![storage("vm-a1b2")]), "/api/v1/queues").await;
    let json: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    let object = json[0].as_object().expect("an object per storage");
    // design.md, "Observability names".
    for field in [
        "id",
        "url",
        "pending_bytes",
        "pending_blocks",
        "oldest_pending_age_seconds",
        "sent_blocks_total",
        "sent_bytes_total",
        "dropped_blocks_total",
        "corrupt_blocks_skipped_total",
        "retries_total",
        "last_error",
        "state",
    ] {
        assert!(object.contains_key(field), "missing {field:?} in {body}");
    }
}

#[tokio::test]
async fn queues_json_has_one_object_per_storage_with_lowercase_state() {
    let (_, _, body) = get(fixed(mixed()), "/api/v1/queues").await;
    let json: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    let states: Vec<&str> = json
        .as_array()
        .expect("an array")
        .iter()
        .map(|s| s["state"].as_str().expect("state is a string"))
        .collect();
    assert_eq!(states, ["ok", "retrying", "dropping"]);
}

#[tokio::test]
async fn queues_are_served_as_application_json() {
    let (status, headers, _) = get(fixed(vec![]), "/api/v1/queues").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type(&headers), "application/json");
}

// ---- /metrics ----

/// Pipes `text` through `promtool check metrics`; its output, and whether it passed.
fn promtool_check(text: &str) -> (bool, String) {
    let promtool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".peers/bin/promtool");
    assert!(
        promtool.exists(),
        "{} is missing: run scripts/fetch-peers.sh",
        promtool.display()
    );
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(text.as_bytes())
            .expect("promtool reads its input");
    }
    let out = child.wait_with_output().expect("promtool finishes");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test]
async fn metrics_pass_promtool_check() {
    for storages in [mixed(), vec![]] {
        let text = metrics_text(storages).await;
        let (passed, said) = promtool_check(&text);
        assert!(
            passed && said.trim().is_empty(),
            "promtool check metrics: {said}\n--- input ---\n{text}"
        );
    }
}

#[tokio::test]
async fn promtool_check_catches_a_bad_exposition() {
    // Guards the test above: promtool really reads our input and fails on a lint problem.
    let (passed, said) = promtool_check("# TYPE promrelay_bad counter\npromrelay_bad 1\n");
    assert!(
        !passed,
        "promtool accepted a counter without _total: {said}"
    );
}

#[tokio::test]
async fn metrics_are_text_format_0_0_4() {
    let (status, headers, _) = get(fixed(mixed()), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type(&headers),
        "text/plain; version=0.0.4; charset=utf-8"
    );
}

#[tokio::test]
async fn metrics_label_values_are_escaped() {
    let text = metrics_text(mixed()).await;
    let info = samples(&text, "promrelay_storage_info");
    let evil = info
        .iter()
        .find(|l| l.contains("storage=\"evil\""))
        .expect("the evil storage's info line");
    assert_eq!(
        *evil,
        r#"promrelay_storage_info{storage="evil",url="http://u:xxxxx@h/?q=\"a\"\\b\n<script>",name="say \"hi\"\\\nbye"} 1"#
    );
    // No label value broke a line: every line is a comment or starts with a metric name.
    for line in text.lines() {
        assert!(
            line.starts_with('#') || line.starts_with("promrelay_") || line.starts_with("process_"),
            "stray line {line:?}"
        );
    }
}

#[tokio::test]
async fn metrics_export_every_storage_figure_with_storage_label() {
    let text = metrics_text(vec![storage("vm-a1b2")]).await;
    let json = serde_json::to_value(storage("vm-a1b2")).expect("serializable");
    for (field, value) in json.as_object().expect("an object") {
        let Some(number) = value.as_f64() else {
            continue; // id, name, url, state, last_error: labels or their own families
        };
        let (name, expected) = match field.strip_suffix("_unix_ms") {
            Some(stem) => (format!("{stem}_timestamp_seconds"), number / 1000.0),
            None => (field.clone(), number),
        };
        let family = format!("promrelay_{name}");
        let lines = samples(&text, &family);
        assert_eq!(
            lines,
            [format!("{family}{{storage=\"vm-a1b2\"}} {expected}")],
            "{field} in\n{text}"
        );
    }
}

#[tokio::test]
async fn metrics_counters_end_in_total_and_gauges_do_not() {
    let text = metrics_text(mixed()).await;
    let mut types = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        types += 1;
        let (name, kind) = rest.split_once(' ').expect("name and type");
        match kind {
            "counter" => assert!(name.ends_with("_total"), "{name}"),
            "gauge" => assert!(!name.ends_with("_total"), "{name}"),
            "histogram" => {}
            other => panic!("unexpected type {other} of {name}"),
        }
    }
    assert!(types > 20, "only {types} families");
}

#[tokio::test]
async fn metrics_families_each_have_help_and_type_once() {
    let text = metrics_text(mixed()).await;
    let mut helps: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut types: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    helps.sort_unstable();
    types.sort_unstable();
    assert_eq!(helps, types);
    let count = types.len();
    types.dedup();
    assert_eq!(types.len(), count, "a family appears twice");
}

#[tokio::test]
async fn metrics_state_is_one_for_the_current_state_only() {
    let text = metrics_text(mixed()).await;
    let lines = samples(&text, "promrelay_storage_state");
    for expected in [
        r#"promrelay_storage_state{storage="mimir-c3d4",state="ok"} 0"#,
        r#"promrelay_storage_state{storage="mimir-c3d4",state="retrying"} 1"#,
        r#"promrelay_storage_state{storage="mimir-c3d4",state="dropping"} 0"#,
    ] {
        assert!(lines.contains(&expected), "{expected} not in {lines:#?}");
    }
    assert_eq!(lines.len(), 9);
    assert_eq!(lines.iter().filter(|l| l.ends_with(" 1")).count(), 3);
}

#[tokio::test]
async fn metrics_storage_info_has_empty_name_when_none_is_configured() {
    let text = metrics_text(vec![storage("vm-a1b2")]).await;
    assert_eq!(
        samples(&text, "promrelay_storage_info"),
        [
            r#"promrelay_storage_info{storage="vm-a1b2",url="http://vm-a1b2.example:8428/api/v1/write",name=""} 1"#
        ]
    );
}

#[tokio::test]
async fn metrics_of_a_tenant_queue_carry_its_tenant_and_tell_tenants_apart() {
    let mut one = storage("vminsert-8480-a1b2");
    one.tenant = Some("1:2".to_owned());
    let mut other = one.clone();
    other.tenant = Some("3:0".to_owned());
    other.pending_blocks = 5;
    let text = metrics_text(vec![storage("vm-a1b2"), one, other]).await;
    assert_eq!(
        samples(&text, "promrelay_pending_blocks"),
        [
            r#"promrelay_pending_blocks{storage="vm-a1b2"} 37"#,
            r#"promrelay_pending_blocks{storage="vminsert-8480-a1b2",tenant="1:2"} 37"#,
            r#"promrelay_pending_blocks{storage="vminsert-8480-a1b2",tenant="3:0"} 5"#,
        ]
    );
    assert!(
        text.contains(
            r#"promrelay_storage_state{storage="vminsert-8480-a1b2",tenant="3:0",state="ok"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_ingest_counters_are_labelled_by_source_and_reason() {
    let text = metrics_text(vec![]).await;
    assert!(
        text.contains("promrelay_ingested_samples_total{source=\"remote_write\"} 123456\n"),
        "{text}"
    );
    assert!(text.contains("promrelay_ingest_requests_total{source=\"import\"} 3\n"));
    assert!(text.contains("promrelay_rejected_requests_total{reason=\"bad_body\"} 2\n"));
    assert!(text.contains("promrelay_rejected_requests_total{reason=\"queue_unavailable\"} 0\n"));
    assert!(text.contains(
        "promrelay_ingest_dropped_samples_total{reason=\"custom_buckets_histogram\"} 7\n"
    ));
}

#[tokio::test]
async fn metrics_histogram_ends_with_inf_bucket_sum_and_count() {
    let text = metrics_text(vec![]).await;
    let expected = "promrelay_ingest_request_duration_seconds_bucket{le=\"0.001\"} 100\n\
                    promrelay_ingest_request_duration_seconds_bucket{le=\"0.01\"} 380\n\
                    promrelay_ingest_request_duration_seconds_bucket{le=\"0.1\"} 404\n\
                    promrelay_ingest_request_duration_seconds_bucket{le=\"1\"} 405\n\
                    promrelay_ingest_request_duration_seconds_bucket{le=\"+Inf\"} 406\n\
                    promrelay_ingest_request_duration_seconds_sum 2.75\n\
                    promrelay_ingest_request_duration_seconds_count 406\n";
    assert!(text.contains(expected), "{text}");
}

#[tokio::test]
async fn metrics_include_process_figures() {
    let text = metrics_text(vec![]).await;
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let lines = samples(&text, name);
        assert_eq!(lines.len(), 1, "{name} in\n{text}");
        let value: f64 = lines[0]
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a number");
        assert!(value > 0.0 || name == "process_cpu_seconds_total", "{name}");
    }
}

#[tokio::test]
async fn metrics_leave_out_timestamps_of_what_never_happened() {
    let mut s = storage("fresh");
    s.last_error = None;
    s.last_error_unix_ms = None;
    s.last_success_unix_ms = None;
    let text = metrics_text(vec![s]).await;
    assert!(!text.contains("promrelay_last_error_timestamp_seconds"));
    assert!(!text.contains("promrelay_last_success_timestamp_seconds"));
}

// ---- / ----

async fn page(storages: Vec<StorageStatus>) -> String {
    let (status, headers, body) = get(fixed(storages), "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type(&headers), "text/html; charset=utf-8");
    body
}

#[tokio::test]
async fn status_page_escapes_error_text() {
    let body = page(mixed()).await;
    assert!(!body.contains("<img"), "{body}");
    // A single quote needs no escape: every attribute the template writes is double-quoted.
    assert!(
        body.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot; 'single'"),
        "{body}"
    );
}

#[tokio::test]
async fn status_page_escapes_a_script_in_a_storage_error_in_text_and_title() {
    let mut s = storage("vm-a1b2");
    s.last_error = Some("<script>alert(1)</script>\" onmouseover=\"alert(2)".to_owned());
    let body = page(vec![s]).await;
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&quot; onmouseover=&quot;alert(2)";
    assert!(
        body.contains(&format!("title=\"{escaped}\">{escaped}</div>")),
        "{body}"
    );
    assert!(!body.contains("\" onmouseover"), "{body}");
    // The page's own script is the only one.
    assert_eq!(body.matches("<script").count(), 1);
}

#[tokio::test]
async fn status_page_escapes_urls_and_names() {
    let body = page(mixed()).await;
    assert!(body.contains("http://u:xxxxx@h/?q=&quot;a&quot;\\b\n&lt;script&gt;"));
    assert!(body.contains("say &quot;hi&quot;\\\nbye"));
    // The page's own script is the only one.
    assert_eq!(body.matches("<script").count(), 1);
}

#[tokio::test]
async fn status_page_loads_nothing_from_elsewhere() {
    let body = page(mixed()).await;
    for needle in ["src=\"", "<link", "url(", "@import", "//cdn"] {
        assert!(!body.contains(needle), "{needle} in the page");
    }
}

#[tokio::test]
async fn status_page_shows_backlog_state_and_ingest_totals() {
    let body = page(mixed()).await;
    assert!(body.contains("12.3 MiB"), "backlog bytes");
    assert!(body.contains("37 blocks"), "backlog blocks");
    assert!(body.contains("3m12s"), "oldest pending age");
    assert!(body.contains("<span class=\"state retrying\">retrying</span>"));
    assert!(body.contains("<span class=\"state dropping\">dropping</span>"));
    assert!(
        body.contains("title=\"2024-05-01 12:34:56 UTC\""),
        "error time"
    );
    assert!(body.contains("123k"), "samples received");
}

#[tokio::test]
async fn status_page_names_the_tenant_of_a_tenant_queue() {
    let mut s = storage("vminsert-8480-a1b2");
    s.tenant = Some("12:3".to_owned());
    let body = page(vec![s]).await;
    assert!(body.contains("tenant 12:3"), "{body}");
}

#[tokio::test]
async fn status_page_without_queues_once_ready_says_tenant_queues_open_at_first_push() {
    let body = page(vec![]).await;
    assert!(body.contains("opens one per tenant"), "{body}");
}

#[tokio::test]
async fn status_page_says_when_queues_are_still_opening() {
    let source = Arc::new(Fixed {
        storages: vec![],
        ingest: IngestSnapshot::default(),
        ready: AtomicBool::new(false),
    });
    let (_, _, body) = get(source, "/").await;
    assert!(body.contains("the queues are being opened"), "{body}");
}

#[tokio::test]
async fn status_page_shows_send_rate_on_a_later_look() {
    let source = fixed(vec![storage("vm-a1b2")]);
    let app = router(source);
    let look = || async {
        let response = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8(body.to_vec()).expect("UTF-8")
    };
    // The send rate's cell, not the backlog's trend (which also starts out measuring).
    let measuring = r#"<div class="sub">measuring</div>"#;
    assert!(look().await.contains(measuring));
    // A rate needs two looks far enough apart; look again until there is one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let later = loop {
        let page = look().await;
        if !page.contains(measuring) {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still measuring: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(later.contains("0 samples/s"), "{later}");
}

// ---- charts of the last 15 minutes, /api/v1/history ----

/// The page rendered from `history` recorded every 5 s from `samples` (queues, ingest), the
/// last sample at the moment rendered.
fn page_with_history(samples: &[(Vec<StorageStatus>, IngestSnapshot)]) -> String {
    use super::history::{History, INTERVAL};
    let mut history = History::default();
    let t0 = std::time::Instant::now();
    let start_ms = 1_714_566_000_000;
    for (i, (queues, ingest)) in samples.iter().enumerate() {
        let i = i as u32;
        history.record(
            t0 + INTERVAL * i,
            start_ms + u64::from(i) * 5000,
            queues,
            ingest,
        );
    }
    let (storages, ingest) = samples.last().cloned().unwrap_or_default();
    super::page::render(&super::page::PageView {
        storages: &storages,
        ingest: &ingest,
        rates: &std::collections::HashMap::new(),
        ready: true,
        history: &history,
        now_unix_ms: start_ms + (samples.len().saturating_sub(1) as u64) * 5000,
    })
}

fn with_backlog(mut s: StorageStatus, bytes: u64, sent_samples: u64) -> StorageStatus {
    s.pending_bytes = bytes;
    s.sent_samples_total = sent_samples;
    s
}

fn received(samples: u64, too_large: u64) -> IngestSnapshot {
    IngestSnapshot {
        samples: vec![(Source::RemoteWrite, samples)],
        rejected_requests: vec![(Reject::BadBody, 0), (Reject::TooLarge, too_large)],
        ..IngestSnapshot::default()
    }
}

#[test]
fn status_page_charts_each_queues_backlog_and_send_rate() {
    let samples: Vec<_> = (0..13u64)
        .map(|i| {
            let s = with_backlog(storage("vm-a1b2"), (1 << 20) + i * 60_000, i * 100);
            (vec![s], received(i * 1000, 0))
        })
        .collect();
    let body = page_with_history(&samples);
    assert!(
        body.contains("<title>Backlog of vm-a1b2 over the last 15 minutes: now 1.7 MiB"),
        "{body}"
    );
    assert!(
        body.contains("<title>Samples sent a second to vm-a1b2 over the last 15 minutes: now 20/s"),
        "{body}"
    );
    // 60 kB every 5 s.
    assert!(
        body.contains(
            r#"<div class="note bad">growing by 703.1 KiB/min: never drains at this rate</div>"#
        ),
        "{body}"
    );
}

#[test]
fn status_page_says_when_a_backlog_drains() {
    let samples: Vec<_> = (0..13u64)
        .map(|i| {
            let s = with_backlog(storage("vm-a1b2"), 8_000_000 - i * 100_000, i * 100);
            (vec![s], received(0, 0))
        })
        .collect();
    let body = page_with_history(&samples);
    // 6.8 MB left at 20 kB/s: 340 s.
    assert!(
        body.contains(r#"<div class="note good">drains in ~6 min at the current rate"#),
        "{body}"
    );
}

#[test]
fn status_page_charts_samples_received_and_pushes_refused_by_reason() {
    let samples: Vec<_> = (0..4u64)
        .map(|i| (vec![storage("vm-a1b2")], received(i * 500, i * 5)))
        .collect();
    let body = page_with_history(&samples);
    assert!(
        body.contains("<title>Samples received a second over the last 15 minutes: now 100/s"),
        "{body}"
    );
    assert!(
        body.contains(r#"<div class="note bad">15 refused: too_large 15</div>"#),
        "{body}"
    );
}

#[test]
fn status_page_says_which_queues_have_no_charts() {
    use super::history::MAX_QUEUES;
    let many: Vec<StorageStatus> = (0..=MAX_QUEUES)
        .map(|i| storage(&format!("q{i}")))
        .collect();
    let body = page_with_history(&[(many, received(0, 0))]);
    assert!(
        body.contains(&format!(
            "Charts for the first {MAX_QUEUES} queues only: 1 more have none."
        )),
        "{body}"
    );
    assert_eq!(body.matches("No charts: only the first").count(), 1);
}

#[tokio::test]
async fn history_json_has_a_point_soon_after_start() {
    let app = router(fixed(vec![storage("vm-a1b2")]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let response = app
            .clone()
            .oneshot(
                Request::get("/api/v1/history")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(content_type(response.headers()), "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        if json["queues"][0]["points"][0]["backlog_bytes"] == 12_897_484 {
            assert_eq!(json["queues"][0]["key"], "vm-a1b2");
            assert_eq!(json["interval_seconds"], 5);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no point yet: {json}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

// ---- /-/healthy, /-/ready ----

#[tokio::test]
async fn healthy_is_200_ok() {
    let (status, _, body) = get(fixed(vec![]), "/-/healthy").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.trim(), "OK");
}

#[tokio::test]
async fn ready_is_503_until_queues_open() {
    let source = Arc::new(Fixed {
        storages: vec![],
        ingest: IngestSnapshot::default(),
        ready: AtomicBool::new(false),
    });
    let (status, _, _) = get(Arc::<Fixed>::clone(&source), "/-/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    source.ready.store(true, Ordering::SeqCst);
    let (status, _, body) = get(source, "/-/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.trim(), "OK");
}
