//! What the handlers share: the command service, the store, the metrics recorder, the
//! rebuilds started here, and a view of the other roles this process runs, as their loops
//! report them (each a `watch` the loop alone writes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bus::relay::RelayStatus;
use bus::ConsumerStatus;
use commands::CommandService;
use eventstore::EventStore;
use metrics_exporter_prometheus::PrometheusHandle;
use projections::rebuild::RunningRebuild;
use projections::{AppliedSignal, ProjectionKind, ProjectionStats};
use serde::Serialize;
use tokio::sync::watch;

#[derive(Clone)]
pub struct ApiContext {
    pub commands: CommandService,
    pub roles: Roles,
    /// Moves when a projection applied a batch: what waiting readers wake on.
    pub applied: AppliedSignal,
    /// Renders `/metrics`; `None` if this process could not install the recorder.
    pub metrics: Option<PrometheusHandle>,
    /// Projection rebuilds started through this process's admin API.
    pub(crate) rebuilds: Rebuilds,
    /// The bus this ledger publishes to.
    pub bus: BusInfo,
}

/// The bus: whose relay checkpoint the status reports read, and the published contract.
#[derive(Clone, Debug)]
pub struct BusInfo {
    /// The relay's name on this bus (its checkpoint row).
    pub relay_name: String,
    /// The AsyncAPI document `/asyncapi.json` serves.
    pub asyncapi: Arc<serde_json::Value>,
}

impl Default for BusInfo {
    fn default() -> Self {
        Self {
            relay_name: bus::relay::RELAY_NAME.to_owned(),
            asyncapi: Arc::new(serde_json::Value::Null),
        }
    }
}

impl ApiContext {
    pub fn new(
        commands: CommandService,
        roles: Roles,
        applied: AppliedSignal,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        Self {
            commands,
            roles,
            applied,
            metrics,
            rebuilds: Rebuilds::default(),
            bus: BusInfo::default(),
        }
    }

    /// This context on `bus`.
    #[must_use]
    pub fn with_bus(mut self, bus: BusInfo) -> Self {
        self.bus = bus;
        self
    }

    pub(crate) fn store(&self) -> &EventStore {
        self.commands.store()
    }
}

pub(crate) type Rebuilds = Arc<Mutex<HashMap<ProjectionKind, RunningRebuild>>>;

/// The roles this process runs besides the API.
#[derive(Clone, Default)]
pub struct Roles {
    /// The relay, when this process runs one.
    pub relay: Option<watch::Receiver<RelayStatus>>,
    /// The consumers of the orders channel (the projections).
    pub consumers: Vec<ConsumerView>,
    /// The supervised background tasks, as the supervisor sees them.
    pub tasks: Option<watch::Receiver<Vec<TaskHealth>>>,
    /// The dispatcher, when this process delivers notifications.
    pub dispatcher: Option<watch::Receiver<delivery::DispatcherStatus>>,
    /// The payment service's worker, when this process runs it.
    pub payments: Option<watch::Receiver<payment_service::ServiceStatus>>,
}

/// One consumer: its loop's status, and what its projection applied.
#[derive(Clone)]
pub struct ConsumerView {
    pub status: watch::Receiver<ConsumerStatus>,
    pub stats: watch::Receiver<ProjectionStats>,
}

/// A supervised background task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskHealth {
    pub task: String,
    pub state: TaskState,
    /// How often it ended unexpectedly and was started again.
    pub restarts: u32,
    pub last_error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Running,
    /// It ended unexpectedly; it is started again after a backoff.
    Restarting,
    Stopped,
}
