//! What the worker reports, for `/readyz` and the admin endpoint.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct ServiceStatus {
    pub running: bool,
    /// Claims of a process taken to their end (the process waits, ends or changed).
    pub advanced: u64,
    pub last_advanced_at: Option<DateTime<Utc>>,
    /// The last error that stopped a step (it is taken again later).
    pub last_error: Option<String>,
}
