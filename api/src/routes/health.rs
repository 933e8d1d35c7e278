//! Liveness and readiness. `/healthz` answers while the process runs; `/readyz` only when
//! the database answers, so a load balancer stops sending commands that would fail.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::routes::ApiContext;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(context): State<ApiContext>) -> (StatusCode, Json<Value>) {
    match context.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready", "database": "ok" }))),
        Err(error) => {
            tracing::warn!(%error, "not ready: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
        }
    }
}
