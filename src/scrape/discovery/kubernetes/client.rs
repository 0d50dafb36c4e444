//! The Kubernetes API client of one `kubernetes_sd_config`, built from its
//! [`KubernetesConnection`] as Prometheus builds it: `api_server` with the entry's auth and TLS,
//! a `kubeconfig_file`'s current context, or the pod's service account (in-cluster).
//!
//! In-cluster, the token is given to the client as a file, so a rotated service account token
//! is picked up without a restart (kube re-reads it), as client-go does. A token file with
//! surrounding whitespace (which kube would send as is) is read once, trimmed.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use http::{HeaderValue, header::AUTHORIZATION};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::scrape::config::{ApiServerConfig, KubernetesConnection, ScrapeAuth, ScrapeTls};

/// Where a pod finds its service account (token, CA, namespace).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Why the client of a `kubernetes_sd_config` could not be built. Discovery logs it and tries
/// again later.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    /// In-cluster configuration without `KUBERNETES_SERVICE_HOST` or `_PORT` in the
    /// environment: promrelay does not run in a pod, so `api_server` or `kubeconfig_file` is
    /// needed.
    #[error(
        "in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (not running in a pod? set api_server or kubeconfig_file)"
    )]
    NotInCluster,
    /// A file the connection needs (service account CA or namespace, `ca_file`, ...) could not
    /// be read.
    #[error("{what} {}: {source}", path.display())]
    ReadFile {
        /// Which file it is.
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The service account's namespace file is empty.
    #[error("own namespace file {} is empty", .0.display())]
    EmptyNamespace(PathBuf),
    /// A CA bundle holds no PEM certificate.
    #[error("{0}: no PEM certificate found")]
    NoCertificate(&'static str),
    /// The kubeconfig file could not be read or has no usable current context.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// The API server address is not a valid URI.
    #[error("api server URL: {0}")]
    Uri(#[from] http::uri::InvalidUri),
    /// The credentials contain bytes not allowed in a header.
    #[error("authorization credentials are not valid in an HTTP header")]
    Header,
    /// kube refused the configuration (TLS settings, for example).
    #[error("building the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// The environment of an in-cluster configuration: what a pod is told about its API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InCluster {
    /// `KUBERNETES_SERVICE_HOST`.
    pub host: Option<String>,
    /// `KUBERNETES_SERVICE_PORT`.
    pub port: Option<String>,
    /// The service account directory ([`SERVICE_ACCOUNT_DIR`] in a pod).
    pub dir: PathBuf,
}

impl InCluster {
    /// This process's environment and the standard service account directory.
    pub fn from_env() -> InCluster {
        InCluster {
            host: std::env::var("KUBERNETES_SERVICE_HOST").ok(),
            port: std::env::var("KUBERNETES_SERVICE_PORT").ok(),
            dir: PathBuf::from(SERVICE_ACCOUNT_DIR),
        }
    }

    /// The namespace the pod runs in (`namespaces.own_namespace`).
    pub fn own_namespace(&self) -> Result<String, KubeClientError> {
        let path = self.dir.join("namespace");
        let text = read("own namespace file", &path)?;
        let namespace = String::from_utf8_lossy(&text).trim().to_owned();
        if namespace.is_empty() {
            return Err(KubeClientError::EmptyNamespace(path));
        }
        Ok(namespace)
    }

    fn config(&self) -> Result<kube::Config, KubeClientError> {
        let (Some(host), Some(port)) = (self.host.as_deref(), self.port.as_deref()) else {
            return Err(KubeClientError::NotInCluster);
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let mut config = kube::Config::new(format!("https://{host}:{port}").parse()?);
        config.root_cert = Some(certificates(
            "service account CA",
            &read("service account CA", &self.dir.join("ca.crt"))?,
        )?);
        let token_path = self.dir.join("token");
        let token = read("service account token", &token_path)?;
        let text = String::from_utf8_lossy(&token);
        if text.trim() == text {
            // kube re-reads the file when the token it holds gets old: rotation just works.
            config.auth_info.token_file = Some(token_path.to_string_lossy().into_owned());
        } else {
            // kube would send the whitespace too; the trimmed token is fixed until the client
            // is built again (client-go trims; kubelet writes tokens without whitespace).
            config.auth_info.token = Some(text.trim().to_owned().into());
        }
        Ok(config)
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, KubeClientError> {
    std::fs::read(path).map_err(|source| KubeClientError::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The DER certificates of a PEM bundle.
fn certificates(what: &'static str, pem: &[u8]) -> Result<Vec<Vec<u8>>, KubeClientError> {
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect();
    if certs.is_empty() {
        return Err(KubeClientError::NoCertificate(what));
    }
    Ok(certs)
}

/// The client for `connection`.
pub async fn client(
    connection: &KubernetesConnection,
    in_cluster: &InCluster,
) -> Result<kube::Client, KubeClientError> {
    let config = match connection {
        KubernetesConnection::ApiServer(api) => api_server_config(api)?,
        KubernetesConnection::Kubeconfig(path) => {
            let file = Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?
        }
        KubernetesConnection::InCluster => in_cluster.config()?,
    };
    Ok(kube::Client::try_from(config)?)
}

fn api_server_config(api: &ApiServerConfig) -> Result<kube::Config, KubeClientError> {
    let mut config = kube::Config::new(api.url.as_str().parse()?);
    match &api.auth {
        ScrapeAuth::None => {}
        ScrapeAuth::Basic { username, password } => {
            config.auth_info.username = Some(username.clone());
            config.auth_info.password = Some(password.expose().to_owned().into());
        }
        ScrapeAuth::Authorization { kind, credentials } if kind == "Bearer" => {
            config.auth_info.token = Some(credentials.expose().to_owned().into());
        }
        ScrapeAuth::Authorization { kind, credentials } => {
            let mut value = HeaderValue::from_str(&format!("{kind} {}", credentials.expose()))
                .map_err(|_| KubeClientError::Header)?;
            value.set_sensitive(true);
            config.headers.push((AUTHORIZATION, value));
        }
    }
    apply_tls(&mut config, &api.tls)?;
    Ok(config)
}

fn apply_tls(config: &mut kube::Config, tls: &ScrapeTls) -> Result<(), KubeClientError> {
    let b64 = |pem: &[u8]| base64::engine::general_purpose::STANDARD.encode(pem);
    if let Some(path) = &tls.ca_file {
        config.root_cert = Some(certificates(
            "tls_config.ca_file",
            &read("tls_config.ca_file", path)?,
        )?);
    }
    if let Some(ca) = &tls.ca {
        config.root_cert = Some(certificates("tls_config.ca", ca.as_bytes())?);
    }
    if let Some(path) = &tls.cert_file {
        config.auth_info.client_certificate_data = Some(b64(&read("tls_config.cert_file", path)?));
    }
    if let Some(cert) = &tls.cert {
        config.auth_info.client_certificate_data = Some(b64(cert.as_bytes()));
    }
    if let Some(path) = &tls.key_file {
        config.auth_info.client_key_data = Some(b64(&read("tls_config.key_file", path)?).into());
    }
    if let Some(key) = &tls.key {
        config.auth_info.client_key_data = Some(b64(key.expose().as_bytes()).into());
    }
    config.accept_invalid_certs = tls.insecure_skip_verify;
    config.tls_server_name = tls.server_name.clone();
    Ok(())
}
