//! One destination storage (one remote-write URL): its settings, its stable id, and the secrets
//! it carries, which no `Debug` output ever shows.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;
use xxhash_rust::xxh64::xxh64;

use super::units::{format_duration, format_size};

/// What `Debug` and [`StorageConfig::redacted_url`] print instead of a secret.
pub const REDACTED: &str = "xxxxx";

/// Default size cap of one storage's disk queue: 1GiB.
///
/// The cap exists so one dead storage cannot fill the disk that every other storage's queue shares.
/// 1GiB holds roughly an hour of a 50k samples/s stream (remote-write blocks compress to a few
/// bytes per sample), enough to ride out a storage restart or a short maintenance window, yet is
/// small enough to be safe on a default container volume. Raise it for longer outages.
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 1 << 30;

/// Default largest merged request the sender builds: 8MiB of uncompressed protobuf.
///
/// vmagent uses the same default (`-remoteWrite.maxBlockSize`); it is well below the request
/// limits of VictoriaMetrics (32MiB), Mimir and Prometheus' receiver, so merged blocks are never
/// refused for size, while being large enough that per-request overhead does not limit throughput.
pub const DEFAULT_MAX_BLOCK_BYTES: u64 = 8 << 20;

/// Default number of requests in flight per storage. 1, because the sender must never reorder
/// the samples of a series and a Prometheus-style storage rejects out-of-order samples.
pub const DEFAULT_CONCURRENCY: u32 = 1;

/// Default time a single remote-write request may take (Prometheus' `remote_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default first retry delay (Prometheus' `queue_config.min_backoff`).
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(30);

/// Default largest retry delay (Prometheus' `queue_config.max_backoff`).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Default bound on the tenant queues of one multitenant storage (`max_tenants`).
///
/// Each tenant queue holds a few open files (its lock, the chunk being written, the one being
/// read) and a sender task, and may grow to the storage's `queue_max_bytes` on disk. 100 keeps a
/// relay well inside the common 1024 open-files limit and its disk use predictable, while being
/// far more tenants than one relay usually fronts; raise it for a larger cluster.
pub const DEFAULT_MAX_TENANTS: u32 = 100;

/// The longest readable part of a storage id, before `-` and the hash.
const ID_SLUG_MAX: usize = 48;

/// A secret string (password, token, header value). `Debug` prints `xxxxx`; there is no `Display`,
/// so a secret reaches a log line only through an explicit [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for building the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// What the sender does with new data when the storage's queue is at its size cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueFull {
    /// Drop the oldest queued data of this storage (counted), accept the push: the default,
    /// because recent data is usually worth more than old data and other storages keep going.
    #[default]
    DropOldest,
    /// Refuse the push (the client retries); nothing queued is dropped.
    Reject,
}

/// HTTP basic authentication for a storage. The password was read at load time, from the file
/// when `password_file` was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicAuth {
    /// User name, sent as given.
    pub username: String,
    /// Password (from `password` or the contents of `password_file`, surrounding whitespace trimmed).
    pub password: Secret,
    /// The file the password came from, if any, so a reload can tell what to watch.
    pub password_file: Option<PathBuf>,
}

/// TLS settings for an `https` storage. Files were checked readable at load time; the sender
/// reads them when it builds its client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM bundle of CAs to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (always together with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. For tests and emergencies only.
    pub insecure_skip_verify: bool,
}

/// One destination storage and how to send to it.
///
/// `Debug` never shows a password, token or header value (see the test
/// `debug_output_never_contains_passwords`).
#[derive(Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Human-readable name from the file, for logs; `None` for storages from `--remote-write-url`.
    pub name: Option<String>,
    /// The remote-write URL; may carry `user:password@`, which is then its basic authentication.
    /// For a multitenant storage, the cluster's base URL (see [`StorageConfig::tenant_url`]).
    pub url: Url,
    /// `multitenant_url` / `--remote-write-multitenant-url`: a vminsert cluster. Each tenant's data
    /// goes to its own queue and to `<url>/insert/<accountID>:<projectID>/prometheus/api/v1/write`.
    pub multitenant: bool,
    /// Most tenant queues a multitenant storage opens; a push for one more is refused (503).
    pub max_tenants: u32,
    /// Extra request headers, by name as written. Values are secrets: they may be credentials.
    pub headers: BTreeMap<String, Secret>,
    /// Basic authentication (`basic_auth` in the file). Never set together with `bearer_token`,
    /// URL user info or an `Authorization` header.
    pub basic_auth: Option<BasicAuth>,
    /// Bearer token (from `bearer_token` or the contents of `bearer_token_file`).
    pub bearer_token: Option<Secret>,
    /// TLS client settings.
    pub tls: TlsConfig,
    /// Size cap of this storage's disk queue, in bytes.
    pub queue_max_bytes: u64,
    /// What happens when the queue is at its cap.
    pub queue_full: QueueFull,
    /// Requests in flight at once; > 1 only if the sender keeps per-series order.
    pub concurrency: u32,
    /// Largest merged request the sender builds, in bytes of uncompressed protobuf.
    pub max_block_bytes: u64,
    /// Time limit for one request.
    pub timeout: Duration,
    /// First retry delay; doubles per failed attempt up to `max_backoff`.
    pub min_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
    /// Prometheus `write_relabel_configs` applied to this storage's data only (validated). A storage
    /// with rules gets decoded, relabelled, re-encoded data; others get the bodies as received.
    pub write_relabel_configs: Vec<crate::relabel::RelabelConfig>,
}

impl StorageConfig {
    /// A storage with default settings for `url`, as `--remote-write-url` creates it.
    /// Checks nothing: for URLs that [`super::Config::from_args`] already validated, and tests.
    pub fn with_defaults(url: Url, queue_max_bytes: u64) -> Self {
        StorageConfig {
            name: None,
            url,
            multitenant: false,
            max_tenants: DEFAULT_MAX_TENANTS,
            headers: BTreeMap::new(),
            basic_auth: None,
            bearer_token: None,
            tls: TlsConfig::default(),
            queue_max_bytes,
            queue_full: QueueFull::default(),
            concurrency: DEFAULT_CONCURRENCY,
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            timeout: DEFAULT_TIMEOUT,
            min_backoff: DEFAULT_MIN_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            write_relabel_configs: Vec::new(),
        }
    }

    /// The storage id: names the queue directory `<data-dir>/queues/<id>/`, the `storage` metric
    /// label and the `id` in `/api/v1/queues`.
    ///
    /// Frozen format (golden tests pin it; changing it orphans every queue on disk):
    /// a slug of host, port (or the scheme's default port) and path (lowercase, runs of anything
    /// but `[a-z0-9]` become one `-`, at most 48 characters, no `-` at either end), then `-`, then
    /// the xxh64 (seed 0) of the URL as the `url` crate serializes it (host lowercased, default
    /// port dropped), without user info, as 16 lowercase hex digits. The user info is left out so that changing
    /// a password does not orphan the queue.
    pub fn id(&self) -> String {
        let identity = url_without_userinfo(&self.url);
        let hash = xxh64(identity.as_bytes(), 0);
        let port = self
            .url
            .port_or_known_default()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let readable = format!(
            "{}-{}-{}",
            self.url.host_str().unwrap_or_default(),
            port,
            self.url.path()
        );
        format!("{}-{hash:016x}", slug(&readable, ID_SLUG_MAX))
    }

    /// The URL to send requests to: [`StorageConfig::url`] without user info, whose credentials
    /// travel in the `Authorization` header instead (see [`StorageConfig::authorization`]).
    pub fn endpoint(&self) -> Url {
        strip_userinfo(&self.url)
    }

    /// The `Authorization` header value from this storage's single credential source: user info
    /// in the URL or `basic_auth` (`Basic ...`), or `bearer_token` (`Bearer ...`). `None` when
    /// there is none; an `Authorization` entry in `headers` is an ordinary header, not returned
    /// here. Loading guarantees at most one source is set.
    pub fn authorization(&self) -> Option<Secret> {
        if let Some(auth) = &self.basic_auth {
            return Some(basic(&auth.username, auth.password.expose()));
        }
        if let Some(token) = &self.bearer_token {
            return Some(Secret::new(format!("Bearer {}", token.expose())));
        }
        if !self.url.username().is_empty() || self.url.password().is_some() {
            let user = percent_decode(self.url.username());
            let password = percent_decode(self.url.password().unwrap_or_default());
            return Some(basic(&user, &password));
        }
        None
    }

    /// A multitenant storage's URL for one tenant, as vmagent's `-remoteWrite.multitenantURL`
    /// builds it: the base URL's path (without a trailing `/`) followed by
    /// `/insert/<account>:<project>/prometheus/api/v1/write`; query and user info are kept.
    pub fn tenant_url(&self, account_id: u32, project_id: u32) -> Url {
        let mut url = self.url.clone();
        let path = format!(
            "{}/insert/{account_id}:{project_id}/prometheus/api/v1/write",
            self.url.path().trim_end_matches('/')
        );
        url.set_path(&path);
        url
    }

    /// The URL for logs and status pages: any password replaced by `xxxxx`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// What to call this storage in log lines: its name if it has one, else its redacted URL.
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => self.redacted_url(),
        }
    }
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("name", &self.name)
            .field("url", &self.redacted_url())
            .field("multitenant", &self.multitenant)
            .field("max_tenants", &self.max_tenants)
            .field("headers", &self.headers)
            .field("basic_auth", &self.basic_auth)
            .field("bearer_token", &self.bearer_token)
            .field("tls", &self.tls)
            .field("queue_max_bytes", &format_size(self.queue_max_bytes))
            .field("queue_full", &self.queue_full)
            .field("concurrency", &self.concurrency)
            .field("max_block_bytes", &format_size(self.max_block_bytes))
            .field("timeout", &format_duration(self.timeout))
            .field("min_backoff", &format_duration(self.min_backoff))
            .field("max_backoff", &format_duration(self.max_backoff))
            .field("write_relabel_configs", &self.write_relabel_configs.len())
            .finish()
    }
}

/// `url` as text with any password replaced by `xxxxx`.
pub(crate) fn redact_url(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Cannot fail: the URL already has a password, so it has a host that can carry one.
    if shown.set_password(Some(REDACTED)).is_err() {
        return url_without_userinfo(url);
    }
    shown.to_string()
}

/// `url` as text without `user:password@`: the identity of a storage.
pub(crate) fn url_without_userinfo(url: &Url) -> String {
    strip_userinfo(url).to_string()
}

fn strip_userinfo(url: &Url) -> Url {
    let mut bare = url.clone();
    // Both only fail for URLs that cannot have user info, which then have none to remove.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    bare
}

/// `Basic base64(user:password)` (RFC 7617).
fn basic(user: &str, password: &str) -> Secret {
    Secret::new(format!(
        "Basic {}",
        base64(format!("{user}:{password}").as_bytes())
    ))
}

/// Standard base64 with padding (RFC 4648 section 4); small enough not to need a crate.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes `%XX` escapes (URL user info is stored percent-encoded); invalid escapes stay as is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lowercase `[a-z0-9-]` slug of `text`, at most `max` characters, no `-` at either end.
fn slug(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(url: &str) -> StorageConfig {
        StorageConfig::with_defaults(Url::parse(url).unwrap(), DEFAULT_QUEUE_MAX_BYTES)
    }

    #[test]
    fn id_is_pinned_for_a_victoriametrics_url() {
        // Golden: if this changes, every existing queue directory is orphaned on upgrade.
        assert_eq!(
            storage("http://vminsert:8480/insert/0/prometheus/api/v1/write").id(),
            "vminsert-8480-insert-0-prometheus-api-v1-write-4c29f5122d5876c9"
        );
    }

    #[test]
    fn id_is_pinned_for_an_https_url_with_default_port() {
        assert_eq!(
            storage("https://Mimir.Example.com/api/v1/push").id(),
            "mimir-example-com-443-api-v1-push-7d6695af69acc7dd"
        );
    }

    #[test]
    fn id_slug_is_truncated_to_48_characters() {
        let id =
            storage("http://a-very-long-host-name.monitoring.svc.cluster.local:8428/api/v1/write")
                .id();
        let (slug, hash) = id.rsplit_once('-').unwrap();
        assert!(slug.len() <= ID_SLUG_MAX, "{id}");
        assert_eq!(hash.len(), 16);
        assert_eq!(
            id,
            "a-very-long-host-name-monitoring-svc-cluster-loc-d3555a50dd1aa483"
        );
    }

    #[test]
    fn id_hash_is_standard_xxh64_with_seed_0() {
        // Reference value of XXH64("", seed 0): guards against a swapped hash function or seed.
        assert_eq!(xxh64(b"", 0), 0xef46_db37_51d8_e999);
    }

    #[test]
    fn id_uses_only_filename_safe_characters() {
        let id = storage("http://[::1]:9090/Some%20Path/../x?tenant=A&b=c").id();
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{id}"
        );
        assert!(!id.starts_with('-'), "{id}");
    }

    #[test]
    fn id_ignores_credentials_in_the_url() {
        assert_eq!(
            storage("http://user:old@vm:8428/api/v1/write").id(),
            storage("http://vm:8428/api/v1/write").id()
        );
        assert_eq!(
            storage("http://user:old@vm:8428/api/v1/write").id(),
            storage("http://other:new@vm:8428/api/v1/write").id()
        );
    }

    #[test]
    fn id_differs_for_urls_that_differ_only_outside_the_slug() {
        assert_ne!(
            storage("http://vm:8428/api/v1/write?tenant=a").id(),
            storage("http://vm:8428/api/v1/write?tenant=b").id()
        );
        assert_ne!(
            storage("http://vm:8428/api/v1/write").id(),
            storage("https://vm:8428/api/v1/write").id()
        );
    }

    #[test]
    fn redacted_url_hides_the_password_and_keeps_the_user() {
        let s = storage("https://alice:s3cr3t@vm.example:8428/api/v1/write");
        assert_eq!(
            s.redacted_url(),
            "https://alice:xxxxx@vm.example:8428/api/v1/write"
        );
    }

    #[test]
    fn redacted_url_is_unchanged_without_a_password() {
        let s = storage("http://vm:8428/api/v1/write");
        assert_eq!(s.redacted_url(), "http://vm:8428/api/v1/write");
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn authorization_from_basic_auth_follows_rfc_7617() {
        let mut s = storage("http://vm/api/v1/write");
        s.basic_auth = Some(BasicAuth {
            username: "Aladdin".to_owned(),
            password: Secret::new("open sesame"),
            password_file: None,
        });
        assert_eq!(
            s.authorization().as_ref().map(Secret::expose),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
    }

    #[test]
    fn authorization_from_url_user_info_is_decoded_and_endpoint_drops_it() {
        let s = storage("http://Aladdin:open%20sesame@vm/api/v1/write");
        assert_eq!(
            s.authorization().as_ref().map(Secret::expose),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
        assert_eq!(s.endpoint().as_str(), "http://vm/api/v1/write");
    }

    #[test]
    fn authorization_from_bearer_token() {
        let mut s = storage("http://vm/api/v1/write");
        s.bearer_token = Some(Secret::new("abc"));
        assert_eq!(
            s.authorization().as_ref().map(Secret::expose),
            Some("Bearer abc")
        );
        assert_eq!(storage("http://vm/api/v1/write").authorization(), None);
    }

    #[test]
    fn tenant_url_appends_the_vminsert_path_to_the_base_path() {
        let s = storage("http://u:p@vminsert:8480");
        assert_eq!(
            s.tenant_url(3, 4).as_str(),
            "http://u:p@vminsert:8480/insert/3:4/prometheus/api/v1/write"
        );
        let s = storage("https://gw.example/vm/?x=1");
        assert_eq!(
            s.tenant_url(0, 0).as_str(),
            "https://gw.example/vm/insert/0:0/prometheus/api/v1/write?x=1"
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "xxxxx");
    }
}
