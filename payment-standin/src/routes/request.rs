//! What the two idempotent endpoints share: reading the form and the key, claiming the
//! key, and running the work so it finishes even when the caller hangs up.

use std::future::Future;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::answer::{self, Answer};
use crate::form::Params;
use crate::reservation::{self, Claimed, Reservation};
use crate::state::Shared;

/// An accepted request to `endpoint`: its parsed parameters, its key and the claim on it.
pub(super) struct Accepted<T> {
    pub request: T,
    pub key: Option<String>,
    pub reservation: Reservation,
}

/// What became of a request before any work: accepted, or already answered (a refusal of
/// the parameters, a replay, a refusal of the key).
pub(super) enum Admission<T> {
    Accepted(Accepted<T>),
    Answered(Response),
}

/// Parses the form into a request, then claims its idempotency key.
pub(super) fn accept<T>(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    endpoint: &str,
    parse: impl FnOnce(&Params) -> Result<T, Answer>,
) -> Admission<T> {
    let parsed = Params::parse(body).and_then(|params| Ok((parse(&params)?, params)));
    let (request, params) = match parsed {
        Ok(parsed) => parsed,
        Err(refusal) => return Admission::Answered(refusal.into_response()),
    };
    let key =
        headers.get("Idempotency-Key").and_then(|value| value.to_str().ok()).map(str::to_owned);
    match reservation::claim(shared, key.clone(), params.fingerprint(endpoint)) {
        Claimed::Fresh(reservation) => Admission::Accepted(Accepted { request, key, reservation }),
        Claimed::Answered(response) => Admission::Answered(response),
    }
}

/// Runs the work on its own task, so it finishes — and its answer is stored — even when
/// the caller hangs up and the server drops the handler: a provider does not undo a charge
/// because the client stopped listening.
pub(super) async fn detached(work: impl Future<Output = Response> + Send + 'static) -> Response {
    tokio::spawn(work).await.unwrap_or_else(|_| answer::server_error().into_response())
}
