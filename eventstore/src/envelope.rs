//! The message published for each event: key = order id, value = this JSON envelope,
//! plus headers (`event-type`, `event-version`, `correlation-id`, `content-type`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const HEADER_EVENT_TYPE: &str = "event-type";
pub const HEADER_EVENT_VERSION: &str = "event-version";
pub const HEADER_CORRELATION_ID: &str = "correlation-id";
pub const HEADER_CONTENT_TYPE: &str = "content-type";

/// `D` is the event's data: raw JSON when publishing (no re-parsing), a value or a typed
/// event when consuming.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope<D> {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i16,
    pub stream_id: Uuid,
    pub stream_version: u32,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub data: D,
}
