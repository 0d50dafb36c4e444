//! Builds the rustls server configuration from a checked `tls_server_config`: versions, cipher
//! suites and curves, client certificate policy (Go's five `client_auth_type`s) and
//! `client_allowed_sans`.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::config::{ClientAuth, TlsServerConfig, TlsVersion, is_tls13_suite};

/// Why a `tls_server_config` could not become a rustls configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsBuildError {
    /// rustls refused the certificate and key (they do not belong together, unsupported key type).
    #[error("tls_server_config: certificate and key: {0}")]
    CertKey(#[source] rustls::Error),
    /// A client CA certificate could not be used as a trust anchor.
    #[error("tls_server_config: client CA: {0}")]
    ClientCa(String),
    /// The versions or suites leave nothing rustls can negotiate.
    #[error("tls_server_config: {0}")]
    Protocol(#[source] rustls::Error),
}

/// The server configuration for `tls`; `http2` adds `h2` to ALPN.
pub(super) fn server_config(
    tls: &TlsServerConfig,
    http2: bool,
) -> Result<Arc<ServerConfig>, TlsBuildError> {
    let provider = Arc::new(provider(tls));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (tls.min_version..=tls.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(TlsBuildError::Protocol)?;
    let builder = match client_verifier(tls, &provider)? {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(tls.cert_chain.clone(), tls.key.clone_key())
        .map_err(TlsBuildError::CertKey)?;
    cfg.ignore_client_order = tls.prefer_server_cipher_suites;
    cfg.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(cfg))
}

/// ring's provider narrowed to the configured TLS 1.2 suites (TLS 1.3 suites stay, as in Go)
/// and ordered by the configured curves.
fn provider(tls: &TlsServerConfig) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if !tls.cipher_suites.is_empty() {
        let mut suites: Vec<_> = tls
            .cipher_suites
            .iter()
            .filter_map(|want| p.cipher_suites.iter().find(|s| s.suite() == *want).copied())
            .collect();
        for s in &p.cipher_suites {
            if is_tls13_suite(s.suite()) && !suites.iter().any(|x| x.suite() == s.suite()) {
                suites.push(*s);
            }
        }
        p.cipher_suites = suites;
    }
    if !tls.curve_preferences.is_empty() {
        p.kx_groups = tls
            .curve_preferences
            .iter()
            .filter_map(|want| p.kx_groups.iter().find(|g| g.name() == *want).copied())
            .collect();
    }
    p
}

fn client_verifier(
    tls: &TlsServerConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsBuildError> {
    let sans = tls.client_allowed_sans.clone();
    let algs = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ClientCertVerifier> = match tls.client_auth {
        ClientAuth::NoClientCert => return Ok(None),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: tls.client_auth.requires_cert(),
                algs,
                sans,
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let mut roots = RootCertStore::empty();
            for ca in &tls.client_cas {
                roots
                    .add(ca.clone())
                    .map_err(|e| TlsBuildError::ClientCa(e.to_string()))?;
            }
            let mut b =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
            if !tls.client_auth.requires_cert() {
                b = b.allow_unauthenticated();
            }
            let inner = b
                .build()
                .map_err(|e| TlsBuildError::ClientCa(e.to_string()))?;
            match sans {
                Some(sans) => Arc::new(AllowedSans { inner, sans }),
                None => inner,
            }
        }
    };
    Ok(Some(verifier))
}

/// True when `cert` carries one of `sans` as a DNS name or IP address SAN.
fn has_allowed_san(cert: &CertificateDer<'_>, sans: &[String]) -> Result<(), rustls::Error> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| rustls::Error::General(format!("client certificate: {e}")))?;
    let found = sans.iter().any(|san| {
        ServerName::try_from(san.as_str())
            .is_ok_and(|name| parsed.verify_is_valid_for_subject_name(&name).is_ok())
    });
    if found {
        Ok(())
    } else {
        Err(rustls::Error::General(format!(
            "could not find allowed SANs in client cert, allowed: {sans:?}"
        )))
    }
}

/// `RequestClientCert` / `RequireAnyClientCert`: take any certificate (Go's semantics: the
/// client proves it holds the key, nobody vouches for it), and check `client_allowed_sans`.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
    sans: Option<Vec<String>>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(sans) = &self.sans {
            has_allowed_san(end_entity, sans)?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A verifying policy plus `client_allowed_sans`.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        has_allowed_san(end_entity, &self.sans)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
