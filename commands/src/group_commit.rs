//! Group commit: commands from concurrent callers share one transaction.
//!
//! A few writer tasks take commands off one queue: each gathers what is queued when it is
//! free, and what arrives within its linger if it has one (up to a maximum), and writes
//! it through the one write path ([`crate::write`]), one transaction and one commit for
//! the whole batch — two when it holds placements of new orders, which need nothing
//! loaded and go first in a unit of their own. Each caller is answered only after its unit's commit. If a unit as a whole
//! cannot be written because a writer without the lock took a version, each of its
//! commands is run again on its own.
//!
//! A command waits for a connection at most the store's wait timeout, counted from when it
//! was queued, not from when its batch began: while the database is away each batch fails
//! only after its wait, and a command queued behind one would otherwise wait twice (or more)
//! before its own answer. One whose time ran out in the queue is answered `Overloaded`
//! without being written.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventstore::EventStore;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::accepted::Outcome;
use crate::error::CommandError;
use crate::request::CommandRequest;
use crate::write::{create, split_placements, write, write_alone, WriteFailed};

#[derive(Clone, Copy, Debug)]
pub struct GroupCommitSettings {
    /// Most commands in one transaction.
    pub max_batch: usize,
    /// How long a writer waits for more commands once it has one.
    pub linger: Duration,
    /// Writer tasks (each with its own connection while writing).
    pub writers: usize,
}

type Reply = oneshot::Sender<Result<Outcome, CommandError>>;

struct Pending {
    request: CommandRequest,
    reply: Reply,
    queued_at: Instant,
}

/// The queue in front of the writers.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommit {
    pub(crate) fn start(store: EventStore, settings: GroupCommitSettings) -> Self {
        let (queue, receiver) = mpsc::channel(settings.max_batch.max(1) * 64);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..settings.writers.max(1) {
            tokio::spawn(writer(store.clone(), receiver.clone(), settings));
        }
        Self { queue }
    }

    /// Runs `request` in the next batch; answers once that batch has committed.
    pub(crate) async fn submit(&self, request: CommandRequest) -> Result<Outcome, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { request, reply, queued_at: Instant::now() })
            .await
            .map_err(|_| CommandError::Stopped)?;
        answer.await.map_err(|_| CommandError::Stopped)?
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
                pending.request.idempotency.as_ref().is_none_or(|i| keys.insert(i.key.clone()))
            });
            metrics::histogram!("ledger_group_commit_batch_size").record(now.len() as f64);
            write_batch(&store, now).await;
            batch = later;
        }
    }
}

async fn write_batch(store: &EventStore, batch: Vec<Pending>) {
    let wait_timeout = store.wait_timeout();
    let (expired, batch): (Vec<_>, Vec<_>) =
        batch.into_iter().partition(|pending| pending.queued_at.elapsed() >= wait_timeout);
    for pending in expired {
        let _ = pending.reply.send(Err(CommandError::Overloaded));
    }
    let Some(oldest) = batch.iter().map(|pending| pending.queued_at).min() else { return };
    let budget = wait_timeout.saturating_sub(oldest.elapsed());
    let (requests, replies): (Vec<CommandRequest>, Vec<Reply>) =
        batch.into_iter().map(|p| (p.request, p.reply)).unzip();
    let mut replies: Vec<Option<Reply>> = replies.into_iter().map(Some).collect();
    let all: Vec<&CommandRequest> = requests.iter().collect();
    // The placements that need nothing loaded go first, in a unit of their own (see
    // `crate::write`); whatever happens to it is theirs alone.
    let (creating, mut rest) = split_placements(&all);
    if !creating.is_empty() {
        let placements: Vec<&CommandRequest> = creating.iter().map(|i| all[*i]).collect();
        match create(store, &placements, budget).await {
            Ok(outcomes) => {
                for (index, outcome) in creating.iter().zip(outcomes) {
                    answer(&mut replies[*index], Ok(outcome));
                }
            }
            // One of the orders exists: they all go the whole way with the others.
            Err(WriteFailed::Conflict) => {
                rest.extend(creating);
                rest.sort_unstable();
            }
            Err(WriteFailed::Failed(error)) => {
                let transient = failed(&error);
                for index in creating {
                    answer(&mut replies[index], Err(CommandError::BatchFailed { transient }));
                }
            }
        }
    }
    if rest.is_empty() {
        return;
    }
    let others: Vec<&CommandRequest> = rest.iter().map(|i| all[*i]).collect();
    let budget = wait_timeout.saturating_sub(oldest.elapsed());
    match write(store, &others, budget).await {
        Ok(results) => {
            for (index, result) in rest.into_iter().zip(results) {
                answer(&mut replies[index], result);
            }
        }
        Err(WriteFailed::Conflict) => {
            // Someone wrote without the lock: decide each command on its own again.
            drop(all);
            let mut requests: Vec<Option<CommandRequest>> =
                requests.into_iter().map(Some).collect();
            for index in rest {
                if let Some(request) = requests[index].take() {
                    answer(&mut replies[index], write_alone(store, request).await);
                }
            }
        }
        Err(WriteFailed::Failed(error)) => {
            let transient = failed(&error);
            for index in rest {
                answer(&mut replies[index], Err(CommandError::BatchFailed { transient }));
            }
        }
    }
}

fn answer(reply: &mut Option<Reply>, result: Result<Outcome, CommandError>) {
    if let Some(reply) = reply.take() {
        let _ = reply.send(result);
    }
}

/// Logs why a unit of work failed (once, here) and says whether a caller may retry.
fn failed(error: &CommandError) -> bool {
    let transient = error.is_transient();
    if transient {
        tracing::warn!(error = ?error, "a command batch could not be written");
    } else {
        tracing::error!(error = ?error, "a command batch failed");
    }
    transient
}
