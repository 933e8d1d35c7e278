//! `/_standin/…`: the handle's controls and records over HTTP, for the binary. No auth:
//! the stand-in is for tests and demos on a loopback address.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::records::{Charge, Intent, Refund};
use crate::script::Scripted;
use crate::state::Shared;

pub(super) fn router() -> Router<Shared> {
    Router::new()
        .route("/_standin/charges", get(charges))
        .route("/_standin/intents", get(intents))
        .route("/_standin/refunds", get(refunds))
        .route("/_standin/requests", get(requests))
        .route("/_standin/script", post(script))
        .route("/_standin/outage", post(outage))
        .route("/_standin/latency", post(latency))
}

async fn charges(State(shared): State<Shared>) -> Json<Vec<Charge>> {
    Json(shared.charges())
}

async fn intents(State(shared): State<Shared>) -> Json<Vec<Intent>> {
    Json(shared.intents())
}

async fn refunds(State(shared): State<Shared>) -> Json<Vec<Refund>> {
    Json(shared.refunds())
}

async fn requests(State(shared): State<Shared>) -> Json<Value> {
    Json(json!({ "requests": shared.requests() }))
}

#[derive(Deserialize)]
struct Script {
    payment_method: String,
    outcomes: Vec<Scripted>,
}

async fn script(State(shared): State<Shared>, Json(script): Json<Script>) -> StatusCode {
    shared.script(&script.payment_method, script.outcomes);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Outage {
    down: bool,
}

async fn outage(State(shared): State<Shared>, Json(outage): Json<Outage>) -> StatusCode {
    shared.set_outage(outage.down);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Latency {
    ms: u64,
}

async fn latency(State(shared): State<Shared>, Json(latency): Json<Latency>) -> StatusCode {
    shared.set_latency(std::time::Duration::from_millis(latency.ms));
    StatusCode::NO_CONTENT
}
