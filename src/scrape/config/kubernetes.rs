//! `kubernetes_sd_configs`: the shape of one entry as written, and its resolution with
//! Prometheus' checks (`discovery/kubernetes/kubernetes.go`, `SDConfig.UnmarshalYAML`).
//!
//! How promrelay reaches the API server is one of three [`KubernetesConnection`]s, chosen as
//! Prometheus chooses: `api_server` (with the HTTP client keys of the entry), `kubeconfig_file`,
//! or neither (in-cluster: the pod's service account). The HTTP client keys are valid only with
//! `api_server`, as in Prometheus.

use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::raw::{RawAuth, RawAuthorization, RawBasicAuth, RawTls};
use super::resolve::ScrapeConfigResolver;
use super::{ScrapeAuth, ScrapeConfigError, ScrapeTls};
use crate::config::Secret;
use crate::util::one_line;

/// The Kubernetes object kind a `kubernetes_sd_config` discovers targets from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KubernetesRole {
    /// One target per container port of every pod with an IP (one per container without ports).
    Pod,
    /// One target per port of every service, at its DNS name.
    Service,
    /// One target per address and port of every `Endpoints` object, with the labels of the
    /// backing service and pods; pod ports no endpoint names become targets too.
    Endpoints,
    /// As `Endpoints`, from `discovery.k8s.io/v1` `EndpointSlice` objects.
    EndpointSlice,
    /// One target per node, at its kubelet port.
    Node,
    /// One target per host (rule) of every ingress.
    Ingress,
}

impl KubernetesRole {
    /// Every role, in the order Prometheus' error messages list them.
    pub const ALL: [KubernetesRole; 6] = [
        KubernetesRole::Pod,
        KubernetesRole::Service,
        KubernetesRole::Endpoints,
        KubernetesRole::EndpointSlice,
        KubernetesRole::Node,
        KubernetesRole::Ingress,
    ];

    /// The role as written in the config (`endpointslice`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            KubernetesRole::Pod => "pod",
            KubernetesRole::Service => "service",
            KubernetesRole::Endpoints => "endpoints",
            KubernetesRole::EndpointSlice => "endpointslice",
            KubernetesRole::Node => "node",
            KubernetesRole::Ingress => "ingress",
        }
    }

    fn parse(text: &str) -> Option<KubernetesRole> {
        KubernetesRole::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The roles whose `selectors` this role accepts (Prometheus' `allowedSelectors`): the
    /// kinds it watches.
    pub fn selector_roles(self) -> &'static [KubernetesRole] {
        use KubernetesRole::*;
        match self {
            Pod => &[Pod, Node],
            Service => &[Service],
            EndpointSlice => &[Pod, Service, EndpointSlice],
            Endpoints => &[Pod, Service, Endpoints],
            Node => &[Node],
            Ingress => &[Ingress],
        }
    }
}

/// One `kubernetes_sd_configs` entry, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesSdConfig {
    /// What is discovered.
    pub role: KubernetesRole,
    /// How the API server is reached.
    pub connection: KubernetesConnection,
    /// The namespaces watched; empty with `own_namespace` false means all namespaces.
    pub namespaces: Vec<String>,
    /// Whether the pod's own namespace (in-cluster only) is watched too.
    pub own_namespace: bool,
    /// Label and field selectors sent to the API server, at most one per role.
    pub selectors: Vec<KubernetesSelector>,
    /// `attach_metadata.node`: add the node's labels to pod and endpoint targets (and watch
    /// nodes for that).
    pub attach_node_metadata: bool,
}

impl KubernetesSdConfig {
    /// The selector for watches of `role`, if one was configured.
    pub fn selector(&self, role: KubernetesRole) -> Option<&KubernetesSelector> {
        self.selectors.iter().find(|s| s.role == role)
    }
}

/// How a `kubernetes_sd_config` reaches the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubernetesConnection {
    /// `api_server` with the entry's HTTP client keys.
    ApiServer(Box<ApiServerConfig>),
    /// `kubeconfig_file`: server, credentials and TLS from its current context.
    Kubeconfig(PathBuf),
    /// Neither: the pod's service account (`KUBERNETES_SERVICE_HOST`/`_PORT`, the token and
    /// CA in `/var/run/secrets/kubernetes.io/serviceaccount/`).
    InCluster,
}

/// `api_server` and the HTTP client keys of a `kubernetes_sd_config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiServerConfig {
    /// The API server's base URL (`http` or `https`).
    pub url: url::Url,
    /// How requests authenticate (secret files were read at load time).
    pub auth: ScrapeAuth,
    /// TLS client settings (`server_name` allowed).
    pub tls: ScrapeTls,
}

/// One `selectors` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesSelector {
    /// Which watched kind it applies to.
    pub role: KubernetesRole,
    /// The API server's `labelSelector` (empty: none).
    pub label: String,
    /// The API server's `fieldSelector` (empty: none).
    pub field: String,
}

/// One `kubernetes_sd_configs` entry as written. Unknown keys are errors; the HTTP client keys
/// promrelay does not have are refused by being unknown.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKubernetesSd {
    role: Option<Spanned<String>>,
    api_server: Option<Spanned<String>>,
    kubeconfig_file: Option<Spanned<PathBuf>>,
    namespaces: Option<RawNamespaces>,
    selectors: Option<Vec<Spanned<RawSelector>>>,
    attach_metadata: Option<RawAttachMetadata>,
    basic_auth: Option<Spanned<RawBasicAuth>>,
    authorization: Option<Spanned<RawAuthorization>>,
    bearer_token: Option<Spanned<Secret>>,
    bearer_token_file: Option<Spanned<PathBuf>>,
    tls_config: Option<Spanned<RawTls>>,
    /// Accepted and ignored: the API server does not redirect watches.
    #[serde(rename = "follow_redirects")]
    _follow_redirects: Option<bool>,
    /// Accepted and ignored: the client negotiates HTTP/1.1 or HTTP/2 itself.
    #[serde(rename = "enable_http2")]
    _enable_http2: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamespaces {
    #[serde(default)]
    own_namespace: Option<Spanned<bool>>,
    #[serde(default)]
    names: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    role: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttachMetadata {
    #[serde(default)]
    node: Option<bool>,
    // Prometheus' newer kinds of metadata: refused when true (see `resolve`).
    #[serde(default)]
    namespace: Option<Spanned<bool>>,
    #[serde(default)]
    deployment: Option<Spanned<bool>>,
    #[serde(default)]
    job: Option<Spanned<bool>>,
    #[serde(default)]
    cronjob: Option<Spanned<bool>>,
}

impl RawKubernetesSd {
    fn auth(&self) -> RawAuth<'_> {
        RawAuth {
            basic_auth: self.basic_auth.as_ref(),
            authorization: self.authorization.as_ref(),
            bearer_token: self.bearer_token.as_ref(),
            bearer_token_file: self.bearer_token_file.as_ref(),
        }
    }
}

impl ScrapeConfigResolver<'_> {
    /// Resolves `scrape_configs[job].kubernetes_sd_configs[index]`; `key` is that path.
    pub(super) fn kubernetes_sd(
        &self,
        raw: &Spanned<RawKubernetesSd>,
        key: &str,
    ) -> Result<KubernetesSdConfig, ScrapeConfigError> {
        let r = &raw.value;
        let sub = |name: &str| format!("{key}.{name}");
        let role_at = r.role.as_ref().ok_or_else(|| {
            self.invalid(
                raw,
                sub("role"),
                "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)"
                    .to_owned(),
            )
        })?;
        let role = KubernetesRole::parse(&role_at.value).ok_or_else(|| {
            self.invalid(
                role_at,
                sub("role"),
                format!(
                    "unknown Kubernetes SD role {:?} (one of: pod, service, endpoints, endpointslice, node, ingress)",
                    one_line(&role_at.value)
                ),
            )
        })?;

        let http_keys: Vec<&str> = [
            ("basic_auth", r.basic_auth.is_some()),
            ("authorization", r.authorization.is_some()),
            ("bearer_token", r.bearer_token.is_some()),
            ("bearer_token_file", r.bearer_token_file.is_some()),
            ("tls_config", r.tls_config.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        let own_namespace_at = r
            .namespaces
            .as_ref()
            .and_then(|n| n.own_namespace.as_ref())
            .filter(|o| o.value);

        let connection = match (&r.api_server, &r.kubeconfig_file) {
            (Some(api), Some(_)) => {
                return Err(self.invalid(
                    api,
                    sub("api_server"),
                    "cannot use 'kubeconfig_file' and 'api_server' simultaneously".to_owned(),
                ));
            }
            (Some(api), None) => {
                if let Some(own) = own_namespace_at {
                    return Err(self.invalid(
                        own,
                        sub("namespaces.own_namespace"),
                        "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously"
                            .to_owned(),
                    ));
                }
                let url = url::Url::parse(api.value.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
                    .ok_or_else(|| {
                        self.invalid(
                            api,
                            sub("api_server"),
                            format!(
                                "{:?} is not an http or https URL with a host",
                                one_line(&api.value)
                            ),
                        )
                    })?;
                let auth = self.auth(&r.auth(), &sub)?;
                let tls = match &r.tls_config {
                    Some(t) => self.tls(t, &sub("tls_config"), true)?,
                    None => ScrapeTls::default(),
                };
                // The API client speaks TLS 1.2 and 1.3 and cannot be narrowed: a setting
                // that would narrow it is refused rather than silently not kept.
                for (name, value, kept) in [
                    (
                        "min_version",
                        &tls.min_version,
                        ["TLS10", "TLS11", "TLS12"].as_slice(),
                    ),
                    ("max_version", &tls.max_version, ["TLS13"].as_slice()),
                ] {
                    if let (Some(v), Some(t)) = (value, &r.tls_config)
                        && !kept.contains(&v.as_str())
                    {
                        return Err(self.invalid(
                            t,
                            sub(&format!("tls_config.{name}")),
                            format!("{v} cannot be kept: the Kubernetes client always offers TLS12 and TLS13"),
                        ));
                    }
                }
                KubernetesConnection::ApiServer(Box::new(ApiServerConfig { url, auth, tls }))
            }
            (None, Some(file)) => {
                if let Some(first) = http_keys.first() {
                    return Err(self.invalid(
                        file,
                        sub(first),
                        "cannot use a custom HTTP client configuration together with 'kubeconfig_file'".to_owned(),
                    ));
                }
                if let Some(own) = own_namespace_at {
                    return Err(self.invalid(
                        own,
                        sub("namespaces.own_namespace"),
                        "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously"
                            .to_owned(),
                    ));
                }
                let path = self.readable_file(file, sub("kubeconfig_file"))?;
                KubernetesConnection::Kubeconfig(path)
            }
            (None, None) => {
                if let Some(first) = http_keys.first() {
                    return Err(self.invalid(
                        raw,
                        sub(first),
                        "to use custom HTTP client configuration please provide the 'api_server' URL explicitly".to_owned(),
                    ));
                }
                KubernetesConnection::InCluster
            }
        };

        let mut selectors: Vec<KubernetesSelector> = Vec::new();
        for (i, s) in r.selectors.iter().flatten().enumerate() {
            let skey = sub(&format!("selectors[{i}]"));
            let written = s.value.role.as_deref().unwrap_or("");
            let Some(selector_role) = KubernetesRole::parse(written) else {
                return Err(self.invalid(
                    s,
                    format!("{skey}.role"),
                    format!("unknown Kubernetes SD role {:?}", one_line(written)),
                ));
            };
            if selectors.iter().any(|seen| seen.role == selector_role) {
                return Err(self.invalid(
                    s,
                    format!("{skey}.role"),
                    format!("duplicated selector role: {}", selector_role.as_str()),
                ));
            }
            if !role.selector_roles().contains(&selector_role) {
                let allowed: Vec<&str> = role.selector_roles().iter().map(|r| r.as_str()).collect();
                return Err(self.invalid(
                    s,
                    format!("{skey}.role"),
                    format!(
                        "{} role supports only {} selectors",
                        role.as_str(),
                        allowed.join(", ")
                    ),
                ));
            }
            let label = s.value.label.clone().unwrap_or_default();
            let field = s.value.field.clone().unwrap_or_default();
            for (name, text) in [("label", &label), ("field", &field)] {
                if let Err(reason) = check_selector(text) {
                    return Err(self.invalid(s, format!("{skey}.{name}"), reason));
                }
            }
            selectors.push(KubernetesSelector {
                role: selector_role,
                label,
                field,
            });
        }

        let mut attach_node_metadata = false;
        if let Some(a) = &r.attach_metadata {
            attach_node_metadata = a.node.unwrap_or(false);
            for (name, value) in [
                ("namespace", &a.namespace),
                ("deployment", &a.deployment),
                ("job", &a.job),
                ("cronjob", &a.cronjob),
            ] {
                if let Some(at) = value.as_ref().filter(|v| v.value) {
                    return Err(self.invalid(
                        at,
                        sub(&format!("attach_metadata.{name}")),
                        format!("promrelay attaches only node metadata, not {name} metadata; remove it or scrape this job with Prometheus"),
                    ));
                }
            }
        }

        let namespaces = r
            .namespaces
            .as_ref()
            .and_then(|n| n.names.clone())
            .unwrap_or_default();
        Ok(KubernetesSdConfig {
            role,
            connection,
            namespaces,
            own_namespace: own_namespace_at.is_some(),
            selectors,
            attach_node_metadata,
        })
    }
}

/// A light syntax check of a label or field selector: the API server parses it fully, but a
/// selector it refuses would only show as a failing watch, so the obvious mistakes (an empty
/// term, a control character) are reported at load time.
fn check_selector(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{:?} contains a control character", one_line(text)));
    }
    if text.split(',').any(|term| term.trim().is_empty()) && !text.contains('(') {
        return Err(format!("{:?} has an empty term", one_line(text)));
    }
    Ok(())
}
