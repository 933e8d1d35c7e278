//! Rehydrating an order for a command: its latest snapshot (of the current shape) and the
//! events after it, folded — so a command costs the same on an order of ten events and of
//! ten thousand. A snapshot that cannot be read is ignored and the whole stream folded.

use domain::{evolve, Order, ORDER_SHAPE_VERSION};
use eventstore::snapshot::Loaded;
use eventstore::{RecordedEvent, StoreError};

use crate::error::CommandError;

/// The state and version `loaded` describes, or `None` if its snapshot is unusable (the
/// caller then folds the whole stream with [`fold_all`]).
pub fn fold_loaded(loaded: Loaded) -> Result<Option<(Order, u32)>, StoreError> {
    let (order, version) = match loaded.snapshot {
        None => (Order::default(), 0),
        Some(snapshot) => match serde_json::from_value::<Order>(snapshot.state) {
            Ok(order) => (order, snapshot.stream_version),
            Err(error) => {
                tracing::warn!(%error, shape = ORDER_SHAPE_VERSION, "unreadable snapshot ignored");
                return Ok(None);
            }
        },
    };
    // The tail must continue the snapshot without a hole.
    let contiguous = loaded
        .events
        .iter()
        .enumerate()
        .all(|(i, e)| u64::from(e.stream_version) == u64::from(version) + i as u64 + 1);
    if !contiguous {
        tracing::warn!(version, "snapshot tail has a hole; folding the whole stream");
        return Ok(None);
    }
    fold(order, version, &loaded.events).map(Some)
}

/// Folds a whole stream.
pub fn fold_all(history: &[RecordedEvent]) -> Result<(Order, u32), StoreError> {
    fold(Order::default(), 0, history)
}

fn fold(
    mut order: Order,
    mut version: u32,
    events: &[RecordedEvent],
) -> Result<(Order, u32), StoreError> {
    for recorded in events {
        order = evolve(order, &recorded.decode()?);
        version = recorded.stream_version;
    }
    Ok((order, version))
}

/// The state to store as a snapshot.
pub fn snapshot_of(order: &Order) -> Result<serde_json::Value, CommandError> {
    serde_json::to_value(order)
        .map_err(|source| CommandError::Encode { what: "an order snapshot", source })
}
