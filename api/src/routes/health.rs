//! Liveness and readiness. `/healthz` answers while the process runs; `/readyz` only when
//! the database answers with every migration applied and, in a process that publishes or
//! projects, the broker is not known to be unreachable — so a load balancer or an
//! orchestrator stops routing to an instance that could not do its work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use eventstore::BrokerHealth;

use crate::routes::ApiContext;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`
    pub status: &'static str,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "The process runs", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`
    pub status: &'static str,
    /// `ok` or `unreachable`
    pub database: &'static str,
    /// `applied`, `pending` or `unknown` (database unreachable)
    pub migrations: &'static str,
    /// `reachable`, `unreachable`, `unknown` (nothing published or consumed yet) or
    /// `not_used` (a process that neither relays nor projects)
    pub broker: &'static str,
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Not ready; the body says which dependency", body = Readiness),
    )
)]
pub async fn readyz(State(context): State<ApiContext>) -> (StatusCode, Json<Readiness>) {
    let (database, migrations) = match eventstore::pending_migrations(context.store.pool()).await {
        Ok(0) => ("ok", "applied"),
        Ok(_) => ("ok", "pending"),
        Err(error) => {
            tracing::warn!(%error, "not ready: database unreachable");
            ("unreachable", "unknown")
        }
    };
    let broker = broker_health(&context);
    let ready = database == "ok" && migrations == "applied" && broker != "unreachable";
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let status_text = if ready { "ready" } else { "unavailable" };
    (status, Json(Readiness { status: status_text, database, migrations, broker }))
}

/// What this process last learnt of the broker from its relay and projection workers.
fn broker_health(context: &ApiContext) -> &'static str {
    let relay = context.relay.as_ref().map(|relay| relay.broker());
    let workers_waiting =
        context.projectors.iter().any(|w| w.snapshot().state == "waiting_for_broker");
    match (relay, context.projectors.is_empty()) {
        (None, true) => "not_used",
        (Some(BrokerHealth::Unreachable), _) => "unreachable",
        _ if workers_waiting => "unreachable",
        (Some(BrokerHealth::Reachable), _) => "reachable",
        _ => "unknown",
    }
}
