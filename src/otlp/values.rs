//! OTLP values as Prometheus label values: attribute values as text (as OpenTelemetry's
//! `pcommon.Value.AsString` writes them) and exemplars (`getPromExemplars` in Prometheus'
//! translator).

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Exemplar as OtelExemplar, exemplar};

use super::names::GoFloat;
use super::translate::millis;
use crate::prompb::{Exemplar, Label};

/// Exemplar attributes are kept only while all labels together stay within this many runes.
const MAX_EXEMPLAR_RUNES: usize = 128;

/// An attribute value as text, as OpenTelemetry's `pcommon.Value.AsString` writes it.
pub(super) fn any_value_string(v: Option<&AnyValue>) -> String {
    let Some(value) = v.and_then(|v| v.value.as_ref()) else {
        return String::new();
    };
    match value {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => json_number(*d),
        any_value::Value::BytesValue(b) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b)
        }
        any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_) => {
            any_value_json(value).to_string()
        }
        // A reference into a dictionary that OTLP metrics requests do not carry.
        any_value::Value::StringValueStrindex(_) => String::new(),
    }
}

/// A double as JavaScript (and `pcommon`) writes it: plain digits between 1e-6 and 1e21.
fn json_number(d: f64) -> String {
    if d.is_nan() || d.is_infinite() {
        return format!("json: unsupported value: {}", GoFloat(d));
    }
    let a = d.abs();
    if a == 0.0 || (1e-6..1e21).contains(&a) {
        format!("{d}")
    } else {
        let s = format!("{d:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    }
}

fn any_value_json(v: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        any_value::Value::StringValue(s) => J::String(s.clone()),
        any_value::Value::BoolValue(b) => J::Bool(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(d) => {
            serde_json::Number::from_f64(*d).map_or(J::Null, J::Number)
        }
        any_value::Value::BytesValue(_) | any_value::Value::StringValueStrindex(_) => {
            J::String(any_value_string(Some(&AnyValue {
                value: Some(v.clone()),
            })))
        }
        any_value::Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|x| x.value.as_ref().map_or(J::Null, any_value_json))
                .collect(),
        ),
        any_value::Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|x| {
                    let val = x
                        .value
                        .as_ref()
                        .and_then(|v| v.value.as_ref())
                        .map_or(J::Null, any_value_json);
                    (x.key.clone(), val)
                })
                .collect(),
        ),
    }
}

/// `getPromExemplars`: value, millisecond time, `trace_id`/`span_id` in hex, and the filtered
/// attributes when everything fits in [`MAX_EXEMPLAR_RUNES`].
pub(super) fn exemplar(e: &OtelExemplar) -> Exemplar {
    let value = match e.value {
        Some(exemplar::Value::AsDouble(d)) => d,
        Some(exemplar::Value::AsInt(i)) => i as f64,
        None => 0.0,
    };
    let mut labels = Vec::new();
    let mut runes = 0;
    if !e.trace_id.is_empty() && e.trace_id.iter().any(|b| *b != 0) {
        let v = hex(&e.trace_id);
        runes += "trace_id".len() + v.len();
        labels.push(Label::new("trace_id", v));
    }
    if !e.span_id.is_empty() && e.span_id.iter().any(|b| *b != 0) {
        let v = hex(&e.span_id);
        runes += "span_id".len() + v.len();
        labels.push(Label::new("span_id", v));
    }
    let attrs: Vec<(String, String)> = e
        .filtered_attributes
        .iter()
        .map(|kv| (kv.key.clone(), any_value_string(kv.value.as_ref())))
        .collect();
    runes += attrs
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum::<usize>();
    if runes <= MAX_EXEMPLAR_RUNES {
        labels.extend(attrs.into_iter().map(|(k, v)| Label::new(k, v)));
    }
    labels.sort();
    Exemplar {
        labels,
        value,
        timestamp: millis(e.time_unix_nano),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
