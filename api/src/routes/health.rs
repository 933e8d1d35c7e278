//! Liveness and readiness. `/healthz` answers while the process runs; `/readyz` only when
//! the database answers with every migration applied, every background task of this
//! process runs, and — in a process that publishes or consumes — the broker is not known
//! to be unreachable; so a load balancer or an orchestrator stops routing to an instance
//! that could not do its work, and the body says what is wrong.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bus::relay::BrokerHealth;
use bus::ConsumerState;
use serde::Serialize;

use crate::context::{ApiContext, TaskHealth, TaskState};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyState {
    Ready,
    Unavailable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseState {
    Ok,
    Unreachable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrationsState {
    Applied,
    Pending,
    /// The database is unreachable.
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    Reachable,
    Unreachable,
    /// Nothing published or consumed yet.
    Unknown,
    /// A process that neither relays nor consumes.
    NotUsed,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: ReadyState,
    pub database: DatabaseState,
    pub migrations: MigrationsState,
    pub broker: BrokerState,
    /// The background tasks of this process (relay, consumers) that are not running.
    #[schema(value_type = Vec<Object>)]
    pub tasks_down: Vec<TaskHealth>,
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
    let (database, migrations) = match migrations::pending(context.store().pool()).await {
        Ok(0) => (DatabaseState::Ok, MigrationsState::Applied),
        Ok(_) => (DatabaseState::Ok, MigrationsState::Pending),
        Err(error) => {
            tracing::warn!(error = ?error, "not ready: database unreachable");
            (DatabaseState::Unreachable, MigrationsState::Unknown)
        }
    };
    let broker = broker_state(&context);
    let tasks_down: Vec<TaskHealth> = context
        .roles
        .tasks
        .as_ref()
        .map(|tasks| {
            tasks.borrow().iter().filter(|t| t.state != TaskState::Running).cloned().collect()
        })
        .unwrap_or_default();
    let ready = database == DatabaseState::Ok
        && migrations == MigrationsState::Applied
        && broker != BrokerState::Unreachable
        && tasks_down.is_empty();
    let (code, status) = if ready {
        (StatusCode::OK, ReadyState::Ready)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, ReadyState::Unavailable)
    };
    (code, Json(Readiness { status, database, migrations, broker, tasks_down }))
}

/// What this process last learnt of the broker from its relay and consumers.
fn broker_state(context: &ApiContext) -> BrokerState {
    let roles = &context.roles;
    let relay = roles.relay.as_ref().map(|relay| relay.borrow().broker);
    let consumers_waiting = roles
        .consumers
        .iter()
        .any(|consumer| consumer.status.borrow().state == ConsumerState::WaitingForBroker);
    match (relay, roles.consumers.is_empty()) {
        (None, true) => BrokerState::NotUsed,
        (Some(BrokerHealth::Unreachable), _) => BrokerState::Unreachable,
        _ if consumers_waiting => BrokerState::Unreachable,
        (Some(BrokerHealth::Reachable), _) => BrokerState::Reachable,
        _ => BrokerState::Unknown,
    }
}
