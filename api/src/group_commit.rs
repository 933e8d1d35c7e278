//! Group commit: commands from concurrent requests share one transaction.
//!
//! A few writer tasks take commands off one queue: each gathers what arrives within a few
//! hundred microseconds (or up to a maximum), then runs the whole batch as one transaction
//! with one statement per step — lock every order involved, claim every idempotency key,
//! load every order, decide each command in arrival order against the state the previous
//! ones left (so two commands on one order in one batch behave as if sent one after the
//! other), append every event, record the responses — and one commit. Each caller is
//! answered only after that commit. A command that is refused (a rule, `If-Match`, a reused
//! key) is answered with its own error and writes nothing; the others go on. If the batch
//! as a whole cannot be written, each of its commands is run again on its own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use domain::{decide, evolve, Order, ORDER_SHAPE_VERSION};
use eventstore::{schema, AppendError, AppendedEvent, BatchEvent, Claim, EventStore, StoreError};

use crate::aggregate;
use crate::commands::{self, CommandRequest, CommandResponse};
use crate::error::ApiError;
use crate::views::{AppendedEventView, CommandAccepted};

#[derive(Clone, Copy, Debug)]
pub struct GroupCommitSettings {
    /// Most commands in one transaction.
    pub max_batch: usize,
    /// How long a writer waits for more commands once it has one.
    pub linger: Duration,
    /// Writer tasks (each with its own connection while writing).
    pub writers: usize,
}

type Reply = oneshot::Sender<Result<CommandResponse, ApiError>>;

struct Pending {
    request: CommandRequest,
    reply: Reply,
}

/// The queue in front of the writers.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommit {
    pub fn start(store: EventStore, settings: GroupCommitSettings) -> Self {
        let (queue, receiver) = mpsc::channel(settings.max_batch.max(1) * 64);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..settings.writers.max(1) {
            tokio::spawn(writer(store.clone(), receiver.clone(), settings));
        }
        Self { queue }
    }

    /// Runs `request` in the next batch; answers once that batch has committed.
    pub async fn submit(&self, request: CommandRequest) -> Result<CommandResponse, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { request, reply })
            .await
            .map_err(|_| ApiError::Unavailable("the command writers have stopped".to_owned()))?;
        answer.await.map_err(|_| ApiError::Unavailable("the command writer stopped".to_owned()))?
    }
}

async fn writer(
    store: EventStore,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    settings: GroupCommitSettings,
) {
    loop {
        let mut batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else { return };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + settings.linger;
            while batch.len() < settings.max_batch {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(pending)) => batch.push(pending),
                    _ => break,
                }
            }
            batch
        };
        // A key used twice in one batch: the later use must see the earlier one's outcome,
        // as it would have waited for it on its own; it goes into the next round.
        while !batch.is_empty() {
            let mut keys = HashSet::new();
            let (now, later): (Vec<_>, Vec<_>) = batch.into_iter().partition(|pending| {
                pending.request.idempotency_key.as_ref().is_none_or(|key| keys.insert(key.clone()))
            });
            metrics::histogram!("ledger_group_commit_batch_size").record(now.len() as f64);
            write(&store, now).await;
            batch = later;
        }
    }
}

/// What became of one command of the batch before the commit.
enum Decided {
    Answered(Result<CommandResponse, ApiError>),
    Accepted { events: Vec<eventstore::NewEvent>, first_version: u32, metadata: serde_json::Value },
}

async fn write(store: &EventStore, batch: Vec<Pending>) {
    let (requests, replies): (Vec<CommandRequest>, Vec<Reply>) =
        batch.into_iter().map(|p| (p.request, p.reply)).unzip();
    match write_batch(store, &requests).await {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(BatchFailed::Conflict) => {
            // Someone wrote without the lock: decide each command on its own again.
            for (reply, request) in replies.into_iter().zip(requests) {
                let _ = reply.send(commands::execute_alone(store, request).await);
            }
        }
        Err(BatchFailed::Decode(error)) => {
            tracing::error!(error = ?error, "a command batch could not be decided");
            for reply in replies {
                let _ =
                    reply.send(Err(ApiError::internal(anyhow::anyhow!("unreadable order state"))));
            }
        }
        Err(BatchFailed::Store(error)) => {
            let error = ApiError::from(error);
            for reply in replies {
                let _ = reply.send(Err(match &error {
                    ApiError::Unavailable(cause) => ApiError::Unavailable(cause.clone()),
                    _ => ApiError::Unavailable("the batch could not be written".to_owned()),
                }));
            }
            if !matches!(error, ApiError::Unavailable(_)) {
                tracing::error!(error = ?error, "a command batch failed");
            }
        }
    }
}

enum BatchFailed {
    Conflict,
    Store(StoreError),
    /// A stored event or snapshot could not be read or written.
    Decode(ApiError),
}

impl From<StoreError> for BatchFailed {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

async fn write_batch(
    store: &EventStore,
    requests: &[CommandRequest],
) -> Result<Vec<Result<CommandResponse, ApiError>>, BatchFailed> {
    let mut streams: Vec<Uuid> = requests.iter().map(|r| r.order_id.as_uuid()).collect();
    streams.sort_unstable();
    streams.dedup();
    let mut write = store.begin_batch(&streams).await?;

    // Idempotency keys first: a replay or a reused key is answered without deciding.
    let keyed: Vec<usize> =
        (0..requests.len()).filter(|i| requests[*i].idempotency_key.is_some()).collect();
    let claims = write
        .claim_keys(
            &keyed
                .iter()
                .map(|i| {
                    let r = &requests[*i];
                    (
                        r.idempotency_key.clone().unwrap_or_default(),
                        r.fingerprint.clone(),
                        r.order_id.as_uuid(),
                    )
                })
                .collect::<Vec<_>>(),
        )
        .await?;
    let mut claim_of: HashMap<usize, Claim> = keyed.into_iter().zip(claims).collect();

    let mut loaded = write.load_from_snapshots(&streams, ORDER_SHAPE_VERSION).await?;
    let mut states: HashMap<Uuid, (Order, u32)> = HashMap::new();
    let mut unreadable = Vec::new();
    for stream in &streams {
        match aggregate::fold_loaded(loaded.remove(stream).unwrap_or_default()) {
            Ok(Some(state)) => {
                states.insert(*stream, state);
            }
            Ok(None) => unreadable.push(*stream),
            Err(error) => return Err(BatchFailed::Decode(error)),
        }
    }
    if !unreadable.is_empty() {
        for (stream, history) in write.load_streams(&unreadable).await? {
            states.insert(stream, aggregate::fold_all(&history).map_err(BatchFailed::Decode)?);
        }
        for stream in unreadable {
            states.entry(stream).or_default();
        }
    }
    let versions_before: HashMap<Uuid, u32> =
        states.iter().map(|(stream, (_, version))| (*stream, *version)).collect();

    let mut decided = Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        match claim_of.remove(&index) {
            Some(Claim::Replay { status, body }) => {
                decided.push(Decided::Answered(Ok(CommandResponse {
                    status,
                    body,
                    replayed: true,
                    appended: 0,
                })));
                continue;
            }
            Some(Claim::Mismatch) => {
                decided.push(Decided::Answered(Err(ApiError::IdempotencyKeyReused)));
                continue;
            }
            Some(Claim::Claimed) | None => {}
        }
        let stream = request.order_id.as_uuid();
        let Some((order, version)) = states.get_mut(&stream) else {
            decided.push(Decided::Answered(Err(ApiError::internal(anyhow::anyhow!(
                "unloaded stream"
            )))));
            continue;
        };
        if let Some(expected) = request.expected_version {
            if expected != *version {
                decided.push(Decided::Answered(Err(ApiError::VersionConflict {
                    expected_version: expected,
                    actual_version: Some(*version),
                })));
                continue;
            }
        }
        let events = match decide(order, request.command.clone()) {
            Ok(events) => events,
            Err(error) => {
                decided.push(Decided::Answered(Err(error.into())));
                continue;
            }
        };
        let encoded = match events.iter().map(schema::encode).collect::<Result<Vec<_>, _>>() {
            Ok(encoded) => encoded,
            Err(error) => {
                decided.push(Decided::Answered(Err(ApiError::internal(error))));
                continue;
            }
        };
        let metadata = match serde_json::to_value(commands::metadata(request)) {
            Ok(metadata) => metadata,
            Err(error) => {
                decided.push(Decided::Answered(Err(ApiError::internal(error))));
                continue;
            }
        };
        let first_version = *version + 1;
        for event in &events {
            *order = evolve(std::mem::take(order), event);
        }
        *version += u32::try_from(encoded.len()).unwrap_or(u32::MAX);
        decided.push(Decided::Accepted { events: encoded, first_version, metadata });
    }

    // Refused commands give their keys back: they wrote nothing.
    let released: Vec<&str> = requests
        .iter()
        .zip(&decided)
        .filter(|(_, d)| {
            matches!(d, Decided::Answered(Err(error)) if !matches!(error, ApiError::IdempotencyKeyReused))
        })
        .filter_map(|(r, _)| r.idempotency_key.as_deref())
        .collect();
    write.release_keys(&released).await?;

    let mut to_append = Vec::new();
    for (request, outcome) in requests.iter().zip(&decided) {
        if let Decided::Accepted { events, first_version, metadata } = outcome {
            for (offset, event) in events.iter().enumerate() {
                to_append.push(BatchEvent {
                    stream_id: request.order_id.as_uuid(),
                    stream_version: first_version + u32::try_from(offset).unwrap_or(u32::MAX),
                    event,
                    metadata,
                });
            }
        }
    }
    let positions = match write.append(&to_append).await {
        Ok(positions) => positions,
        Err(AppendError::Conflict { .. }) => return Err(BatchFailed::Conflict),
        Err(AppendError::Store(error)) => return Err(BatchFailed::Store(error)),
    };

    let mut positions = positions.into_iter();
    let mut results = Vec::with_capacity(requests.len());
    let mut recorded: Vec<(&str, u16, Vec<u8>)> = Vec::new();
    for (request, outcome) in requests.iter().zip(decided) {
        match outcome {
            Decided::Answered(result) => results.push(result),
            Decided::Accepted { events, first_version, .. } => {
                let appended: Vec<AppendedEvent> = events
                    .iter()
                    .enumerate()
                    .map(|(offset, event)| AppendedEvent {
                        event_id: event.event_id,
                        event_type: event.event_type,
                        stream_version: first_version + u32::try_from(offset).unwrap_or(u32::MAX),
                        global_position: positions.next().unwrap_or_default(),
                    })
                    .collect();
                let body = accepted_body(request, &appended);
                if let (Ok(body), Some(key)) = (&body, &request.idempotency_key) {
                    recorded.push((key.as_str(), 201, body.clone()));
                }
                results.push(body.map(|body| CommandResponse {
                    status: 201,
                    body,
                    replayed: false,
                    appended: appended.len(),
                }));
            }
        }
    }
    let responses: Vec<(&str, u16, &[u8])> =
        recorded.iter().map(|(k, s, b)| (*k, *s, b.as_slice())).collect();
    write.record_responses(&responses).await?;
    let mut snapshots = Vec::new();
    for (stream, (order, version)) in &states {
        let before = versions_before.get(stream).copied().unwrap_or_default();
        if eventstore::snapshot::crosses_snapshot_point(before, *version) {
            snapshots.push((
                *stream,
                *version,
                aggregate::snapshot_of(order).map_err(BatchFailed::Decode)?,
            ));
        }
    }
    write.save_snapshots(ORDER_SHAPE_VERSION, &snapshots).await?;
    write.commit().await?;
    Ok(results)
}

fn accepted_body(
    request: &CommandRequest,
    appended: &[AppendedEvent],
) -> Result<Vec<u8>, ApiError> {
    let last = appended
        .last()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a command appended no event")))?;
    let accepted = CommandAccepted {
        order_id: request.order_id.as_uuid(),
        stream_version: last.stream_version,
        position: last.global_position,
        events: appended.iter().map(AppendedEventView::from).collect(),
    };
    serde_json::to_vec(&accepted).map_err(ApiError::internal)
}
