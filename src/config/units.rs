//! Parsing of the value syntaxes shared by flags and the YAML file: byte sizes (`512MiB`, `1.5GB`),
//! Prometheus-style durations (`1m30s`), Go's durations (`1m30.5s`, how Prometheus prints scrape
//! intervals and reads them back from target labels), the listen address and the cluster member
//! number.
//!
//! Each parser returns a one-line reason on failure; the caller adds the file, line and key.
//! The serde wrappers at the bottom accept both YAML numbers and strings, so `queue_max_bytes: 1000000`
//! and `queue_max_bytes: 512MiB` both work.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Why a value (flag, environment variable or YAML scalar) could not be read. `Display` is one
/// line naming the text given; the caller adds the flag, file, line and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A byte size that is not a number with an optional known unit, is out of range, or is 0
    /// where only a positive size makes sense.
    #[error("invalid size {text:?}: {why}")]
    Size { text: String, why: String },
    /// A duration in neither Prometheus' form (`1m30s`) nor, where Go's form is accepted too,
    /// Go's (`1m30.5s`); or 0 where only a positive duration makes sense.
    #[error("invalid duration {text:?}{}", why.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    Duration { text: String, why: Option<String> },
    /// A listen address that is not `IP:PORT` or `:PORT`.
    #[error(
        "invalid listen address {text:?}: expected IP:PORT like 127.0.0.1:8431, or :PORT for all interfaces"
    )]
    ListenAddr { text: String },
    /// A cluster member number that is not a number or a name ending in `-NUMBER`, or too large.
    #[error("invalid cluster member number {text:?}: {why}")]
    MemberNum { text: String, why: &'static str },
    /// A count that is not a whole number.
    #[error("invalid number {text:?}: expected a whole number of at least {min}")]
    NotACount { text: String, min: u32 },
    /// A storage URL that does not parse, is not http or https, has no host, or has a fragment.
    /// `shown` is the URL with its password masked.
    #[error("invalid URL {shown:?}: {why}")]
    StorageUrl { shown: String, why: String },
    /// A whole number below the smallest allowed.
    #[error("{value} is too small: must be at least {min}")]
    TooSmall { value: u32, min: u32 },
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Parses a byte size: a decimal number (fractions allowed) and an optional unit.
/// `KB`/`MB`/`GB`/`TB` are powers of 1000, `KiB`/`MiB`/`GiB`/`TiB` powers of 1024 (units are
/// case-insensitive, `B` alone means bytes). A fraction of a byte is rounded down.
pub fn parse_size(text: &str) -> Result<u64, ValueError> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = (&s[..split], s[split..].trim_start());
    let bad = |why: String| ValueError::Size {
        text: text.to_owned(),
        why,
    };
    if number.is_empty() {
        return Err(bad(
            "expected a number with an optional unit, like 512MiB, 1.5GB or 1000000".to_owned(),
        ));
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => KIB,
        "mib" => MIB,
        "gib" => GIB,
        "tib" => TIB,
        _ => {
            return Err(bad(format!(
                "unknown unit {unit:?} (use KB, MB, GB, TB for powers of 1000 or KiB, MiB, GiB, TiB for powers of 1024)"
            )));
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') || fraction.len() > 9 {
        return Err(bad(format!("malformed number {number:?}")));
    }
    let too_large = || bad("too large".to_owned());
    // Exact integer arithmetic: `1.5GB` must be 1_500_000_000, not whatever f64 rounds it to.
    let digits: u128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| too_large())?;
    let scale = 10u128.pow(fraction.len() as u32);
    let bytes = digits
        .checked_mul(u128::from(multiplier))
        .ok_or_else(too_large)?
        / scale;
    u64::try_from(bytes).map_err(|_| too_large())
}

/// Formats a size with the largest binary unit that divides it exactly (`512MiB`), else in bytes.
pub fn format_size(bytes: u64) -> String {
    for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{name}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// Duration units in the only order Prometheus accepts them (largest first).
const DURATION_UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus-style duration: `30s`, `1m30s`, `100ms`, `5m`, `1h`, `2d`, `1w`, `1y`, or `0`.
/// As in Prometheus, each unit appears at most once and units go from largest to smallest.
pub fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = |why: &str| ValueError::Duration {
        text: text.to_owned(),
        why: Some(format!(
            "{why} (use Prometheus style like 30s, 1m30s, 100ms, 5m, 1h)"
        )),
    };
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let mut rest = s;
    let mut millis: u64 = 0;
    // Index into DURATION_UNITS of the next unit allowed, so units are strictly decreasing.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(bad("expected a number"));
        }
        let number: u64 = rest[..digits_end]
            .parse()
            .map_err(|_| bad("number too large"))?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        if unit.is_empty() {
            return Err(bad("missing unit"));
        }
        let position = DURATION_UNITS
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(|| bad(&format!("unknown unit {unit:?}")))?;
        if position < next_unit {
            return Err(bad(
                "units must go from largest to smallest, each at most once",
            ));
        }
        next_unit = position + 1;
        let unit_millis = DURATION_UNITS[position].1;
        millis = number
            .checked_mul(unit_millis)
            .and_then(|m| m.checked_add(millis))
            .ok_or_else(|| bad("too large"))?;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_millis(millis))
}

/// Formats a duration the way [`parse_duration`] reads it (`1m30s`, `30ms`, `0s`); sub-millisecond
/// parts are dropped.
pub fn format_duration(duration: Duration) -> String {
    let mut millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, unit) in DURATION_UNITS {
        if millis >= unit {
            out.push_str(&format!("{}{name}", millis / unit));
            millis %= unit;
        }
    }
    out
}

/// Formats a duration exactly as Go's `time.Duration.String` does: `0s`, `1.5µs`, `500ms`,
/// `15s`, `1m0s`, `1m30s`, `1h0m0s`, `1.5s`, with trailing zeros of fractions dropped.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 6));
    }
    let seconds = nanos / 1_000_000_000;
    let secs_text = fraction(seconds % 60 * 1_000_000_000 + nanos % 1_000_000_000, 9);
    let minutes = seconds / 60;
    if minutes == 0 {
        return format!("{secs_text}s");
    }
    let hours = minutes / 60;
    if hours == 0 {
        return format!("{minutes}m{secs_text}s");
    }
    format!("{hours}h{}m{secs_text}s", minutes % 60)
}

/// `value / 10^digits` with its fraction, trailing zeros (and a bare point) dropped.
fn fraction(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Go's `time.ParseDuration`, for non-negative values.
pub fn parse_go_duration(text: &str) -> Result<Duration, ValueError> {
    let bad = || ValueError::Duration {
        text: text.to_owned(),
        why: None,
    };
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_end);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(end)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut part = whole.checked_mul(unit_nanos).ok_or_else(bad)?;
        if !frac_part.is_empty() {
            // Enough digits for nanosecond precision; more cannot change the result.
            let digits = &frac_part[..frac_part.len().min(18)];
            let frac: u128 = digits.parse().map_err(|_| bad())?;
            part += frac * unit_nanos / 10u128.pow(digits.len() as u32);
        }
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = after;
    }
    // Go's limit: what fits in an int64 of nanoseconds.
    let nanos = u64::try_from(total)
        .ok()
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(bad)?;
    Ok(Duration::from_nanos(nanos))
}

/// Parses the listen address: `IP:PORT` (`127.0.0.1:8431`, `[::1]:8431`) or `:PORT` for all
/// IPv4 interfaces, as vmagent and Prometheus write it. Host names are refused: what they resolve
/// to is not stable, and a proxy that silently listens on the wrong interface is hard to debug.
pub fn parse_listen(text: &str) -> Result<SocketAddr, ValueError> {
    let s = text.trim();
    let bad = || ValueError::ListenAddr {
        text: text.to_owned(),
    };
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| bad())?;
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    }
    SocketAddr::from_str(s).map_err(|_| bad())
}

/// Parses the cluster member number: `2`, or a name ending in `-2` such as the StatefulSet pod
/// name `promrelay-2`, so a pod can pass its own name (`--cluster-member-num=$(POD_NAME)`).
pub fn parse_member_num(text: &str) -> Result<u32, ValueError> {
    let s = text.trim();
    let digits = match s.rsplit_once('-') {
        // A leading `-` is a negative number, not a name.
        Some(("", _)) => "",
        Some((_, suffix)) => suffix,
        None => s,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::MemberNum {
            text: text.to_owned(),
            why: "expected a number or a name ending in -NUMBER like promrelay-2",
        });
    }
    digits.parse().map_err(|_| ValueError::MemberNum {
        text: text.to_owned(),
        why: "number too large",
    })
}

/// Parses a whole number of at least `min`.
pub fn parse_count(text: &str, min: u32) -> Result<u32, ValueError> {
    let s = text.trim();
    match s.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        Ok(value) => Err(ValueError::TooSmall { value, min }),
        Err(_) => Err(ValueError::NotACount {
            text: text.to_owned(),
            min,
        }),
    }
}

/// A byte size greater than zero, read from a YAML number or a string like `512MiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositiveSize(pub u64);

impl FromStr for PositiveSize {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match parse_size(s)? {
            0 => Err(ValueError::Size {
                text: s.to_owned(),
                why: "must be greater than 0".to_owned(),
            }),
            n => Ok(PositiveSize(n)),
        }
    }
}

impl fmt::Display for PositiveSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

/// A duration greater than zero, read from a Prometheus-style string like `30s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositiveDuration(pub Duration);

impl FromStr for PositiveDuration {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let d = parse_duration(s)?;
        if d.is_zero() {
            return Err(ValueError::Duration {
                text: s.to_owned(),
                why: Some("must be greater than 0".to_owned()),
            });
        }
        Ok(PositiveDuration(d))
    }
}

/// A listen address (see [`parse_listen`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl FromStr for ListenAddr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        parse_listen(s).map(ListenAddr)
    }
}

/// A cluster member number (see [`parse_member_num`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberNum(pub u32);

impl FromStr for MemberNum {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        parse_member_num(s).map(MemberNum)
    }
}

/// A whole number of at least 1 (counts, concurrency, replication factor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositiveCount(pub u32);

impl FromStr for PositiveCount {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        parse_count(s, 1).map(PositiveCount)
    }
}

/// Deserializes any scalar (YAML string, integer or float) through its text form and `FromStr`,
/// so every value type has one parser and one wording of its errors for flags and file alike.
struct ScalarVisitor<T>(std::marker::PhantomData<T>);

impl<T> Visitor<'_> for ScalarVisitor<T>
where
    T: FromStr<Err = ValueError>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_str(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Err(E::custom(format!(
            "expected a number or a string, got the boolean {v}"
        )))
    }
}

macro_rules! deserialize_via_from_str {
    ($($ty:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(ScalarVisitor::<$ty>(std::marker::PhantomData))
            }
        }
    )*};
}

deserialize_via_from_str!(
    PositiveSize,
    PositiveDuration,
    ListenAddr,
    MemberNum,
    PositiveCount
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_decimal_and_plain_forms() {
        assert_eq!(parse_size("512MiB"), Ok(512 * MIB));
        assert_eq!(parse_size("1GiB"), Ok(GIB));
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("32MB"), Ok(32_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(GIB + GIB / 2));
        assert_eq!(parse_size("2 mib"), Ok(2 * MIB));
        assert_eq!(parse_size("100B"), Ok(100));
    }

    #[test]
    fn size_with_unknown_unit_is_rejected_and_lists_the_units() {
        let err = parse_size("12XB").unwrap_err().to_string();
        assert!(err.contains("\"12XB\"") && err.contains("KiB"), "{err}");
    }

    #[test]
    fn size_without_number_or_with_two_dots_is_rejected() {
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1.2.3MB").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1MB").is_err());
    }

    #[test]
    fn size_too_large_for_u64_is_rejected() {
        assert!(
            parse_size("20000000TiB")
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }

    #[test]
    fn size_display_uses_largest_exact_binary_unit() {
        assert_eq!(format_size(512 * MIB), "512MiB");
        assert_eq!(format_size(GIB), "1GiB");
        assert_eq!(format_size(1_000_000), "1000000");
        assert_eq!(format_size(1536), "1536");
    }

    #[test]
    fn zero_size_is_rejected_where_a_positive_size_is_needed() {
        let err = PositiveSize::from_str("0MiB").unwrap_err().to_string();
        assert!(err.contains("greater than 0"), "{err}");
    }

    #[test]
    fn durations_accept_prometheus_forms() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d2h"), Ok(Duration::from_secs(26 * 3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn duration_without_unit_or_out_of_order_is_rejected() {
        assert!(
            parse_duration("30")
                .unwrap_err()
                .to_string()
                .contains("missing unit")
        );
        assert!(
            parse_duration("30s1m")
                .unwrap_err()
                .to_string()
                .contains("largest to smallest")
        );
        assert!(parse_duration("1s1s").is_err());
        assert!(
            parse_duration("5x")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1.5s").is_err());
    }

    #[test]
    fn go_duration_strings_match_go() {
        // Expected values are what Go's time.Duration.String prints.
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_100), "1.1µs"),
            (Duration::from_micros(2_200), "2.2ms"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(15), "15s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(90_500), "1m30.5s"),
            (Duration::from_secs(3_600), "1h0m0s"),
            (Duration::from_secs(86_400 + 61), "24h1m1s"),
            (Duration::from_nanos(4_000_000_001), "4.000000001s"),
        ] {
            assert_eq!(format_go_duration(d), want, "{d:?}");
            assert_eq!(parse_go_duration(want), Ok(d), "{want}");
        }
    }

    #[test]
    fn duration_display_round_trips() {
        for text in ["30ms", "5s", "1m30s", "1h", "0s"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
    }

    #[test]
    fn listen_accepts_ip_port_and_bare_port() {
        assert_eq!(
            parse_listen("127.0.0.1:8431"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 8431)))
        );
        assert_eq!(
            parse_listen(":9000"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 9000)))
        );
        assert!(parse_listen("[::1]:8431").is_ok());
    }

    #[test]
    fn listen_rejects_host_names_and_missing_port() {
        assert!(parse_listen("localhost:8431").is_err());
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen(":99999").is_err());
    }

    #[test]
    fn member_num_accepts_number_and_pod_name() {
        assert_eq!(parse_member_num("3"), Ok(3));
        assert_eq!(parse_member_num("promrelay-2"), Ok(2));
        assert_eq!(parse_member_num("my-relay-set-10"), Ok(10));
    }

    #[test]
    fn member_num_rejects_names_without_numeric_suffix() {
        assert!(parse_member_num("promrelay").is_err());
        assert!(parse_member_num("promrelay-").is_err());
        assert!(parse_member_num("promrelay-x").is_err());
        assert!(parse_member_num("-1").is_err());
    }

    #[test]
    fn count_rejects_zero_and_negative() {
        assert!(
            parse_count("0", 1)
                .unwrap_err()
                .to_string()
                .contains("at least 1")
        );
        assert!(parse_count("-2", 1).is_err());
        assert_eq!(parse_count("4", 1), Ok(4));
    }
}
