//! What an accepted command appended. The same value is stored under the command's
//! idempotency key and replayed from there, so a retry is answered exactly as the first
//! attempt was.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub order_id: Uuid,
    /// The order's version after the command (its last event's).
    pub stream_version: u32,
    /// The global position of its last event.
    pub position: i64,
    pub events: Vec<AcceptedEvent>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub stream_version: u32,
    pub position: i64,
}

/// A command's result: accepted now, or an earlier acceptance replayed for its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: Accepted,
    pub replayed: bool,
}
