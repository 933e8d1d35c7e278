//! `POST /v1/refunds`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::request::{detached, idempotency_key};
use crate::form::Params;
use crate::refund::CreateRefund;
use crate::reservation::{self, Claimed};
use crate::state::Shared;

const ENDPOINT: &str = "POST /v1/refunds";

pub(super) async fn create(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match Params::parse(&body) {
        Ok(params) => params,
        Err(refusal) => return refusal.into_response(),
    };
    let request = match CreateRefund::from_params(&params) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let key = idempotency_key(&headers);
    let reservation = match reservation::claim(&shared, key.clone(), params.fingerprint(ENDPOINT)) {
        Claimed::Fresh(reservation) => reservation,
        Claimed::Answered(response) => return response,
    };
    detached(async move {
        shared.work().await;
        let answer = shared.lock().refund(&request, key);
        reservation.complete(&answer);
        answer.into_response()
    })
    .await
}
