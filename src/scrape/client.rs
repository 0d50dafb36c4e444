//! The HTTP client settings of the scrape config (a job's, an `http_sd_config`'s) turned into
//! [`outbound`](crate::outbound) options and the `Authorization` header, once for every user:
//! scrape loops and HTTP discovery authenticate and verify TLS the same way.
//!
//! Must not: build clients itself ([`outbound::build_client`] does) or read config files.

use std::path::PathBuf;

use reqwest::header::HeaderValue;

use super::config::{ScrapeAuth, ScrapeTls};
use crate::config::Secret;
use crate::outbound::{self, ClientError, Pem, TlsOptions};

/// A `tls_config` (a job's or a discovery's) as client options.
pub(crate) fn tls_options(tls: &ScrapeTls) -> TlsOptions {
    let pem = |file: &Option<PathBuf>, inline: Option<Secret>| match (file, inline) {
        (Some(f), _) => Some(Pem::File(f.clone())),
        (None, Some(text)) => Some(Pem::Inline(text)),
        (None, None) => None,
    };
    TlsOptions {
        ca: pem(&tls.ca_file, tls.ca.clone().map(Secret::new)),
        cert: pem(&tls.cert_file, tls.cert.clone().map(Secret::new)),
        key: pem(&tls.key_file, tls.key.clone()),
        insecure_skip_verify: tls.insecure_skip_verify,
        min_version: tls.min_version.clone(),
        max_version: tls.max_version.clone(),
    }
}

/// The `Authorization` header for `auth`, if it has credentials.
pub(crate) fn authorization(auth: &ScrapeAuth) -> Result<Option<HeaderValue>, ClientError> {
    let text = match auth {
        ScrapeAuth::None => return Ok(None),
        ScrapeAuth::Basic { username, password } => {
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose()));
            format!("Basic {token}")
        }
        ScrapeAuth::Authorization { kind, credentials } => {
            format!("{kind} {}", credentials.expose())
        }
    };
    outbound::sensitive_header("authorization", &text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_authorization_is_a_sensitive_header() {
        let auth = ScrapeAuth::Authorization {
            kind: "Bearer".into(),
            credentials: crate::config::Secret::new("tok"),
        };
        let v = authorization(&auth).unwrap().unwrap();
        assert_eq!(v, "Bearer tok");
        assert!(v.is_sensitive());
    }

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        let auth = ScrapeAuth::Basic {
            username: "user".into(),
            password: crate::config::Secret::new("pass"),
        };
        let v = authorization(&auth).unwrap().unwrap();
        assert_eq!(v, "Basic dXNlcjpwYXNz");
        assert!(v.is_sensitive());
        assert!(authorization(&ScrapeAuth::None).unwrap().is_none());
    }
}
