//! The values of the web configuration file that are names or strings with rules of their own
//! (Go's TLS names, bcrypt hashes, Go durations), each parsed by `FromStr` into what the listener
//! uses, with [`WebValueError`] saying why a value is refused.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::units::{ValueError, parse_go_duration};

/// Why a value of the web configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebValueError {
    /// `client_auth_type` is not one of Go's `tls.ClientAuthType` names.
    #[error(
        "invalid ClientAuth {0:?}: one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
    )]
    ClientAuth(String),
    /// `min_version`/`max_version` is TLS 1.0 or 1.1, which rustls does not speak.
    #[error("{0} is not supported: promrelay's TLS (rustls) speaks TLS12 and TLS13 only")]
    OldTlsVersion(String),
    /// `min_version`/`max_version` is not a TLS version name.
    #[error("unknown TLS version: {0} (TLS12 or TLS13)")]
    TlsVersion(String),
    /// A `basic_auth_users` value is not a bcrypt hash (the value itself is never shown).
    #[error("not a bcrypt hash ({0}); make one with htpasswd -nBC 10 \"\" | tr -d ':\\n'")]
    NotBcrypt(#[source] bcrypt::BcryptError),
    /// A bcrypt hash whose cost is outside what bcrypt allows.
    #[error("bcrypt cost {0} out of range 4..31")]
    BcryptCost(u32),
    /// A `cipher_suites` entry Go knows that rustls does not implement.
    #[error(
        "cipher suite {0} is not supported by promrelay's TLS (rustls implements only AEAD suites with ECDHE); leave it out"
    )]
    UnsupportedCipher(String),
    /// A `cipher_suites` entry that is no cipher suite's name.
    #[error("unknown cipher: {0}")]
    Cipher(String),
    /// A `curve_preferences` entry rustls (with ring) does not implement.
    #[error(
        "curve {0} is not supported by promrelay's TLS (rustls with ring); use CurveP256, CurveP384 or X25519"
    )]
    UnsupportedCurve(String),
    /// A `curve_preferences` entry that is no curve's name.
    #[error("unknown curve: {0}")]
    Curve(String),
    /// `rate_limit.interval` is not a Go duration.
    #[error(transparent)]
    Duration(#[from] ValueError),
}

/// `client_auth_type`, Go's `tls.ClientAuthType` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Ask for no certificate (the default).
    #[default]
    NoClientCert,
    /// Ask for a certificate, accept any or none, verify nothing.
    RequestClientCert,
    /// Require a certificate, verify nothing (also accepted as `RequireClientCert`).
    RequireAnyClientCert,
    /// Accept no certificate; verify one that is given against the client CAs.
    VerifyClientCertIfGiven,
    /// Require a certificate signed by the client CAs: the only setting that authenticates.
    RequireAndVerifyClientCert,
}

impl FromStr for ClientAuth {
    type Err = WebValueError;
    fn from_str(s: &str) -> Result<Self, WebValueError> {
        Ok(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => return Err(WebValueError::ClientAuth(other.to_owned())),
        })
    }
}

impl ClientAuth {
    /// True when a client without a certificate is turned away.
    pub fn requires_cert(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }
    /// True when a given certificate is checked against the client CAs.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// A TLS protocol version rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl FromStr for TlsVersion {
    type Err = WebValueError;
    fn from_str(s: &str) -> Result<Self, WebValueError> {
        match s {
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            "TLS10" | "TLS11" => Err(WebValueError::OldTlsVersion(s.to_owned())),
            other => Err(WebValueError::TlsVersion(other.to_owned())),
        }
    }
}

/// A bcrypt hash from `basic_auth_users` (`$2a$`, `$2b$`, `$2y$`; never shown in `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The hash, for verifying a password against it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(super::storage::REDACTED)
    }
}

impl FromStr for PasswordHash {
    type Err = WebValueError;
    fn from_str(s: &str) -> Result<Self, WebValueError> {
        // Never echo the value: it is a secret's hash.
        let parts = bcrypt::HashParts::from_str(s).map_err(WebValueError::NotBcrypt)?;
        if !(4..=31).contains(&parts.get_cost()) {
            return Err(WebValueError::BcryptCost(parts.get_cost()));
        }
        Ok(PasswordHash(s.to_owned()))
    }
}

/// `rate_limit`: a token bucket over all requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// One token is added every `interval`.
    pub interval: Duration,
    /// Bucket size; a burst of this many requests passes at once.
    pub burst: u32,
}

macro_rules! deserialize_via_from_str_string {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

deserialize_via_from_str_string!(
    ClientAuth,
    TlsVersion,
    PasswordHash,
    Cipher,
    Curve,
    GoDuration
);

/// A `cipher_suites` entry by Go's name.
pub(super) struct Cipher(pub(super) rustls::CipherSuite);

impl FromStr for Cipher {
    type Err = WebValueError;
    fn from_str(s: &str) -> Result<Self, WebValueError> {
        use rustls::CipherSuite as C;
        let suite = match s {
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
                C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            }
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
            | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
                C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            }
            "TLS_AES_128_GCM_SHA256" => C::TLS13_AES_128_GCM_SHA256,
            "TLS_AES_256_GCM_SHA384" => C::TLS13_AES_256_GCM_SHA384,
            "TLS_CHACHA20_POLY1305_SHA256" => C::TLS13_CHACHA20_POLY1305_SHA256,
            other if other.starts_with("TLS_") && GO_ONLY_SUITES.contains(&other) => {
                return Err(WebValueError::UnsupportedCipher(other.to_owned()));
            }
            other => return Err(WebValueError::Cipher(other.to_owned())),
        };
        Ok(Cipher(suite))
    }
}

/// Suites Go knows that rustls does not implement: refused by name, not as "unknown".
const GO_ONLY_SUITES: [&str; 16] = [
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// A `curve_preferences` entry by Go's name.
pub(super) struct Curve(pub(super) rustls::NamedGroup);

impl FromStr for Curve {
    type Err = WebValueError;
    fn from_str(s: &str) -> Result<Self, WebValueError> {
        match s {
            "CurveP256" => Ok(Curve(rustls::NamedGroup::secp256r1)),
            "CurveP384" => Ok(Curve(rustls::NamedGroup::secp384r1)),
            "X25519" => Ok(Curve(rustls::NamedGroup::X25519)),
            "CurveP521" => Err(WebValueError::UnsupportedCurve(s.to_owned())),
            other => Err(WebValueError::Curve(other.to_owned())),
        }
    }
}

/// A Go duration (`1s`, `500ms`, `0`), as `rate_limit.interval` is written.
pub(super) struct GoDuration(pub(super) Duration);

impl FromStr for GoDuration {
    type Err = WebValueError;
    fn from_str(s: &str) -> Result<Self, WebValueError> {
        if s == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        Ok(GoDuration(parse_go_duration(s)?))
    }
}
