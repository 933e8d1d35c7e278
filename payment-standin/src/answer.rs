//! What the stand-in answers: a status and a JSON body — the pair Stripe stores under an
//! idempotency key and replays byte for byte — and Stripe's error envelope,
//! `{"error": {"type", "code", "message", "param", …}}`, with one constructor per error
//! the stand-in gives, so each reads the same wherever it is raised.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn ok(body: Value) -> Self {
        Self { status: StatusCode::OK, body }
    }

    /// The stored answer to an earlier request with the same idempotency key, marked as
    /// Stripe marks it.
    pub fn replayed(self) -> Response {
        let mut response = self.into_response();
        response.headers_mut().insert("Idempotent-Replayed", HeaderValue::from_static("true"));
        response
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Stripe's error object. Fields left `None` are left out, as Stripe leaves them out.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ApiError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<Value>,
}

impl ApiError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: None,
            decline_code: None,
            message: message.into(),
            param: None,
            charge: None,
            payment_intent: None,
        }
    }

    fn code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }

    fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn answer(self, status: StatusCode) -> Answer {
        Answer { status, body: serde_json::json!({ "error": self }) }
    }
}

const INVALID_REQUEST: &str = "invalid_request_error";

pub(crate) fn parameter_missing(param: &'static str) -> Answer {
    ApiError::new(INVALID_REQUEST, format!("Missing required param: {param}."))
        .code("parameter_missing")
        .param(param)
        .answer(StatusCode::BAD_REQUEST)
}

pub(crate) fn parameter_invalid_integer(param: &'static str, value: &str) -> Answer {
    ApiError::new(
        INVALID_REQUEST,
        format!("Invalid integer: {value}. This value must be a whole number of at least 1."),
    )
    .code("parameter_invalid_integer")
    .param(param)
    .answer(StatusCode::BAD_REQUEST)
}

pub(crate) fn parameter_invalid(param: &'static str, message: impl Into<String>) -> Answer {
    ApiError::new(INVALID_REQUEST, message).param(param).answer(StatusCode::BAD_REQUEST)
}

pub(crate) fn body_unreadable() -> Answer {
    ApiError::new(INVALID_REQUEST, "The request body is not application/x-www-form-urlencoded.")
        .answer(StatusCode::BAD_REQUEST)
}

pub(crate) fn no_such(status: StatusCode, param: &'static str, object: &str, id: &str) -> Answer {
    ApiError::new(INVALID_REQUEST, format!("No such {object}: '{id}'"))
        .code("resource_missing")
        .param(param)
        .answer(status)
}

pub(crate) fn refund_refused(code: &str, message: impl Into<String>) -> Answer {
    ApiError::new(INVALID_REQUEST, message).code(code).answer(StatusCode::BAD_REQUEST)
}

pub(crate) fn unauthorized(message: &str) -> Answer {
    ApiError::new(INVALID_REQUEST, message).answer(StatusCode::UNAUTHORIZED)
}

pub(crate) fn idempotency_mismatch(key: &str) -> Answer {
    ApiError::new(
        "idempotency_error",
        format!(
            "Keys for idempotent requests can only be used with the same parameters they were \
             first used with. Try using a key other than '{key}' if you meant to execute a \
             different request."
        ),
    )
    .answer(StatusCode::BAD_REQUEST)
}

pub(crate) fn idempotency_in_flight() -> Answer {
    ApiError::new(
        "idempotency_error",
        "There is currently another in-progress request using this Idempotent Key (that \
         probably means you submitted twice, and the other request is still going through): \
         Please try again later.",
    )
    .answer(StatusCode::CONFLICT)
}

pub(crate) fn outage() -> Answer {
    ApiError::new("api_error", "The payment provider is unavailable (a scripted outage).")
        .answer(StatusCode::SERVICE_UNAVAILABLE)
}

pub(crate) fn server_error() -> Answer {
    ApiError::new("api_error", "An unknown error occurred (scripted).")
        .answer(StatusCode::INTERNAL_SERVER_ERROR)
}

pub(crate) fn rate_limited() -> Answer {
    ApiError::new(
        INVALID_REQUEST,
        "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
    )
    .code("rate_limit")
    .answer(StatusCode::TOO_MANY_REQUESTS)
}

pub(crate) fn unrecognized_url(method: &str, path: &str) -> Answer {
    ApiError::new(INVALID_REQUEST, format!("Unrecognized request URL ({method}: {path})."))
        .answer(StatusCode::NOT_FOUND)
}

/// A card error: what `last_payment_error` holds, and (with `payment_intent`) what a
/// `402` carries.
pub(crate) fn card_error(code: &str, decline_code: Option<&str>, charge: &str) -> ApiError {
    ApiError {
        decline_code: decline_code.map(str::to_owned),
        charge: Some(charge.to_owned()),
        ..ApiError::new("card_error", decline_message(code, decline_code)).code(code)
    }
}

/// The customer-facing sentences Stripe gives for its test cards.
fn decline_message(code: &str, decline_code: Option<&str>) -> &'static str {
    match (code, decline_code) {
        (_, Some("insufficient_funds")) => "Your card has insufficient funds.",
        ("expired_card", _) | (_, Some("expired_card")) => "Your card has expired.",
        ("incorrect_cvc", _) => "Your card's security code is incorrect.",
        ("processing_error", _) => {
            "An error occurred while processing your card. Try again in a little bit."
        }
        _ => "Your card was declined.",
    }
}
