//! The validity period of an X.509 certificate, read from its DER: just enough of the structure
//! (RFC 5280 4.1) to reach `tbsCertificate.validity`, so the web config can refuse an expired
//! server certificate (a rotation to one is refused; the old certificate keeps serving).
//!
//! Every length is checked against the bytes that remain; nothing is allocated.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a certificate's validity could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    /// The DER ended early, had a length that does not fit, or an unexpected element.
    #[error("not a DER certificate: {0}")]
    Malformed(&'static str),
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xA0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// `(notBefore, notAfter)` of the certificate `der`.
pub fn validity(der: &[u8]) -> Result<(SystemTime, SystemTime), X509Error> {
    let (cert, _) = element(der, SEQUENCE, "certificate")?;
    let (tbs, _) = element(cert, SEQUENCE, "tbsCertificate")?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = element(rest, VERSION, "version")?.1;
    }
    rest = element(rest, INTEGER, "serialNumber")?.1;
    rest = element(rest, SEQUENCE, "signature")?.1;
    rest = element(rest, SEQUENCE, "issuer")?.1;
    let (validity, _) = element(rest, SEQUENCE, "validity")?;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    Ok((not_before, not_after))
}

/// The content of the element at the start of `input` if its tag is `tag`, and what follows it.
fn element<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), X509Error> {
    let (&found, rest) = input.split_first().ok_or(X509Error::Malformed(what))?;
    if found != tag {
        return Err(X509Error::Malformed(what));
    }
    let (&first, mut rest) = rest.split_first().ok_or(X509Error::Malformed(what))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(X509Error::Malformed(what));
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return Err(X509Error::Malformed(what));
    }
    Ok(rest.split_at(len))
}

/// A `Time` (UTCTime or GeneralizedTime, UTC, seconds) and what follows it.
fn time(input: &[u8]) -> Result<(SystemTime, &[u8]), X509Error> {
    let bad = X509Error::Malformed("validity time");
    let (tag, digits) = match input.first() {
        Some(&UTC_TIME) => (UTC_TIME, 12),
        Some(&GENERALIZED_TIME) => (GENERALIZED_TIME, 14),
        _ => return Err(bad),
    };
    let (text, rest) = element(input, tag, "validity time")?;
    if text.len() != digits + 1
        || text[digits] != b'Z'
        || !text[..digits].iter().all(u8::is_ascii_digit)
    {
        return Err(bad);
    }
    let num = |range: std::ops::Range<usize>| {
        text[range]
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
    };
    let (year, at) = if tag == UTC_TIME {
        // RFC 5280 4.1.2.5.1: YY >= 50 is 19YY, else 20YY.
        let yy = num(0..2);
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
    } else {
        (num(0..4), 4)
    };
    let (month, day) = (num(at..at + 2), num(at + 2..at + 4));
    let (hour, minute, second) = (
        num(at + 4..at + 6),
        num(at + 6..at + 8),
        num(at + 8..at + 10),
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return Err(bad);
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let when = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    Ok((when, rest))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
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
    fn dates_convert_as_the_calendar_says() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
