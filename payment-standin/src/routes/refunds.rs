//! `POST /v1/refunds`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::request::{accept, detached, Accepted, Admission};
use crate::refund::CreateRefund;
use crate::state::Shared;

const ENDPOINT: &str = "POST /v1/refunds";

pub(super) async fn create(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let accepted = match accept(&shared, &headers, &body, ENDPOINT, CreateRefund::from_params) {
        Admission::Accepted(accepted) => accepted,
        Admission::Answered(answered) => return answered,
    };
    let Accepted { request, key, reservation } = accepted;
    detached(async move {
        shared.work().await;
        let answer = shared.lock().refund(&request, key);
        reservation.complete(&answer);
        answer.into_response()
    })
    .await
}
