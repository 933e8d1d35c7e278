//! Every error the API can answer, mapped to `application/problem+json` (RFC 9457) in one
//! place. Each has a stable `code` that clients match on; `title` and `detail` are for
//! people. A 5xx never tells the client its internal cause: the cause is logged once,
//! here, and the client gets a correlation id to quote.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use commands::CommandError;
use domain::{Rule, ValidationError};
use eventstore::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<ValidationError>),
    #[error("malformed request: {detail}")]
    Malformed { detail: String, field: Option<String> },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden")]
    Forbidden { needed: &'static str, has: &'static str },
    #[error("too many requests in flight")]
    TooManyRequests,
    #[error("request timed out")]
    RequestTimeout { limit_ms: u128 },
    #[error("stream is not at the expected version")]
    VersionConflict { expected_version: u32, actual_version: Option<u32> },
    #[error("rule violated: {0}")]
    RuleViolated(Rule),
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    #[error("payload too large")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("re-drive failed: {0}")]
    RedriveFailed(String),
    #[error("projection lagging")]
    ProjectionLagging { projection: &'static str, applied_version: u32, min_version: u32 },
    #[error("a rebuild of {0} is running")]
    RebuildRunning(&'static str),
    #[error("the notification has not failed")]
    NotificationNotFailed,
    #[error("projection has not applied the whole cut")]
    CutNotApplied { projection: &'static str, applied_through: i64 },
    /// A dependency is away or busy: worth a retry (503 with `Retry-After`).
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(error: ValidationError) -> Self {
        Self::Validation(vec![error])
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    pub fn unavailable(error: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(error.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Malformed { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::RequestTimeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::VersionConflict { .. }
            | Self::RuleViolated(_)
            | Self::RedriveFailed(_)
            | Self::RebuildRunning(_)
            | Self::NotificationNotFailed => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ProjectionLagging { .. } | Self::CutNotApplied { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::Malformed { .. } => "malformed_request",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::TooManyRequests => "too_many_requests",
            Self::RequestTimeout { .. } => "request_timeout",
            Self::VersionConflict { .. } => "version_conflict",
            Self::RuleViolated(_) => "rule_violated",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RedriveFailed(_) => "redrive_failed",
            Self::RebuildRunning(_) => "rebuild_running",
            Self::NotificationNotFailed => "notification_not_failed",
            Self::ProjectionLagging { .. } | Self::CutNotApplied { .. } => "projection_lagging",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn problem(&self) -> Problem {
        let status = self.status();
        let mut problem = Problem {
            problem_type: format!("urn:ledger:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: self.code(),
            detail: String::new(),
            errors: Vec::new(),
            rule: None,
            expected_version: None,
            actual_version: None,
        };
        problem.detail = match self {
            Self::Validation(errors) => {
                problem.errors = errors
                    .iter()
                    .map(|e| FieldProblem { field: e.field.clone(), message: e.message.clone() })
                    .collect();
                match errors.as_slice() {
                    [only] => format!("{}: {}", only.field, only.message),
                    _ => "the request has invalid fields".to_owned(),
                }
            }
            Self::Malformed { detail, field } => {
                if let Some(field) = field {
                    problem.errors =
                        vec![FieldProblem { field: field.clone(), message: detail.clone() }];
                }
                detail.clone()
            }
            Self::NotFound(what) => format!("{what} not found"),
            Self::MethodNotAllowed => "this method is not allowed on this resource".to_owned(),
            Self::Unauthorized(why) => (*why).to_owned(),
            Self::Forbidden { needed, has } => {
                format!("this needs a token with {needed} access; yours has {has} access")
            }
            Self::TooManyRequests => {
                "this token has too many requests in flight; retry after the ones running finish"
                    .to_owned()
            }
            Self::RequestTimeout { limit_ms } => format!(
                "the request did not finish within {limit_ms} ms; if it was a command, retry it \
                 with the same Idempotency-Key to learn whether it was applied"
            ),
            Self::VersionConflict { expected_version, actual_version } => {
                problem.expected_version = Some(*expected_version);
                problem.actual_version = *actual_version;
                match actual_version {
                    Some(actual) => format!(
                        "the order is at version {actual}, not {expected_version}; reload and retry"
                    ),
                    None => format!(
                        "the order changed after version {expected_version} was read; reload and retry"
                    ),
                }
            }
            Self::RuleViolated(rule) => {
                problem.rule = Some(rule.code());
                rule.to_string()
            }
            Self::IdempotencyKeyReused => {
                "this Idempotency-Key was already used with a different request".to_owned()
            }
            Self::PayloadTooLarge { limit_bytes } => {
                format!("the request body exceeds the limit of {limit_bytes} bytes")
            }
            Self::UnsupportedMediaType => {
                "send the request body as JSON with content-type: application/json".to_owned()
            }
            Self::RedriveFailed(reason) => reason.clone(),
            Self::RebuildRunning(projection) => {
                format!("a rebuild of {projection} is running; wait for it or cancel it first")
            }
            Self::NotificationNotFailed => {
                "no delivery of this notification has failed: nothing to send again".to_owned()
            }
            Self::ProjectionLagging { projection, applied_version, min_version } => format!(
                "the {projection} projection has applied version {applied_version} of this order, \
                 not yet {min_version}; retry or wait longer"
            ),
            Self::CutNotApplied { projection, applied_through } => format!(
                "the {projection} projection has applied every event up to position \
                 {applied_through}, not yet the whole requested cut; retry shortly"
            ),
            Self::Unavailable(_) => {
                "the ledger cannot serve this request right now; retry shortly".to_owned()
            }
            Self::Internal(_) => "something went wrong on our side".to_owned(),
        };
        problem
    }
}

/// An RFC 9457 problem: every error the API answers, as `application/problem+json`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "urn:ledger:problem:validation_failed")]
    problem_type: String,
    title: String,
    status: u16,
    /// The stable code clients match on.
    #[schema(example = "validation_failed")]
    code: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldProblem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actual_version: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    field: String,
    message: String,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            // The cause's chain, without the backtrace `anyhow` captured when
            // RUST_BACKTRACE is set: resolving one takes this thread for a while (seconds
            // in a debug build), and during an outage every request comes here.
            Self::Unavailable(cause) => {
                tracing::warn!(error = %format_args!("{cause:#}"), "request refused: unavailable")
            }
            _ => tracing::debug!(code = self.code(), "request refused"),
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        Self::validation(error)
    }
}

impl From<delivery::DeliveryError> for ApiError {
    fn from(error: delivery::DeliveryError) -> Self {
        match error {
            delivery::DeliveryError::Database(error) => error.into(),
        }
    }
}

impl From<payment_service::ServiceError> for ApiError {
    fn from(error: payment_service::ServiceError) -> Self {
        match error {
            payment_service::ServiceError::Database(error) => error.into(),
            payment_service::ServiceError::Command(error) => error.into(),
            other => Self::internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if error.is_transient() {
            Self::unavailable(error)
        } else {
            Self::internal(error)
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::NotFound => Self::NotFound("order".to_owned()),
            CommandError::Rejected(rule) => Self::RuleViolated(rule),
            CommandError::VersionConflict { expected, actual } => {
                Self::VersionConflict { expected_version: expected, actual_version: actual }
            }
            CommandError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            error if error.is_transient() => Self::unavailable(error),
            error => Self::internal(error),
        }
    }
}
