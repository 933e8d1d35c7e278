//! What a relay in this process is doing, as a `watch` value: the admin endpoint, readiness
//! and `ledger relay status` read it; the relay alone writes it.

use chrono::{DateTime, Utc};
use eventstore::position::CommitPosition;
use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayRole {
    #[default]
    Starting,
    /// Another relay holds the lock; this one waits to take over.
    Standby,
    /// This relay publishes.
    Active,
    Stopped,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerHealth {
    #[default]
    Unknown,
    Reachable,
    Unreachable,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RelayStatus {
    pub role: RelayRole,
    pub broker: BrokerHealth,
    pub last_error: Option<String>,
    /// Events this process published (a republished batch counts again).
    pub published_events: u64,
    pub published_batches: u64,
    /// Looks at the store for new events (each one reads up to a batch).
    pub reads: u64,
    pub last_published_at: Option<DateTime<Utc>>,
    pub checkpoint: Option<CommitPosition>,
}
