//! The stand-in's HTTP surface: Stripe's endpoints under `/v1`, behind one gate that
//! counts them, answers `503` during an outage and checks the API key — in that order,
//! and before any work, so none of those refusals is stored under an idempotency key —
//! and the unauthenticated control endpoints under `/_standin`.

mod control;
mod payment_intents;
mod refunds;
mod request;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::answer;
use crate::state::Shared;

pub(crate) fn router(shared: Shared) -> Router {
    let stripe = Router::new()
        .route("/v1/payment_intents", post(payment_intents::create))
        .route("/v1/payment_intents/{id}", get(payment_intents::retrieve))
        .route("/v1/refunds", post(refunds::create))
        .route_layer(middleware::from_fn_with_state(shared.clone(), gate));
    stripe.merge(control::router()).fallback(unrecognized).with_state(shared)
}

async fn gate(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let outage = {
        let mut state = shared.lock();
        state.requests += 1;
        state.outage
    };
    if outage {
        return answer::outage().into_response();
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        None => answer::unauthorized(
            "You did not provide an API key. You need to provide your API key in the \
             Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
        .into_response(),
        Some(key) if key != shared.api_key() => {
            answer::unauthorized("Invalid API Key provided.").into_response()
        }
        Some(_) => next.run(request).await,
    }
}

async fn unrecognized(request: Request) -> Response {
    answer::unrecognized_url(request.method().as_str(), request.uri().path()).into_response()
}
