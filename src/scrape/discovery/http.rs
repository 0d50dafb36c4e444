//! `http_sd_configs`: target groups fetched from an HTTP endpoint, as Prometheus' HTTP SD
//! (`discovery/http/http.go`) fetches them.
//!
//! # Owns
//! - The request: `GET <url>` with `Accept: application/json`,
//!   `X-Prometheus-Refresh-Interval-Seconds: <refresh_interval in seconds>`, promrelay's
//!   `User-Agent`, the configured credentials and TLS, the refresh interval as its timeout; the
//!   client comes from the one outbound builder.
//! - The answer: status 200, `Content-Type` `application/json` (optionally with
//!   `charset=utf-8`), a body of at most [`MAX_BODY_BYTES`] holding a JSON list of
//!   `{"targets": [...], "labels": {...}}` (unknown keys, a `null` item or an invalid label
//!   name refuse the whole answer, as Prometheus refuses it).
//!
//! # Guarantees
//! - Every group carries `__meta_url` (the configured URL) and the source `<url>:<index>`.
//! - A failed refresh changes nothing: the groups of the last good answer stay (none before the
//!   first); the failure is counted and logged at most once a minute per URL.
//!
//! # Must not
//! Build targets, relabel, or retry within a refresh (the next refresh is the retry).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use super::{GroupSink, TargetGroup};
use crate::outbound::{self, ClientError, ClientOptions};
use crate::scrape::client::{authorization, tls_options};
use crate::scrape::config::{HttpSdConfig, is_valid_label_name};
use crate::stats::DiscoveryMetrics;
use crate::util::{LogThrottle, error_chain, one_line, one_line_max};

/// The label that names the URL an `http_sd` group came from.
pub const META_URL: &str = "__meta_url";

/// An answer larger than this is refused (and the previous groups kept).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// The header that tells the server how often it will be asked.
const REFRESH_HEADER: &str = "x-prometheus-refresh-interval-seconds";

/// Why a refresh failed (the previous groups are kept). `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum HttpSdError {
    /// The request could not be sent or the answer not read: connection refused, TLS, timeout.
    #[error("request failed: {}", one_line(&error_chain(.0)))]
    Request(#[source] reqwest::Error),
    /// The server answered with another status than 200.
    #[error("server returned HTTP status {0}")]
    Status(reqwest::StatusCode),
    /// The answer's `Content-Type` is not `application/json`.
    #[error("unsupported content type {0:?}")]
    ContentType(String),
    /// The body is longer than [`MAX_BODY_BYTES`].
    #[error("answer is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The body is not a JSON list of target groups.
    #[error("answer is not a JSON list of target groups: {0}")]
    Json(String),
    /// An item of the list is `null`.
    #[error("nil target group item found (item {0})")]
    NullGroup(usize),
    /// A group's label name is not a valid Prometheus label name.
    #[error("item {index}: {name:?} is not a valid label name")]
    BadLabelName { index: usize, name: String },
}

/// One `http_sd_config`, ready to fetch: its client and fixed headers are built once.
#[derive(Debug)]
pub struct HttpSd {
    url: String,
    client: reqwest::Client,
    authorization: Option<HeaderValue>,
    refresh_seconds: HeaderValue,
    refresh_interval: Duration,
    log_throttle: Arc<LogThrottle>,
}

impl HttpSd {
    /// Builds the client (reads the TLS files the config names).
    pub fn new(config: &HttpSdConfig) -> Result<HttpSd, ClientError> {
        let client = outbound::build_client(&ClientOptions {
            tls: tls_options(&config.tls),
            timeout: Some(config.refresh_interval),
            follow_redirects: config.follow_redirects,
            pool_max_idle_per_host: Some(1),
            ..ClientOptions::default()
        })?;
        let seconds = go_seconds(config.refresh_interval);
        Ok(HttpSd {
            url: config.url.clone(),
            client,
            authorization: authorization(&config.auth)?,
            refresh_seconds: HeaderValue::from_str(&seconds)
                .map_err(|_| ClientError::HeaderValue(REFRESH_HEADER.into()))?,
            refresh_interval: config.refresh_interval,
            log_throttle: Arc::new(LogThrottle::new(Duration::from_secs(60))),
        })
    }

    /// The configured URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Time between two refreshes.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// Asks the server once and parses its answer.
    pub async fn fetch(&self) -> Result<Vec<TargetGroup>, HttpSdError> {
        let mut request = self
            .client
            .get(&self.url)
            .header(ACCEPT, "application/json")
            .header(REFRESH_HEADER, self.refresh_seconds.clone());
        if let Some(auth) = &self.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let mut response = request.send().await.map_err(HttpSdError::Request)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(HttpSdError::Status(response.status()));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        if !is_json_content_type(&content_type) {
            return Err(HttpSdError::ContentType(one_line_max(&content_type, 200)));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY_BYTES as u64)
        {
            return Err(HttpSdError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(HttpSdError::Request)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(HttpSdError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse_groups(&self.url, &body)
    }

    /// [`HttpSd::fetch`], and on failure the failure logged (at most once a minute) and
    /// counted in `failures`; `None` then, so the caller keeps what it had.
    pub async fn refresh(
        &self,
        job: &str,
        failures: &(dyn Fn() + Sync),
    ) -> Option<Vec<TargetGroup>> {
        match self.fetch().await {
            Ok(groups) => Some(groups),
            Err(e) => {
                failures();
                if self.log_throttle.due() {
                    tracing::warn!(
                        job,
                        url = %one_line(&self.url),
                        "http_sd refresh failed, keeping the previous targets: {e}"
                    );
                }
                None
            }
        }
    }
}

/// The provider task of one `http_sd_config`: asks the server every `refresh_interval` (the
/// first time at once) and publishes the groups to `sink` when they changed. Ends when the hub
/// is gone.
pub async fn run(
    config: HttpSdConfig,
    job: String,
    sink: GroupSink,
    metrics: Arc<DiscoveryMetrics>,
) {
    let mut ticker = tokio::time::interval(config.refresh_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sd: Option<HttpSd> = None;
    let mut published: Option<Vec<TargetGroup>> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = sink.closed() => return,
        }
        // A client that cannot be built (a CA file that is not PEM) is tried again at every
        // refresh: the file may be fixed without a reload.
        let sd = match &sd {
            Some(sd) => sd,
            None => match HttpSd::new(&config) {
                Ok(built) => sd.insert(built),
                Err(e) => {
                    metrics.http_failed();
                    tracing::error!(job, url = %one_line(&config.url), "http_sd client: {}", error_chain(&e));
                    continue;
                }
            },
        };
        let Some(groups) = sd.refresh(&job, &|| metrics.http_failed()).await else {
            continue;
        };
        if published.as_ref() != Some(&groups) {
            if !sink.publish(groups.clone()) {
                return;
            }
            published = Some(groups);
        }
    }
}

/// Prometheus' `^(?i:application\/json(;\s*charset=("utf-8"|utf-8))?)$` on the trimmed value.
fn is_json_content_type(value: &str) -> bool {
    let value = value.trim().to_ascii_lowercase();
    let Some(rest) = value.strip_prefix("application/json") else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix(';') else {
        return false;
    };
    matches!(
        rest.trim_start().strip_prefix("charset="),
        Some("utf-8" | "\"utf-8\"")
    )
}

/// A duration in seconds as Go's `strconv.FormatFloat(s, 'f', -1, 64)` writes it: `60`, `1.5`.
fn go_seconds(d: Duration) -> String {
    let seconds = d.as_secs_f64();
    if seconds.fract() == 0.0 {
        format!("{}", d.as_secs())
    } else {
        // Rust's shortest round-trip form is Go's `-1` precision for these values.
        format!("{seconds}")
    }
}

/// One item of the answer. Unknown keys refuse the answer (Prometheus decodes groups with
/// `DisallowUnknownFields`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Parses an answer of the server at `url` into groups.
pub fn parse_groups(url: &str, body: &[u8]) -> Result<Vec<TargetGroup>, HttpSdError> {
    let raw: Option<Vec<Option<RawGroup>>> = serde_json::from_slice(body)
        .map_err(|e| HttpSdError::Json(one_line_max(&e.to_string(), 300)))?;
    let raw = raw.unwrap_or_default();
    let mut groups = Vec::with_capacity(raw.len());
    for (index, group) in raw.into_iter().enumerate() {
        let group = group.ok_or(HttpSdError::NullGroup(index))?;
        let mut labels = group.labels.unwrap_or_default();
        if let Some(bad) = labels.keys().find(|name| !is_valid_label_name(name)) {
            return Err(HttpSdError::BadLabelName {
                index,
                name: one_line_max(bad, 200),
            });
        }
        labels.insert(META_URL.to_owned(), url.to_owned());
        groups.push(TargetGroup {
            common: None,
            source: format!("{url}:{index}"),
            targets: group.targets.unwrap_or_default(),
            labels,
            file: None,
        });
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://sd.example:8080/targets";

    #[test]
    fn groups_carry_meta_url_and_an_indexed_source() {
        let body = br#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}},
                        {"targets": ["c:3"]}]"#;
        let groups = parse_groups(URL, body).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].source, format!("{URL}:0"));
        assert_eq!(groups[0].targets, ["a:1", "b:2"]);
        assert_eq!(groups[0].labels["env"], "prod");
        assert_eq!(groups[0].labels[META_URL], URL);
        assert_eq!(groups[1].source, format!("{URL}:1"));
        assert_eq!(groups[1].labels.len(), 1, "only __meta_url");
    }

    #[test]
    fn an_empty_list_or_null_is_no_groups() {
        assert!(parse_groups(URL, b"[]").unwrap().is_empty());
        assert!(parse_groups(URL, b"null").unwrap().is_empty());
    }

    #[test]
    fn a_null_item_refuses_the_whole_answer() {
        let err = parse_groups(URL, br#"[{"targets": ["a:1"]}, null]"#).unwrap_err();
        assert!(matches!(err, HttpSdError::NullGroup(1)), "{err}");
    }

    #[test]
    fn an_unknown_key_refuses_the_whole_answer() {
        let err = parse_groups(URL, br#"[{"targets": ["a:1"], "lables": {}}]"#).unwrap_err();
        assert!(matches!(err, HttpSdError::Json(_)), "{err}");
    }

    #[test]
    fn an_invalid_label_name_refuses_the_whole_answer() {
        let err =
            parse_groups(URL, br#"[{"targets": ["a:1"], "labels": {"a-b": "x"}}]"#).unwrap_err();
        assert!(
            matches!(err, HttpSdError::BadLabelName { index: 0, ref name } if name == "a-b"),
            "{err}"
        );
    }

    #[test]
    fn a_body_that_is_not_a_list_is_refused() {
        assert!(matches!(
            parse_groups(URL, br#"{"targets": []}"#),
            Err(HttpSdError::Json(_))
        ));
        assert!(matches!(
            parse_groups(URL, b"not json"),
            Err(HttpSdError::Json(_))
        ));
    }

    #[test]
    fn content_type_is_json_with_an_optional_utf8_charset() {
        for ok in [
            "application/json",
            " Application/JSON ",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/json; charset=latin1",
            "application/jsonx",
            "application/json; foo=bar",
        ] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }

    #[test]
    fn refresh_interval_header_is_in_go_float_seconds() {
        assert_eq!(go_seconds(Duration::from_secs(60)), "60");
        assert_eq!(go_seconds(Duration::from_millis(1500)), "1.5");
        assert_eq!(go_seconds(Duration::from_millis(100)), "0.1");
    }
}
