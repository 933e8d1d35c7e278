//! What the worker reports, for `/readyz` and the admin endpoint.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct ServiceStatus {
    pub running: bool,
    pub rounds: u64,
    pub last_round_at: Option<DateTime<Utc>>,
    /// The last error that stopped a step (it is taken again later).
    pub last_error: Option<String>,
}
