//! `POST /v1/payment_intents` (create and confirm) and `GET /v1/payment_intents/{id}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::request::{accept, detached, Accepted, Admission};
use crate::answer;
use crate::intent::CreateIntent;
use crate::reservation::Reservation;
use crate::script::Step;
use crate::state::Shared;

const ENDPOINT: &str = "POST /v1/payment_intents";

pub(super) async fn create(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let accepted = match accept(&shared, &headers, &body, ENDPOINT, CreateIntent::from_params) {
        Admission::Accepted(accepted) => accepted,
        Admission::Answered(answered) => return answered,
    };
    let Accepted { request, key, reservation } = accepted;
    detached(charge(shared, request, key, reservation)).await
}

async fn charge(
    shared: Shared,
    request: CreateIntent,
    key: Option<String>,
    reservation: Reservation,
) -> Response {
    shared.work().await;
    let step = shared.lock().scripts.next(&request.payment_method);
    match step {
        // Dropping the reservation releases the key: these fail before any work.
        Step::ServerError => answer::server_error().into_response(),
        Step::RateLimited => answer::rate_limited().into_response(),
        Step::UnknownPaymentMethod => {
            let missing = answer::no_such(
                axum::http::StatusCode::BAD_REQUEST,
                "payment_method",
                "PaymentMethod",
                &request.payment_method,
            );
            reservation.complete(&missing);
            missing.into_response()
        }
        Step::Confirm { confirmation, stall } => {
            let confirmed = shared.lock().confirm(request, confirmation, key);
            reservation.complete(&confirmed);
            if let Some(stall) = stall {
                tokio::time::sleep(stall).await;
            }
            confirmed.into_response()
        }
    }
}

pub(super) async fn retrieve(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    shared.work().await;
    let found = shared.lock().retrieve(&id);
    found.into_response()
}
