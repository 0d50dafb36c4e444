//! The OTLP/HTTP bodies: requests in, responses and error statuses out, in protobuf or in the
//! OTLP JSON mapping (lowerCamelCase names, hex trace and span ids, 64-bit integers as strings,
//! enums as integers). The messages are `opentelemetry-proto`'s prost types with their serde
//! derives; no decoder is written here.

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;

/// How a body is encoded (from its `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Format {
    /// The format a `Content-Type` names, if OTLP/HTTP has it.
    pub fn from_content_type(ct: &str) -> Option<Format> {
        let mime = ct.split(';').next().unwrap_or("").trim();
        if mime.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Format::Protobuf)
        } else if mime.eq_ignore_ascii_case("application/json") {
            Some(Format::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of answers in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// A body that is not an `ExportMetricsServiceRequest`.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The protobuf body does not decode (truncated, wrong wire types, bad UTF-8 in strings).
    #[error("not an OTLP ExportMetricsServiceRequest (protobuf): {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The JSON body does not follow the OTLP JSON mapping.
    #[error("not an OTLP ExportMetricsServiceRequest (JSON): {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes a (decompressed) request body.
pub fn decode_request(
    body: &[u8],
    format: Format,
) -> Result<ExportMetricsServiceRequest, DecodeError> {
    Ok(match format {
        Format::Protobuf => ExportMetricsServiceRequest::decode(body)?,
        Format::Json => serde_json::from_slice(body)?,
    })
}

/// The 200 answer: an `ExportMetricsServiceResponse`, with `partial_success` set when some data
/// points were refused (OTLP: "the server MUST set partial_success when it accepts only part").
pub fn encode_response(rejected_points: u64, message: &str, format: Format) -> Vec<u8> {
    let partial_success =
        (rejected_points > 0 || !message.is_empty()).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(rejected_points).unwrap_or(i64::MAX),
            error_message: message.to_string(),
        });
    let response = ExportMetricsServiceResponse { partial_success };
    match format {
        Format::Protobuf => response.encode_to_vec(),
        // A full success is `{}` (no `"partialSuccess": null`); serialising a struct of strings
        // and integers into a Vec cannot fail.
        Format::Json if response.partial_success.is_none() => b"{}".to_vec(),
        Format::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// `google.rpc.Status` (google/rpc/status.proto), the body of OTLP/HTTP error answers. Only
/// `message` is set: OTLP/HTTP does not use `code`, and promrelay has no `details` to give.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct Status {
    #[prost(int32, tag = "1")]
    #[serde(skip_serializing_if = "is_zero")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// The body of a 4xx/5xx answer: a `Status` with the reason, in the request's format.
pub fn encode_status(message: &str, format: Format) -> Vec<u8> {
    let status = Status {
        code: 0,
        message: message.to_string(),
    };
    match format {
        Format::Protobuf => status.encode_to_vec(),
        Format::Json => serde_json::to_vec(&status).unwrap_or_else(|_| b"{}".to_vec()),
    }
}
