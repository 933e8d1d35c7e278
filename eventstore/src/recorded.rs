//! The shapes events take out of the store, and what an append records with them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Who and what caused an append; stored with every event of the append and carried to
/// Kafka headers, so one request can be followed through every system it touches.
///
/// Three ids, three questions: `correlation_id` names the business conversation (one
/// client request and everything that follows from it, the saga's commands included);
/// `causation_id` the command or event that directly caused this append; `traceparent`
/// the technical trace (W3C Trace Context: the trace id and the span the append was made
/// in), which consumers continue. Events stored before it was recorded have none.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Metadata {
    pub correlation_id: String,
    pub causation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub actor: Option<String>,
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    pub global_position: i64,
    pub stream_id: Uuid,
    pub stream_version: u32,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i16,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Decodes the payload into the current shape of the domain event, upcasting older
    /// versions.
    pub fn decode(&self) -> Result<domain::Event, crate::error::StoreError> {
        crate::schema::decode(&self.event_type, self.event_version, &self.payload)
            .map_err(|source| crate::error::StoreError::Decode { event_id: self.event_id, source })
    }
}

/// How much of a stream to read: all of it, or its history up to a point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cut {
    #[default]
    Latest,
    /// Up to and including this stream version.
    Version(u32),
    /// Up to and including this global position.
    Position(i64),
    /// Events recorded at or before this time.
    Time(DateTime<Utc>),
    /// Events inside both: at or below the position and recorded at or before the time.
    Both(i64, DateTime<Utc>),
}

impl Cut {
    /// The cut as (position, time) bounds; the one that does not apply is wide open.
    pub fn bounds(self) -> (i64, DateTime<Utc>) {
        match self {
            Self::Latest | Self::Version(_) => (i64::MAX, DateTime::<Utc>::MAX_UTC),
            Self::Position(position) => (position, DateTime::<Utc>::MAX_UTC),
            Self::Time(time) => (i64::MAX, time),
            Self::Both(position, time) => (position, time),
        }
    }
}
