//! `http_sd_configs` and `dns_sd_configs`: their shape as written, Prometheus' defaults and
//! checks, and the resolved [`HttpSdConfig`] and [`DnsSdConfig`]. The HTTP client settings of
//! an `http_sd_config` (`basic_auth`, `authorization`, `bearer_token[_file]`, `tls_config`) are
//! read exactly as a job's are, by the same resolver functions.
//!
//! Refused, as at job level, because ignoring them would reach the server another way or with
//! other credentials than configured: `oauth2`, `proxy_url`, `no_proxy`,
//! `proxy_from_environment`, `proxy_connect_header`, `http_headers` (the one outbound client has
//! none of them).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use super::raw::{PromDuration, RawAuth, RawAuthorization, RawBasicAuth, RawTls};
use super::resolve::ScrapeConfigResolver;
use super::{ScrapeAuth, ScrapeConfigError, ScrapeTls};
use crate::config::Secret;
use crate::util::one_line;

/// `refresh_interval` of an `http_sd_config` when it sets none (Prometheus' default).
pub const DEFAULT_HTTP_SD_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// `refresh_interval` of a `dns_sd_config` when it sets none (Prometheus' default).
pub const DEFAULT_DNS_SD_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// One `http_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSdConfig {
    /// The `http` or `https` URL that answers with a JSON list of target groups; also the
    /// value of `__meta_url`.
    pub url: String,
    /// Time between two requests; also each request's timeout, as in Prometheus.
    pub refresh_interval: Duration,
    /// How the request authenticates.
    pub auth: ScrapeAuth,
    /// TLS client settings for an `https` URL.
    pub tls: ScrapeTls,
    /// Follow 3xx answers (Prometheus' default: true).
    pub follow_redirects: bool,
}

/// The record type a `dns_sd_config` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DnsRecordType {
    /// Service records: each gives a host and a port (the default).
    #[default]
    Srv,
    /// IPv4 addresses, with the configured port.
    A,
    /// IPv6 addresses, with the configured port.
    Aaaa,
    /// Mail exchangers: host names, with the configured port.
    Mx,
    /// Name servers: host names, with the configured port.
    Ns,
}

impl DnsRecordType {
    /// The type as Prometheus writes it (`SRV`, `A`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecordType::Srv => "SRV",
            DnsRecordType::A => "A",
            DnsRecordType::Aaaa => "AAAA",
            DnsRecordType::Mx => "MX",
            DnsRecordType::Ns => "NS",
        }
    }
}

/// One `dns_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSdConfig {
    /// The names to look up, each a group (source: the name), in the order written.
    pub names: Vec<String>,
    /// The record type asked for.
    pub record_type: DnsRecordType,
    /// The port of every target, for all types but SRV (where each record names its port);
    /// not 0 for those types.
    pub port: u16,
    /// Time between two lookups of every name.
    pub refresh_interval: Duration,
}

/// Client settings Prometheus allows in an `http_sd_config` that promrelay cannot honour.
const REFUSED_HTTP_SD_KEYS: &[&str] = &[
    "oauth2",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "http_headers",
];

/// One `http_sd_configs` item as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttpSd {
    url: Option<Spanned<String>>,
    refresh_interval: Option<PromDuration>,
    basic_auth: Option<Spanned<RawBasicAuth>>,
    authorization: Option<Spanned<RawAuthorization>>,
    bearer_token: Option<Spanned<Secret>>,
    bearer_token_file: Option<Spanned<PathBuf>>,
    tls_config: Option<Spanned<RawTls>>,
    follow_redirects: Option<bool>,
    /// Accepted and ignored: the client negotiates HTTP/2 when the server offers it.
    #[serde(rename = "enable_http2")]
    _enable_http2: Option<bool>,
    oauth2: Option<Spanned<IgnoredAny>>,
    proxy_url: Option<Spanned<IgnoredAny>>,
    no_proxy: Option<Spanned<IgnoredAny>>,
    proxy_from_environment: Option<Spanned<IgnoredAny>>,
    proxy_connect_header: Option<Spanned<IgnoredAny>>,
    http_headers: Option<Spanned<IgnoredAny>>,
}

/// One `dns_sd_configs` item as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDnsSd {
    names: Option<Spanned<Vec<String>>>,
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    refresh_interval: Option<PromDuration>,
}

impl ScrapeConfigResolver<'_> {
    /// Resolves the `http_sd_configs` of a job; `key` names the list.
    pub(super) fn http_sd_configs(
        &self,
        raw: &[Spanned<RawHttpSd>],
        key: &str,
    ) -> Result<Vec<HttpSdConfig>, ScrapeConfigError> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, entry) in raw.iter().enumerate() {
            let ekey = format!("{key}[{i}]");
            let r = &entry.value;
            let refused = [
                &r.oauth2,
                &r.proxy_url,
                &r.no_proxy,
                &r.proxy_from_environment,
                &r.proxy_connect_header,
                &r.http_headers,
            ];
            for (name, value) in REFUSED_HTTP_SD_KEYS.iter().zip(refused) {
                if let Some(at) = value {
                    return Err(self.invalid(
                        at,
                        format!("{ekey}.{name}"),
                        format!(
                            "promrelay does not support `{name}` in http_sd_configs; ignoring it would reach the discovery server differently than configured, so remove it"
                        ),
                    ));
                }
            }
            let Some(url) = &r.url else {
                return Err(self.invalid(entry, ekey, "URL is missing".to_owned()));
            };
            check_http_sd_url(&url.value)
                .map_err(|e| self.invalid(url, format!("{ekey}.url"), e.to_string()))?;
            let credentials = RawAuth {
                basic_auth: r.basic_auth.as_ref(),
                authorization: r.authorization.as_ref(),
                bearer_token: r.bearer_token.as_ref(),
                bearer_token_file: r.bearer_token_file.as_ref(),
            };
            let auth = self.auth(&credentials, &|name: &str| format!("{ekey}.{name}"))?;
            let tls = match &r.tls_config {
                // The outbound client cannot send another server name, so it is refused.
                Some(t) => self.tls(t, &format!("{ekey}.tls_config"), false)?,
                None => ScrapeTls::default(),
            };
            out.push(HttpSdConfig {
                url: url.value.clone(),
                refresh_interval: r
                    .refresh_interval
                    .map(|d| d.0)
                    .filter(|d| !d.is_zero())
                    .unwrap_or(DEFAULT_HTTP_SD_REFRESH_INTERVAL),
                auth,
                tls,
                follow_redirects: r.follow_redirects.unwrap_or(true),
            });
        }
        Ok(out)
    }

    /// Resolves the `dns_sd_configs` of a job; `key` names the list.
    pub(super) fn dns_sd_configs(
        &self,
        raw: &[Spanned<RawDnsSd>],
        key: &str,
    ) -> Result<Vec<DnsSdConfig>, ScrapeConfigError> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, entry) in raw.iter().enumerate() {
            let ekey = format!("{key}[{i}]");
            let r = &entry.value;
            let names = match &r.names {
                Some(names) if !names.value.is_empty() => names.value.clone(),
                Some(names) => {
                    return Err(self.invalid(
                        names,
                        format!("{ekey}.names"),
                        "DNS-SD config must contain at least one name".to_owned(),
                    ));
                }
                None => {
                    return Err(self.invalid(
                        entry,
                        ekey,
                        "DNS-SD config must contain at least one name (`names`)".to_owned(),
                    ));
                }
            };
            // Prometheus upper-cases the type before checking it.
            let record_type = match &r.kind {
                None => DnsRecordType::Srv,
                Some(kind) => match kind.value.to_ascii_uppercase().as_str() {
                    "SRV" => DnsRecordType::Srv,
                    "A" => DnsRecordType::A,
                    "AAAA" => DnsRecordType::Aaaa,
                    "MX" => DnsRecordType::Mx,
                    "NS" => DnsRecordType::Ns,
                    _ => {
                        return Err(self.invalid(
                            kind,
                            format!("{ekey}.type"),
                            format!(
                                "invalid DNS-SD records type {:?} (use SRV, A, AAAA, MX or NS)",
                                one_line(&kind.value)
                            ),
                        ));
                    }
                },
            };
            let port = r.port.as_ref().map_or(0, |p| p.value);
            if record_type != DnsRecordType::Srv && port == 0 {
                let message = format!(
                    "a port is required in DNS-SD configs for all record types except SRV (type is {})",
                    record_type.as_str()
                );
                return Err(match &r.port {
                    Some(at) => self.invalid(at, format!("{ekey}.port"), message),
                    None => self.invalid(entry, ekey, message),
                });
            }
            out.push(DnsSdConfig {
                names,
                record_type,
                port,
                refresh_interval: r
                    .refresh_interval
                    .map(|d| d.0)
                    .filter(|d| !d.is_zero())
                    .unwrap_or(DEFAULT_DNS_SD_REFRESH_INTERVAL),
            });
        }
        Ok(out)
    }
}

/// Why an `http_sd_config` URL is refused (Prometheus' checks, its messages).
#[derive(Debug, thiserror::Error)]
enum HttpSdUrlError {
    /// The URL is empty.
    #[error("URL is missing")]
    Missing,
    /// The URL does not parse.
    #[error("{shown:?} is not a URL: {source}")]
    Parse {
        shown: String,
        #[source]
        source: url::ParseError,
    },
    /// The scheme is neither `http` nor `https`.
    #[error("URL scheme must be 'http' or 'https'")]
    Scheme,
    /// The URL names no host.
    #[error("host is missing in URL")]
    Host,
}

fn check_http_sd_url(text: &str) -> Result<(), HttpSdUrlError> {
    if text.is_empty() {
        return Err(HttpSdUrlError::Missing);
    }
    let url = url::Url::parse(text).map_err(|source| HttpSdUrlError::Parse {
        shown: one_line(text),
        source,
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HttpSdUrlError::Scheme);
    }
    // The url crate turns `http:///t` into `http://t/`; Go sees no host there, so look at the
    // authority as written.
    let authority = text
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || url.host_str().is_none_or(str::is_empty) {
        return Err(HttpSdUrlError::Host);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::{JobConfig, load};
    use super::*;

    /// Loads `yaml` as a scrape config; `Err` is the one-line message.
    fn load_yaml(yaml: &str) -> Result<Vec<JobConfig>, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prometheus.yml");
        fs::write(&path, yaml).expect("write config");
        fs::write(dir.path().join("token"), "secret-token\n").expect("write token");
        load(&path).map(|c| c.jobs).map_err(|e| e.to_string())
    }

    fn job(yaml_body: &str) -> Result<JobConfig, String> {
        load_yaml(&format!("scrape_configs:\n  - job_name: j\n{yaml_body}"))
            .map(|jobs| jobs.into_iter().next().expect("one job"))
    }

    #[test]
    fn http_sd_takes_prometheus_defaults() {
        let j = job("    http_sd_configs:\n      - url: http://sd:8080/t\n").unwrap();
        let sd = &j.http_sd_configs[0];
        assert_eq!(sd.url, "http://sd:8080/t");
        assert_eq!(sd.refresh_interval, DEFAULT_HTTP_SD_REFRESH_INTERVAL);
        assert_eq!(sd.auth, ScrapeAuth::None);
        assert!(sd.follow_redirects);
    }

    #[test]
    fn http_sd_reads_credentials_tls_and_redirects() {
        let j = job(
            "    http_sd_configs:\n      - url: https://sd/t\n        refresh_interval: 5s\n        follow_redirects: false\n        authorization: {credentials_file: token}\n        tls_config: {insecure_skip_verify: true}\n",
        )
        .unwrap();
        let sd = &j.http_sd_configs[0];
        assert_eq!(sd.refresh_interval, Duration::from_secs(5));
        assert!(!sd.follow_redirects);
        assert!(sd.tls.insecure_skip_verify);
        match &sd.auth {
            ScrapeAuth::Authorization { kind, credentials } => {
                assert_eq!(kind, "Bearer");
                assert_eq!(credentials.expose(), "secret-token");
            }
            other => panic!("expected authorization, got {other:?}"),
        }
    }

    #[test]
    fn http_sd_url_must_be_http_or_https_with_a_host() {
        let err = job("    http_sd_configs:\n      - refresh_interval: 5s\n").unwrap_err();
        assert!(
            err.contains("http_sd_configs[0]") && err.contains("URL is missing"),
            "{err}"
        );
        let err = job("    http_sd_configs:\n      - url: ftp://sd/t\n").unwrap_err();
        assert!(
            err.contains("http_sd_configs[0].url") && err.contains("'http' or 'https'"),
            "{err}"
        );
        let err = job("    http_sd_configs:\n      - url: 'http:///t'\n").unwrap_err();
        assert!(err.contains("host is missing"), "{err}");
    }

    #[test]
    fn http_sd_refuses_client_settings_promrelay_cannot_honour() {
        let err = job("    http_sd_configs:\n      - url: http://sd/t\n        proxy_url: http://proxy:3128\n")
            .unwrap_err();
        assert!(err.contains("http_sd_configs[0].proxy_url"), "{err}");
        assert!(err.contains("does not support"), "{err}");
    }

    #[test]
    fn http_sd_allows_one_authentication_method() {
        let err = job(
            "    http_sd_configs:\n      - url: http://sd/t\n        bearer_token: a\n        basic_auth: {username: u}\n",
        )
        .unwrap_err();
        assert!(err.contains("one Authorization header"), "{err}");
    }

    #[test]
    fn http_sd_refuses_unknown_keys() {
        let err = job("    http_sd_configs:\n      - url: http://sd/t\n        refresh: 5s\n")
            .unwrap_err();
        assert!(err.contains("refresh"), "{err}");
    }

    #[test]
    fn dns_sd_defaults_to_srv_every_30s() {
        let j = job("    dns_sd_configs:\n      - names: [_x._tcp.example.org]\n").unwrap();
        let sd = &j.dns_sd_configs[0];
        assert_eq!(sd.names, ["_x._tcp.example.org"]);
        assert_eq!(sd.record_type, DnsRecordType::Srv);
        assert_eq!(sd.refresh_interval, DEFAULT_DNS_SD_REFRESH_INTERVAL);
    }

    #[test]
    fn dns_sd_type_is_case_insensitive_and_needs_a_port_unless_srv() {
        let j = job("    dns_sd_configs:\n      - names: [a.example]\n        type: aaaa\n        port: 9100\n        refresh_interval: 1s\n").unwrap();
        let sd = &j.dns_sd_configs[0];
        assert_eq!((sd.record_type, sd.port), (DnsRecordType::Aaaa, 9100));
        assert_eq!(sd.refresh_interval, Duration::from_secs(1));
        for kind in ["A", "AAAA", "MX", "NS"] {
            let err = job(&format!(
                "    dns_sd_configs:\n      - names: [a.example]\n        type: {kind}\n"
            ))
            .unwrap_err();
            assert!(err.contains("a port is required"), "{kind}: {err}");
        }
    }

    #[test]
    fn dns_sd_refuses_no_names_and_unknown_types() {
        let err = job("    dns_sd_configs:\n      - names: []\n").unwrap_err();
        assert!(
            err.contains("dns_sd_configs[0].names") && err.contains("at least one"),
            "{err}"
        );
        let err =
            job("    dns_sd_configs:\n      - names: [a]\n        type: TXT\n        port: 1\n")
                .unwrap_err();
        assert!(
            err.contains("dns_sd_configs[0].type") && err.contains("TXT"),
            "{err}"
        );
    }

    #[test]
    fn other_discoveries_are_still_refused() {
        let err = job("    consul_sd_configs:\n      - server: localhost:8500\n").unwrap_err();
        assert!(
            err.contains("does not support `consul_sd_configs`"),
            "{err}"
        );
    }
}
