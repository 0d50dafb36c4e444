//! From the file's shape to resolved values: defaults, Prometheus' checks, paths joined to
//! the config file's directory, secret files read, TLS files checked. Every error names the
//! file, the line of the value and its key path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::raw::{PromDuration, RawAuth, RawFile, RawGlobal, RawJob, RawTls};
use super::{
    DEFAULT_FILE_SD_REFRESH_INTERVAL, DEFAULT_METRICS_PATH, DEFAULT_SCRAPE_INTERVAL,
    DEFAULT_SCRAPE_TIMEOUT, FilePattern, FileSdConfig, GlobalConfig, JobConfig, RelabelRules,
    Scheme, ScrapeAuth, ScrapeConfig, ScrapeConfigError, ScrapeTls, StaticConfig, clean_path,
    is_valid_label_name,
};
use crate::config::{FileRefs, Place, Secret};
use crate::relabel::RelabelConfig;
use crate::util::one_line;

/// Prometheus' `tls_config` version names, oldest first.
const TLS_VERSIONS: [&str; 4] = ["TLS10", "TLS11", "TLS12", "TLS13"];
/// Index in [`TLS_VERSIONS`] of the oldest version promrelay's TLS library (rustls) speaks.
/// A `min_version` below it is still kept (every connection is TLS12 or newer, so at least the
/// minimum) with a warning; a `max_version` below it cannot be kept and is an error.
const OLDEST_TLS_SPOKEN: usize = 2;

/// Turns raw values into resolved ones; knows the file for paths and error places.
pub(super) struct ScrapeConfigResolver<'a> {
    file: &'a Path,
    /// The config file's directory, absolute and cleaned.
    base_dir: PathBuf,
}

impl<'a> ScrapeConfigResolver<'a> {
    pub(super) fn new(file: &'a Path) -> Self {
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let base_dir = clean_path(absolute.parent().unwrap_or(Path::new("/")));
        ScrapeConfigResolver { file, base_dir }
    }

    fn refs(&self) -> FileRefs<'_> {
        FileRefs { file: self.file }
    }

    pub(super) fn path(&self, p: &Path) -> PathBuf {
        self.refs().path(p)
    }

    pub(super) fn place<T>(&self, spanned: &Spanned<T>) -> Place {
        self.refs().place(spanned)
    }

    pub(super) fn invalid<T>(
        &self,
        at: &Spanned<T>,
        key: String,
        reason: String,
    ) -> ScrapeConfigError {
        ScrapeConfigError::Invalid {
            place: self.place(at),
            key,
            reason,
        }
    }

    pub(super) fn file(&self, raw: RawFile) -> Result<ScrapeConfig, ScrapeConfigError> {
        let mut ignored = raw.ignored;
        let raw_global = raw.global.unwrap_or_default();
        let global = self.global(&raw_global)?;
        ignored.extend(raw_global.ignored.iter().cloned());

        let mut jobs: Vec<JobConfig> = Vec::with_capacity(raw.scrape_configs.len());
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        // Warnings other than the ignored parts, one each.
        let mut notes: Vec<String> = Vec::new();
        for (index, raw_job) in raw.scrape_configs.into_iter().enumerate() {
            let job = self.job(index, &raw_job, &global, &raw_global)?;
            if let Some(name) = &raw_job.job_name
                && let Some(first) = names.insert(job.job_name.clone(), index)
            {
                return Err(self.invalid(
                    name,
                    format!("scrape_configs[{index}].job_name"),
                    format!(
                        "job name {:?} is used twice: scrape_configs[{first}] has it too; job names must be unique",
                        one_line(&job.job_name)
                    ),
                ));
            }
            if let Some(min) = job
                .tls
                .min_version
                .as_deref()
                .filter(|m| TLS_VERSIONS[..OLDEST_TLS_SPOKEN].contains(m))
            {
                notes.push(format!(
                    "job {:?}: tls_config.min_version {min} allows TLS versions promrelay does not speak: it connects with TLS12 or TLS13 only, so a target that speaks nothing newer than {min} fails its scrapes",
                    one_line(&job.job_name)
                ));
            }
            if !raw_job.ignored.is_empty() {
                ignored.push(format!(
                    "job {:?}: {}",
                    one_line(&job.job_name),
                    raw_job.ignored.join(", ")
                ));
            }
            jobs.push(job);
        }

        let mut warnings = Vec::new();
        if !ignored.is_empty() {
            warnings.push(format!(
                "ignoring parts of the Prometheus configuration that promrelay does not use: {}",
                ignored.join("; ")
            ));
        }
        warnings.extend(notes);
        Ok(ScrapeConfig {
            path: self.file.to_path_buf(),
            global,
            jobs,
            warnings,
        })
    }

    fn global(&self, raw: &RawGlobal) -> Result<GlobalConfig, ScrapeConfigError> {
        let set = |d: &Option<Spanned<PromDuration>>| {
            d.as_ref().map(|d| d.value.0).filter(|d| !d.is_zero())
        };
        let scrape_interval = set(&raw.scrape_interval).unwrap_or(DEFAULT_SCRAPE_INTERVAL);
        let scrape_timeout = match (set(&raw.scrape_timeout), &raw.scrape_timeout) {
            (Some(timeout), Some(at)) if timeout > scrape_interval => {
                return Err(self.invalid(
                    at,
                    "global.scrape_timeout".to_owned(),
                    format!(
                        "{} is longer than the scrape_interval {}; a scrape must end before the next one starts",
                        shown(timeout),
                        shown(scrape_interval)
                    ),
                ));
            }
            (Some(timeout), _) => timeout,
            (None, _) => DEFAULT_SCRAPE_TIMEOUT.min(scrape_interval),
        };
        let external_labels = match &raw.external_labels {
            Some(labels) => {
                self.label_names(labels, "global.external_labels")?;
                labels
                    .value
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }
            None => BTreeMap::new(),
        };
        Ok(GlobalConfig {
            scrape_interval,
            scrape_timeout,
            external_labels,
        })
    }

    fn label_names(
        &self,
        labels: &Spanned<BTreeMap<String, String>>,
        key: &str,
    ) -> Result<(), ScrapeConfigError> {
        for name in labels.value.keys() {
            if !is_valid_label_name(name) {
                return Err(self.invalid(
                    labels,
                    key.to_owned(),
                    format!(
                        "{:?} is not a valid label name (use [a-zA-Z_][a-zA-Z0-9_]*)",
                        one_line(name)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn job(
        &self,
        index: usize,
        raw: &RawJob,
        global: &GlobalConfig,
        raw_global: &RawGlobal,
    ) -> Result<JobConfig, ScrapeConfigError> {
        let key = |name: &str| format!("scrape_configs[{index}].{name}");
        let name_at = raw
            .job_name
            .as_ref()
            .ok_or_else(|| ScrapeConfigError::Yaml {
                place: Place::File {
                    path: self.file.to_path_buf(),
                    line_col: None,
                },
                key: format!("scrape_configs[{index}]"),
                reason: "missing field `job_name`".to_owned(),
            })?;
        let job_name = name_at.value.clone();
        if job_name.is_empty() {
            return Err(self.invalid(name_at, key("job_name"), "is empty".to_owned()));
        }

        let set = |d: &Option<Spanned<PromDuration>>| {
            d.as_ref().map(|d| d.value.0).filter(|d| !d.is_zero())
        };
        let scrape_interval = set(&raw.scrape_interval).unwrap_or(global.scrape_interval);
        let scrape_timeout = match (set(&raw.scrape_timeout), &raw.scrape_timeout) {
            (Some(timeout), Some(at)) if timeout > scrape_interval => {
                return Err(self.invalid(
                    at,
                    key("scrape_timeout"),
                    format!(
                        "{} is longer than the job's scrape_interval {}; a scrape must end before the next one starts",
                        shown(timeout),
                        shown(scrape_interval)
                    ),
                ));
            }
            (Some(timeout), _) => timeout,
            // Inherited: cut to the interval, as Prometheus does.
            (None, _) => global.scrape_timeout.min(scrape_interval),
        };

        let scheme = match &raw.scheme {
            None => Scheme::Http,
            Some(s) if s.value.is_empty() || s.value == "http" => Scheme::Http,
            Some(s) if s.value == "https" => Scheme::Https,
            Some(s) => {
                return Err(self.invalid(
                    s,
                    key("scheme"),
                    format!("{:?} is not http or https", one_line(&s.value)),
                ));
            }
        };
        let metrics_path = match &raw.metrics_path {
            Some(p) if !p.is_empty() => p.clone(),
            _ => DEFAULT_METRICS_PATH.to_owned(),
        };

        // Each rule was validated while parsing (with its line); compiling cannot fail on them,
        // but an error is still reported rather than assumed away.
        let rules = |rules: &Option<Vec<RelabelConfig>>, name: &str| {
            RelabelRules::new(rules.clone().unwrap_or_default())
                .map_err(|e| self.invalid(name_at, key(name), one_line(&e.to_string())))
        };
        let relabel_configs = rules(&raw.relabel_configs, "relabel_configs")?;
        let metric_relabel_configs = rules(&raw.metric_relabel_configs, "metric_relabel_configs")?;

        let mut static_configs = Vec::new();
        for (i, s) in raw.static_configs.iter().flatten().enumerate() {
            let skey = key(&format!("static_configs[{i}]"));
            let mut targets = Vec::new();
            for target in s.targets.iter().flatten() {
                // Prometheus' checkStaticTargets: without relabel rules nothing can fix a path.
                if relabel_configs.is_empty() && target.value.contains('/') {
                    return Err(self.invalid(
                        target,
                        format!("{skey}.targets"),
                        format!(
                            "{:?} is not a valid host:port (a target is an address, not a URL; use scheme and metrics_path for the rest)",
                            one_line(&target.value)
                        ),
                    ));
                }
                targets.push(target.value.clone());
            }
            let labels = match &s.labels {
                Some(labels) => {
                    self.label_names(labels, &format!("{skey}.labels"))?;
                    labels.value.clone()
                }
                None => BTreeMap::new(),
            };
            static_configs.push(StaticConfig { targets, labels });
        }

        let mut file_sd_configs = Vec::new();
        for (i, f) in raw.file_sd_configs.iter().flatten().enumerate() {
            let fkey = key(&format!("file_sd_configs[{i}].files"));
            let mut files = Vec::new();
            for pattern in &f.files.value {
                check_file_sd_pattern(pattern)
                    .map_err(|e| self.invalid(&f.files, fkey.clone(), e.to_string()))?;
                let joined = self.path(Path::new(pattern));
                files.push(FilePattern {
                    path: clean_path(&joined),
                    absolute: clean_path(&self.base_dir.join(pattern)),
                });
            }
            file_sd_configs.push(FileSdConfig {
                files,
                refresh_interval: f
                    .refresh_interval
                    .map(|d| d.0)
                    .filter(|d| !d.is_zero())
                    .unwrap_or(DEFAULT_FILE_SD_REFRESH_INTERVAL),
            });
        }

        let mut kubernetes_sd_configs = Vec::new();
        for (i, k) in raw.kubernetes_sd_configs.iter().flatten().enumerate() {
            kubernetes_sd_configs
                .push(self.kubernetes_sd(k, &key(&format!("kubernetes_sd_configs[{i}]")))?);
        }

        let http_sd_configs = self.http_sd_configs(
            raw.http_sd_configs.as_deref().unwrap_or_default(),
            &key("http_sd_configs"),
        )?;
        let dns_sd_configs = self.dns_sd_configs(
            raw.dns_sd_configs.as_deref().unwrap_or_default(),
            &key("dns_sd_configs"),
        )?;

        let auth = self.auth(&raw.auth(), &key)?;
        let tls = match &raw.tls_config {
            Some(t) => self.tls(t, &key("tls_config"), false)?,
            None => ScrapeTls::default(),
        };

        Ok(JobConfig {
            job_name,
            scrape_interval,
            scrape_timeout,
            metrics_path,
            scheme,
            params: raw.params.clone().unwrap_or_default(),
            honor_labels: raw.honor_labels.unwrap_or(false),
            honor_timestamps: raw.honor_timestamps.unwrap_or(true),
            static_configs,
            file_sd_configs,
            kubernetes_sd_configs,
            http_sd_configs,
            dns_sd_configs,
            relabel_configs,
            metric_relabel_configs,
            sample_limit: raw.sample_limit.or(raw_global.sample_limit).unwrap_or(0),
            label_limit: raw.label_limit.or(raw_global.label_limit).unwrap_or(0),
            body_size_limit: raw
                .body_size_limit
                .or(raw_global.body_size_limit)
                .map_or(0, |s| s.0),
            auth,
            tls,
            base_dir: self.base_dir.clone(),
        })
    }

    /// The one `Authorization` of a job or of a discovery's HTTP client, from the four keys
    /// that can set it (at most one may be set).
    pub(super) fn auth(
        &self,
        raw: &RawAuth<'_>,
        key: &dyn Fn(&str) -> String,
    ) -> Result<ScrapeAuth, ScrapeConfigError> {
        let sources: Vec<(&str, Place)> = [
            ("basic_auth", raw.basic_auth.map(|s| self.place(s))),
            ("authorization", raw.authorization.map(|s| self.place(s))),
            ("bearer_token", raw.bearer_token.map(|s| self.place(s))),
            (
                "bearer_token_file",
                raw.bearer_token_file.map(|s| self.place(s)),
            ),
        ]
        .into_iter()
        .filter_map(|(name, place)| place.map(|p| (name, p)))
        .collect();
        if sources.len() > 1 {
            let names: Vec<&str> = sources.iter().map(|(n, _)| *n).collect();
            return Err(ScrapeConfigError::Invalid {
                place: sources[1].1.clone(),
                key: key(sources[1].0),
                reason: format!(
                    "{} are all set; a scrape sends one Authorization header, so keep only one",
                    names.join(" and ")
                ),
            });
        }

        if let Some(b) = raw.basic_auth {
            let bkey = key("basic_auth");
            let v = &b.value;
            let username = match (&v.username, &v.username_file) {
                (Some(_), Some(_)) => {
                    return Err(self.invalid(
                        b,
                        bkey,
                        "set username or username_file, not both".to_owned(),
                    ));
                }
                (Some(u), None) => u.clone(),
                (None, Some(f)) => self
                    .secret_file(f, format!("{bkey}.username_file"))?
                    .expose()
                    .to_owned(),
                (None, None) => String::new(),
            };
            let password = match (&v.password, &v.password_file) {
                (Some(_), Some(_)) => {
                    return Err(self.invalid(
                        b,
                        bkey,
                        "set password or password_file, not both".to_owned(),
                    ));
                }
                (Some(p), None) => p.clone(),
                (None, Some(f)) => self.secret_file(f, format!("{bkey}.password_file"))?,
                (None, None) => Secret::new(""),
            };
            return Ok(ScrapeAuth::Basic { username, password });
        }

        if let Some(a) = raw.authorization {
            let akey = key("authorization");
            let v = &a.value;
            let kind = v
                .kind
                .as_deref()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .unwrap_or("Bearer")
                .to_owned();
            if kind.eq_ignore_ascii_case("basic") {
                return Err(self.invalid(
                    a,
                    format!("{akey}.type"),
                    "authorization type cannot be Basic: use basic_auth".to_owned(),
                ));
            }
            if kind.contains(char::is_whitespace) || kind.chars().any(char::is_control) {
                return Err(self.invalid(
                    a,
                    format!("{akey}.type"),
                    format!("{:?} is not one word", one_line(&kind)),
                ));
            }
            let credentials = match (&v.credentials, &v.credentials_file) {
                (Some(_), Some(_)) => {
                    return Err(self.invalid(
                        a,
                        akey,
                        "set credentials or credentials_file, not both".to_owned(),
                    ));
                }
                (Some(c), None) => c.clone(),
                (None, Some(f)) => self.secret_file(f, format!("{akey}.credentials_file"))?,
                (None, None) => {
                    return Err(self.invalid(
                        a,
                        akey,
                        "needs credentials or credentials_file".to_owned(),
                    ));
                }
            };
            return Ok(ScrapeAuth::Authorization { kind, credentials });
        }

        if let Some(t) = raw.bearer_token {
            return Ok(ScrapeAuth::Authorization {
                kind: "Bearer".to_owned(),
                credentials: t.value.clone(),
            });
        }
        if let Some(f) = raw.bearer_token_file {
            return Ok(ScrapeAuth::Authorization {
                kind: "Bearer".to_owned(),
                credentials: self.secret_file(f, key("bearer_token_file"))?,
            });
        }
        Ok(ScrapeAuth::None)
    }

    /// A `tls_config`. `server_name` is refused unless `allow_server_name` (scrapes cannot send
    /// another name; a discovery client connecting to one server can).
    pub(super) fn tls(
        &self,
        raw: &Spanned<RawTls>,
        key: &str,
        allow_server_name: bool,
    ) -> Result<ScrapeTls, ScrapeConfigError> {
        let t = &raw.value;
        let file = |f: &Option<Spanned<PathBuf>>,
                    name: &str|
         -> Result<Option<PathBuf>, ScrapeConfigError> {
            f.as_ref()
                .map(|f| self.readable_file(f, format!("{key}.{name}")))
                .transpose()
        };
        // Prometheus' names, oldest first, so that the order of the names is the order of the
        // versions.
        let version = |v: &Option<Spanned<String>>,
                       name: &str|
         -> Result<Option<(usize, String)>, ScrapeConfigError> {
            match v {
                None => Ok(None),
                Some(v) => match TLS_VERSIONS.iter().position(|known| *known == v.value) {
                    Some(rank) => Ok(Some((rank, v.value.clone()))),
                    None => Err(self.invalid(
                        v,
                        format!("{key}.{name}"),
                        format!(
                            "unknown TLS version {:?} (use TLS10, TLS11, TLS12 or TLS13)",
                            one_line(&v.value)
                        ),
                    )),
                },
            }
        };
        let both = |a: bool, b: bool, what: &str| {
            if a && b {
                Err(self.invalid(
                    raw,
                    key.to_owned(),
                    format!("set {what} or {what}_file, not both"),
                ))
            } else {
                Ok(())
            }
        };
        both(t.ca.is_some(), t.ca_file.is_some(), "ca")?;
        both(t.cert.is_some(), t.cert_file.is_some(), "cert")?;
        both(t.key.is_some(), t.key_file.is_some(), "key")?;
        let server_name = t
            .server_name
            .as_ref()
            .filter(|n| !n.value.is_empty())
            .map(|n| n.value.clone());
        if let Some(name) = t.server_name.as_ref().filter(|n| !n.value.is_empty())
            && !allow_server_name
        {
            return Err(self.invalid(
                name,
                format!("{key}.server_name"),
                "promrelay cannot send another TLS server name (SNI) or verify the certificate for another name than the target's host; ignoring it would scrape with different TLS, so remove it, or name the target by that host".to_owned(),
            ));
        }
        let min_version = version(&t.min_version, "min_version")?;
        let max_version = version(&t.max_version, "max_version")?;
        if let (Some((rank, name)), Some(at)) = (&max_version, &t.max_version)
            && *rank < OLDEST_TLS_SPOKEN
        {
            return Err(self.invalid(
                at,
                format!("{key}.max_version"),
                format!(
                    "promrelay's TLS library (rustls) speaks only TLS12 and TLS13, so it cannot keep to {name} or older"
                ),
            ));
        }
        if let (Some((min, _)), Some((max, _)), Some(at)) =
            (&min_version, &max_version, &t.max_version)
            && max < min
        {
            return Err(self.invalid(
                at,
                format!("{key}.max_version"),
                "must be greater than or equal to min_version".to_owned(),
            ));
        }
        let tls = ScrapeTls {
            ca_file: file(&t.ca_file, "ca_file")?,
            ca: t.ca.clone(),
            cert_file: file(&t.cert_file, "cert_file")?,
            cert: t.cert.clone(),
            key_file: file(&t.key_file, "key_file")?,
            key: t.key.clone(),
            server_name,
            insecure_skip_verify: t.insecure_skip_verify,
            min_version: min_version.map(|(_, name)| name),
            max_version: max_version.map(|(_, name)| name),
        };
        let has_cert = tls.cert.is_some() || tls.cert_file.is_some();
        let has_key = tls.key.is_some() || tls.key_file.is_some();
        if has_cert != has_key {
            return Err(self.invalid(
                raw,
                key.to_owned(),
                "a client certificate and its key go together: set both or neither".to_owned(),
            ));
        }
        Ok(tls)
    }

    /// Reads a secret file: trimmed (as Prometheus does), non-empty, bounded.
    pub(super) fn secret_file(
        &self,
        at: &Spanned<PathBuf>,
        key: String,
    ) -> Result<Secret, ScrapeConfigError> {
        self.refs()
            .secret(at)
            .map_err(|e| self.invalid(at, key, e.to_string()))
    }

    /// Checks that a TLS file can be opened; returns its resolved path.
    pub(super) fn readable_file(
        &self,
        at: &Spanned<PathBuf>,
        key: String,
    ) -> Result<PathBuf, ScrapeConfigError> {
        self.refs()
            .readable(at)
            .map_err(|e| self.invalid(at, key, e.to_string()))
    }
}

/// Prometheus' rule for `file_sd_configs` file names (`patFileSDName`), with wildcards limited
/// to the last path element.
fn check_file_sd_pattern(pattern: &str) -> Result<(), FilePatternError> {
    let shown = one_line(pattern);
    let (dir, name) = match pattern.rfind('/') {
        Some(i) => (&pattern[..i], &pattern[i + 1..]),
        None => ("", pattern),
    };
    if dir.contains(['*', '?', '[']) {
        return Err(FilePatternError::WildcardInDirectory { shown });
    }
    // Prometheus accepts the extension in lower or upper case, not mixed.
    let extension = name.rsplit_once('.').map(|(_, ext)| ext);
    if !matches!(
        extension,
        Some("json" | "yml" | "yaml" | "JSON" | "YML" | "YAML")
    ) {
        return Err(FilePatternError::BadExtension { shown });
    }
    Ok(())
}

/// Why a `file_sd_configs` file name pattern is refused (`shown` is the pattern, escaped).
#[derive(Debug, thiserror::Error)]
enum FilePatternError {
    /// A wildcard appears before the last `/`.
    #[error("{shown:?}: wildcards are allowed only in the file name, not in directories")]
    WildcardInDirectory { shown: String },
    /// The name does not end in `.json`, `.yml` or `.yaml` (all lower or all upper case).
    #[error("{shown:?}: file_sd files must end in .json, .yml or .yaml")]
    BadExtension { shown: String },
}

/// Formats a duration for messages the way the file writes them (`1m30s`).
fn shown(d: Duration) -> String {
    crate::config::format_duration(d)
}
