//! Extractors that turn raw HTTP into checked values, answering in problem+json when they
//! cannot: the JSON body (content type, size, syntax, shape, with the failing field named),
//! the order id in the path, and the command headers.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use domain::{OrderId, ValidationError};

use crate::error::ApiError;

/// Request bodies above this are refused with 413 before they are read whole.
pub const BODY_LIMIT_BYTES: usize = 256 * 1024;

/// A JSON body parsed into `T`, keeping the raw bytes (idempotency keys fingerprint them).
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let raw = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit_bytes: BODY_LIMIT_BYTES }
            } else {
                ApiError::Malformed { detail: rejection.body_text(), field: None }
            }
        })?;
        let value = parse_json(&raw)?;
        Ok(Self { value, raw })
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5
            && essence[..essence.len() - 5].to_ascii_lowercase().starts_with("application/")
            && essence.to_ascii_lowercase().ends_with("+json"))
}

/// Syntax errors are `malformed_request` (400); well-formed JSON of the wrong shape (a
/// missing or unknown field, a wrong type, a number out of range) is `validation_failed`
/// (422) naming the field.
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    // serde would also read a struct from a positional array; only objects are the API.
    match raw.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(ApiError::validation(ValidationError::new("body", "must be a JSON object")))
        }
        _ => {
            return Err(ApiError::Malformed {
                detail: "invalid JSON: expected an object".to_owned(),
                field: None,
            })
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = without_position(&inner.to_string());
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::validation(ValidationError::new(field_of(&path, &message), message))
            }
            _ => ApiError::Malformed { detail: format!("invalid JSON: {message}"), field: None },
        }
    })?;
    deserializer.end().map_err(|error| ApiError::Malformed {
        detail: format!("invalid JSON: {}", without_position(&error.to_string())),
        field: None,
    })?;
    Ok(value)
}

/// serde_json appends " at line 1 column 42"; the field name says more to a client.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// The path serde reports for a missing or unknown field is its parent; the field itself
/// is in the message between backticks.
pub(crate) fn field_of(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let parent = if path == "." { "" } else { path };
    // For unknown fields serde already descended into the offending key.
    if let Some(name) = named {
        if parent == name || parent.ends_with(&format!(".{name}")) {
            return parent.to_owned();
        }
    }
    match named {
        Some(name) if parent.is_empty() => name.to_owned(),
        Some(name) => format!("{parent}.{name}"),
        None if parent.is_empty() => "body".to_owned(),
        None => parent.to_owned(),
    }
}

/// The `{id}` segment of `/v1/orders/{id}/…`, parsed as an order id.
pub struct OrderIdPath(pub OrderId);

/// A path segment as text; one that is not valid UTF-8 once decoded (`%FF`) is 400
/// `malformed_request` in problem+json, like every other refusal.
pub struct PathText(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|rejection| {
                ApiError::Malformed { detail: rejection.body_text(), field: None }
            })?;
        Ok(Self(text))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OrderIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|rejection| {
                ApiError::Malformed { detail: rejection.body_text(), field: None }
            })?;
        OrderId::parse(&raw).map(Self).map_err(ApiError::validation)
    }
}

/// The longest Idempotency-Key accepted.
const IDEMPOTENCY_KEY_MAX: usize = 255;
/// Visible ASCII, as a schema pattern (lengths are stated apart).
const VISIBLE_ASCII: &str = "^[!-~]*$";

/// The headers every command honours.
#[derive(Clone, Debug, Default)]
pub struct CommandHeaders {
    pub idempotency_key: Option<String>,
    /// `If-Match: "<stream_version>"`: the command applies only at that version.
    pub expected_version: Option<u32>,
    /// Where the request's span is in the trace its `traceparent` names (or a new one),
    /// as the trace layer found it ([`crate::trace`]): what its events record.
    pub trace: Option<trace_context::TraceParent>,
}

impl utoipa::IntoParams for CommandHeaders {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        // Each header's schema states what its parser below (or the correlation layer)
        // accepts, from the same limits.
        let header = |name: &str, description: &str, example: &str, max: usize, pattern: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .example(Some(serde_json::Value::from(example)))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(max))
                        .pattern(Some(pattern)),
                ))
                .build()
        };
        vec![
            header(
                "Idempotency-Key",
                "1 to 255 visible ASCII characters. A retry with the same key and the same \
                 request gets the first response again (`Idempotent-Replayed: true`); the same \
                 key with another request is 422 `idempotency_key_reused`.",
                "checkout-7f3a-capture-1",
                IDEMPOTENCY_KEY_MAX,
                VISIBLE_ASCII,
            ),
            header(
                "If-Match",
                "`\"<stream_version>\"`: apply only if the order is still at that version, \
                 else 409 `version_conflict`.",
                "\"3\"",
                11,
                "^(\"[0-9]{1,9}\"|[0-9]{1,9})$",
            ),
            header(
                "X-Correlation-Id",
                "Carried into the events' metadata, the Kafka headers and every log line; \
                 minted when absent and echoed on the response.",
                "req-2026-11-23-0001",
                crate::limits::CORRELATION_ID_MAX,
                VISIBLE_ASCII,
            ),
            // No schema constraints: a value that is not a valid trace context is ignored
            // (W3C Trace Context), never refused, so no value is wrong to send.
            ParameterBuilder::new()
                .name("traceparent")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "W3C Trace Context: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`. \
                     The request joins that trace (an invalid value is ignored and a new trace \
                     started); the events record it in `metadata.traceparent`, the bus carries \
                     it as a `traceparent` header, and the response names the request's span \
                     in `traceresponse`.",
                ))
                .example(Some(serde_json::Value::from(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        ]
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CommandHeaders {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let idempotency_key = header_text(&parts.headers, "idempotency-key")?
            .map(|key| {
                if (1..=IDEMPOTENCY_KEY_MAX).contains(&key.len())
                    && key.bytes().all(|b| b.is_ascii_graphic())
                {
                    Ok(key.to_owned())
                } else {
                    Err(malformed_header(
                        "idempotency-key",
                        &format!("must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"),
                    ))
                }
            })
            .transpose()?;
        let expected_version = header_text(&parts.headers, "if-match")?
            .map(|tag| {
                // An entity tag is quoted; a bare version number is taken too, as clients
                // (and generators of test requests) often send one.
                let tag = tag.trim();
                tag.strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .or(Some(tag))
                    .filter(|version| version.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|version| version.parse::<u32>().ok())
                    .ok_or_else(|| {
                        malformed_header(
                            "if-match",
                            "must be a stream version in quotes, e.g. \"3\"",
                        )
                    })
            })
            .transpose()?;
        let trace = parts.extensions.get::<crate::trace::RequestTrace>().map(|trace| trace.0);
        Ok(Self { idempotency_key, expected_version, trace })
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(malformed_header(name, "must be given once"));
    }
    value.to_str().map(Some).map_err(|_| malformed_header(name, "must be visible ASCII"))
}

pub fn malformed_header(name: &str, message: &str) -> ApiError {
    ApiError::Malformed {
        detail: format!("header {name} {message}"),
        field: Some(format!("header.{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_missing_and_unknown_fields_by_their_own_name() {
        assert_eq!(field_of(".", "missing field `currency`"), "currency");
        assert_eq!(
            field_of("items[0]", "unknown field `colour`, expected one of"),
            "items[0].colour"
        );
        assert_eq!(
            field_of("items[0].colour", "unknown field `colour`, expected"),
            "items[0].colour"
        );
        assert_eq!(field_of("colour", "unknown field `colour`, expected"), "colour");
        assert_eq!(field_of("items[1].quantity", "invalid type: string"), "items[1].quantity");
        assert_eq!(field_of(".", "invalid type: sequence, expected struct"), "body");
    }
}
