//! The one write path: a set of commands decided and written in one unit of work.
//!
//! Lock every order involved, claim every idempotency key, load every order (from its
//! snapshot), decide each command in arrival order against the state the previous ones
//! left (so two commands on one order behave as if sent one after the other), append
//! every event, record every outcome, snapshot where a command crossed the mark, commit
//! once. A command that is refused (a rule, `If-Match`, a reused key) gets its own error
//! and writes nothing; the others go on. Nobody's outcome counts before the commit.
//!
//! Placing an order creates its stream, so it needs nothing loaded: placements without
//! an idempotency key (whose claim decides whether to run them at all) are decided
//! against the empty order and written in a unit of their own, in one round trip. The
//! stream's first version is the check: if one of those orders exists after all, that
//! unit writes nothing and its commands go the whole way with the others.

use std::collections::HashMap;
use std::time::Duration;

use domain::{decide, evolve, Command, Order, ORDER_SHAPE_VERSION};
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

type Answer = Result<Outcome, CommandError>;

/// The indices of the placements that can be written without loading (see the module's
/// comment), and of the rest. A placement whose order has another command in the batch
/// stays with the rest, which decides them in turn.
pub(crate) fn split_placements(requests: &[&CommandRequest]) -> (Vec<usize>, Vec<usize>) {
    let mut commands_per_order: HashMap<Uuid, usize> = HashMap::new();
    for request in requests {
        *commands_per_order.entry(request.order_id.as_uuid()).or_default() += 1;
    }
    (0..requests.len()).partition(|i| {
        let request = &requests[*i];
        matches!(request.command, Command::PlaceOrder(_))
            && request.idempotency.is_none()
            && request.expected_version.is_none_or(|expected| expected == 0)
            && commands_per_order.get(&request.order_id.as_uuid()) == Some(&1)
    })
}

/// Places orders as new streams, in one unit of work and one round trip. `Conflict` if
/// one of them exists, or if one is refused against the empty order (it may exist, and
/// then the existing order's answer is the right one): nothing is written then.
pub(crate) async fn create(
    store: &EventStore,
    placements: &[&CommandRequest],
    budget: Duration,
) -> Result<Vec<Outcome>, WriteFailed> {
    let mut decided = Vec::with_capacity(placements.len());
    for request in placements {
        match decide_one(request, &mut Order::default(), &mut 0) {
            Ok(accepted) => decided.push(accepted),
            Err(_) => return Err(WriteFailed::Conflict),
        }
    }
    let to_append = events_to_append(placements, &decided);
    let positions = match store.create_streams(&to_append, budget).await {
        Ok(positions) => positions,
        Err(AppendError::Conflict) => return Err(WriteFailed::Conflict),
        Err(AppendError::Store(error)) => return Err(error.into()),
    };
    let mut positions = positions.into_iter();
    placements
        .iter()
        .zip(decided)
        .map(|(request, decided)| match decided {
            Decided::Accepted { events, first_version, .. } => {
                let accepted = accept(request, &events, first_version, &mut positions)?;
                Ok(Outcome { accepted, replayed: false })
            }
            Decided::Answered(_) => Err(WriteFailed::Failed(
                StoreError::Invariant("a placement was answered before its write".into()).into(),
            )),
        })
        .collect()
}

/// Writes `requests` in one transaction, loading their orders; one result per request,
/// in order. Unless a connection is had within `budget` nothing is written and the store
/// is `Unavailable`.
pub(crate) async fn write(
    store: &EventStore,
    requests: &[&CommandRequest],
    budget: Duration,
) -> Result<Vec<Answer>, WriteFailed> {
    let mut streams: Vec<Uuid> = requests.iter().map(|r| r.order_id.as_uuid()).collect();
    streams.sort_unstable();
    streams.dedup();
    // Idempotency keys first: a replay or a reused key is answered without deciding. The
    // locks, the claims and the loads go to the server together: one round trip.
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
    let (unit, claims, mut loaded) =
        store.begin_loading(&streams, budget, &keys, ORDER_SHAPE_VERSION).await?;
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
    let to_append = events_to_append(requests, &decided);
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
    // The refused commands' keys go back and the events are appended in one round trip,
    // the commit with them unless an outcome (which names the positions) is to be recorded.
    let records_outcomes = requests
        .iter()
        .zip(&decided)
        .any(|(r, d)| r.idempotency.is_some() && matches!(d, Decided::Accepted { .. }));
    let (positions, open) = if records_outcomes {
        (unit.release_and_append(&released, &to_append).await, Some(unit))
    } else {
        (unit.append_and_commit(&released, &to_append, ORDER_SHAPE_VERSION, &snapshots).await, None)
    };
    let positions = match positions {
        Ok(positions) => positions,
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
                let accepted = accept(request, &events, first_version, &mut positions)?;
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
    if let Some(unit) = open {
        let outcomes: Vec<(&str, &[u8])> =
            recorded.iter().map(|(k, b)| (*k, b.as_slice())).collect();
        unit.commit_with(&outcomes, ORDER_SHAPE_VERSION, &snapshots).await?;
    }
    Ok(results)
}

/// The events of the accepted commands, in order, with their streams and versions.
fn events_to_append<'a>(
    requests: &[&CommandRequest],
    decided: &'a [Decided],
) -> Vec<StreamEvent<'a>> {
    let mut to_append = Vec::new();
    for (request, outcome) in requests.iter().zip(decided) {
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
    to_append
}

/// What a client is told of an accepted command's events, given the positions the append
/// returned for them (taken from `positions` in order).
fn accept(
    request: &CommandRequest,
    events: &[NewEvent],
    first_version: u32,
    positions: &mut impl Iterator<Item = i64>,
) -> Result<Accepted, StoreError> {
    let mut appended = Vec::with_capacity(events.len());
    for (offset, event) in (0u32..).zip(events) {
        let position = positions.next().ok_or_else(|| {
            StoreError::Invariant("an append returned fewer positions than events".into())
        })?;
        appended.push(AcceptedEvent {
            event_id: event.event_id,
            event_type: event.event_type.to_owned(),
            stream_version: first_version + offset,
            position,
        });
    }
    let last = appended
        .last()
        .ok_or_else(|| StoreError::Invariant("an accepted command appended no event".into()))?;
    Ok(Accepted {
        order_id: request.order_id.as_uuid(),
        stream_version: last.stream_version,
        position: last.position,
        events: appended,
    })
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
    let request = &request;
    if !split_placements(std::slice::from_ref(&request)).0.is_empty() {
        match create(store, std::slice::from_ref(&request), store.wait_timeout()).await {
            Ok(mut created) => {
                return created.pop().ok_or_else(|| {
                    StoreError::Invariant("a placement's write answered nothing".into()).into()
                })
            }
            // The order exists (or the placement was refused): decide against what is there.
            Err(WriteFailed::Conflict) => {}
            Err(WriteFailed::Failed(error)) => return Err(error),
        }
    }
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
