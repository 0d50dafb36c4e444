//! Certificates made by `openssl` in a temporary directory, for the TLS tests: a CA, server and
//! client certificates it signs, and the rustls and reqwest clients that use them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tempfile::TempDir;

/// A directory of certificates, each made by `openssl` on demand.
pub struct Pki {
    dir: TempDir,
}

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// The certificate's DER (the first in the file).
    pub fn der(&self) -> CertificateDer<'static> {
        CertificateDer::pem_file_iter(&self.cert)
            .expect("read the certificate")
            .next()
            .expect("one certificate")
            .expect("a PEM certificate")
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (the TLS tests make their certificates with it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("promrelay-pki-")
            .tempdir()
            .expect("create a temporary directory for certificates");
        Pki { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A self-signed CA named `name`.
    pub fn ca(&self, name: &str) -> CertFiles {
        let (cert, key) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "30",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        CertFiles {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// A certificate for `name` with SANs `localhost`, `127.0.0.1` and `DNS:<name>`, signed by
    /// `ca`, good for server and client use, with serial `serial`.
    pub fn leaf(&self, ca: &CertFiles, name: &str, serial: u32) -> CertFiles {
        self.leaf_valid_for(ca, name, serial, 30)
    }

    /// [`Pki::leaf`] valid for `days` from now; `-1` makes one that has already expired.
    pub fn leaf_valid_for(&self, ca: &CertFiles, name: &str, serial: u32, days: i32) -> CertFiles {
        let stem = format!("{name}-{serial}");
        let (cert, key, csr, ext) = (
            self.path(&format!("{stem}.pem")),
            self.path(&format!("{stem}.key")),
            self.path(&format!("{stem}.csr")),
            self.path(&format!("{stem}.ext")),
        );
        fs::write(
            &ext,
            format!(
                "subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:{name}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .expect("write the extensions file");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca.cert.display().to_string(),
            "-CAkey",
            &ca.key.display().to_string(),
            "-set_serial",
            &serial.to_string(),
            "-days",
            &days.to_string(),
            "-out",
            &cert,
            "-extfile",
            &ext,
        ]);
        CertFiles {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// A rustls client trusting `ca`, presenting `identity` when given.
pub fn client_config(ca: &CertFiles, identity: Option<&CertFiles>) -> rustls::ClientConfig {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).expect("a usable CA certificate");
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match identity {
        Some(id) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&id.cert)
                .expect("read the client certificate")
                .collect::<Result<_, _>>()
                .expect("PEM certificates");
            let key = PrivateKeyDer::from_pem_file(&id.key).expect("a PEM key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("a matching certificate and key")
        }
        None => builder.with_no_client_auth(),
    }
}

/// A reqwest client over `config` that opens a new connection per request (so each request is a
/// new handshake: what rotation and refusal tests need).
pub fn https_client(config: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .pool_max_idle_per_host(0)
        .build()
        .expect("an HTTPS client")
}

/// The leaf certificate the server at `address` presents in a fresh handshake.
pub async fn served_certificate(
    address: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> CertificateDer<'static> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the relay");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a DNS name");
    let tls = connector
        .connect(name, tcp)
        .await
        .expect("a TLS handshake with the relay");
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("the server presents a certificate")
        .clone()
        .into_owned()
}
