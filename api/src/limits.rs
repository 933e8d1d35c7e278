//! The per-request time limit. (The body-size limit is in [`crate::extract`], the
//! per-token concurrency limit in [`crate::auth`], the statement timeout and pool wait in
//! the database settings.)

/// The longest `X-Correlation-Id` accepted (checked in `correlation.rs`, stated in the
/// command headers' schema).
pub(crate) const CORRELATION_ID_MAX: usize = 128;

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Answers 503 `request_timeout` when the handler takes longer than `limit`. Dropping the
/// handler rolls back a command that had not committed yet; one that had is found again by
/// retrying with its Idempotency-Key, which is what the problem's detail tells the client.
pub async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("ledger_http_timeouts_total").increment(1);
            ApiError::RequestTimeout { limit_ms: limit.as_millis() }.into_response()
        }
    }
}
