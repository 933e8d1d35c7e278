//! Executing a command: the application service between HTTP and the domain.
//!
//! One attempt is one transaction: claim the idempotency key (if any), load the order's
//! stream, check `If-Match`, `decide`, append at the version that was read, record the
//! response for the key, commit. Nothing is acknowledged before the commit.
//!
//! Commands on the same order take turns (a transaction-scoped advisory lock), so a busy
//! order queues instead of thrashing. A lost race can still happen against writers that
//! do not take the lock; the unique `(stream_id, stream_version)` constraint catches it.
//! A lost race (another command appended to the same order in between) is retried against
//! the new state when the client did not pin a version with `If-Match`: the client asked
//! for the command to apply to the order as it is, so re-deciding is what it meant. With
//! `If-Match` the conflict is the client's to resolve, and it gets 409 `version_conflict`.

use std::time::Instant;

use uuid::Uuid;

use domain::{decide, evolve, Command, OrderId, ORDER_SHAPE_VERSION};
use eventstore::{schema, AppendError, Claim, Cut, EventStore, Metadata, UnitOfWork};

use crate::aggregate;
use crate::error::ApiError;
use crate::group_commit::GroupCommit;
use crate::views::{AppendedEventView, CommandAccepted};

/// How often a command without `If-Match` is re-decided after losing a race.
const MAX_ATTEMPTS: u32 = 8;

pub struct CommandRequest {
    pub order_id: OrderId,
    pub command: Command,
    pub idempotency_key: Option<String>,
    pub expected_version: Option<u32>,
    pub correlation_id: String,
    /// Who sent it (the token's principal label), recorded in the events' metadata.
    pub actor: Option<String>,
    /// Method, path and body: what makes a retry "the same request" for its key.
    pub fingerprint: Vec<u8>,
}

/// The body to answer with, and whether it replays an earlier response.
pub struct CommandResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub replayed: bool,
    /// Events this call appended (none when it replays an earlier response).
    pub appended: usize,
}

enum Attempt {
    Done(CommandResponse),
    LostRace,
}

#[tracing::instrument(
    skip_all,
    fields(order_id = %request.order_id, command = request.command.name(), correlation_id = %request.correlation_id)
)]
pub async fn execute(
    store: &EventStore,
    group_commit: Option<&GroupCommit>,
    request: CommandRequest,
) -> Result<CommandResponse, ApiError> {
    let started = Instant::now();
    let command = request.command.name();
    let result = match group_commit {
        Some(group) => group.submit(request).await,
        None => execute_alone(store, request).await,
    };
    let outcome = match &result {
        Ok(response) if response.replayed => "replayed",
        Ok(_) => "accepted",
        Err(error) => error.code(),
    };
    metrics::histogram!("ledger_command_duration_seconds", "command" => command, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    if let Ok(response) = &result {
        metrics::counter!("ledger_events_appended_total").increment(response.appended as u64);
    }
    result
}

/// The metadata recorded with a command's events.
pub fn metadata(request: &CommandRequest) -> Metadata {
    Metadata {
        correlation_id: request.correlation_id.clone(),
        causation_id: Some(Uuid::now_v7().to_string()),
        idempotency_key: request.idempotency_key.clone(),
        actor: request.actor.clone(),
        command: Some(request.command.name().to_owned()),
    }
}

/// One command in a transaction of its own (without group commit, or when a batch has to
/// be redone command by command).
pub async fn execute_alone(
    store: &EventStore,
    request: CommandRequest,
) -> Result<CommandResponse, ApiError> {
    let attempts = if request.expected_version.is_some() { 1 } else { MAX_ATTEMPTS };
    let metadata = metadata(&request);
    for attempt in 1..=attempts {
        let mut unit = store.begin(request.order_id.as_uuid()).await?;
        match attempt_once(&mut unit, &request, &metadata).await {
            Ok(Attempt::Done(response)) => {
                if response.replayed {
                    unit.rollback().await?;
                } else {
                    unit.commit().await?;
                }
                return Ok(response);
            }
            Ok(Attempt::LostRace) => {
                unit.rollback().await?;
                tracing::debug!(attempt, "lost a race for the order; deciding again");
                continue;
            }
            Err(error) => {
                // Keep the connection for the next request when the failure was ours to
                // report (a rule, a conflict); a broken connection is discarded on drop.
                if !matches!(error, ApiError::Unavailable(_) | ApiError::Internal(_)) {
                    unit.rollback().await?;
                }
                return Err(error);
            }
        }
    }
    Err(ApiError::Unavailable("too much contention on this order".to_owned()))
}

async fn attempt_once(
    unit: &mut UnitOfWork,
    request: &CommandRequest,
    metadata: &Metadata,
) -> Result<Attempt, ApiError> {
    let stream_id = request.order_id.as_uuid();
    if let Some(key) = &request.idempotency_key {
        match unit.claim_idempotency_key(key, &request.fingerprint, stream_id).await? {
            Claim::Claimed => {}
            Claim::Replay { status, body } => {
                return Ok(Attempt::Done(CommandResponse {
                    status,
                    body,
                    replayed: true,
                    appended: 0,
                }));
            }
            Claim::Mismatch => return Err(ApiError::IdempotencyKeyReused),
        }
    }

    let loaded = unit.load_from_snapshot(stream_id, ORDER_SHAPE_VERSION).await?;
    let (order, version) = match aggregate::fold_loaded(loaded)? {
        Some(state) => state,
        None => aggregate::fold_all(&unit.load(stream_id, Cut::Latest).await?)?,
    };
    if let Some(expected_version) = request.expected_version {
        if expected_version != version {
            return Err(ApiError::VersionConflict {
                expected_version,
                actual_version: Some(version),
            });
        }
    }
    let events = decide(&order, request.command.clone())?;
    let encoded = events
        .iter()
        .map(schema::encode)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    let appended = match unit.append(stream_id, version, &encoded, metadata).await {
        Ok(appended) => appended,
        Err(AppendError::Conflict { .. }) if request.expected_version.is_none() => {
            return Ok(Attempt::LostRace)
        }
        Err(error) => return Err(error.into()),
    };

    let last = appended
        .last()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a command appended no event")))?;
    if eventstore::snapshot::crosses_snapshot_point(version, last.stream_version) {
        let state = events.iter().fold(order, evolve);
        unit.save_snapshot(
            stream_id,
            last.stream_version,
            ORDER_SHAPE_VERSION,
            aggregate::snapshot_of(&state)?,
        )
        .await?;
    }
    let accepted = CommandAccepted {
        order_id: stream_id,
        stream_version: last.stream_version,
        position: last.global_position,
        events: appended.iter().map(AppendedEventView::from).collect(),
    };
    let body = serde_json::to_vec(&accepted).map_err(ApiError::internal)?;
    if let Some(key) = &request.idempotency_key {
        unit.record_response(key, 201, &body).await?;
    }
    Ok(Attempt::Done(CommandResponse {
        status: 201,
        body,
        replayed: false,
        appended: appended.len(),
    }))
}
