//! Sample values and timestamps of both formats.
//!
//! Values go through `str::parse::<f64>` (correctly rounded), after a fast path for the plain
//! decimals that make up nearly every exposition: a mantissa up to 2^53 scaled by at most 10^22
//! either way (fraction digits and exponent together) converts as one correctly rounded
//! multiplication or division of two exact values, so the fast path gives the same bits as
//! `parse` (Clinger's fast path; `tests.rs` and the proptests check the agreement).

/// 10^0 ..= 10^22: every one is exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Largest mantissa the fast path takes: 2^53, every integer up to it is exact in an f64.
const EXACT: u64 = 1 << 53;

/// Parses a sample or exemplar value. `openmetrics` restricts the syntax to the OpenMetrics
/// ABNF (decimal or exponent notation; `inf`, `infinity` with an optional sign and `nan`
/// without one, in any case); otherwise it is what Prometheus' text parser takes.
#[inline]
pub(crate) fn parse_value(s: &str, openmetrics: bool) -> Result<f64, &'static str> {
    if let Some(v) = fast_decimal(s.as_bytes()) {
        return Ok(v);
    }
    slow_value(s, openmetrics)
}

/// `[+-]digits[.digits]` with a small enough mantissa, else `None`.
#[inline]
fn fast_decimal(b: &[u8]) -> Option<f64> {
    let (negative, mut i) = match b.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    while i < b.len() && b[i].is_ascii_digit() {
        mantissa = mantissa * 10 + u64::from(b[i] - b'0');
        if mantissa > EXACT {
            return None;
        }
        digits += 1;
        i += 1;
    }
    let mut fraction = 0usize;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            mantissa = mantissa * 10 + u64::from(b[i] - b'0');
            if mantissa > EXACT {
                return None;
            }
            fraction += 1;
            i += 1;
        }
    }
    if digits + fraction == 0 {
        return None;
    }
    // An exponent (`1.5e+06`, as Go's exporters write large values): scale by a power of ten
    // within the exact range, still one correctly rounded operation.
    let exponent = exponent_part(b, &mut i)?;
    if i != b.len() {
        return None;
    }
    let scale = exponent - fraction as i64;
    let magnitude = if scale >= 0 {
        mantissa as f64 * *POW10.get(usize::try_from(scale).ok()?)?
    } else {
        mantissa as f64 / *POW10.get(usize::try_from(-scale).ok()?)?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// An optional `e`/`E` exponent with optional sign at `*i`, moving `*i` past it: 0 when there is
/// none, `None` when the `e` has no digits. Clamped at ±100000: beyond that every value has
/// saturated or vanished anyway.
#[inline]
fn exponent_part(b: &[u8], i: &mut usize) -> Option<i64> {
    if !matches!(b.get(*i), Some(b'e' | b'E')) {
        return Some(0);
    }
    *i += 1;
    let negative = match b.get(*i) {
        Some(b'-') => {
            *i += 1;
            true
        }
        Some(b'+') => {
            *i += 1;
            false
        }
        _ => false,
    };
    let start = *i;
    let mut exponent: i64 = 0;
    while let Some(c) = b.get(*i).filter(|c| c.is_ascii_digit()) {
        exponent = (exponent * 10 + i64::from(c - b'0')).min(100_000);
        *i += 1;
    }
    if *i == start {
        return None;
    }
    Some(if negative { -exponent } else { exponent })
}

fn slow_value(s: &str, openmetrics: bool) -> Result<f64, &'static str> {
    // Go's ParseFloat (Prometheus' parser) also takes hexadecimal floats and `_` separators;
    // Prometheus refuses both ("pre-Go 1.13 float formats"), and so does str::parse.
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let word = unsigned
        .as_bytes()
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic());
    if openmetrics {
        let ok = if word {
            unsigned.eq_ignore_ascii_case("inf")
                || unsigned.eq_ignore_ascii_case("infinity")
                || (s.eq_ignore_ascii_case("nan"))
        } else {
            s.bytes()
                .all(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
        };
        if !ok {
            return Err("invalid value");
        }
    }
    let v: f64 = s.parse().map_err(|_| "invalid value")?;
    if v.is_nan() {
        return Ok(f64::NAN);
    }
    if v.is_infinite() && !word {
        return Err("value out of the float64 range");
    }
    Ok(v)
}

/// Parses a text-format timestamp: integer milliseconds, digits only (as `promparse` lexes it).
#[inline]
pub(crate) fn parse_text_timestamp(s: &str) -> Result<i64, &'static str> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err("invalid timestamp (integer milliseconds expected)");
    }
    let mut ms: i64 = 0;
    for c in s.bytes() {
        ms = ms
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
            .ok_or("timestamp out of range")?;
    }
    Ok(ms)
}

/// Parses an OpenMetrics timestamp (float seconds, `realnumber` in the ABNF: no `Inf`, `NaN`
/// or hexadecimal) into milliseconds, exactly from the decimal digits: `1520879607.789` is
/// 1520879607789, not whatever `1520879607.789 * 1000.0` rounds to. Digits below the
/// millisecond are truncated toward zero; a value beyond the i64 range saturates (the spec
/// allows any float64, and the storage will judge such a timestamp).
pub(crate) fn parse_openmetrics_timestamp(s: &str) -> Result<i64, &'static str> {
    const BAD: &str = "invalid timestamp (float seconds expected)";
    let b = s.as_bytes();
    let (negative, mut i) = match b.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &b[int_start..i];
    let mut frac_digits: &[u8] = &[];
    if i < b.len() && b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &b[start..i];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(BAD);
    }
    let exponent = exponent_part(b, &mut i).ok_or(BAD)?;
    if i != b.len() {
        return Err(BAD);
    }
    // The value is 0.DIGITS * 10^point with DIGITS = int ++ frac; in milliseconds the decimal
    // point sits `point` digits into DIGITS.
    let point = int_digits.len() as i64 + exponent + 3;
    let mut ms: i64 = 0;
    let mut saturated = false;
    let mut taken = 0i64;
    for &c in int_digits.iter().chain(frac_digits) {
        if taken >= point {
            break;
        }
        taken += 1;
        match ms
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
        {
            Some(v) => ms = v,
            None => {
                saturated = true;
                break;
            }
        }
    }
    while !saturated && ms != 0 && taken < point {
        taken += 1;
        match ms.checked_mul(10) {
            Some(v) => ms = v,
            None => saturated = true,
        }
    }
    if saturated {
        ms = i64::MAX;
    }
    Ok(if negative { ms.saturating_neg() } else { ms })
}
