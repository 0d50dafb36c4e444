//! Unit tests: one behaviour each, named for it.

use std::borrow::Cow;

use super::number::{parse_openmetrics_timestamp, parse_value};
use super::*;

const NODE_EXPORTER: &str = include_str!("../../../tests/fixtures/node_exporter.prom");

fn parse(body: &str, format: Format) -> Result<Vec<Entry<'_>>, ParseError> {
    Parser::new(body.as_bytes(), format).collect()
}

fn samples(body: &str, format: Format) -> Vec<SampleRef<'_>> {
    parse(body, format)
        .unwrap_or_else(|e| panic!("{body:?} should parse: {e}"))
        .into_iter()
        .filter_map(|e| match e {
            Entry::Sample(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn only_sample(body: &str, format: Format) -> SampleRef<'_> {
    let mut all = samples(body, format);
    assert_eq!(all.len(), 1, "{body:?}");
    all.remove(0)
}

fn error(body: &str, format: Format) -> ParseError {
    match parse(body, format) {
        Ok(entries) => panic!("{body:?} should not parse, got {entries:?}"),
        Err(e) => e,
    }
}

fn labels<'a>(s: &SampleRef<'a>) -> Vec<(&'a str, String)> {
    s.labels.iter().map(|(n, v)| (n, v.into_owned())).collect()
}

const TEXT: Format = Format::PrometheusText;
const OM: Format = Format::OpenMetrics;

// ---- labels ----

#[test]
fn label_value_escapes_are_undone() {
    let s = only_sample(r#"a{x="q\"b\\s\nn",y="\z"} 1"#, TEXT);
    assert_eq!(
        labels(&s),
        vec![("x", "q\"b\\s\nn".to_string()), ("y", "\\z".to_string())]
    );
    let s = only_sample("a_total{x=\"\\\\n\"} 1\n# EOF\n", OM);
    assert_eq!(labels(&s), vec![("x", "\\n".to_string())]);
}

#[test]
fn labels_without_escapes_borrow_from_the_body() {
    let body = "a{job=\"node\",instance=\"h:9100\"} 1\n";
    let s = only_sample(body, TEXT);
    let range = body.as_bytes().as_ptr_range();
    for (name, value) in s.labels.iter() {
        let Cow::Borrowed(v) = value else {
            panic!("{name}={value:?} was copied");
        };
        assert!(range.contains(&v.as_ptr()) && range.contains(&name.as_ptr()));
    }
    assert_eq!(s.labels.len(), 2);
}

#[test]
fn label_with_an_escape_is_owned_and_the_others_stay_borrowed() {
    let s = only_sample(r#"a{x="a\nb",y="plain"} 1"#, TEXT);
    let values: Vec<_> = s.labels.iter().map(|(_, v)| v).collect();
    assert!(matches!(values[0], Cow::Owned(_)));
    assert!(matches!(values[1], Cow::Borrowed("plain")));
}

#[test]
fn label_values_may_hold_braces_hashes_and_commas() {
    let s = only_sample("a_total{foo=\"} a, # b {\"} 1\n# EOF\n", OM);
    assert_eq!(labels(&s), vec![("foo", "} a, # b {".to_string())]);
    assert_eq!(s.series, "a_total{foo=\"} a, # b {\"}");
}

#[test]
fn text_format_allows_blanks_a_trailing_comma_and_a_missing_comma_in_labels() {
    let s = only_sample("  a \t{ x = \"1\" , y=\"2\" z=\"3\", }\t2  \n", TEXT);
    assert_eq!(s.name, "a");
    assert_eq!(
        labels(&s),
        vec![
            ("x", "1".to_string()),
            ("y", "2".to_string()),
            ("z", "3".to_string())
        ]
    );
    assert_eq!((s.value, s.labels.len()), (2.0, 3));
}

#[test]
fn openmetrics_refuses_blanks_in_labels() {
    error("a{x=\"1\", y=\"2\"} 1\n# EOF\n", OM);
    error("a{x =\"1\"} 1\n# EOF\n", OM);
}

#[test]
fn invalid_label_names_are_refused() {
    for body in ["a{1=\"1\"} 1\n", "a{a-b=\"1\"} 1\n", "a{=\"1\"} 1\n"] {
        assert!(
            error(body, TEXT).msg.contains("invalid label name"),
            "{body:?}"
        );
    }
}

#[test]
fn unterminated_label_value_is_refused() {
    let e = error("a{x=\"1} 1\n", TEXT);
    assert!(e.msg.contains("unterminated label value"), "{e}");
}

#[test]
fn labels_get_finds_the_value_by_name() {
    let s = only_sample(r#"a{x="1",y="2"} 1"#, TEXT);
    assert_eq!(s.labels.get("y").as_deref(), Some("2"));
    assert_eq!(s.labels.get("z"), None);
    assert_eq!(s.labels.raw(), r#"x="1",y="2""#);
}

#[test]
fn sample_without_labels_has_empty_labels_and_its_name_as_series() {
    let s = only_sample("up 1\n", TEXT);
    assert!(s.labels.is_empty());
    assert_eq!(s.labels.iter().count(), 0);
    assert_eq!(s.series, "up");
}

#[test]
fn empty_braces_are_an_empty_label_set() {
    let s = only_sample("a_total{} 1\n# EOF\n", OM);
    assert!(s.labels.is_empty());
}

// ---- values ----

#[test]
fn nan_and_infinities_parse_and_nan_is_canonical() {
    let body = "a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\n";
    let values: Vec<f64> = samples(body, TEXT).iter().map(|s| s.value).collect();
    assert_eq!(values[0].to_bits(), f64::NAN.to_bits());
    assert_eq!(values[4].to_bits(), f64::NAN.to_bits());
    assert_eq!(
        &values[1..4],
        &[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY]
    );
    let om = samples("a NaN\nb +Inf\nc -Inf\n# EOF\n", OM);
    assert!(om[0].value.is_nan());
    assert_eq!(
        (om[1].value, om[2].value),
        (f64::INFINITY, f64::NEG_INFINITY)
    );
}

#[test]
fn values_take_exponents_and_lone_decimal_points() {
    let body = "a 1e3\nb -1.5E-3\nc .5\nd 1.\ne +3\nf 2.478268416e+09\ng -0\n";
    let values: Vec<f64> = samples(body, TEXT).iter().map(|s| s.value).collect();
    assert_eq!(
        &values[..6],
        &[1000.0, -0.0015, 0.5, 1.0, 3.0, 2.478268416e9]
    );
    assert!(values[6] == 0.0 && values[6].is_sign_negative());
}

#[test]
fn hexadecimal_and_underscored_values_are_refused_in_both_formats() {
    for v in ["0x1p-3", "0x1", "1_000", "0b1", "1e", "--1", "1.2.3", ""] {
        assert!(parse_value(v, false).is_err(), "{v:?} text");
        assert!(parse_value(v, true).is_err(), "{v:?} openmetrics");
    }
}

#[test]
fn value_beyond_the_float64_range_is_an_error() {
    let e = error("a 1e400\n", TEXT);
    assert!(e.msg.contains("out of the float64 range"), "{e}");
}

#[test]
fn openmetrics_refuses_a_signed_nan() {
    assert!(parse_value("-NaN", true).is_err());
    assert!(parse_value("nan", true).is_ok_and(f64::is_nan));
    assert_eq!(parse_value("-Infinity", true), Ok(f64::NEG_INFINITY));
}

#[test]
fn fast_decimal_path_gives_the_same_bits_as_str_parse() {
    let cases = [
        "0",
        "1",
        "-1",
        "0.1",
        "0.013300656000000001",
        "9007199254740992",
        "9007199254740993",
        "123456789012345.678",
        "0.0000000000000000000001",
        "4.5",
        "3.14159265358979",
        "0000000000000000000000000000000000000000001",
        "1.7976931348623157",
        "1.6984e+09",
        "2.5E-05",
        "1e22",
        "1e23",
        "9007199254740993e-22",
        "1.0e-400",
        "1.e5",
        ".5E3",
    ];
    for s in cases {
        let expected: f64 = s.parse().unwrap();
        assert_eq!(
            parse_value(s, true).map(f64::to_bits),
            Ok(expected.to_bits()),
            "{s}"
        );
    }
}

#[test]
fn an_exponent_without_digits_is_an_error() {
    for s in ["12e", "1e+", "1.5E-", "e5"] {
        assert!(parse_value(s, false).is_err(), "{s}");
    }
}

// ---- timestamps ----

#[test]
fn text_timestamps_are_integer_milliseconds() {
    let s = only_sample("a 1 1700000000123\n", TEXT);
    assert_eq!(s.timestamp_ms, Some(1_700_000_000_123));
    assert_eq!(only_sample("a 1\n", TEXT).timestamp_ms, None);
}

#[test]
fn text_timestamps_refuse_fractions_signs_and_overflow() {
    for body in [
        "a 1 1.5\n",
        "a 1 -5\n",
        "a 1 99999999999999999999\n",
        "a 1 1 2\n",
    ] {
        error(body, TEXT);
    }
}

#[test]
fn openmetrics_timestamps_are_float_seconds_converted_exactly() {
    let cases = [
        ("1520879607.789", 1_520_879_607_789),
        ("1", 1000),
        ("1.5e3", 1_500_000),
        ("-1.5", -1500),
        ("0.0000000001", 0),
        ("1.2345", 1234),
        (".5", 500),
        ("12E-4", 1),
        ("12345678901234567890.1234567890", i64::MAX),
    ];
    for (text, ms) in cases {
        assert_eq!(parse_openmetrics_timestamp(text), Ok(ms), "{text}");
    }
    let s = only_sample("a 1 1520879607.789\n# EOF\n", OM);
    assert_eq!(s.timestamp_ms, Some(1_520_879_607_789));
}

#[test]
fn openmetrics_timestamps_refuse_nan_inf_and_hexadecimal() {
    for ts in [
        "NaN", "Inf", "-Inf", "0x1p-3", "1z", "1_2", "1.1.1", "", ".",
    ] {
        assert!(parse_openmetrics_timestamp(ts).is_err(), "{ts:?}");
    }
}

// ---- exemplars ----

#[test]
fn exemplar_with_labels_value_and_timestamp() {
    let body = "# TYPE a histogram\na_bucket{le=\"+Inf\"} 3 # {trace_id=\"KOO5S4vxi0o\"} 0.67 1520879607.789\n# EOF\n";
    let s = only_sample(body, OM);
    let ex = s.exemplar.expect("an exemplar");
    assert_eq!(ex.labels.get("trace_id").as_deref(), Some("KOO5S4vxi0o"));
    assert_eq!((ex.value, ex.timestamp_ms), (0.67, Some(1_520_879_607_789)));
    assert_eq!((s.value, s.timestamp_ms), (3.0, None));
}

#[test]
fn exemplar_after_a_sample_timestamp() {
    let body = "# TYPE a counter\na_total 0 123 # {} 0.5\n# EOF\n";
    let s = only_sample(body, OM);
    assert_eq!(s.timestamp_ms, Some(123_000));
    let ex = s.exemplar.expect("an exemplar");
    assert!(ex.labels.is_empty());
    assert_eq!((ex.value, ex.timestamp_ms), (0.5, None));
}

#[test]
fn malformed_exemplars_are_refused() {
    for ex in [
        "#",
        "# {}",
        "#{} 1",
        "# {} 1 ",
        "# {} 1 1 ",
        "# a=\"b\"} 1",
        "# {} 0x1p-3",
    ] {
        let body = format!("# TYPE a counter\na_total 1 {ex}\n# EOF\n");
        error(&body, OM);
    }
}

#[test]
fn exemplar_in_the_text_format_is_an_error() {
    error("a_total 1 # {a=\"b\"} 1\n", TEXT);
}

// ---- metadata ----

#[test]
fn help_text_escapes_in_the_text_format_leave_quotes_alone() {
    let entries = parse("# HELP a x\\\\y\\nz \\\"q\\\"\n", TEXT).unwrap();
    let Entry::Help { metric, text } = &entries[0] else {
        panic!("{entries:?}");
    };
    assert_eq!((*metric, text.as_ref()), ("a", "x\\y\nz \\\"q\\\""));
}

#[test]
fn help_text_escapes_in_openmetrics_include_quotes() {
    let entries = parse("# HELP a x\\\\y\\nz \\\"q\\\" \\t\n# EOF\n", OM).unwrap();
    let Entry::Help { text, .. } = &entries[0] else {
        panic!("{entries:?}");
    };
    assert_eq!(text, "x\\y\nz \"q\" \\t");
}

#[test]
fn help_without_escapes_borrows() {
    let entries = parse("# HELP go_goroutines Number of goroutines.\n", TEXT).unwrap();
    assert!(matches!(
        &entries[0],
        Entry::Help {
            text: Cow::Borrowed("Number of goroutines."),
            ..
        }
    ));
}

#[test]
fn type_lines_name_the_type_and_untyped_is_unknown() {
    let entries = parse(
        "# TYPE a counter\n# TYPE b untyped \n#\tTYPE c summary\n",
        TEXT,
    )
    .unwrap();
    let kinds: Vec<_> = entries
        .iter()
        .map(|e| match e {
            Entry::Type { metric, kind } => (*metric, *kind),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("a", MetricType::Counter),
            ("b", MetricType::Unknown),
            ("c", MetricType::Summary)
        ]
    );
}

#[test]
fn unknown_type_is_an_error_in_both_formats() {
    error("# TYPE a info\n", TEXT);
    error("# TYPE a untyped\n# EOF\n", OM);
}

#[test]
fn unit_lines_are_openmetrics_and_comments_in_the_text_format() {
    let entries = parse("# UNIT a_seconds seconds\n# EOF\n", OM).unwrap();
    assert_eq!(
        entries,
        vec![Entry::Unit {
            metric: "a_seconds",
            unit: "seconds"
        }]
    );
    assert_eq!(
        parse("# UNIT a_seconds seconds\n", TEXT),
        Ok(vec![Entry::Comment])
    );
}

#[test]
fn text_comments_may_hold_any_bytes() {
    let body = b"# \xff\xfe not UTF-8\n#HELP is a comment too\na 1\n";
    let entries: Vec<_> = Parser::new(body, TEXT).collect::<Result<_, _>>().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(matches!(entries[2], Entry::Sample(_)));
}

#[test]
fn invalid_utf8_in_a_label_value_is_refused() {
    let e = Parser::new(b"a 1\nb{x=\"\xff\"} 1\n", TEXT)
        .find_map(Result::err)
        .expect("an error");
    assert_eq!(e.line, 2);
    assert!(e.msg.contains("invalid UTF-8"), "{e}");
}

#[test]
fn openmetrics_refuses_comments_and_blank_lines() {
    error("# a comment\n# EOF\n", OM);
    assert_eq!(error("a 1\n\n# EOF\n", OM).line, 2);
}

// ---- # EOF ----

#[test]
fn openmetrics_requires_eof_and_reports_the_line_after_the_last() {
    let e = error("a 1\nb 2\n", OM);
    assert_eq!(e.line, 3);
    assert!(e.msg.contains("# EOF"), "{e}");
    assert_eq!(error("", OM).line, 1);
}

#[test]
fn openmetrics_refuses_anything_after_eof() {
    assert_eq!(error("a 1\n# EOF\nb 2\n", OM).line, 3);
    error("a 1\n# EOF\n\n", OM);
    error("a 1\n# EOFblah", OM);
}

#[test]
fn eof_without_a_final_newline_is_fine() {
    assert_eq!(samples("a 1\n# EOF", OM).len(), 1);
}

#[test]
fn eof_in_the_text_format_is_a_comment() {
    assert_eq!(samples("a 1\n# EOF\nb 2", TEXT).len(), 2);
}

// ---- errors ----

#[test]
fn error_names_its_line_and_displays_as_line_n() {
    let e = error("# HELP a x\na 1\na{b=\"c\"} one\nd 4\n", TEXT);
    assert_eq!(e.line, 3);
    assert!(
        e.to_string().starts_with("line 3: invalid value in "),
        "{e}"
    );
    assert!(e.msg.contains("one"), "{e}");
}

#[test]
fn semantic_errors_name_the_line_too() {
    let body = "# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\n# EOF\n";
    let e = error(body, OM);
    assert_eq!(e.line, 3);
    assert!(e.msg.contains("decrease"), "{e}");
}

#[test]
fn parser_stops_after_the_first_error() {
    let mut p = Parser::new(b"a 1\nb x\nc 3\n", TEXT);
    assert!(matches!(p.next(), Some(Ok(_))));
    assert!(matches!(p.next(), Some(Err(_))));
    assert_eq!(p.line(), 2);
    assert!(p.next().is_none());
}

#[test]
fn without_semantic_checks_keeps_the_grammar_but_not_the_rules() {
    let body = "# TYPE a histogram\na_bucket{le=\"+Inf\"} 1\na_count 2\n# EOF\n";
    error(body, OM);
    let lenient: Result<Vec<_>, _> = Parser::new(body.as_bytes(), OM)
        .without_semantic_checks()
        .collect();
    assert_eq!(lenient.map(|e| e.len()), Ok(3));
    let bad_grammar = Parser::new(b"a  1\n# EOF\n", OM)
        .without_semantic_checks()
        .find_map(Result::err);
    assert!(bad_grammar.is_some());
}

#[test]
fn openmetrics_refuses_doubled_spaces_and_trailing_spaces() {
    for body in [
        "a  1\n# EOF\n",
        "a 1 \n# EOF\n",
        "a 1  2\n# EOF\n",
        " a 1\n# EOF\n",
    ] {
        error(body, OM);
    }
}

#[test]
fn text_format_skips_blank_lines_and_takes_blanks_around_tokens() {
    let s = samples("\n   \n\ta  1\t 1000 \n\n", TEXT);
    assert_eq!((s[0].value, s[0].timestamp_ms), (1.0, Some(1000)));
}

#[test]
fn metric_name_must_be_followed_by_a_blank_or_a_brace() {
    error("a.b 1\n", TEXT);
    error("a-b 1\n# EOF\n", OM);
}

// ---- OpenMetrics rules (a few; tests/openmetrics_testdata.rs has the suite) ----

#[test]
fn openmetrics_refuses_interleaved_families() {
    let e = error("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n# EOF\n", OM);
    assert!(e.msg.contains("clashes"), "{e}");
    assert_eq!(e.line, 5);
}

#[test]
fn openmetrics_refuses_duplicate_label_names() {
    let e = error("a{x=\"1\",x=\"2\"} 1\n# EOF\n", OM);
    assert!(e.msg.contains("appears twice"), "{e}");
}

#[test]
fn openmetrics_refuses_negative_counters() {
    error("# TYPE a counter\na_total -1\n# EOF\n", OM);
}

#[test]
fn openmetrics_accepts_a_complete_histogram() {
    let body = "# TYPE a histogram\n# UNIT a \n# HELP a h\na_bucket{le=\"0.5\"} 1\na_bucket{le=\"+Inf\"} 3\na_count 3\na_sum 2\na_created 1.5e9\n# EOF\n";
    assert_eq!(samples(body, OM).len(), 5);
}

// ---- formats ----

#[test]
fn content_type_selects_the_format() {
    let om = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    assert_eq!(format_from_content_type(Some(om)), OM);
    assert_eq!(
        format_from_content_type(Some("Application/OpenMetrics-Text")),
        OM
    );
    assert_eq!(
        format_from_content_type(Some("text/plain; version=0.0.4")),
        TEXT
    );
    assert_eq!(format_from_content_type(Some("application/json")), TEXT);
    assert_eq!(format_from_content_type(None), TEXT);
}

// ---- real data ----

/// What Python's `prometheus_client` (0.23) exposes in OpenMetrics: `_created` samples, UNIT,
/// exemplars with float-second timestamps, info, stateset, escapes in HELP and label values.
const CLIENT_PYTHON_OPENMETRICS: &str = r#"# HELP http_requests Requests \"handled\"\nby path
# TYPE http_requests counter
http_requests_total{code="200",path="/"} 10.0 # {trace_id="abc0"} 10.0 1795431379.260744
http_requests_created{code="200",path="/"} 1.7954313792607334e+09
http_requests_total{code="200",path="/api/v1/query"} 11.0 # {trace_id="abc1"} 11.0 1795431379.260766
http_requests_created{code="200",path="/api/v1/query"} 1.7954313792607598e+09
http_requests_total{code="200",path="we\\ird\"\npath"} 12.0 # {trace_id="abc2"} 12.0 1795431379.260779
http_requests_created{code="200",path="we\\ird\"\npath"} 1.7954313792607756e+09
# HELP queue_bytes Bytes queued
# TYPE queue_bytes gauge
# UNIT queue_bytes bytes
queue_bytes 1.5e+09
# HELP request_duration_seconds Latency
# TYPE request_duration_seconds histogram
request_duration_seconds_bucket{handler="q",le="0.005"} 1.0 # {trace_id="x"} 0.001 1795431379.2608678
request_duration_seconds_bucket{handler="q",le="0.1"} 2.0 # {trace_id="x"} 0.05 1795431379.2608757
request_duration_seconds_bucket{handler="q",le="1.0"} 3.0 # {trace_id="x"} 0.5 1795431379.2608817
request_duration_seconds_bucket{handler="q",le="10.0"} 4.0 # {trace_id="x"} 3.0 1795431379.2608888
request_duration_seconds_bucket{handler="q",le="+Inf"} 5.0 # {trace_id="x"} 30.0 1795431379.2608967
request_duration_seconds_count{handler="q"} 5.0
request_duration_seconds_sum{handler="q"} 33.551
request_duration_seconds_created{handler="q"} 1.7954313792608352e+09
request_duration_seconds_bucket{handler="w",le="0.005"} 0.0
request_duration_seconds_bucket{handler="w",le="0.1"} 0.0
request_duration_seconds_bucket{handler="w",le="1.0"} 1.0
request_duration_seconds_bucket{handler="w",le="10.0"} 1.0
request_duration_seconds_bucket{handler="w",le="+Inf"} 1.0
request_duration_seconds_count{handler="w"} 1.0
request_duration_seconds_sum{handler="w"} 0.2
request_duration_seconds_created{handler="w"} 1.795431379260913e+09
# HELP payload_size_bytes Payload sizes
# TYPE payload_size_bytes summary
payload_size_bytes_count 1.0
payload_size_bytes_sum 512.0
payload_size_bytes_created 1.7954313792609384e+09
# HELP build Build info
# TYPE build info
build_info{revision="abc",version="1.2.3"} 1.0
# HELP task_state State
# TYPE task_state stateset
task_state{task_state="starting"} 0.0
task_state{task_state="running"} 1.0
task_state{task_state="stopped"} 0.0
# EOF
"#;

#[test]
fn client_python_openmetrics_exposition_passes_every_check() {
    let entries = parse(CLIENT_PYTHON_OPENMETRICS, OM).expect("client_python exposition");
    let samples: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Sample(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(samples.len(), 30);
    let weird = samples
        .iter()
        .find(|s| s.name == "http_requests_total" && s.value == 12.0)
        .expect("the sample with escapes");
    assert_eq!(weird.labels.get("path").as_deref(), Some("we\\ird\"\npath"));
    let exemplar = weird.exemplar.as_ref().expect("an exemplar");
    assert_eq!(exemplar.labels.get("trace_id").as_deref(), Some("abc2"));
    assert_eq!(exemplar.timestamp_ms, Some(1_795_431_379_260));
    assert!(entries.contains(&Entry::Help {
        metric: "http_requests",
        text: Cow::Borrowed("Requests \"handled\"\nby path"),
    }));
}

#[test]
fn node_exporter_exposition_parses_completely() {
    let entries = parse(NODE_EXPORTER, TEXT).expect("node_exporter fixture");
    let sample_lines = NODE_EXPORTER
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let parsed: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Sample(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(parsed.len(), sample_lines);
    let types = entries
        .iter()
        .filter(|e| matches!(e, Entry::Type { .. }))
        .count();
    let helps = entries
        .iter()
        .filter(|e| matches!(e, Entry::Help { .. }))
        .count();
    assert_eq!(types, NODE_EXPORTER.matches("\n# TYPE ").count());
    assert_eq!(helps, NODE_EXPORTER.matches("# HELP ").count());
    let goroutines = parsed
        .iter()
        .find(|s| s.name == "go_goroutines")
        .expect("go_goroutines");
    assert!(goroutines.value >= 1.0 && goroutines.labels.is_empty());
    let build = parsed
        .iter()
        .find(|s| s.name == "node_exporter_build_info")
        .expect("build info");
    assert_eq!(build.labels.get("version").as_deref(), Some("1.5.0"));
    // Every label pair the parser counted, the iterator yields, borrowed (node_exporter
    // escapes nothing here).
    for s in &parsed {
        assert_eq!(s.labels.iter().count(), s.labels.len(), "{}", s.series);
        assert!(s.labels.iter().all(|(_, v)| matches!(v, Cow::Borrowed(_))));
    }
}

// ---- next_with: the scrape cache's fast path ----

/// (series text, value bits, timestamp) of every sample, by the full parse.
fn full_samples(body: &str, format: Format) -> Vec<(String, u64, Option<i64>)> {
    Parser::new(body.as_bytes(), format)
        .without_semantic_checks()
        .map(|e| e.unwrap_or_else(|e| panic!("should parse: {e}")))
        .filter_map(|e| match e {
            Entry::Sample(s) => Some((s.series.to_string(), s.value.to_bits(), s.timestamp_ms)),
            _ => None,
        })
        .collect()
}

/// The same, through `next_with` recognising every text of `known`.
fn known_samples(
    body: &str,
    format: Format,
    known: &std::collections::HashSet<String>,
) -> (Vec<(String, u64, Option<i64>)>, usize) {
    let mut parser = Parser::new(body.as_bytes(), format).without_semantic_checks();
    let (mut out, mut fast) = (Vec::new(), 0);
    while let Some(item) = parser.next_with(|t| known.get(t).cloned()) {
        match item.unwrap_or_else(|e| panic!("should parse: {e}")) {
            Item::Known {
                key,
                value,
                timestamp_ms,
            } => {
                fast += 1;
                out.push((key, value.to_bits(), timestamp_ms));
            }
            Item::Sample(s) => out.push((s.series.to_string(), s.value.to_bits(), s.timestamp_ms)),
        }
    }
    (out, fast)
}

#[test]
fn known_series_give_the_same_samples_as_the_full_parse() {
    let om = "# TYPE a counter\na_total{x=\"1\"} 1.5 1700000000.123\na_total{x=\"2\"} 2 # {t=\"q\"} 1\nb 3\n# EOF\n";
    let text = "a{x=\"1\",} 1 1700000000123\n  b\t7\nc{y=\"}\"} -Inf\nd { z = \"w\" } NaN\n";
    for (body, format) in [
        (NODE_EXPORTER, Format::PrometheusText),
        (text, Format::PrometheusText),
        (om, Format::OpenMetrics),
    ] {
        let full = full_samples(body, format);
        let known = full.iter().map(|(t, _, _)| t.clone()).collect();
        let (fast_path, fast) = known_samples(body, format, &known);
        assert_eq!(fast_path, full, "{body:?}");
        assert!(fast > 0);
    }
}

#[test]
fn next_with_offers_text_up_to_the_first_closing_brace() {
    let body = "m{a=\"}\",b=\"1\"} 1\n";
    let mut offered = Vec::new();
    let mut parser = Parser::new(body.as_bytes(), Format::PrometheusText);
    let item = parser.next_with(|t| {
        offered.push(t.to_string());
        None::<()>
    });
    assert_eq!(offered, vec!["m{a=\"}"]);
    match item {
        Some(Ok(Item::Sample(s))) => assert_eq!(s.series, "m{a=\"}\",b=\"1\"}"),
        other => panic!("expected the full parse, got {other:?}"),
    }
}

#[test]
fn a_known_series_with_a_bad_value_fails_as_the_full_parse_does() {
    let body = "m{a=\"1\"} 1x\n";
    let expected = error(body, Format::PrometheusText);
    let mut parser = Parser::new(body.as_bytes(), Format::PrometheusText);
    match parser.next_with(|_| Some(())) {
        Some(Err(e)) => assert_eq!(e.to_string(), expected.to_string()),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn with_semantic_checks_every_sample_takes_the_full_path() {
    let body = "# TYPE a gauge\na 1\n# EOF\n";
    let mut parser = Parser::new(body.as_bytes(), Format::OpenMetrics);
    let mut offered = 0;
    while let Some(item) = parser.next_with(|_| {
        offered += 1;
        Some(())
    }) {
        assert!(matches!(item, Ok(Item::Sample(_))));
    }
    assert_eq!(offered, 0);
}
