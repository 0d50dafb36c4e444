//! The scrape configuration file (`--scrape-config`): a Prometheus configuration file, of which
//! promrelay reads `global` and `scrape_configs`, resolved into one [`ScrapeConfig`].
//!
//! # Owns
//! - The file's shape: which Prometheus keys are read, which are accepted and ignored (listed in
//!   one warning), which are refused (they would change what or how a target is scraped, so
//!   ignoring them would be wrong), and which are typos (errors).
//! - Prometheus' defaults and checks: `scrape_interval` 1m, `scrape_timeout` 10s (never longer
//!   than the interval: an explicit longer one is an error, an inherited one is cut to the
//!   interval), `metrics_path` `/metrics`, `scheme` `http`, `honor_timestamps` true, `job_name`
//!   required and unique, label names `[a-zA-Z_][a-zA-Z0-9_]*`, at most one authentication
//!   method, static targets without `/` when no `relabel_configs` could rewrite them, `file_sd`
//!   patterns ending in `.json`, `.yml` or `.yaml` with wildcards only in the file name.
//! - Reading secrets (`password_file`, `credentials_file`, `bearer_token_file`, `username_file`)
//!   at load time, trimmed as Prometheus trims them, and checking TLS files can be opened.
//!
//! # Guarantees
//! - Every failure is one [`ScrapeConfigError`] whose `Display` is one line naming the file, the
//!   line and column, the key path (`scrape_configs[1].scrape_timeout`) and what is wrong.
//! - No password, token or private key appears in any `Debug` output (they are
//!   [`Secret`]s) nor in an error message.
//! - Relabel rules are validated and compiled once, here ([`RelabelRules`]).
//! - Relative paths are relative to the config file's directory, as in Prometheus.
//!
//! # Deviations from Prometheus, on purpose
//! - `body_size_limit` takes Prometheus' units with Prometheus' meaning: `KB`, `MB`, `GB` are
//!   powers of 1024 there (`KiB`, `MiB`, `GiB` are accepted too), not the powers of 1000 that
//!   promrelay's own flags use. A plain number is bytes.
//! - `scrape_config_files` and service discoveries other than `static_configs`,
//!   `file_sd_configs`, `kubernetes_sd_configs`, `http_sd_configs` and `dns_sd_configs` are
//!   refused with an error rather than silently yielding no targets.
//! - Credential files are read once at load time (Prometheus re-reads them per scrape); a
//!   reload picks up a changed file.
//! - Unknown top-level sections are ignored (with the warning), not refused: new Prometheus
//!   sections must not break promrelay. Unknown keys anywhere below are errors.
//!
//! # Layout
//! - `raw`: the file's shape, key by key (read, ignored, refused, unknown).
//! - `resolve`: defaults, checks, paths and secrets, from the shape to [`ScrapeConfig`].
//! - `kubernetes`: `kubernetes_sd_configs` entries, their shape and checks.
//! - `sd`: `http_sd_configs` and `dns_sd_configs`, shape and resolution.
//!
//! # Must not
//! Open network connections or read files other than the config, secret and TLS files it names.
//! Discovery files (`file_sd_configs`) are read by [`discovery`](super::discovery), not here.

mod kubernetes;
#[cfg(test)]
mod kubernetes_tests;
mod raw;
mod resolve;
mod sd;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::Error as YamlError;

use crate::config::{Place, ReadFileError, Secret, ValueError};
pub(crate) use crate::config::{key_path_of, read_bounded};
use crate::relabel::{CompiledRelabel, RelabelConfig, compile_all};

pub use kubernetes::{
    ApiServerConfig, KubernetesConnection, KubernetesRole, KubernetesSdConfig, KubernetesSelector,
};
use raw::RawFile;
use resolve::ScrapeConfigResolver;
pub use sd::{
    DEFAULT_DNS_SD_REFRESH_INTERVAL, DEFAULT_HTTP_SD_REFRESH_INTERVAL, DnsRecordType, DnsSdConfig,
    HttpSdConfig,
};

/// `scrape_interval` when neither the job nor `global` sets one (Prometheus' default).
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
/// `scrape_timeout` when neither the job nor `global` sets one (Prometheus' default).
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// `metrics_path` when the job sets none.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";
/// `refresh_interval` of a `file_sd_config` when it sets none (Prometheus' default). Files are
/// also re-read as soon as their modification time changes.
pub const DEFAULT_FILE_SD_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// A scrape config file larger than this is refused before parsing.
const MAX_CONFIG_FILE_BYTES: u64 = 16 << 20;

/// Why the scrape configuration could not be loaded. `Display` is one line (user text escaped).
#[derive(Debug, thiserror::Error)]
pub enum ScrapeConfigError {
    /// The file could not be read: missing, unreadable, too large or not UTF-8.
    #[error("{}: cannot read scrape config file: {source}", path.display())]
    ReadFile {
        /// The file as given.
        path: PathBuf,
        /// Why.
        source: ReadFileError,
    },

    /// The YAML was malformed, had an unknown or refused key, or a value of the wrong type or
    /// format (including a relabel rule Prometheus would refuse).
    #[error("{place}: {key}: {reason}")]
    Yaml {
        /// File, line and column.
        place: Place,
        /// Path of the key, like `scrape_configs[0].scrape_timout`.
        key: String,
        /// What is wrong.
        reason: String,
    },

    /// A value was well-formed but not acceptable: out of range, conflicting with another
    /// setting, a duplicate `job_name`, or a file it names cannot be read.
    #[error("{place}: {key}: {reason}")]
    Invalid {
        /// File, line and column of the value.
        place: Place,
        /// Path of the key.
        key: String,
        /// What is wrong and, where it helps, how to fix it.
        reason: String,
    },
}

/// The loaded scrape configuration: defaults applied, secrets read, relabel rules compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeConfig {
    /// The file as given.
    pub path: PathBuf,
    /// The `global` section with defaults applied.
    pub global: GlobalConfig,
    /// One entry per `scrape_configs` item, in file order; `job_name`s are unique.
    pub jobs: Vec<JobConfig>,
    /// What was ignored, as at most one line (already logged by [`load`]); empty when nothing was.
    pub warnings: Vec<String>,
}

/// The `global` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalConfig {
    /// Default `scrape_interval` of the jobs.
    pub scrape_interval: Duration,
    /// Default `scrape_timeout` of the jobs; never longer than `scrape_interval`.
    pub scrape_timeout: Duration,
    /// Labels added to every scraped series that lacks them (Prometheus adds them when sending
    /// to remote storage). Names are valid label names, values non-empty.
    pub external_labels: BTreeMap<String, String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: DEFAULT_SCRAPE_INTERVAL,
            scrape_timeout: DEFAULT_SCRAPE_TIMEOUT,
            external_labels: BTreeMap::new(),
        }
    }
}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scheme {
    /// Plain HTTP (the default).
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The scheme as written in URLs and in the `__scheme__` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One scrape job, everything resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct JobConfig {
    /// The job's unique name, the default `job` label.
    pub job_name: String,
    /// How often each target is scraped (unless relabeling sets `__scrape_interval__`).
    pub scrape_interval: Duration,
    /// How long a scrape may take; `<= scrape_interval`.
    pub scrape_timeout: Duration,
    /// Path of the metrics endpoint (the default `__metrics_path__`).
    pub metrics_path: String,
    /// The default `__scheme__`.
    pub scheme: Scheme,
    /// URL query parameters; the first value of each is also the `__param_<name>` label.
    pub params: BTreeMap<String, Vec<String>>,
    /// Keep the target's labels when they clash with scraped ones (Prometheus' `honor_labels`).
    pub honor_labels: bool,
    /// Use the timestamps the target exposes (Prometheus' `honor_timestamps`, default true).
    pub honor_timestamps: bool,
    /// Fixed target groups.
    pub static_configs: Vec<StaticConfig>,
    /// Target groups read from files.
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Targets discovered from a Kubernetes API server.
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Target groups fetched from HTTP endpoints.
    pub http_sd_configs: Vec<HttpSdConfig>,
    /// Targets looked up in DNS.
    pub dns_sd_configs: Vec<DnsSdConfig>,
    /// Applied to each target's labels before scraping.
    pub relabel_configs: RelabelRules,
    /// Applied to each scraped series.
    pub metric_relabel_configs: RelabelRules,
    /// Most samples accepted from one scrape (after metric relabeling); 0 means no limit.
    pub sample_limit: u64,
    /// Most labels per scraped series; 0 means no limit.
    pub label_limit: u64,
    /// Largest uncompressed scrape body in bytes; 0 means no limit.
    pub body_size_limit: u64,
    /// How each scrape authenticates.
    pub auth: ScrapeAuth,
    /// TLS client settings, used for `https` targets.
    pub tls: ScrapeTls,
    /// The absolute directory of the config file, lexically cleaned (no `.` or `..`): what
    /// vmagent calls the base directory, needed to reproduce its sharding of `file_sd` targets.
    pub base_dir: PathBuf,
}

/// One `static_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StaticConfig {
    /// Target addresses (`host:port`), each becoming `__address__`.
    pub targets: Vec<String>,
    /// Labels of every target of this group; names are valid label names.
    pub labels: BTreeMap<String, String>,
}

/// One `file_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSdConfig {
    /// The `files` patterns, resolved against the config file's directory.
    pub files: Vec<FilePattern>,
    /// How often every file is re-read even when its modification time did not change.
    pub refresh_interval: Duration,
}

/// One `files` pattern of a `file_sd_config`: a path whose last element may hold wildcards
/// (`*`, `?`, `[a-z]`) and which ends in `.json`, `.yml` or `.yaml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePattern {
    /// The pattern as Prometheus resolves it: joined to the config file's directory and
    /// lexically cleaned. Matching files carry this form in `__meta_filepath`.
    pub path: PathBuf,
    /// The same pattern made absolute (vmagent's form, see [`JobConfig::base_dir`]).
    pub absolute: PathBuf,
}

/// How scrapes authenticate. Secrets were read at load time.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ScrapeAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// `basic_auth`.
    Basic {
        /// User name (from `username` or `username_file`).
        username: String,
        /// Password (from `password` or `password_file`).
        password: Secret,
    },
    /// `authorization` (or the legacy `bearer_token`/`bearer_token_file`): the header
    /// `Authorization: <kind> <credentials>`.
    Authorization {
        /// The scheme word, `Bearer` by default.
        kind: String,
        /// The credentials.
        credentials: Secret,
    },
}

/// `tls_config`. Files were checked readable at load time; the scraper reads them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ScrapeTls {
    /// PEM CA bundle file to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM CA bundle given inline (`ca`).
    pub ca: Option<String>,
    /// PEM client certificate file (always with a key).
    pub cert_file: Option<PathBuf>,
    /// PEM client certificate given inline (`cert`).
    pub cert: Option<String>,
    /// PEM private key file of the client certificate.
    pub key_file: Option<PathBuf>,
    /// PEM private key given inline (`key`).
    pub key: Option<Secret>,
    /// Server name to verify (and send as SNI) instead of the target's host.
    pub server_name: Option<String>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
    /// Oldest TLS version accepted: `TLS10`, `TLS11`, `TLS12` or `TLS13`.
    pub min_version: Option<String>,
    /// Newest TLS version offered.
    pub max_version: Option<String>,
}

/// Relabel rules as written (for comparison and display) and compiled (for use).
/// Two `RelabelRules` are equal when their written rules are.
#[derive(Clone, Default)]
pub struct RelabelRules {
    configs: Vec<RelabelConfig>,
    compiled: Arc<[CompiledRelabel]>,
}

impl RelabelRules {
    /// Validates and compiles `configs`.
    pub fn new(configs: Vec<RelabelConfig>) -> Result<Self, crate::relabel::RelabelError> {
        let compiled = compile_all(&configs)?;
        Ok(RelabelRules {
            configs,
            compiled: compiled.into(),
        })
    }

    /// The rules as written.
    pub fn configs(&self) -> &[RelabelConfig] {
        &self.configs
    }

    /// The compiled rules, for [`crate::relabel::process`].
    pub fn compiled(&self) -> &[CompiledRelabel] {
        &self.compiled
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }
}

impl PartialEq for RelabelRules {
    fn eq(&self, other: &Self) -> bool {
        self.configs == other.configs
    }
}

impl fmt::Debug for RelabelRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.configs).finish()
    }
}

/// Reads, parses and validates the scrape configuration file at `path`, and logs the warning
/// (if any) that [`ScrapeConfig::warnings`] also holds.
pub fn load(path: &Path) -> Result<ScrapeConfig, ScrapeConfigError> {
    let text = read_bounded(path, MAX_CONFIG_FILE_BYTES).map_err(|source| {
        ScrapeConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let config = parse(path, &text)?;
    for warning in &config.warnings {
        tracing::warn!(file = %path.display(), "{warning}");
    }
    Ok(config)
}

/// Parses `text` as the contents of the file `path`. `path` names the file in errors and
/// anchors relative paths; secret and TLS files it names are read. Nothing is logged.
pub fn parse(path: &Path, text: &str) -> Result<ScrapeConfig, ScrapeConfigError> {
    let mut key_path: Option<String> = None;
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, Option<RawFile>>(de).map_err(|e| {
            key_path = Some(key_path_of(e.path()));
            e.into_inner()
        })
    });
    let raw = match parsed {
        Ok(raw) => raw.unwrap_or_default(),
        Err(err) => return Err(yaml_error(path, key_path.as_deref(), &err)),
    };
    ScrapeConfigResolver::new(path).file(raw)
}

/// Parses a size as Prometheus' `units.Base2Bytes` does: `512KB`, `10MB`, `1GiB` are powers of
/// 1024 whichever spelling; `B` or no unit is bytes. Units are case-insensitive here.
pub fn parse_prometheus_size(text: &str) -> Result<u64, ValueError> {
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = (&s[..split], &s[split..]);
    let bad = |why: &str| ValueError::Size {
        text: text.to_owned(),
        why: format!(
            "{why} (use a number and a unit like 512KB, 10MB or 1GB; KB means 1024 bytes, as in Prometheus)"
        ),
    };
    if number.is_empty() {
        return Err(bad("expected a number"));
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kb" | "kib" => 10,
        "mb" | "mib" => 20,
        "gb" | "gib" => 30,
        "tb" | "tib" => 40,
        "pb" | "pib" => 50,
        "eb" | "eib" => 60,
        _ => return Err(bad(&format!("unknown unit {unit:?}"))),
    };
    let n: u64 = number.parse().map_err(|_| bad("number too large"))?;
    n.checked_mul(1u64 << shift).ok_or_else(|| bad("too large"))
}

/// Checks a label name against Prometheus' legacy rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Cleans a path lexically as Go's `filepath.Clean` does: repeated separators and `.` elements
/// go, `..` removes the element before it (and is dropped right after the root), and an empty
/// result is `.`. Symbolic links are not looked at.
pub fn clean_path(path: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(component),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

fn yaml_error(path: &Path, key_path: Option<&str>, err: &YamlError) -> ScrapeConfigError {
    let (place, key, reason) = crate::config::yaml_parts(path, key_path, err);
    ScrapeConfigError::Yaml { place, key, reason }
}
