//! The validator, one behaviour per test, on hand-built wire bytes. Every test also asks prost, so
//! a rejection here is a rejection there and an acceptance carries the same counts.

use prost::Message;

use super::*;

// ---- wire-format building blocks, so each test spells out the bytes it means ----

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn key(number: u32, wire: u8) -> Vec<u8> {
    varint((u64::from(number) << 3) | u64::from(wire))
}

fn len_field(number: u32, payload: &[u8]) -> Vec<u8> {
    [
        key(number, 2),
        varint(payload.len() as u64),
        payload.to_vec(),
    ]
    .concat()
}

fn varint_field(number: u32, v: u64) -> Vec<u8> {
    [key(number, 0), varint(v)].concat()
}

fn double_field(number: u32, v: f64) -> Vec<u8> {
    [key(number, 1), v.to_le_bytes().to_vec()].concat()
}

fn label(name: &[u8], value: &[u8]) -> Vec<u8> {
    [len_field(1, name), len_field(2, value)].concat()
}

fn sample(value: f64, timestamp: u64) -> Vec<u8> {
    [double_field(1, value), varint_field(2, timestamp)].concat()
}

/// A request holding one series with the given `TimeSeries` bytes.
fn request_with_series(series: &[u8]) -> Vec<u8> {
    len_field(1, series)
}

/// A request holding one series that holds one histogram with the given bytes.
fn request_with_histogram(histogram: &[u8]) -> Vec<u8> {
    request_with_series(&len_field(4, histogram))
}

/// Asserts both the validator and prost accept `bytes` and agree on the counts.
#[track_caller]
fn accepted(bytes: &[u8]) -> WriteSummary {
    let summary = validate_write_request(bytes).expect("validator must accept");
    let decoded = WriteRequest::decode(bytes).expect("prost must accept");
    assert_eq!(summary, WriteSummary::of(&decoded));
    summary
}

/// Asserts both the validator and prost refuse `bytes`; returns the validator's error.
#[track_caller]
fn rejected(bytes: &[u8]) -> WireError {
    let err = validate_write_request(bytes).expect_err("validator must refuse");
    assert!(
        WriteRequest::decode(bytes).is_err(),
        "prost accepts what the validator refused with: {err}"
    );
    err
}

// ---- acceptance and counting ----

#[test]
fn empty_body_is_an_empty_request() {
    assert_eq!(accepted(&[]), WriteSummary::default());
}

#[test]
fn counts_series_samples_exemplars_histograms_and_metadata() {
    let series = [
        len_field(1, &label(b"__name__", b"up")),
        len_field(2, &sample(1.0, 1000)),
        len_field(2, &sample(0.0, 2000)),
        len_field(3, &[]),
        len_field(4, &[]),
    ]
    .concat();
    let req = [
        request_with_series(&series),
        request_with_series(&series),
        len_field(3, &len_field(2, b"up")),
    ]
    .concat();
    assert_eq!(
        accepted(&req),
        WriteSummary {
            series: 2,
            samples: 4,
            exemplars: 2,
            histograms: 2,
            metadata: 1,
        }
    );
}

#[test]
fn non_ascii_utf8_labels_are_accepted() {
    let series = len_field(1, &label("größe".as_bytes(), "😀 ok".as_bytes()));
    assert_eq!(accepted(&request_with_series(&series)).series, 1);
}

/// Ten ASCII labels as one series' labels, the `i`-th value replaced by `value`.
fn run_of_labels_with(i: usize, value: &[u8]) -> Vec<u8> {
    (0..10)
        .map(|j| {
            let name = format!("label_{j}");
            let v = if j == i {
                value.to_vec()
            } else {
                format!("value-{j}").into_bytes()
            };
            len_field(1, &label(name.as_bytes(), &v))
        })
        .collect::<Vec<_>>()
        .concat()
}

#[test]
fn a_run_of_ascii_labels_then_a_sample_is_accepted() {
    let series = [run_of_labels_with(0, b"a"), len_field(2, &sample(1.0, 5))].concat();
    let summary = accepted(&request_with_series(&series));
    assert_eq!((summary.series, summary.samples), (1, 1));
}

#[test]
fn a_non_ascii_label_late_in_a_run_is_accepted() {
    let series = run_of_labels_with(7, "größe 😀".as_bytes());
    assert_eq!(accepted(&request_with_series(&series)).series, 1);
}

#[test]
fn invalid_utf8_in_the_middle_of_a_run_is_rejected_at_its_offset() {
    let series = run_of_labels_with(5, &[b'a', 0xff]);
    let req = request_with_series(&series);
    let at = req.windows(2).position(|w| w == [b'a', 0xff]).unwrap();
    assert_eq!(
        rejected(&req),
        WireError::InvalidUtf8 {
            offset: at,
            field: "Label.value"
        }
    );
}

#[test]
fn a_label_whose_inner_lengths_disagree_with_its_own_is_judged_field_by_field() {
    // `0a 07 0a 01 n 12 01 v 00`: a trailing byte after the value, field number 0 there.
    let bad = [0x0a, 0x07, 0x0a, 0x01, b'n', 0x12, 0x01, b'v', 0x00];
    let series = [run_of_labels_with(0, b"a"), bad.to_vec()].concat();
    assert!(matches!(
        rejected(&request_with_series(&series)),
        WireError::InvalidFieldNumber { .. }
    ));
}

#[test]
fn label_longer_than_127_bytes_is_accepted() {
    let long = vec![b'v'; 300];
    let series = len_field(1, &label(b"long", &long));
    assert_eq!(accepted(&request_with_series(&series)).series, 1);
}

#[test]
fn ten_byte_varint_of_minus_one_is_accepted() {
    // int64 -1 is the 10-byte varint ff ff ff ff ff ff ff ff ff 01.
    let series = len_field(2, &sample(1.0, u64::MAX));
    assert_eq!(varint(u64::MAX).len(), 10);
    assert_eq!(accepted(&request_with_series(&series)).samples, 1);
}

#[test]
fn overlong_varint_encoding_is_accepted_as_prost_does() {
    // 1000 padded to 5 bytes: e8 87 80 80 00.
    let series = len_field(
        2,
        &[&key(2, 0)[..], &[0xe8, 0x87, 0x80, 0x80, 0x00]].concat(),
    );
    assert_eq!(accepted(&request_with_series(&series)).samples, 1);
}

#[test]
fn unknown_fields_of_every_valid_wire_type_are_skipped_at_every_level() {
    let unknown = [
        varint_field(99, 5),
        double_field(98, 1.5),
        len_field(97, b"future"),
        [key(96, 5), vec![1, 2, 3, 4]].concat(),
        len_field(2_000_000, b"large field number"),
    ]
    .concat();
    let with_unknown = |known: &[u8]| [&unknown[..], known, &unknown[..]].concat();
    let histogram = with_unknown(&len_field(11, &with_unknown(&varint_field(2, 1))));
    let exemplar = with_unknown(&len_field(1, &with_unknown(&label(b"trace_id", b"1"))));
    let series = with_unknown(
        &[
            len_field(1, &with_unknown(&label(b"a", b"b"))),
            len_field(2, &with_unknown(&sample(1.0, 1))),
            len_field(3, &exemplar),
            len_field(4, &histogram),
        ]
        .concat(),
    );
    let metadata = with_unknown(&len_field(2, b"up"));
    let req = with_unknown(&[len_field(1, &series), len_field(3, &metadata)].concat());
    assert_eq!(
        accepted(&req),
        WriteSummary {
            series: 1,
            samples: 1,
            exemplars: 1,
            histograms: 1,
            metadata: 1,
        }
    );
}

#[test]
fn reserved_field_2_of_write_request_is_skipped() {
    // Cortex once sent `source` as field 2; the upstream schema reserves it.
    assert_eq!(accepted(&varint_field(2, 1)), WriteSummary::default());
}

#[test]
fn unpacked_repeated_histogram_fields_are_accepted() {
    let histogram = [
        varint_field(12, 2),
        varint_field(12, 1),
        double_field(13, 1.0),
        double_field(16, 2.0),
    ]
    .concat();
    assert_eq!(accepted(&request_with_histogram(&histogram)).histograms, 1);
}

#[test]
fn empty_packed_runs_are_accepted() {
    let histogram = [len_field(9, &[]), len_field(10, &[])].concat();
    assert_eq!(accepted(&request_with_histogram(&histogram)).histograms, 1);
}

// ---- framing errors ----

#[test]
fn length_past_the_end_is_rejected() {
    let err = rejected(&[0x0a, 0x10, 1, 2, 3]);
    assert_eq!(
        err,
        WireError::LengthOutOfBounds {
            offset: 1,
            len: 16,
            available: 3
        }
    );
}

#[test]
fn truncated_label_is_rejected() {
    // request(0a 05) > series(0a 03) > label(0a 05 'a'): the name claims 5 bytes, has 1.
    let req = [0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x05, b'a'];
    assert_eq!(
        rejected(&req),
        WireError::LengthOutOfBounds {
            offset: 5,
            len: 5,
            available: 1
        }
    );
}

#[test]
fn truncated_body_is_rejected_at_every_cut() {
    let series = [
        len_field(1, &label(b"__name__", b"http_requests_total")),
        len_field(2, &sample(1.0, 1_700_000_000_000)),
    ]
    .concat();
    let req = request_with_series(&series);
    for cut in 1..req.len() {
        rejected(&req[..cut]);
    }
}

#[test]
fn sample_value_cut_inside_its_message_is_truncated() {
    // The sample message is 5 bytes: key 09 and 4 of the double's 8 bytes.
    let req = request_with_series(&len_field(2, &[0x09, 0, 0, 0, 0]));
    assert_eq!(rejected(&req), WireError::Truncated { offset: 5 });
}

#[test]
fn unterminated_varint_at_the_end_is_truncated() {
    let req = request_with_series(&len_field(2, &[0x10, 0x80, 0x80]));
    assert_eq!(rejected(&req), WireError::Truncated { offset: 5 });
}

#[test]
fn varint_longer_than_ten_bytes_is_rejected() {
    let mut ts = vec![0x10];
    ts.extend([0x80; 10]);
    ts.push(0x00);
    let req = request_with_series(&len_field(2, &ts));
    assert_eq!(rejected(&req), WireError::BadVarint { offset: 5 });
}

#[test]
fn varint_overflowing_64_bits_is_rejected() {
    let mut ts = vec![0x10];
    ts.extend([0xff; 9]);
    ts.push(0x02);
    let req = request_with_series(&len_field(2, &ts));
    assert_eq!(rejected(&req), WireError::BadVarint { offset: 5 });
}

#[test]
fn field_number_zero_is_rejected() {
    assert_eq!(
        rejected(&[0x02, 0x00]),
        WireError::InvalidFieldNumber { offset: 0 }
    );
}

#[test]
fn field_key_above_32_bits_is_rejected() {
    // 2^32 + 2: field number 2^29, wire type 2; prost refuses keys above u32::MAX.
    let req = [varint((1 << 32) | 2), vec![0]].concat();
    assert_eq!(rejected(&req), WireError::InvalidFieldNumber { offset: 0 });
}

#[test]
fn group_wire_types_are_rejected_even_in_unknown_fields() {
    // An empty group in unknown field 9: prost skips it, the validator refuses it. This is the one
    // place the validator is stricter than prost; remote-write senders never emit groups.
    let start_group = [key(9, 3), key(9, 4)].concat();
    assert!(WriteRequest::decode(&start_group[..]).is_ok());
    assert_eq!(
        validate_write_request(&start_group),
        Err(WireError::UnsupportedWireType {
            offset: 0,
            wire_type: 3
        })
    );
    assert_eq!(
        rejected(&key(9, 4)),
        WireError::UnsupportedWireType {
            offset: 0,
            wire_type: 4
        }
    );
}

#[test]
fn wire_types_6_and_7_are_rejected() {
    for wire_type in [6, 7] {
        let req = request_with_series(&key(20, wire_type));
        assert_eq!(
            rejected(&req),
            WireError::UnsupportedWireType {
                offset: 2,
                wire_type
            }
        );
    }
}

#[test]
fn nested_message_ending_inside_a_field_is_rejected() {
    // The label claims 3 bytes; its name field (0a 02 'a' 'b') needs 4. The request itself is
    // long enough, so only the label's own bound catches it.
    let req = [0x0a, 0x07, 0x0a, 0x03, 0x0a, 0x02, b'a', b'b', 0x00];
    assert!(matches!(
        rejected(&req),
        WireError::LengthOutOfBounds { offset: 5, .. }
    ));
}

// ---- wrong wire types for known fields ----

#[test]
fn label_name_sent_as_varint_is_rejected() {
    let req = request_with_series(&len_field(1, &varint_field(1, 7)));
    assert_eq!(
        rejected(&req),
        WireError::WrongWireType {
            offset: 4,
            field: "Label.name",
            expected: "length-delimited",
            found: 0
        }
    );
}

#[test]
fn timeseries_sent_as_fixed64_is_rejected() {
    let req = double_field(1, 1.0);
    assert!(matches!(
        rejected(&req),
        WireError::WrongWireType {
            field: "WriteRequest.timeseries",
            found: 1,
            ..
        }
    ));
}

#[test]
fn sample_value_sent_as_fixed32_is_rejected() {
    let req = request_with_series(&len_field(2, &[&key(1, 5)[..], &[0, 0, 0, 0]].concat()));
    assert!(matches!(
        rejected(&req),
        WireError::WrongWireType {
            field: "Sample.value",
            expected: "fixed64",
            ..
        }
    ));
}

#[test]
fn packed_form_of_a_singular_field_is_rejected() {
    let req = request_with_series(&len_field(2, &len_field(2, &varint(1000))));
    assert!(matches!(
        rejected(&req),
        WireError::WrongWireType {
            field: "Sample.timestamp",
            ..
        }
    ));
}

#[test]
fn histogram_deltas_sent_as_fixed64_are_rejected() {
    let req = request_with_histogram(&double_field(12, 1.0));
    assert!(matches!(
        rejected(&req),
        WireError::WrongWireType {
            field: "Histogram.positive_deltas",
            expected: "varint or length-delimited",
            ..
        }
    ));
}

#[test]
fn histogram_count_oneof_with_wrong_wire_type_is_rejected() {
    let req = request_with_histogram(&len_field(1, &[1]));
    assert!(matches!(
        rejected(&req),
        WireError::WrongWireType {
            field: "Histogram.count_int",
            ..
        }
    ));
}

#[test]
fn packed_doubles_must_be_a_multiple_of_8_bytes() {
    let req = request_with_histogram(&len_field(13, &[0; 12]));
    assert_eq!(
        rejected(&req),
        WireError::PackedLength {
            offset: 5,
            field: "Histogram.positive_counts",
            len: 12
        }
    );
}

#[test]
fn packed_varint_run_cut_mid_varint_is_rejected() {
    let req = request_with_histogram(&len_field(9, &[0x02, 0x80]));
    assert_eq!(rejected(&req), WireError::Truncated { offset: 7 });
}

// ---- strings ----

#[test]
fn invalid_utf8_label_value_is_rejected() {
    let req = request_with_series(&len_field(1, &label(b"job", &[b'a', 0xff])));
    assert_eq!(
        rejected(&req),
        WireError::InvalidUtf8 {
            offset: 11,
            field: "Label.value"
        }
    );
}

#[test]
fn invalid_utf8_label_name_is_rejected_even_when_long() {
    let mut name = vec![b'n'; 200];
    name.push(0xc3); // a lone lead byte
    let req = request_with_series(&len_field(1, &label(&name, b"v")));
    assert!(matches!(
        rejected(&req),
        WireError::InvalidUtf8 {
            field: "Label.name",
            ..
        }
    ));
}

#[test]
fn invalid_utf8_in_exemplar_label_is_rejected() {
    let exemplar = len_field(1, &label(b"trace_id", &[0xed, 0xa0, 0x80])); // a surrogate
    let req = request_with_series(&len_field(3, &exemplar));
    assert!(matches!(
        rejected(&req),
        WireError::InvalidUtf8 {
            field: "Label.value",
            ..
        }
    ));
}

#[test]
fn invalid_utf8_metadata_help_is_rejected() {
    let req = len_field(3, &len_field(4, &[0xff]));
    assert_eq!(
        rejected(&req),
        WireError::InvalidUtf8 {
            offset: 4,
            field: "MetricMetadata.help"
        }
    );
}

// ---- messages ----

#[test]
fn error_messages_are_one_line_and_name_the_offset() {
    let err = rejected(&request_with_series(&len_field(1, &label(b"job", &[0xff]))));
    let message = err.to_string();
    assert_eq!(
        message, "field Label.value at byte 11 is not valid UTF-8",
        "{message}"
    );
    assert_eq!(err.reason(), "utf8");
    assert!(!err.is_too_large());
    assert_eq!(
        WireError::Truncated { offset: 42 }.to_string(),
        "truncated protobuf: the value at byte 42 runs past the end of its message"
    );
}

#[test]
fn sample_fast_path_agrees_with_prost_for_every_timestamp_length() {
    let mut timestamps: Vec<u64> = (0..64).map(|k| 1u64 << k).collect();
    timestamps.extend([0, 127, 1_700_000_000_000, u64::MAX, (-15_000i64) as u64]);
    for ts in timestamps {
        let encoded = varint(ts);
        // The timestamp as encoded, then with each byte's continuation bit flipped, so varints
        // end early, late, or never.
        let mut variants = vec![encoded.clone()];
        for i in 0..encoded.len() {
            let mut damaged = encoded.clone();
            damaged[i] ^= 0x80;
            variants.push(damaged);
        }
        for timestamp in variants {
            let sample = [&double_field(1, 2.5)[..], &key(2, 0), &timestamp].concat();
            let req = request_with_series(&len_field(2, &sample));
            match (validate_write_request(&req), WriteRequest::decode(&req[..])) {
                (Ok(summary), Ok(decoded)) => assert_eq!(summary, WriteSummary::of(&decoded)),
                (Err(_), Err(_)) => {}
                (ours, prost) => panic!("timestamp bytes {timestamp:02x?}: {ours:?} vs {prost:?}"),
            }
        }
    }
}
