//! The web configuration file (`--web.config.file`): TLS, HTTP headers, basic-auth users and a
//! rate limit for promrelay's own listener, in exactly the format Prometheus, Alertmanager and the
//! exporters share (prometheus/exporter-toolkit `docs/web-configuration.md`).
//!
//! [`load_web_config`] reads the file, every file it names (certificate, key, client CA) and
//! checks everything it can without a socket: unknown keys, bad values, PEM that holds no
//! certificate, bcrypt hashes that are not bcrypt, settings rustls cannot honour (TLS 1.0/1.1,
//! CBC cipher suites, the P-521 curve). Each failure names the file, line and key, as `--config`
//! does. The listener calls it again when a watched file changes, so a reload is checked by the
//! same code as start-up.
//!
//! Differences from exporter-toolkit, each refused with a clear error rather than silently changed:
//! - a server certificate that has expired or is not valid yet (exporter-toolkit serves it and
//!   every client fails); on a reload this keeps the old certificate serving.
//! - `min_version: TLS10|TLS11`: rustls speaks TLS 1.2 and 1.3 only.
//! - cipher suites rustls does not implement (CBC, RSA key exchange, 3DES, RC4) and the curve
//!   `CurveP521`.
//! - `client_allowed_sans` entries that are not DNS names or IP addresses (e-mail and URI SANs):
//!   the check uses rustls' own name matching, which knows those two kinds.
//! - `VerifyClientCertIfGiven` / `RequireAndVerifyClientCert` without `client_ca_file` (or
//!   `client_ca`): Go would verify against the host's roots; promrelay asks which CA to trust.
//!
//! Must not: open sockets, or be read per request (the listener copies what it needs).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::error::{ConfigError, Place};
use super::file::{key_path_of, read_bounded, yaml_parts};
use super::file_refs::FileRefs;
use super::storage::Secret;
use super::web_values::{Cipher, Curve, GoDuration};
pub use super::web_values::{ClientAuth, PasswordHash, RateLimit, TlsVersion};

/// A web config file larger than this is refused before parsing.
const MAX_WEB_CONFIG_BYTES: u64 = 1 << 20;
/// A certificate, key or CA file larger than this is refused: it is not PEM for one server.
const MAX_PEM_BYTES: u64 = 4 << 20;

/// The listener's settings from `--web.config.file`, loaded and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebConfig {
    /// The file itself, as given.
    pub path: PathBuf,
    /// `tls_server_config`; `None` when it sets no certificate (plain HTTP, as exporter-toolkit).
    pub tls: Option<TlsServerConfig>,
    /// `http_server_config.http2` (default true; only with TLS; fixed at start-up).
    pub http2: bool,
    /// `http_server_config.headers`: added to every response. Names are the five allowed ones.
    pub headers: Vec<(String, String)>,
    /// `basic_auth_users`: user -> bcrypt hash. Empty: no authentication.
    pub users: BTreeMap<String, PasswordHash>,
    /// `rate_limit`, when its interval is not zero.
    pub rate_limit: Option<RateLimit>,
    /// Every file whose change means "load again": the web config and the files it names.
    pub watched: Vec<PathBuf>,
}

/// `tls_server_config`, with its files read.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsServerConfig {
    /// The server's certificate chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The server's private key (never shown in `Debug`).
    pub key: std::sync::Arc<PrivateKeyDer<'static>>,
    /// Trusted roots for client certificates (`client_ca_file` / `client_ca`).
    pub client_cas: Vec<CertificateDer<'static>>,
    /// `client_auth_type`.
    pub client_auth: ClientAuth,
    /// `client_allowed_sans`: a client certificate must carry one of these (DNS, IP, e-mail, URI).
    pub client_allowed_sans: Option<Vec<String>>,
    /// `min_version`.
    pub min_version: TlsVersion,
    /// `max_version`.
    pub max_version: TlsVersion,
    /// `cipher_suites` (TLS 1.2 suites; as in Go, TLS 1.3 suites are always all enabled).
    /// Empty: rustls' defaults.
    pub cipher_suites: Vec<rustls::CipherSuite>,
    /// `curve_preferences`, most preferred first. Empty: rustls' defaults.
    pub curve_preferences: Vec<rustls::NamedGroup>,
    /// `prefer_server_cipher_suites` (default true).
    pub prefer_server_cipher_suites: bool,
}

impl fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerConfig")
            .field("cert_chain", &self.cert_chain.len())
            .field("key", &super::storage::REDACTED)
            .field("client_cas", &self.client_cas.len())
            .field("client_auth", &self.client_auth)
            .field("client_allowed_sans", &self.client_allowed_sans)
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .field("cipher_suites", &self.cipher_suites)
            .field("curve_preferences", &self.curve_preferences)
            .field(
                "prefer_server_cipher_suites",
                &self.prefer_server_cipher_suites,
            )
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<Spanned<RawTls>>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, PasswordHash>>,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<Secret>,
    client_ca: Option<String>,
    cert_file: Option<Spanned<PathBuf>>,
    key_file: Option<Spanned<PathBuf>>,
    client_auth_type: Option<ClientAuth>,
    client_ca_file: Option<Spanned<PathBuf>>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
    #[serde(default)]
    cipher_suites: Vec<Cipher>,
    #[serde(default)]
    curve_preferences: Vec<Curve>,
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    interval: GoDuration,
    #[serde(default)]
    burst: u32,
}

/// Headers `http_server_config.headers` may set, as exporter-toolkit allows.
const ALLOWED_HEADERS: [&str; 5] = [
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

/// Reads and checks the web configuration file at `path` and the files it names.
pub fn load_web_config(path: &Path) -> Result<WebConfig, ConfigError> {
    let text =
        read_bounded(path, MAX_WEB_CONFIG_BYTES).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
    parse_web_config(path, &text)
}

/// Checks `text` as the contents of the web config file `path` (relative file names in it are
/// relative to `path`'s directory).
pub fn parse_web_config(path: &Path, text: &str) -> Result<WebConfig, ConfigError> {
    let mut key_path: Option<String> = None;
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, Option<RawWebConfig>>(de).map_err(|e| {
            key_path = Some(key_path_of(e.path()));
            e.into_inner()
        })
    });
    let raw = match parsed {
        Ok(raw) => raw.unwrap_or_default(),
        Err(err) => {
            let (place, key, reason) = yaml_parts(path, key_path.as_deref(), &err);
            return Err(ConfigError::Yaml { place, key, reason });
        }
    };
    let refs = FileRefs { file: path };
    let mut watched = vec![path.to_path_buf()];

    let (http2, headers) = match raw.http_server_config {
        Some(http) => (
            http.http2.unwrap_or(true),
            match http.headers {
                Some(h) => headers(&refs, h)?,
                None => Vec::new(),
            },
        ),
        None => (true, Vec::new()),
    };
    let tls = match raw.tls_server_config {
        Some(t) => tls(&refs, t, &mut watched)?,
        None => None,
    };
    let rate_limit = raw.rate_limit.and_then(|r| {
        (!r.interval.0.is_zero()).then_some(RateLimit {
            interval: r.interval.0,
            burst: r.burst,
        })
    });
    Ok(WebConfig {
        path: path.to_path_buf(),
        tls,
        http2,
        headers,
        users: raw.basic_auth_users.unwrap_or_default(),
        rate_limit,
        watched,
    })
}

fn headers(
    refs: &FileRefs<'_>,
    raw: Spanned<BTreeMap<String, String>>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let place = refs.place(&raw);
    let mut out = Vec::new();
    for (name, value) in raw.value {
        let key = format!("http_server_config.headers.{name}");
        let Some(canonical) = ALLOWED_HEADERS
            .iter()
            .find(|h| h.eq_ignore_ascii_case(&name))
        else {
            return Err(invalid(
                place,
                &key,
                &format!(
                    "HTTP header {:?} can not be configured (allowed: {})",
                    name,
                    ALLOWED_HEADERS.join(", ")
                ),
            ));
        };
        let bad = |why: &str| Err(invalid(place.clone(), &key, why));
        if *canonical == "X-Frame-Options"
            && !value.is_empty()
            && !["deny", "sameorigin"].contains(&value.to_ascii_lowercase().as_str())
        {
            return bad("X-Frame-Options must be deny or sameorigin");
        }
        if *canonical == "X-Content-Type-Options"
            && !value.is_empty()
            && !value.eq_ignore_ascii_case("nosniff")
        {
            return bad("X-Content-Type-Options must be nosniff");
        }
        if http::HeaderValue::from_str(&value).is_err() {
            return bad("not a valid header value");
        }
        // Blank means unset, as in exporter-toolkit.
        if !value.is_empty() {
            out.push(((*canonical).to_owned(), value));
        }
    }
    Ok(out)
}

fn tls(
    refs: &FileRefs<'_>,
    spanned: Spanned<RawTls>,
    watched: &mut Vec<PathBuf>,
) -> Result<Option<TlsServerConfig>, ConfigError> {
    let place = refs.place(&spanned);
    let raw = spanned.value;
    let enabled = raw.cert.is_some()
        || raw.key.is_some()
        || raw.cert_file.is_some()
        || raw.key_file.is_some()
        || raw.client_ca.is_some()
        || raw.client_ca_file.is_some()
        || raw.client_auth_type.is_some();
    if !enabled {
        return Ok(None);
    }
    let section = "tls_server_config";
    let err = |key: &str, why: &str| invalid(place.clone(), &format!("{section}.{key}"), why);
    if raw.cert.is_some() && raw.cert_file.is_some() {
        return Err(err("cert", "set cert or cert_file, not both"));
    }
    if raw.key.is_some() && raw.key_file.is_some() {
        return Err(err("key", "set key or key_file, not both"));
    }
    if raw.client_ca.is_some() && raw.client_ca_file.is_some() {
        return Err(err(
            "client_ca",
            "set client_ca or client_ca_file, not both",
        ));
    }
    let cert_pem = match (&raw.cert_file, &raw.cert) {
        (Some(f), _) => read_pem(refs, f, "cert_file", watched)?,
        (None, Some(text)) => text.clone().into_bytes(),
        (None, None) => return Err(err("cert_file", "missing one of cert or cert_file")),
    };
    let key_pem = match (&raw.key_file, &raw.key) {
        (Some(f), _) => read_pem(refs, f, "key_file", watched)?,
        (None, Some(secret)) => secret.expose().as_bytes().to_vec(),
        (None, None) => return Err(err("key_file", "missing one of key or key_file")),
    };
    let cert_key = if raw.cert_file.is_some() {
        "cert_file"
    } else {
        "cert"
    };
    let cert_chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(cert_key, &format!("not PEM certificates: {e}")))?;
    if cert_chain.is_empty() {
        return Err(err(cert_key, "holds no PEM certificate"));
    }
    let now = std::time::UNIX_EPOCH + Duration::from_millis(crate::util::now_ms());
    check_validity(&cert_chain[0], now).map_err(|why| err(cert_key, &why.to_string()))?;
    let key_key = if raw.key_file.is_some() {
        "key_file"
    } else {
        "key"
    };
    // The error text of a key parse never holds key bytes.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| err(key_key, &format!("no PEM private key: {e}")))?;

    let (client_ca_pem, ca_key) = match (&raw.client_ca_file, &raw.client_ca) {
        (Some(f), _) => (
            Some(read_pem(refs, f, "client_ca_file", watched)?),
            "client_ca_file",
        ),
        (None, Some(text)) => (Some(text.clone().into_bytes()), "client_ca"),
        (None, None) => (None, "client_ca_file"),
    };
    let client_cas: Vec<CertificateDer<'static>> = match &client_ca_pem {
        Some(pem) => {
            let cas: Vec<_> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| err(ca_key, &format!("not PEM certificates: {e}")))?;
            if cas.is_empty() {
                return Err(err(ca_key, "holds no PEM certificate"));
            }
            cas
        }
        None => Vec::new(),
    };
    let client_auth = raw.client_auth_type.unwrap_or_default();
    if client_ca_pem.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(err(
            "client_auth_type",
            "client CA's have been configured without a Client Auth Policy (set RequireAndVerifyClientCert)",
        ));
    }
    if client_auth.verifies() && client_cas.is_empty() {
        return Err(err(
            "client_ca_file",
            "client_auth_type verifies client certificates: name the CA that signs them in client_ca_file",
        ));
    }
    if raw.client_allowed_sans.is_some() && !client_auth.requires_cert() {
        return Err(err(
            "client_allowed_sans",
            "client_allowed_sans requires client_auth_type to be one of RequireAnyClientCert or RequireAndVerifyClientCert",
        ));
    }
    for san in raw.client_allowed_sans.iter().flatten() {
        if rustls_pki_types::ServerName::try_from(san.as_str()).is_err() {
            return Err(err(
                "client_allowed_sans",
                &format!(
                    "{:?} is not a DNS name or IP address: promrelay matches those SANs only (e-mail and URI SANs are not supported)",
                    crate::util::one_line(san)
                ),
            ));
        }
    }
    let min_version = raw.min_version.unwrap_or(TlsVersion::Tls12);
    let max_version = raw.max_version.unwrap_or(TlsVersion::Tls13);
    if min_version > max_version {
        return Err(err("min_version", "is above max_version"));
    }
    let cipher_suites: Vec<rustls::CipherSuite> =
        raw.cipher_suites.into_iter().map(|c| c.0).collect();
    if min_version == TlsVersion::Tls12
        && !cipher_suites.is_empty()
        && max_version == TlsVersion::Tls12
        && !cipher_suites.iter().any(|c| !is_tls13_suite(*c))
    {
        return Err(err(
            "cipher_suites",
            "names no TLS 1.2 suite, but max_version is TLS12: no connection could be made",
        ));
    }
    Ok(Some(TlsServerConfig {
        cert_chain,
        key: std::sync::Arc::new(key),
        client_cas,
        client_auth,
        client_allowed_sans: raw.client_allowed_sans,
        min_version,
        max_version,
        cipher_suites,
        curve_preferences: raw.curve_preferences.into_iter().map(|c| c.0).collect(),
        prefer_server_cipher_suites: raw.prefer_server_cipher_suites.unwrap_or(true),
    }))
}

/// Why a server certificate is refused for its dates.
#[derive(Debug, thiserror::Error)]
enum ValidityError {
    /// Its validity could not be read.
    #[error(transparent)]
    Unreadable(#[from] super::x509::X509Error),
    /// `notAfter` is past.
    #[error("the certificate expired at {}", humantime::format_rfc3339_seconds(*.0))]
    Expired(SystemTime),
    /// `notBefore` is still to come.
    #[error("the certificate is not valid before {}", humantime::format_rfc3339_seconds(*.0))]
    NotYetValid(SystemTime),
}

/// Refuses a server certificate that is not valid at `now`: every client would refuse it, so
/// serving it (or rotating to it) only turns a visible configuration error into failed pushes.
fn check_validity(leaf: &CertificateDer<'_>, now: SystemTime) -> Result<(), ValidityError> {
    let (not_before, not_after) = super::x509::validity(leaf)?;
    if now > not_after {
        return Err(ValidityError::Expired(not_after));
    }
    if now < not_before {
        return Err(ValidityError::NotYetValid(not_before));
    }
    Ok(())
}

/// True for the TLS 1.3 suites, which Go (and so promrelay) always enables.
pub fn is_tls13_suite(suite: rustls::CipherSuite) -> bool {
    matches!(
        suite,
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
            | rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
            | rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    )
}

fn read_pem(
    refs: &FileRefs<'_>,
    spanned: &Spanned<PathBuf>,
    key: &str,
    watched: &mut Vec<PathBuf>,
) -> Result<Vec<u8>, ConfigError> {
    let path = refs.path(&spanned.value);
    let bytes = read_bounded(&path, MAX_PEM_BYTES).map_err(|e| {
        invalid(
            refs.place(spanned),
            &format!("tls_server_config.{key}"),
            &format!(
                "cannot read {}: {e}",
                crate::util::one_line(&path.display().to_string())
            ),
        )
    })?;
    watched.push(path);
    Ok(bytes.into_bytes())
}

fn invalid(place: Place, key: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        place,
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(yaml: &str) -> String {
        let e = parse_web_config(Path::new("/etc/promrelay/web.yml"), yaml)
            .expect_err("the file is refused");
        let text = e.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        text
    }

    const HASH: &str = "$2b$10$joveH3BUIJBlDDz4EOn3H.u240YQ0m6MIRRwcalmONMAJ/thYZJZS";

    #[test]
    fn an_empty_file_means_plain_http_without_users() {
        let web = parse_web_config(Path::new("web.yml"), "").expect("empty is fine");
        assert_eq!(web.tls, None);
        assert!(web.users.is_empty());
        assert!(web.http2);
    }

    #[test]
    fn users_and_headers_are_read_and_hashes_never_shown() {
        let yaml = format!(
            "basic_auth_users:\n  prometheus: {HASH}\nhttp_server_config:\n  headers:\n    x-frame-options: deny\nrate_limit:\n  interval: 1s\n  burst: 5\n"
        );
        let web = parse_web_config(Path::new("web.yml"), &yaml).expect("valid");
        assert_eq!(web.users["prometheus"].expose(), HASH);
        assert_eq!(
            web.headers,
            vec![("X-Frame-Options".to_owned(), "deny".to_owned())]
        );
        assert_eq!(
            web.rate_limit,
            Some(RateLimit {
                interval: Duration::from_secs(1),
                burst: 5
            })
        );
        assert!(!format!("{web:?}").contains("$2b$"), "{web:?}");
    }

    #[test]
    fn an_unknown_key_is_refused_with_file_line_and_key() {
        let text = refused("tls_server_config:\n  cert_fil: a.pem\n");
        assert!(text.starts_with("/etc/promrelay/web.yml:2:"), "{text}");
        assert!(text.contains("cert_fil"), "{text}");
    }

    #[test]
    fn a_password_that_is_not_a_bcrypt_hash_is_refused_without_echoing_it() {
        let text = refused("basic_auth_users:\n  prometheus: plaintext-secret\n");
        assert!(text.contains("basic_auth_users.prometheus"), "{text}");
        assert!(text.contains("not a bcrypt hash"), "{text}");
        assert!(!text.contains("plaintext-secret"), "{text}");
    }

    #[test]
    fn what_rustls_cannot_honour_is_refused_by_name() {
        let tls10 = refused(
            "tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n  min_version: TLS10\n",
        );
        assert!(
            tls10.contains("min_version") && tls10.contains("TLS12 and TLS13 only"),
            "{tls10}"
        );
        let cbc =
            refused("tls_server_config:\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n");
        assert!(cbc.contains("not supported"), "{cbc}");
        let p521 = refused("tls_server_config:\n  curve_preferences: [CurveP521]\n");
        assert!(p521.contains("CurveP521"), "{p521}");
        let header = refused("http_server_config:\n  headers:\n    Server: x\n");
        assert!(header.contains("can not be configured"), "{header}");
    }

    #[test]
    fn a_tls_section_without_a_certificate_or_with_a_missing_file_is_refused() {
        let no_cert =
            refused("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n");
        assert!(
            no_cert.contains("missing one of cert or cert_file"),
            "{no_cert}"
        );
        let missing =
            refused("tls_server_config:\n  cert_file: nowhere.pem\n  key_file: nowhere.key\n");
        assert!(missing.contains("tls_server_config.cert_file"), "{missing}");
        assert!(
            missing.contains("/etc/promrelay/nowhere.pem"),
            "relative to the file: {missing}"
        );
    }

    #[test]
    fn a_client_auth_type_that_is_not_gos_is_refused() {
        let text = refused("tls_server_config:\n  client_auth_type: Sometimes\n");
        assert!(text.contains("invalid ClientAuth"), "{text}");
    }
}
