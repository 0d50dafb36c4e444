//! The YAML file: its raw shape (every key optional except a storage's `url`, unknown keys refused)
//! and the conversion of its storages into [`StorageConfig`]s.
//!
//! YAML crate: `serde-saphyr`. `serde_yaml` is archived; its forks `serde_yaml_ng` and
//! `serde_norway` still sit on a C-to-Rust translation of libyaml (`unsafe-libyaml`).
//! `serde-saphyr` is actively maintained, pure safe Rust (`#![forbid(unsafe_code)]`), parses
//! without panicking, enforces a parsing budget by default (alias expansion: no "billion laughs"),
//! reports line and column for every error, and gives values their position (`Spanned`), which we
//! use for errors found after parsing (duplicate URLs, unreadable secret files).
//! `serde_path_to_error` adds the key path (`storages[1].queue_full`) that serde errors lack.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::{Error as YamlError, MessageFormatter, Spanned, UserMessageFormatter};
use url::Url;

use super::error::{ConfigError, Place};
use super::file_refs::FileRefs;
use super::storage::{
    BasicAuth, DEFAULT_CONCURRENCY, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_BLOCK_BYTES,
    DEFAULT_MIN_BACKOFF, DEFAULT_TIMEOUT, QueueFull, Secret, StorageConfig, TlsConfig,
};
use super::units::{
    ListenAddr, MemberNum, PositiveCount, PositiveDuration, PositiveSize, ValueError,
    format_duration,
};
use super::{FsyncMode, LogFormat};
use crate::util::one_line;

/// A config file larger than this is refused before parsing: it is not a promrelay config.
const MAX_CONFIG_FILE_BYTES: u64 = 16 << 20;

/// Highest `concurrency` accepted: more parallel requests to one storage is a typo, not a plan.
pub const MAX_CONCURRENCY: u32 = 64;

/// Headers the sender sets itself; a storage may not override them.
const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "x-prometheus-remote-write-version",
];

/// The file as written. Every setting is optional: absent means "flag or default".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub listen: Option<ListenAddr>,
    pub data_dir: Option<Spanned<PathBuf>>,
    pub fsync: Option<FsyncMode>,
    pub queue_max_bytes: Option<PositiveSize>,
    pub max_request_bytes: Option<PositiveSize>,
    pub log_format: Option<LogFormat>,
    pub scrape_config: Option<Spanned<PathBuf>>,
    pub cluster_members_count: Option<Spanned<PositiveCount>>,
    pub cluster_member_num: Option<Spanned<MemberNum>>,
    pub cluster_replication_factor: Option<Spanned<PositiveCount>>,
    pub max_tenants: Option<PositiveCount>,
    #[serde(default)]
    pub storages: Vec<FileStorage>,
    pub otlp: Option<FileOtlp>,
}

/// `otlp:`, as Prometheus spells it in its own config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOtlp {
    translation_strategy: Option<super::OtlpTranslationStrategy>,
    #[serde(default)]
    promote_resource_attributes: Vec<String>,
}

impl FileOtlp {
    pub(super) fn into_config(self) -> super::OtlpConfig {
        super::OtlpConfig {
            translation_strategy: self.translation_strategy.unwrap_or_default(),
            promote_resource_attributes: self.promote_resource_attributes,
        }
    }
}

/// One entry of `storages:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileStorage {
    name: Option<Spanned<String>>,
    /// One storage's remote-write URL; exactly one of `url` and `multitenant_url` is set.
    url: Option<Spanned<StorageUrl>>,
    /// A vminsert cluster's base URL: one queue per tenant.
    multitenant_url: Option<Spanned<StorageUrl>>,
    max_tenants: Option<Spanned<PositiveCount>>,
    headers: Option<Spanned<BTreeMap<String, Secret>>>,
    basic_auth: Option<Spanned<FileBasicAuth>>,
    bearer_token: Option<Spanned<Secret>>,
    bearer_token_file: Option<Spanned<PathBuf>>,
    tls: Option<Spanned<FileTls>>,
    queue_max_bytes: Option<PositiveSize>,
    queue_full: Option<QueueFull>,
    concurrency: Option<Spanned<PositiveCount>>,
    max_block_bytes: Option<PositiveSize>,
    timeout: Option<PositiveDuration>,
    min_backoff: Option<Spanned<PositiveDuration>>,
    max_backoff: Option<Spanned<PositiveDuration>>,
    write_relabel_configs: Option<Spanned<Vec<crate::relabel::RelabelConfig>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBasicAuth {
    username: String,
    password: Option<Secret>,
    password_file: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    ca_file: Option<Spanned<PathBuf>>,
    cert_file: Option<Spanned<PathBuf>>,
    key_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

impl FileStorage {
    /// Where the entry's URL is written (`url` or `multitenant_url`) and under which key, for
    /// messages about the storage as a whole.
    pub fn url_place(&self, r: &RelayConfigResolver<'_>) -> (Place, &'static str) {
        match (&self.url, &self.multitenant_url) {
            (Some(u), _) => (r.place(u), "url"),
            (None, Some(u)) => (r.place(u), "multitenant_url"),
            // Point at the entry by its name when it has one.
            (None, None) => match &self.name {
                Some(n) => (r.place(n), "url"),
                None => (Place::file(r.file, None), "url"),
            },
        }
    }
}

/// A storage URL checked at parse time, so its error carries the key and line.
#[derive(Debug)]
pub(super) struct StorageUrl(pub Url);

impl std::str::FromStr for StorageUrl {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        super::cli::parse_storage_url(s).map(StorageUrl)
    }
}

impl<'de> Deserialize<'de> for StorageUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Reads and parses the file at `path`. Errors name the file, the key path and the line.
pub(super) fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text =
        read_bounded(path, MAX_CONFIG_FILE_BYTES).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
    parse(path, &text)
}

/// Parses `text` as the contents of the file `path` (named in errors only).
pub(super) fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let mut key_path: Option<String> = None;
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, Option<FileConfig>>(de).map_err(|e| {
            key_path = Some(key_path_of(e.path()));
            e.into_inner()
        })
    });
    match parsed {
        // An empty file (or one with only comments) is an empty config.
        Ok(config) => Ok(config.unwrap_or_default()),
        Err(err) => Err(yaml_error(path, key_path.as_deref(), &err)),
    }
}

/// The dotted key path of an error, without the `value` segments that `Spanned` wrappers add
/// (so a header literally named `value` is not shown; an acceptable blur for a clear common case).
pub(crate) fn key_path_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Map { key } if key == "value" => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Unknown => {}
        }
    }
    out
}

fn yaml_error(path: &Path, key_path: Option<&str>, err: &YamlError) -> ConfigError {
    let (place, key, reason) = yaml_parts(path, key_path, err);
    ConfigError::Yaml { place, key, reason }
}

/// Where a YAML error is (file, line, column), the key path it is under, and the parser's
/// reason, each fit for a one-line message. Shared by every YAML file promrelay reads.
pub(crate) fn yaml_parts(
    path: &Path,
    key_path: Option<&str>,
    err: &YamlError,
) -> (Place, String, String) {
    let line_col = err
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| (l.line() as usize, l.column() as usize));
    let mut original = err;
    while let YamlError::AliasError { error, .. } | YamlError::WithSnippet { error, .. } = original
    {
        original = error;
    }
    let reason = one_line(&UserMessageFormatter.format_message(original));
    // An empty path is the document itself (or a key serde could not name, like a duplicate).
    let key = key_path.filter(|p| !p.is_empty()).unwrap_or("(top level)");
    (Place::file(path, line_col), one_line(key), reason)
}

/// Why `read_bounded` could not read a file. `Display` is one line without the path (the
/// caller names it where the message needs it).
#[derive(Debug, thiserror::Error)]
pub enum ReadFileError {
    /// The file could not be opened or read (missing, no permission, a directory...).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file holds more than the limit for its kind.
    #[error("larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The file is not valid UTF-8.
    #[error("not UTF-8 text")]
    NotUtf8,
}

/// Reads a whole file as UTF-8, refusing more than `limit` bytes.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<String, ReadFileError> {
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadFileError::TooLarge { limit });
    }
    String::from_utf8(bytes).map_err(|_| ReadFileError::NotUtf8)
}

/// Resolves file paths written in the config file: relative ones are relative to the file's
/// directory (as in Prometheus), so the config works whatever the working directory is.
pub(super) struct RelayConfigResolver<'a> {
    pub file: &'a Path,
}

impl RelayConfigResolver<'_> {
    fn refs(&self) -> FileRefs<'_> {
        FileRefs { file: self.file }
    }

    pub fn path(&self, p: &Path) -> PathBuf {
        self.refs().path(p)
    }

    pub fn place<T>(&self, spanned: &Spanned<T>) -> Place {
        self.refs().place(spanned)
    }

    fn invalid<T>(&self, spanned: &Spanned<T>, key: String, reason: String) -> ConfigError {
        ConfigError::Invalid {
            place: self.place(spanned),
            key,
            reason,
        }
    }

    /// Reads a secret file named at `spanned`: trimmed, non-empty, bounded.
    fn secret_file(&self, spanned: &Spanned<PathBuf>, key: String) -> Result<Secret, ConfigError> {
        self.refs()
            .secret(spanned)
            .map_err(|e| self.invalid(spanned, key, e.to_string()))
    }

    /// Checks that a TLS file named at `spanned` can be opened, and returns its resolved path.
    fn readable_file(
        &self,
        spanned: &Spanned<PathBuf>,
        key: String,
    ) -> Result<PathBuf, ConfigError> {
        self.refs()
            .readable(spanned)
            .map_err(|e| self.invalid(spanned, key, e.to_string()))
    }

    /// Turns storage number `index` of the file into a validated [`StorageConfig`].
    /// `default_queue_max_bytes` applies when the storage sets no `queue_max_bytes`.
    pub fn storage(
        &self,
        index: usize,
        raw: &FileStorage,
        default_queue_max_bytes: u64,
        default_max_tenants: u32,
    ) -> Result<StorageConfig, ConfigError> {
        let key = |name: &str| format!("storages[{index}].{name}");
        let (url_setting, multitenant) = match (&raw.url, &raw.multitenant_url) {
            (Some(u), None) => (u, false),
            (None, Some(m)) => (m, true),
            (Some(_), Some(m)) => {
                return Err(self.invalid(
                    m,
                    key("multitenant_url"),
                    "set url (one storage) or multitenant_url (a vminsert cluster), not both"
                        .to_owned(),
                ));
            }
            (None, None) => {
                return Err(ConfigError::Invalid {
                    place: raw.url_place(self).0,
                    key: format!("storages[{index}]"),
                    reason: "needs url (one storage) or multitenant_url (a vminsert cluster)"
                        .to_owned(),
                });
            }
        };
        let max_tenants = match &raw.max_tenants {
            Some(m) if !multitenant => {
                return Err(self.invalid(
                    m,
                    key("max_tenants"),
                    "applies only to a multitenant_url storage".to_owned(),
                ));
            }
            Some(m) => m.value.0,
            None => default_max_tenants,
        };
        let url = url_setting.value.0.clone();
        let url_has_auth = !url.username().is_empty() || url.password().is_some();

        let name = match &raw.name {
            Some(n) => {
                let valid = !n.value.is_empty()
                    && n.value.len() <= 64
                    && n.value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !valid {
                    return Err(self.invalid(
                        n,
                        key("name"),
                        format!(
                            "invalid name {:?}: use 1 to 64 of A-Z a-z 0-9 . _ -",
                            n.value
                        ),
                    ));
                }
                Some(n.value.clone())
            }
            None => None,
        };

        let (headers, authorization_header) = match &raw.headers {
            Some(h) => self.headers(h, &key("headers"))?,
            None => (BTreeMap::new(), false),
        };

        let basic_auth = match &raw.basic_auth {
            Some(b) => Some(self.basic_auth(b, &key("basic_auth"))?),
            None => None,
        };

        let bearer_token = match (&raw.bearer_token, &raw.bearer_token_file) {
            (Some(t), Some(_)) => {
                return Err(self.invalid(
                    t,
                    key("bearer_token"),
                    "set bearer_token or bearer_token_file, not both".to_owned(),
                ));
            }
            (Some(t), None) if t.value.expose().trim().is_empty() => {
                return Err(self.invalid(t, key("bearer_token"), "is empty".to_owned()));
            }
            (Some(t), None) => Some(Secret::new(t.value.expose().trim())),
            (None, Some(f)) => Some(self.secret_file(f, key("bearer_token_file"))?),
            (None, None) => None,
        };

        // One Authorization header per request: two sources would silently shadow each other.
        let auth_sources: Vec<&str> = [
            (url_has_auth, "user info in the url"),
            (basic_auth.is_some(), "basic_auth"),
            (bearer_token.is_some(), "bearer_token"),
            (authorization_header, "an Authorization header"),
        ]
        .into_iter()
        .filter_map(|(set, what)| set.then_some(what))
        .collect();
        if auth_sources.len() > 1 {
            return Err(self.invalid(
                url_setting,
                format!("storages[{index}]"),
                format!(
                    "{} all set credentials; keep only one",
                    auth_sources.join(" and ")
                ),
            ));
        }

        let tls = match &raw.tls {
            Some(t) => {
                if url.scheme() != "https" {
                    return Err(self.invalid(
                        t,
                        key("tls"),
                        "tls settings need an https url".to_owned(),
                    ));
                }
                self.tls(t, &key("tls"))?
            }
            None => TlsConfig::default(),
        };

        let concurrency = match &raw.concurrency {
            Some(c) if c.value.0 > MAX_CONCURRENCY => {
                return Err(self.invalid(
                    c,
                    key("concurrency"),
                    format!(
                        "{} is more than the maximum of {MAX_CONCURRENCY}",
                        c.value.0
                    ),
                ));
            }
            Some(c) => c.value.0,
            None => DEFAULT_CONCURRENCY,
        };

        let min_backoff = raw
            .min_backoff
            .as_ref()
            .map_or(DEFAULT_MIN_BACKOFF, |d| d.value.0);
        let max_backoff = match &raw.max_backoff {
            Some(m) if m.value.0 < min_backoff => {
                return Err(self.invalid(
                    m,
                    key("max_backoff"),
                    format!(
                        "{} is less than min_backoff {}",
                        format_duration(m.value.0),
                        format_duration(min_backoff)
                    ),
                ));
            }
            Some(m) => m.value.0,
            None if let Some(min) = raw.min_backoff.as_ref()
                && DEFAULT_MAX_BACKOFF < min.value.0 =>
            {
                return Err(self.invalid(
                    min,
                    key("min_backoff"),
                    format!(
                        "{} is more than the default max_backoff {}; set max_backoff too",
                        format_duration(min_backoff),
                        format_duration(DEFAULT_MAX_BACKOFF)
                    ),
                ));
            }
            None => DEFAULT_MAX_BACKOFF,
        };

        let write_relabel_configs = match &raw.write_relabel_configs {
            Some(r) => {
                crate::relabel::compile_all(&r.value).map_err(|e| {
                    self.invalid(r, key("write_relabel_configs"), one_line(&e.to_string()))
                })?;
                r.value.clone()
            }
            None => Vec::new(),
        };

        Ok(StorageConfig {
            write_relabel_configs,
            name,
            url,
            multitenant,
            max_tenants,
            headers,
            basic_auth,
            bearer_token,
            tls,
            queue_max_bytes: raw.queue_max_bytes.map_or(default_queue_max_bytes, |s| s.0),
            queue_full: raw.queue_full.unwrap_or_default(),
            concurrency,
            max_block_bytes: raw.max_block_bytes.map_or(DEFAULT_MAX_BLOCK_BYTES, |s| s.0),
            timeout: raw.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            min_backoff,
            max_backoff,
        })
    }

    /// Validates header names and values; also says whether an `Authorization` header is set.
    fn headers(
        &self,
        raw: &Spanned<BTreeMap<String, Secret>>,
        key: &str,
    ) -> Result<(BTreeMap<String, Secret>, bool), ConfigError> {
        let mut headers = BTreeMap::new();
        let mut seen = BTreeMap::new();
        let mut authorization = false;
        for (name, value) in &raw.value {
            let shown = one_line(name);
            let lower = name.to_ascii_lowercase();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(self.invalid(
                    raw,
                    key.to_owned(),
                    format!("invalid header name {name:?}"),
                ));
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                return Err(self.invalid(
                    raw,
                    format!("{key}.{shown}"),
                    "promrelay sets this header itself; remove it".to_owned(),
                ));
            }
            if http::HeaderValue::from_str(value.expose()).is_err() {
                // The value is not shown: it may be a credential.
                return Err(self.invalid(
                    raw,
                    format!("{key}.{shown}"),
                    "invalid header value (control characters or non-ASCII)".to_owned(),
                ));
            }
            if let Some(previous) = seen.insert(lower.clone(), name.clone()) {
                return Err(self.invalid(
                    raw,
                    format!("{key}.{shown}"),
                    format!("same header as {previous:?} (header names ignore case)"),
                ));
            }
            authorization |= lower == "authorization";
            headers.insert(name.clone(), value.clone());
        }
        Ok((headers, authorization))
    }

    fn basic_auth(
        &self,
        raw: &Spanned<FileBasicAuth>,
        key: &str,
    ) -> Result<BasicAuth, ConfigError> {
        let auth = &raw.value;
        let (password, password_file) = match (&auth.password, &auth.password_file) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(
                    raw,
                    key.to_owned(),
                    "set password or password_file, not both".to_owned(),
                ));
            }
            (Some(p), None) => (p.clone(), None),
            (None, Some(f)) => (
                self.secret_file(f, format!("{key}.password_file"))?,
                Some(self.path(&f.value)),
            ),
            (None, None) => {
                return Err(self.invalid(
                    raw,
                    key.to_owned(),
                    "needs password or password_file".to_owned(),
                ));
            }
        };
        Ok(BasicAuth {
            username: auth.username.clone(),
            password,
            password_file,
        })
    }

    fn tls(&self, raw: &Spanned<FileTls>, key: &str) -> Result<TlsConfig, ConfigError> {
        let t = &raw.value;
        let file =
            |f: &Option<Spanned<PathBuf>>, name: &str| -> Result<Option<PathBuf>, ConfigError> {
                f.as_ref()
                    .map(|f| self.readable_file(f, format!("{key}.{name}")))
                    .transpose()
            };
        let tls = TlsConfig {
            ca_file: file(&t.ca_file, "ca_file")?,
            cert_file: file(&t.cert_file, "cert_file")?,
            key_file: file(&t.key_file, "key_file")?,
            insecure_skip_verify: t.insecure_skip_verify,
        };
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(self.invalid(
                raw,
                key.to_owned(),
                "cert_file and key_file go together: set both or neither".to_owned(),
            ));
        }
        Ok(tls)
    }
}
