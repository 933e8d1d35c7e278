//! The one write path: a set of commands decided and written in one unit of work.
//!
//! Lock every order involved, claim every idempotency key, load every order (from its
//! snapshot), decide each command in arrival order against the state the previous ones
//! left (so two commands on one order behave as if sent one after the other), append
//! every event, record every outcome, snapshot where a command crossed the mark, commit
//! once. A command that is refused (a rule, `If-Match`, a reused key) gets its own error
//! and writes nothing; the others go on. Nobody's outcome counts before the commit.

use std::collections::HashMap;
use std::time::Duration;

use domain::{decide, evolve, Order, ORDER_SHAPE_VERSION};
use eventstore::snapshot::{crosses_snapshot_point, SnapshotState};
use eventstore::{
    schema, AppendError, Claim, EventStore, KeyClaim, NewEvent, StoreError, StreamEvent,
};
use uuid::Uuid;

use crate::accepted::{Accepted, AcceptedEvent, Outcome};
use crate::error::CommandError;
use crate::rehydrate::{fold_all, fold_loaded, snapshot_of};
use crate::request::CommandRequest;

/// How often a command without `If-Match` is decided again after losing a race.
const MAX_ATTEMPTS: u32 = 8;

/// Why a unit of work as a whole was not written.
pub(crate) enum WriteFailed {
    /// A version was taken by a writer that did not hold the order's lock: decide again.
    Conflict,
    Failed(CommandError),
}

impl From<StoreError> for WriteFailed {
    fn from(error: StoreError) -> Self {
        Self::Failed(error.into())
    }
}

impl From<CommandError> for WriteFailed {
    fn from(error: CommandError) -> Self {
        Self::Failed(error)
    }
}

/// What became of one command before the commit.
enum Decided {
    Answered(Result<Outcome, CommandError>),
    Accepted { events: Vec<NewEvent>, first_version: u32, metadata: serde_json::Value },
}

/// Writes `requests` in one transaction; one result per request, in order. Unless a
/// connection is had within `budget` nothing is written and the store is `Unavailable`.
pub(crate) async fn write(
    store: &EventStore,
    requests: &[CommandRequest],
    budget: Duration,
) -> Result<Vec<Result<Outcome, CommandError>>, WriteFailed> {
    let mut streams: Vec<Uuid> = requests.iter().map(|r| r.order_id.as_uuid()).collect();
    streams.sort_unstable();
    streams.dedup();
    let unit = store.begin_within(&streams, budget).await?;

    // Idempotency keys first: a replay or a reused key is answered without deciding. The
    // claims and the loads go to the server together (pipelined): one round trip.
    let keyed: Vec<usize> =
        (0..requests.len()).filter(|i| requests[*i].idempotency.is_some()).collect();
    let keys: Vec<KeyClaim> = keyed
        .iter()
        .filter_map(|i| {
            let request = &requests[*i];
            request.idempotency.as_ref().map(|idempotency| KeyClaim {
                key: idempotency.key.clone(),
                fingerprint: idempotency.fingerprint.clone(),
                stream_id: request.order_id.as_uuid(),
            })
        })
        .collect();
    let (claims, mut loaded) = tokio::try_join!(
        unit.claim_keys(&keys),
        unit.load_from_snapshots(&streams, ORDER_SHAPE_VERSION),
    )?;
    let mut claim_of: HashMap<usize, Claim> = keyed.into_iter().zip(claims).collect();

    let mut states: HashMap<Uuid, (Order, u32)> = HashMap::new();
    let mut unreadable = Vec::new();
    for stream in &streams {
        match fold_loaded(loaded.remove(stream).unwrap_or_default())? {
            Some(state) => {
                states.insert(*stream, state);
            }
            None => unreadable.push(*stream),
        }
    }
    if !unreadable.is_empty() {
        for (stream, history) in unit.load_streams(&unreadable).await? {
            states.insert(stream, fold_all(&history)?);
        }
        for stream in unreadable {
            states.entry(stream).or_default();
        }
    }
    let versions_before: HashMap<Uuid, u32> =
        states.iter().map(|(stream, (_, version))| (*stream, *version)).collect();

    let mut decided = Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        let answer = match claim_of.remove(&index) {
            Some(Claim::Replay(stored)) => Some(replay(&stored)),
            Some(Claim::Mismatch) => Some(Err(CommandError::IdempotencyKeyReused)),
            Some(Claim::Claimed) | None => None,
        };
        if let Some(answer) = answer {
            decided.push(Decided::Answered(answer));
            continue;
        }
        let (order, version) = states.entry(request.order_id.as_uuid()).or_default();
        decided.push(match decide_one(request, order, version) {
            Ok(accepted) => accepted,
            Err(error) => Decided::Answered(Err(error)),
        });
    }

    // Refused commands give their keys back: they wrote nothing.
    let released: Vec<&str> = requests
        .iter()
        .zip(&decided)
        .filter(|(_, d)| {
            matches!(d, Decided::Answered(Err(error)) if !matches!(error, CommandError::IdempotencyKeyReused))
        })
        .filter_map(|(r, _)| r.idempotency.as_ref().map(|i| i.key.as_str()))
        .collect();
    let mut to_append = Vec::new();
    for (request, outcome) in requests.iter().zip(&decided) {
        if let Decided::Accepted { events, first_version, metadata } = outcome {
            for (offset, event) in (0u32..).zip(events) {
                to_append.push(StreamEvent {
                    stream_id: request.order_id.as_uuid(),
                    stream_version: first_version + offset,
                    event,
                    metadata,
                });
            }
        }
    }
    // The refused commands' keys go back and the events are appended in one round trip.
    let released = async { unit.release_keys(&released).await.map_err(AppendError::Store) };
    let positions = match tokio::try_join!(released, unit.append(&to_append)) {
        Ok(((), positions)) => positions,
        Err(AppendError::Conflict) => return Err(WriteFailed::Conflict),
        Err(AppendError::Store(error)) => return Err(error.into()),
    };

    let mut positions = positions.into_iter();
    let mut results = Vec::with_capacity(requests.len());
    let mut recorded: Vec<(&str, Vec<u8>)> = Vec::new();
    for (request, outcome) in requests.iter().zip(decided) {
        match outcome {
            Decided::Answered(result) => results.push(result),
            Decided::Accepted { events, first_version, .. } => {
                let mut appended = Vec::with_capacity(events.len());
                for (offset, event) in (0u32..).zip(&events) {
                    let position = positions.next().ok_or_else(|| {
                        StoreError::Invariant(
                            "an append returned fewer positions than events".into(),
                        )
                    })?;
                    appended.push(AcceptedEvent {
                        event_id: event.event_id,
                        event_type: event.event_type.to_owned(),
                        stream_version: first_version + offset,
                        position,
                    });
                }
                let last = appended.last().ok_or_else(|| {
                    StoreError::Invariant("an accepted command appended no event".into())
                })?;
                let accepted = Accepted {
                    order_id: request.order_id.as_uuid(),
                    stream_version: last.stream_version,
                    position: last.position,
                    events: appended,
                };
                if let Some(idempotency) = &request.idempotency {
                    let stored = serde_json::to_vec(&accepted).map_err(|source| {
                        CommandError::Encode { what: "a command's outcome", source }
                    })?;
                    recorded.push((idempotency.key.as_str(), stored));
                }
                results.push(Ok(Outcome { accepted, replayed: false }));
            }
        }
    }
    let outcomes: Vec<(&str, &[u8])> = recorded.iter().map(|(k, b)| (*k, b.as_slice())).collect();
    let mut snapshots = Vec::new();
    for (stream, (order, version)) in &states {
        let before = versions_before.get(stream).copied().unwrap_or_default();
        if crosses_snapshot_point(before, *version) {
            snapshots.push(SnapshotState {
                stream_id: *stream,
                stream_version: *version,
                state: snapshot_of(order)?,
            });
        }
    }
    unit.commit_with(&outcomes, ORDER_SHAPE_VERSION, &snapshots).await?;
    Ok(results)
}

/// Decides one command against `order` at `version`, and moves both past its events.
fn decide_one(
    request: &CommandRequest,
    order: &mut Order,
    version: &mut u32,
) -> Result<Decided, CommandError> {
    if let Some(expected) = request.expected_version {
        if expected != *version {
            return Err(CommandError::VersionConflict { expected, actual: Some(*version) });
        }
    }
    let events = decide(order, request.command.clone())?;
    let encoded = events
        .iter()
        .map(schema::encode)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CommandError::Encode { what: "an event", source })?;
    let metadata = serde_json::to_value(request.metadata())
        .map_err(|source| CommandError::Encode { what: "event metadata", source })?;
    let first_version = *version + 1;
    for event in &events {
        *order = evolve(std::mem::take(order), event);
    }
    *version += u32::try_from(encoded.len())
        .map_err(|_| StoreError::Invariant("a command decided too many events".into()))?;
    Ok(Decided::Accepted { events: encoded, first_version, metadata })
}

/// The outcome stored under an idempotency key, replayed.
fn replay(stored: &[u8]) -> Result<Outcome, CommandError> {
    serde_json::from_slice(stored).map(|accepted| Outcome { accepted, replayed: true }).map_err(
        |error| {
            StoreError::Invariant(format!("a stored command outcome does not read: {error}")).into()
        },
    )
}

/// One command in a transaction of its own: a batch of one.
pub(crate) async fn write_alone(
    store: &EventStore,
    request: CommandRequest,
) -> Result<Outcome, CommandError> {
    let attempts = if request.expected_version.is_some() { 1 } else { MAX_ATTEMPTS };
    for attempt in 1..=attempts {
        match write(store, std::slice::from_ref(&request), store.wait_timeout()).await {
            Ok(mut results) => {
                return results.pop().unwrap_or(Err(CommandError::Store(
                    eventstore::StoreError::Invariant("a write answered no command".into()),
                )))
            }
            Err(WriteFailed::Conflict) => {
                if let Some(expected) = request.expected_version {
                    return Err(CommandError::VersionConflict { expected, actual: None });
                }
                tracing::debug!(attempt, "lost a race for the order; deciding again");
            }
            Err(WriteFailed::Failed(error)) => return Err(error),
        }
    }
    Err(CommandError::Contention)
}
