//! The file's shape as written: which keys exist where, with hand-written map visitors so
//! that read, ignored, refused and unknown keys each get their treatment while every value
//! keeps its line (`Spanned`) for later errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::kubernetes::RawKubernetesSd;
use super::parse_prometheus_size;
use super::sd::{RawDnsSd, RawHttpSd};
use crate::config::{Secret, parse_duration};
use crate::relabel::RelabelConfig;
use crate::util::one_line;

/// Keys of a scrape config that promrelay reads. Anything else is refused or ignored below.
const JOB_KEYS: &[&str] = &[
    "job_name",
    "scrape_interval",
    "scrape_timeout",
    "metrics_path",
    "scheme",
    "params",
    "honor_labels",
    "honor_timestamps",
    "static_configs",
    "file_sd_configs",
    "kubernetes_sd_configs",
    "http_sd_configs",
    "dns_sd_configs",
    "relabel_configs",
    "metric_relabel_configs",
    "sample_limit",
    "label_limit",
    "body_size_limit",
    "basic_auth",
    "authorization",
    "bearer_token",
    "bearer_token_file",
    "tls_config",
];

/// Prometheus scrape config keys that tune behaviour promrelay does not have (HTTP/2, native
/// histograms, protocol negotiation, limits it does not enforce). Ignoring them scrapes the same
/// targets the same way, so they are accepted and named in the load warning.
const IGNORED_JOB_KEYS: &[&str] = &[
    "follow_redirects",
    "enable_http2",
    "enable_compression",
    "target_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "keep_dropped_targets",
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
    "scrape_classic_histograms",
    "always_scrape_classic_histograms",
    "convert_classic_histograms_to_nhcb",
    "scrape_native_histograms",
    "scrape_protocols",
    "fallback_scrape_protocol",
    "track_timestamps_staleness",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    "scrape_failure_log_file",
    "extra_scrape_metrics",
];

/// Prometheus scrape config keys promrelay cannot honour, where ignoring them would scrape
/// through another network path or without the credentials the user configured. Every
/// `*_sd_configs` key promrelay does not read is refused too.
const REFUSED_JOB_KEYS: &[&str] = &[
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "oauth2",
    "http_headers",
];

/// Keys of `global` that promrelay reads.
const GLOBAL_KEYS: &[&str] = &[
    "scrape_interval",
    "scrape_timeout",
    "external_labels",
    "sample_limit",
    "label_limit",
    "body_size_limit",
];

/// Prometheus `global` keys that concern rules, queries or features promrelay does not have.
const IGNORED_GLOBAL_KEYS: &[&str] = &[
    "evaluation_interval",
    "rule_query_offset",
    "query_log_file",
    "scrape_failure_log_file",
    "target_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "keep_dropped_targets",
    "scrape_protocols",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    "scrape_native_histograms",
    "always_scrape_classic_histograms",
    "convert_classic_histograms_to_nhcb",
    "extra_scrape_metrics",
];

/// The top level. Unknown sections are kept by name and line for the warning.
#[derive(Default)]
pub(super) struct RawFile {
    pub(super) global: Option<RawGlobal>,
    pub(super) scrape_configs: Vec<RawJob>,
    /// Ignored top-level sections, by name.
    pub(super) ignored: Vec<String>,
}

impl<'de> Deserialize<'de> for RawFile {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawFileVisitor)
    }
}

struct RawFileVisitor;

impl<'de> Visitor<'de> for RawFileVisitor {
    type Value = RawFile;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Prometheus configuration (a mapping with scrape_configs)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFile, A::Error> {
        let mut raw = RawFile::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "global" => raw.global = map.next_value()?,
                "scrape_configs" => {
                    raw.scrape_configs =
                        map.next_value::<Option<Vec<RawJob>>>()?.unwrap_or_default()
                }
                "scrape_config_files" => {
                    return refuse(
                        &mut map,
                        Refusal::Unsupported(
                            "promrelay does not read scrape_config_files: move those scrape configs into this file".to_owned(),
                        ),
                    );
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    raw.ignored.push(one_line(&key));
                }
            }
        }
        Ok(raw)
    }
}

/// Why a key is refused. The refusal is raised while deserializing the key's value, so the
/// error carries the key in its path and the value's position.
enum Refusal {
    /// Not a key of this mapping.
    Unknown(String, &'static [&'static str]),
    /// A Prometheus key promrelay cannot honour; the message says why and what to do.
    Unsupported(String),
}

impl<'de> de::DeserializeSeed<'de> for Refusal {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, _value: D) -> Result<(), D::Error> {
        Err(match self {
            Refusal::Unknown(key, expected) => de::Error::unknown_field(&key, expected),
            Refusal::Unsupported(message) => de::Error::custom(message),
        })
    }
}

/// Fails on the current key's value with `refusal`.
fn refuse<'de, A: MapAccess<'de>, T>(map: &mut A, refusal: Refusal) -> Result<T, A::Error> {
    map.next_value_seed(refusal)?;
    Err(de::Error::custom("refused key was accepted"))
}

/// The `global` section.
#[derive(Default)]
pub(super) struct RawGlobal {
    pub(super) scrape_interval: Option<Spanned<PromDuration>>,
    pub(super) scrape_timeout: Option<Spanned<PromDuration>>,
    pub(super) external_labels: Option<Spanned<BTreeMap<String, String>>>,
    pub(super) sample_limit: Option<u64>,
    pub(super) label_limit: Option<u64>,
    pub(super) body_size_limit: Option<PromSize>,
    pub(super) ignored: Vec<String>,
}

impl<'de> Deserialize<'de> for RawGlobal {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawGlobalVisitor)
    }
}

struct RawGlobalVisitor;

impl<'de> Visitor<'de> for RawGlobalVisitor {
    type Value = RawGlobal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the global section (a mapping)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawGlobal, A::Error> {
        let mut g = RawGlobal::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "scrape_interval" => g.scrape_interval = map.next_value()?,
                "scrape_timeout" => g.scrape_timeout = map.next_value()?,
                "external_labels" => g.external_labels = map.next_value()?,
                "sample_limit" => g.sample_limit = map.next_value()?,
                "label_limit" => g.label_limit = map.next_value()?,
                "body_size_limit" => g.body_size_limit = map.next_value()?,
                k if IGNORED_GLOBAL_KEYS.contains(&k) => {
                    map.next_value::<IgnoredAny>()?;
                    g.ignored.push(format!("global.{key}"));
                }
                _ => return refuse(&mut map, Refusal::Unknown(key, GLOBAL_KEYS)),
            }
        }
        Ok(g)
    }
}

/// One `scrape_configs` item as written.
#[derive(Default)]
pub(super) struct RawJob {
    pub(super) job_name: Option<Spanned<String>>,
    pub(super) scrape_interval: Option<Spanned<PromDuration>>,
    pub(super) scrape_timeout: Option<Spanned<PromDuration>>,
    pub(super) metrics_path: Option<String>,
    pub(super) scheme: Option<Spanned<String>>,
    pub(super) params: Option<BTreeMap<String, Vec<String>>>,
    pub(super) honor_labels: Option<bool>,
    pub(super) honor_timestamps: Option<bool>,
    pub(super) static_configs: Option<Vec<RawStatic>>,
    pub(super) file_sd_configs: Option<Vec<RawFileSd>>,
    pub(super) kubernetes_sd_configs: Option<Vec<Spanned<RawKubernetesSd>>>,
    pub(super) http_sd_configs: Option<Vec<Spanned<RawHttpSd>>>,
    pub(super) dns_sd_configs: Option<Vec<Spanned<RawDnsSd>>>,
    pub(super) relabel_configs: Option<Vec<RelabelConfig>>,
    pub(super) metric_relabel_configs: Option<Vec<RelabelConfig>>,
    pub(super) sample_limit: Option<u64>,
    pub(super) label_limit: Option<u64>,
    pub(super) body_size_limit: Option<PromSize>,
    pub(super) basic_auth: Option<Spanned<RawBasicAuth>>,
    pub(super) authorization: Option<Spanned<RawAuthorization>>,
    pub(super) bearer_token: Option<Spanned<Secret>>,
    pub(super) bearer_token_file: Option<Spanned<PathBuf>>,
    pub(super) tls_config: Option<Spanned<RawTls>>,
    pub(super) ignored: Vec<String>,
}

impl<'de> Deserialize<'de> for RawJob {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawJobVisitor)
    }
}

struct RawJobVisitor;

impl<'de> Visitor<'de> for RawJobVisitor {
    type Value = RawJob;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scrape config (a mapping with job_name)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawJob, A::Error> {
        let mut j = RawJob::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "job_name" => j.job_name = map.next_value()?,
                "scrape_interval" => j.scrape_interval = map.next_value()?,
                "scrape_timeout" => j.scrape_timeout = map.next_value()?,
                "metrics_path" => j.metrics_path = map.next_value()?,
                "scheme" => j.scheme = map.next_value()?,
                "params" => j.params = map.next_value()?,
                "honor_labels" => j.honor_labels = map.next_value()?,
                "honor_timestamps" => j.honor_timestamps = map.next_value()?,
                "static_configs" => j.static_configs = map.next_value()?,
                "file_sd_configs" => j.file_sd_configs = map.next_value()?,
                "kubernetes_sd_configs" => j.kubernetes_sd_configs = map.next_value()?,
                "http_sd_configs" => j.http_sd_configs = map.next_value()?,
                "dns_sd_configs" => j.dns_sd_configs = map.next_value()?,
                "relabel_configs" => j.relabel_configs = map.next_value()?,
                "metric_relabel_configs" => j.metric_relabel_configs = map.next_value()?,
                "sample_limit" => j.sample_limit = map.next_value()?,
                "label_limit" => j.label_limit = map.next_value()?,
                "body_size_limit" => j.body_size_limit = map.next_value()?,
                "basic_auth" => j.basic_auth = map.next_value()?,
                "authorization" => j.authorization = map.next_value()?,
                "bearer_token" => j.bearer_token = map.next_value()?,
                "bearer_token_file" => j.bearer_token_file = map.next_value()?,
                "tls_config" => j.tls_config = map.next_value()?,
                k if IGNORED_JOB_KEYS.contains(&k) => {
                    map.next_value::<IgnoredAny>()?;
                    j.ignored.push(key);
                }
                k if k.ends_with("_sd_configs") => {
                    let message = format!(
                        "promrelay does not support `{k}`: use static_configs, file_sd_configs, kubernetes_sd_configs, http_sd_configs or dns_sd_configs (a tool can write file_sd files from any other discovery)"
                    );
                    return refuse(&mut map, Refusal::Unsupported(message));
                }
                k if REFUSED_JOB_KEYS.contains(&k) => {
                    let message = format!(
                        "promrelay does not support `{k}`; ignoring it would scrape differently than configured, so remove it or scrape this job with Prometheus"
                    );
                    return refuse(&mut map, Refusal::Unsupported(message));
                }
                _ => return refuse(&mut map, Refusal::Unknown(key, JOB_KEYS)),
            }
        }
        if j.job_name.is_none() {
            return Err(de::Error::missing_field("job_name"));
        }
        Ok(j)
    }
}

impl RawJob {
    /// The job's authentication keys, for [`ScrapeConfigResolver::auth`](super::resolve).
    pub(super) fn auth(&self) -> RawAuth<'_> {
        RawAuth {
            basic_auth: self.basic_auth.as_ref(),
            authorization: self.authorization.as_ref(),
            bearer_token: self.bearer_token.as_ref(),
            bearer_token_file: self.bearer_token_file.as_ref(),
        }
    }
}

/// The keys that set an `Authorization` header, of a job or of a discovery's HTTP client.
pub(super) struct RawAuth<'a> {
    pub(super) basic_auth: Option<&'a Spanned<RawBasicAuth>>,
    pub(super) authorization: Option<&'a Spanned<RawAuthorization>>,
    pub(super) bearer_token: Option<&'a Spanned<Secret>>,
    pub(super) bearer_token_file: Option<&'a Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatic {
    #[serde(default)]
    pub(super) targets: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) labels: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileSd {
    pub(super) files: Spanned<Vec<String>>,
    pub(super) refresh_interval: Option<PromDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBasicAuth {
    pub(super) username: Option<String>,
    pub(super) username_file: Option<Spanned<PathBuf>>,
    pub(super) password: Option<Secret>,
    pub(super) password_file: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthorization {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) credentials: Option<Secret>,
    pub(super) credentials_file: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) ca: Option<String>,
    pub(super) ca_file: Option<Spanned<PathBuf>>,
    pub(super) cert: Option<String>,
    pub(super) cert_file: Option<Spanned<PathBuf>>,
    pub(super) key: Option<Secret>,
    pub(super) key_file: Option<Spanned<PathBuf>>,
    pub(super) server_name: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) insecure_skip_verify: bool,
    pub(super) min_version: Option<Spanned<String>>,
    pub(super) max_version: Option<Spanned<String>>,
}

/// A Prometheus duration (`15s`, `1m30s`); `0s` means "not set", as in Prometheus.
#[derive(Clone, Copy, Debug)]
pub(super) struct PromDuration(pub(super) Duration);

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(PromDuration)
            .map_err(de::Error::custom)
    }
}

/// A Prometheus size (`body_size_limit`): see the module doc for the units.
#[derive(Clone, Copy, Debug)]
pub(super) struct PromSize(pub(super) u64);

impl<'de> Deserialize<'de> for PromSize {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_prometheus_size(&text)
            .map(PromSize)
            .map_err(de::Error::custom)
    }
}
