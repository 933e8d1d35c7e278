//! Operations: what the background workers are doing.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use eventstore::{relay_report, RelayReport, RelayStatus};

use crate::error::ApiError;
use crate::routes::ApiContext;

#[derive(Serialize)]
pub struct RelayView {
    /// The relay running in this process, if any (another process may be the leader).
    process: Option<RelayStatus>,
    /// The durable state shared by all relays: checkpoint, backlog, horizon.
    store: RelayReport,
}

pub async fn relay(State(context): State<ApiContext>) -> Result<Json<RelayView>, ApiError> {
    let store = relay_report(context.store.pool(), "kafka").await?;
    Ok(Json(RelayView { process: context.relay.as_ref().map(|relay| relay.snapshot()), store }))
}
