//! Outbound HTTP: every request promrelay makes goes through this module.
//!
//! # Owns
//! - [`build_client`]: the one way to build a reqwest client from [`ClientOptions`] (TLS roots,
//!   client certificate, TLS versions, timeouts, pooling, `User-Agent`), for the senders, the
//!   scrapes that need reqwest (https, redirects, proxies), and discovery when it speaks HTTP.
//! - [`sensitive_header`] and [`header_name`]: header values that may carry credentials, marked
//!   sensitive so no log or `Debug` shows them.
//! - [`body_prefix`]: the bounded read of a peer's body that is only reported (error answers).
//! - [`http1`]: the scrape loop's own HTTP/1.1 client for plain `http://` targets.
//!
//! # Guarantees
//! - Every client sends the same `User-Agent` ([`USER_AGENT`]) and trusts exactly the roots its
//!   options name (the webpki roots unless a CA is given).
//! - A failure to build says which setting failed ([`ClientError`]); nothing is retried here.
//! - [`body_prefix`] never holds more than the asked-for bytes of a body, whatever the peer sends.
//!
//! # Must not
//! Know what the requests are for (remote-write, scrape), retry, or read config files other than
//! the PEM files its options name. Config types stay in [`crate::config`] and the modules that own
//! them; they are turned into [`ClientOptions`] by their owners.

pub mod http1;

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use crate::config::{Secret, TlsConfig};

/// What every outbound request sends as `User-Agent`.
pub const USER_AGENT: &str = concat!("promrelay/", env!("CARGO_PKG_VERSION"));

/// How much of a body that is only reported (a storage's error answer) is read.
pub const REPORTED_BODY_BYTES: usize = 4 << 10;

/// Why a client or a request header could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A PEM file named in the TLS settings could not be read.
    #[error("tls {what} {}: {source}", path.display())]
    ReadPem {
        /// Which setting named the file (`ca_file`, `cert_file`, `key_file`).
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle is not PEM certificates.
    #[error("tls CA bundle: {0}")]
    Ca(#[source] reqwest::Error),
    /// The client certificate and key do not make a PEM identity.
    #[error("tls client certificate and key: {0}")]
    Identity(#[source] reqwest::Error),
    /// A TLS version name other than `TLS10`, `TLS11`, `TLS12`, `TLS13` (loading checks them).
    #[error("tls: unknown TLS version {0:?}")]
    TlsVersion(String),
    /// reqwest refused the settings as a whole (no TLS backend usable, for example).
    #[error("building HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// A configured header name is not a valid HTTP header name.
    #[error("header name {0:?} is not valid")]
    HeaderName(String),
    /// A configured header value (or credentials) contains bytes not allowed in a header.
    #[error("value of header {0} is not valid in a header")]
    HeaderValue(String),
}

/// A PEM given as a file or inline (a Prometheus `tls_config` allows both).
#[derive(Clone, Debug)]
pub enum Pem {
    File(PathBuf),
    Inline(Secret),
}

/// TLS settings of a client.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// CA bundle to trust instead of the built-in roots.
    pub ca: Option<Pem>,
    /// Client certificate; used only together with `key`.
    pub cert: Option<Pem>,
    /// Private key of the client certificate.
    pub key: Option<Pem>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
    /// Oldest TLS version accepted, by its Prometheus name (`TLS12`).
    pub min_version: Option<String>,
    /// Newest TLS version offered, by its Prometheus name.
    pub max_version: Option<String>,
}

impl From<&TlsConfig> for TlsOptions {
    fn from(tls: &TlsConfig) -> Self {
        TlsOptions {
            ca: tls.ca_file.clone().map(Pem::File),
            cert: tls.cert_file.clone().map(Pem::File),
            key: tls.key_file.clone().map(Pem::File),
            insecure_skip_verify: tls.insecure_skip_verify,
            min_version: None,
            max_version: None,
        }
    }
}

/// Everything that makes one client differ from another.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub tls: TlsOptions,
    /// Longest a whole request may take; `None` leaves it to each request.
    pub timeout: Option<Duration>,
    /// Longest a connection may take to establish.
    pub connect_timeout: Option<Duration>,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per host; `None` for reqwest's default.
    pub pool_max_idle_per_host: Option<usize>,
    /// Follow 3xx answers (at most 10 in a row, as Go's client does); when false a 3xx is the
    /// answer the caller sees.
    pub follow_redirects: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            tls: TlsOptions::default(),
            timeout: None,
            connect_timeout: None,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: None,
            follow_redirects: true,
        }
    }
}

/// Builds a reqwest client with `opts`; reads the PEM files they name.
pub fn build_client(opts: &ClientOptions) -> Result<reqwest::Client, ClientError> {
    // reqwest is built without a default TLS provider; install ring once for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .pool_idle_timeout(opts.pool_idle_timeout);
    if let Some(t) = opts.timeout {
        b = b.timeout(t);
    }
    if let Some(t) = opts.connect_timeout {
        b = b.connect_timeout(t);
    }
    if let Some(n) = opts.pool_max_idle_per_host {
        b = b.pool_max_idle_per_host(n);
    }
    b = b.redirect(if opts.follow_redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    });
    let tls = &opts.tls;
    if let Some(ca) = &tls.ca {
        let pem = read_pem(ca, "ca_file")?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(ClientError::Ca)? {
            b = b.add_root_certificate(cert);
        }
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        let mut pem = read_pem(cert, "cert_file")?;
        pem.push(b'\n');
        pem.extend(read_pem(key, "key_file")?);
        b = b.identity(reqwest::Identity::from_pem(&pem).map_err(ClientError::Identity)?);
    }
    if tls.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    // rustls speaks TLS 1.2 and 1.3 only: a minimum below 1.2 leaves both on, and the loader
    // refuses a maximum below 1.2 (it would leave no version).
    if let Some(v) = &tls.min_version {
        b = b.tls_version_min(tls_version(v)?);
    }
    if let Some(v) = &tls.max_version {
        b = b.tls_version_max(tls_version(v)?);
    }
    b.build().map_err(ClientError::Build)
}

fn read_pem(pem: &Pem, what: &'static str) -> Result<Vec<u8>, ClientError> {
    match pem {
        Pem::File(path) => std::fs::read(path).map_err(|source| ClientError::ReadPem {
            what,
            path: path.clone(),
            source,
        }),
        Pem::Inline(text) => Ok(text.expose().as_bytes().to_vec()),
    }
}

/// reqwest's version for a Prometheus `min_version`/`max_version` name.
fn tls_version(name: &str) -> Result<reqwest::tls::Version, ClientError> {
    use reqwest::tls::Version;
    match name {
        "TLS10" => Ok(Version::TLS_1_0),
        "TLS11" => Ok(Version::TLS_1_1),
        "TLS12" => Ok(Version::TLS_1_2),
        "TLS13" => Ok(Version::TLS_1_3),
        other => Err(ClientError::TlsVersion(other.to_string())),
    }
}

/// A header value that may hold credentials (`Authorization`, configured headers): marked
/// sensitive. `name` only names the header in the error.
pub fn sensitive_header(name: &str, value: &str) -> Result<HeaderValue, ClientError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| ClientError::HeaderValue(name.into()))?;
    v.set_sensitive(true);
    Ok(v)
}

/// A configured header name, checked.
pub fn header_name(name: &str) -> Result<HeaderName, ClientError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| ClientError::HeaderName(name.into()))
}

/// At most `max` bytes of `resp`'s body, read as it streams in; the rest is never read (the
/// connection is dropped with the response). For bodies that are only reported, such as a
/// storage's reason for refusing: a peer can send gigabytes there.
pub async fn body_prefix(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while out.len() < max {
        let Some(chunk) = resp.chunk().await? else {
            break;
        };
        let take = chunk.len().min(max - out.len());
        out.extend_from_slice(&chunk[..take]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
