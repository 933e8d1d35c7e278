//! Liveness and readiness. `/healthz` answers while the process runs; `/readyz` only when
//! the database answers with every migration applied, every background task of this
//! process runs, in a process that publishes or consumes the broker is not known to be
//! unreachable, and each of its projections is fed (by the bus, or else from the store by
//! its catch-up, which must have brought it current lately); so a load balancer or an orchestrator stops routing to an instance
//! that could not do its work, and the body says what is wrong.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bus::relay::BrokerHealth;
use bus::ConsumerState;
use serde::Serialize;

use crate::context::{ApiContext, ConsumerView, TaskHealth, TaskState};

/// How recently the catch-up must have found a projection current for a process whose
/// consumer the bus does not feed to be ready (it looks ten times a second then).
const STORE_CURRENT_WITHIN: chrono::Duration = chrono::Duration::seconds(5);

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

/// What feeds a projection in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Feed {
    /// Its consumer holds partitions of the orders topic.
    Bus,
    /// Its consumer holds none (starting, broker away, no partition assigned): the
    /// catch-up applies from the event store and has found it current lately.
    Store,
    /// Neither: not ready.
    Nothing,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadModelHealth {
    pub projection: String,
    pub feed: Feed,
}

impl ReadModelHealth {
    fn of(consumer: &ConsumerView) -> Self {
        let status = consumer.status.borrow();
        let stats = consumer.stats.borrow();
        let feed = if status.state.is_fed() {
            Feed::Bus
        } else if stats.current_at.is_some_and(|at| chrono::Utc::now() - at < STORE_CURRENT_WITHIN)
        {
            Feed::Store
        } else {
            Feed::Nothing
        };
        Self { projection: status.name.clone(), feed }
    }
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
    /// The projections of this process and what feeds each.
    pub read_models: Vec<ReadModelHealth>,
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
    let read_models: Vec<ReadModelHealth> =
        context.roles.consumers.iter().map(ReadModelHealth::of).collect();
    let ready = database == DatabaseState::Ok
        && migrations == MigrationsState::Applied
        && broker != BrokerState::Unreachable
        && tasks_down.is_empty()
        && read_models.iter().all(|model| model.feed != Feed::Nothing);
    let (code, status) = if ready {
        (StatusCode::OK, ReadyState::Ready)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, ReadyState::Unavailable)
    };
    (code, Json(Readiness { status, database, migrations, broker, tasks_down, read_models }))
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
