//! The status page as a person's browser shows it: Debian's Chromium, headless, loads the page
//! of a running relay and the test reads the DOM Chromium built (`--dump-dom`) and the picture
//! it drew (`--screenshot`). Chromium comes from `scripts/fetch-browser.sh`; without it the test
//! fails and says so.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::relay::{FakeStorage, Pushes, Relay, unused_port};
use tokio::process::Command;

/// How long Chromium may take to load and dump the page (its first start on a cold machine
/// takes a few seconds).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the relay may take to record enough points for a trend (a point every 5 s).
const HISTORY_TIMEOUT: Duration = Duration::from_secs(90);

/// The Chromium binary, or a panic that says how to get it.
fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("chromium is not installed: run scripts/fetch-browser.sh (scripts/test.sh does)")
    })
}

/// Runs headless Chromium on `url` with `args` and a profile of its own in `profile`; returns
/// its standard output.
async fn run_chromium(profile: &Path, url: &str, args: &[&str]) -> String {
    let mut command = Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {BROWSER_TIMEOUT:?}"))
        .expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the DOM is UTF-8")
}

/// Pushes to `relay` every 200 ms until `/api/v1/history` shows the backlog of queue number
/// `index` (in the order the storages were given) growing over at least `points` points;
/// returns that queue's history.
async fn push_until_backlog_grows(relay: &Relay, index: usize, points: usize) -> serde_json::Value {
    let pushes = Pushes::new("browser_chart", 1000, 50);
    let deadline = Instant::now() + HISTORY_TIMEOUT;
    let mut i = 0;
    loop {
        relay
            .push_accepted(&pushes.request(i % pushes.count()))
            .await;
        i += 1;
        let (status, body) = relay.get("/api/v1/history").await;
        assert_eq!(status, 200, "{body}");
        let history: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        let queue = &history["queues"][index];
        let enough = queue["points"]
            .as_array()
            .is_some_and(|p| p.len() >= points);
        if enough && queue["drain"]["state"] == "growing" {
            return queue.clone();
        }
        assert!(
            Instant::now() < deadline,
            "after {HISTORY_TIMEOUT:?} the backlog is not charted as growing: {queue}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every `points="..."` list of `<polyline>` elements in `dom`, as numbers of coordinate pairs.
fn polyline_lengths(dom: &str) -> Vec<usize> {
    dom.split("<polyline ")
        .skip(1)
        .filter_map(|rest| {
            let tag = rest.split('>').next()?;
            let list = tag.split("points=\"").nth(1)?.split('"').next()?;
            Some(list.split_whitespace().filter(|p| p.contains(',')).count())
        })
        .collect()
}

#[tokio::test]
async fn chromium_shows_charts_of_a_growing_backlog_with_its_verdict() {
    chromium();
    let up = FakeStorage::new().start().await;
    let down = format!("http://127.0.0.1:{}/api/v1/write", unused_port());
    let relay = Relay::with_storages(&[up.url(), down]).start().await;
    // The unreachable storage is the second.
    let history = push_until_backlog_grows(&relay, 1, 4).await;
    let growth = history["drain"]["bytes_per_second"]
        .as_f64()
        .expect("a growing backlog has a rate");
    assert!(growth > 0.0, "{history}");

    let profile = tempfile::tempdir().expect("a profile directory");
    let dom = run_chromium(profile.path(), &relay.url(), &["--dump-dom"]).await;

    // Charts: samples received, pushes refused, and backlog and send rate of each storage.
    let svgs = dom.matches("<svg ").count();
    assert!(svgs >= 6, "{svgs} charts in {dom}");
    let titles = dom.matches("<title>").count();
    assert!(titles > svgs, "each chart has a <title>: {dom}");
    let lines = polyline_lengths(&dom);
    assert!(
        lines.iter().any(|&n| n >= 4),
        "no chart line of 4 points or more: {lines:?}\n{dom}"
    );
    assert!(dom.contains("Backlog of "), "{dom}");
    assert!(dom.contains("never drains at this rate"), "{dom}");
    assert!(dom.contains("−15 min"), "{dom}");

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status_page_browser.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        profile.path(),
        &relay.url(),
        &[&format!("--screenshot={}", shot.display())],
    )
    .await;
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a {}-byte screenshot is blank",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
