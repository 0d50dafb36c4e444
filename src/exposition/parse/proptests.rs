//! Property tests: no input makes the parser panic, what it counts it yields, and the number
//! fast paths agree with the slow ones.

use proptest::collection::vec;
use proptest::prelude::*;

use super::number::{parse_openmetrics_timestamp, parse_value};
use super::scan::closing_quote;
use super::*;

/// Reads every entry, iterating every label set, as a caller would. Returns the number of
/// entries read.
fn drain(body: &[u8], format: Format) -> usize {
    let mut n = 0;
    for entry in Parser::new(body, format) {
        n += 1;
        if let Ok(Entry::Sample(s)) = entry {
            assert_eq!(s.labels.iter().count(), s.labels.len(), "{:?}", s.series);
            if let Some(ex) = s.exemplar {
                assert_eq!(ex.labels.iter().count(), ex.labels.len());
            }
        }
    }
    n
}

/// Pieces that make up expositions, so that random sequences reach deep into the grammar.
fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a",
        "a_total",
        "a_bucket",
        "a_count",
        "a_sum",
        "le",
        "quantile",
        "{",
        "}",
        "=",
        "\"",
        "\\",
        "\\n",
        "\\\"",
        ",",
        " ",
        "\t",
        "\n",
        "#",
        "# ",
        "# HELP ",
        "# TYPE ",
        "# UNIT ",
        "# EOF",
        "counter",
        "histogram",
        "gauge",
        "summary",
        "stateset",
        "info",
        "1",
        "-1",
        "1.5",
        "1e3",
        "NaN",
        "+Inf",
        "-Inf",
        "0x1p-3",
        "123456789012345678901234",
        "é",
        "\u{0}",
        "\"+Inf\"",
        "\"1\"",
        " # {",
        "} ",
        ".",
        "e",
        "_",
    ])
}

/// One sample (series text, value bits, timestamp), or an error's text.
type Outcome = Result<(String, u64, Option<i64>), String>;

/// Every outcome of a body, as (series text, value bits, timestamp) per sample and the error
/// text if any: by the full parse, or through `next_with` recognising every series text the full
/// parse yielded.
fn outcomes(body: &[u8], format: Format, fast: bool) -> Vec<Outcome> {
    let full: Vec<_> = Parser::new(body, format)
        .without_semantic_checks()
        .map(|e| match e {
            Ok(Entry::Sample(s)) => Ok(Some((
                s.series.to_string(),
                s.value.to_bits(),
                s.timestamp_ms,
            ))),
            Ok(_) => Ok(None),
            Err(e) => Err(e.to_string()),
        })
        .filter_map(Result::transpose)
        .collect();
    if !fast {
        return full;
    }
    let known: std::collections::HashSet<String> = full
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|(t, _, _)| t.clone())
        .collect();
    let mut parser = Parser::new(body, format).without_semantic_checks();
    let mut out = Vec::new();
    while let Some(item) = parser.next_with(|t| known.get(t).cloned()) {
        match item {
            Ok(Item::Known {
                key,
                value,
                timestamp_ms,
            }) => out.push(Ok((key, value.to_bits(), timestamp_ms))),
            Ok(Item::Sample(s)) => out.push(Ok((
                s.series.to_string(),
                s.value.to_bits(),
                s.timestamp_ms,
            ))),
            Err(e) => out.push(Err(e.to_string())),
        }
    }
    out
}

/// `next_with` (recognising every series text) and the full parse agree on `body`, in both formats.
fn same_outcomes_both_ways(body: &str) -> Result<(), TestCaseError> {
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        prop_assert_eq!(
            outcomes(body.as_bytes(), format, true),
            outcomes(body.as_bytes(), format, false),
            "{:?}",
            body
        );
    }
    Ok(())
}

/// Sample lines, valid or nearly, whose series texts resemble each other's prefixes.
fn sample_line() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "m{a=\"}\"} 1\n",
        "m{a=\"}\",b=\"1\"} 2\n",
        "m{a=\"}\",b=\"1\"} 2 # {t=\"x\"} 1\n",
        "m {a=\"x\"} 3\n",
        "m{a=\"x\"}\t4 5\n",
        "m{a=\"x\"}5\n",
        "m{a=\"x\"} 6 7\n",
        "m{a=\"x\"} 6 7 8\n",
        "m{a=\"x\"} x\n",
        "m{a=\"x\",} 9\n",
        "m 10\n",
        "m  11\n",
        "m\n",
        "m{} 12\n",
        "m{a=\"x\"}\n",
        "m{a=\"\\\"}\"} 13\n",
        "# TYPE m gauge\n",
        "# EOF\n",
        "\n",
    ])
}

proptest! {
    #[test]
    fn next_with_agrees_with_the_full_parse_on_sample_lines(lines in vec(sample_line(), 0..12)) {
        same_outcomes_both_ways(&lines.concat())?;
    }

    #[test]
    fn next_with_agrees_with_the_full_parse_on_token_sequences(tokens in vec(token(), 0..80)) {
        same_outcomes_both_ways(&tokens.concat())?;
    }

    #[test]
    fn random_bytes_never_panic(body in vec(any::<u8>(), 0..600)) {
        drain(&body, Format::PrometheusText);
        drain(&body, Format::OpenMetrics);
    }

    #[test]
    fn random_token_sequences_never_panic(tokens in vec(token(), 0..80)) {
        let body = tokens.concat();
        drain(body.as_bytes(), Format::PrometheusText);
        drain(body.as_bytes(), Format::OpenMetrics);
    }

    #[test]
    fn word_at_a_time_quote_scan_agrees_with_a_byte_loop(
        body in vec(prop::sample::select(vec![b'"', b'\\', b'a', 0x80, 0xff, b'n', 0]), 0..40),
        start in 0usize..40,
    ) {
        let start = start.min(body.len());
        // The reference: a backslash skips the byte after it, the first other `"` closes.
        let mut expected = None;
        let (mut i, mut escaped) = (start, false);
        while i < body.len() {
            match body[i] {
                b'"' => {
                    expected = Some((i, escaped));
                    break;
                }
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        prop_assert_eq!(closing_quote(&body, start), expected);
    }

    #[test]
    fn fast_decimal_path_agrees_with_str_parse(
        int in 0u64..100_000_000_000_000_000,
        frac in "[0-9]{0,25}",
        negative in any::<bool>(),
    ) {
        let text = format!("{}{int}.{frac}", if negative { "-" } else { "" });
        let expected: f64 = text.parse().unwrap();
        prop_assert_eq!(parse_value(&text, true).map(f64::to_bits), Ok(expected.to_bits()));
    }

    #[test]
    fn fast_exponent_path_agrees_with_str_parse(
        int in 0u64..10_000_000_000_000_000,
        frac in "[0-9]{0,20}",
        e in "[eE]",
        sign in "[+-]?",
        exponent in 0u32..40,
        negative in any::<bool>(),
    ) {
        let text = format!("{}{int}.{frac}{e}{sign}{exponent:02}", if negative { "-" } else { "" });
        let expected: f64 = text.parse().unwrap();
        prop_assert_eq!(parse_value(&text, true).map(f64::to_bits), Ok(expected.to_bits()));
        prop_assert_eq!(parse_value(&text, false).map(f64::to_bits), Ok(expected.to_bits()));
    }

    #[test]
    fn decimal_timestamps_convert_to_exact_milliseconds(
        seconds in -10_000_000_000i64..10_000_000_000,
        millis in 0i64..1000,
        extra in "[0-9]{0,6}",
    ) {
        let sign = if seconds < 0 { "-" } else { "" };
        let text = format!("{sign}{}.{millis:03}{extra}", seconds.unsigned_abs());
        let magnitude = seconds.abs() * 1000 + millis;
        let expected = if seconds < 0 { -magnitude } else { magnitude };
        prop_assert_eq!(parse_openmetrics_timestamp(&text), Ok(expected));
    }

    #[test]
    fn any_finite_value_round_trips(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
        let text = format!("a{{x=\"y\"}} {v}\n");
        let entry = Parser::new(text.as_bytes(), Format::PrometheusText).next();
        let Some(Ok(Entry::Sample(s))) = entry else {
            panic!("{text:?}: {entry:?}");
        };
        prop_assert_eq!(s.value.to_bits(), v.to_bits());
    }
}
