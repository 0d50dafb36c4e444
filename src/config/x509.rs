//! The validity period of an X.509 certificate, so the web config can refuse an expired server
//! certificate (a rotation to one is refused; the old certificate keeps serving). Parsed by
//! `x509-parser` (rusticata), the well-kept parser of the field; rustls does not expose the dates.

use std::time::{SystemTime, UNIX_EPOCH};

/// Why a certificate's validity could not be read.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    /// The bytes are not a DER X.509 certificate.
    #[error("not a DER certificate: {0}")]
    Malformed(String),
    /// A date before 1970, which no server certificate in use carries.
    #[error("certificate date {0} is before 1970")]
    BeforeEpoch(i64),
}

/// `(notBefore, notAfter)` of the certificate `der`.
pub fn validity(der: &[u8]) -> Result<(SystemTime, SystemTime), X509Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| X509Error::Malformed(e.to_string()))?;
    let v = cert.validity();
    Ok((
        to_system_time(v.not_before.timestamp())?,
        to_system_time(v.not_after.timestamp())?,
    ))
}

fn to_system_time(unix_seconds: i64) -> Result<SystemTime, X509Error> {
    let secs = u64::try_from(unix_seconds).map_err(|_| X509Error::BeforeEpoch(unix_seconds))?;
    Ok(UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A real certificate (openssl, P-256) valid from 2026-12-04 21:38:37 to 2026-12-03
    /// 21:38:37 UTC: made with `-days -1`, so it expired before it began.
    const EXPIRED_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBATCBpwIBBTAKBggqhkjOPQQDAjANMQswCQYDVQQDDAJjYTAeFw0yNjEyMDQy
MTM4MzdaFw0yNjEyMDMyMTM4MzdaMAwxCjAIBgNVBAMMAWwwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAASrIGY1i4ymVNh01/ShTDnVn/5+ecsGpVJZBrSh+tOdrgGJ
PALVc4nPmQy2DUcZvg/FxlDEsk8oklw2dmI5mW7EMAoGCCqGSM49BAMCA0kAMEYC
IQCmUQ4ewAlB79aBZSgEkYW1FPSTxiu/ZGlAiRAALLcHUAIhAOHUMi3R2QPEtcTc
NkIMT1mNby+BMASGTh+EGxaIdo7W
-----END CERTIFICATE-----
";

    fn der() -> Vec<u8> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(EXPIRED_PEM.as_bytes())
            .expect("a PEM certificate")
            .to_vec()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_validity_of_a_real_certificate_is_read_to_the_second() {
        let (not_before, not_after) = validity(&der()).expect("valid DER");
        // 2026-12-04T21:38:37Z and 2026-12-03T21:38:37Z.
        assert_eq!(not_before, at(1_796_420_317));
        assert_eq!(not_after, at(1_796_333_917));
    }

    #[test]
    fn every_truncation_is_malformed_and_never_panics() {
        let der = der();
        for len in 0..der.len() {
            assert!(validity(&der[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn bytes_that_are_not_a_certificate_are_malformed() {
        assert!(validity(b"not DER at all").is_err());
        assert!(validity(&[]).is_err());
    }
}
