//! What the two idempotent endpoints share: reading the key, and running the work so it
//! finishes even when the caller hangs up.

use std::future::Future;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::answer;

pub(super) fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers.get("Idempotency-Key").and_then(|value| value.to_str().ok()).map(str::to_owned)
}

/// Runs the work on its own task, so it finishes — and its answer is stored — even when
/// the caller hangs up and the server drops the handler: a provider does not undo a charge
/// because the client stopped listening.
pub(super) async fn detached(work: impl Future<Output = Response> + Send + 'static) -> Response {
    tokio::spawn(work).await.unwrap_or_else(|_| answer::server_error().into_response())
}
