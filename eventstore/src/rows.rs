//! Reading the events table's rows, in one place: every reader builds a
//! [`RecordedEvent`] here, and a stored value that breaks an invariant is an error, never
//! a silent default.

use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::StoreError;
use crate::recorded::RecordedEvent;

/// The columns [`recorded_event`] reads, in its order (a macro, for `concat!`).
macro_rules! event_columns {
    () => {
        "global_position, stream_id, stream_version, event_id, event_type, event_version, \
         payload, metadata, recorded_at"
    };
}
pub(crate) use event_columns;

pub(crate) fn recorded_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        global_position: row.try_get(0)?,
        stream_id: row.try_get(1)?,
        stream_version: stream_version(row, 2)?,
        event_id: row.try_get(3)?,
        event_type: row.try_get(4)?,
        event_version: row.try_get(5)?,
        payload: row.try_get(6)?,
        metadata: row.try_get(7)?,
        recorded_at: row.try_get(8)?,
    })
}

/// A stream version column (`integer`, positive by a check constraint).
pub fn stream_version(row: &Row, index: usize) -> Result<u32, StoreError> {
    let stored: i32 = row.try_get(index)?;
    u32::try_from(stored)
        .map_err(|_| StoreError::Invariant(format!("stream version {stored} is negative")))
}

/// A stream version as the database stores it.
pub fn to_stored_version(version: u32) -> Result<i32, StoreError> {
    i32::try_from(version)
        .map_err(|_| StoreError::Invariant(format!("stream version {version} overflows")))
}

/// The advisory lock key of a stream (`pg_advisory_xact_lock(key)`): every writer of the
/// stream takes it first. Public so that tools and tests can see or hold a stream's writers.
pub fn stream_lock_key(stream_id: Uuid) -> i64 {
    let (high, low) = stream_id.as_u64_pair();
    i64::from_ne_bytes((high ^ low).to_ne_bytes())
}
