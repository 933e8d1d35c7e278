//! Executing a command: the application service between an adapter (HTTP, a process
//! manager) and the domain.
//!
//! With group commit, concurrent commands share transactions ([`crate::group_commit`]);
//! without, each is a batch of one. Either way it goes through the one write path
//! ([`crate::write`]), and nothing is acknowledged before its commit.
//!
//! A command loses a race only against a writer that did not take the order's lock (the
//! unique `(stream_id, stream_version)` constraint catches it). Without `If-Match` it is
//! then decided again against the new state: the caller asked for the command to apply to
//! the order as it is. With `If-Match` the conflict is the caller's to resolve.

use std::time::Instant;

use eventstore::EventStore;

use crate::accepted::Outcome;
use crate::error::CommandError;
use crate::group_commit::{GroupCommit, GroupCommitSettings};
use crate::request::CommandRequest;
use crate::write::{write, WriteFailed};

/// How often a command without `If-Match` is decided again after losing a race.
const MAX_ATTEMPTS: u32 = 8;

#[derive(Clone)]
pub struct CommandService {
    store: EventStore,
    group_commit: Option<GroupCommit>,
}

impl CommandService {
    /// `group_commit: None` runs each command in a transaction of its own.
    pub fn new(store: EventStore, group_commit: Option<GroupCommitSettings>) -> Self {
        let group_commit = group_commit.map(|settings| GroupCommit::start(store.clone(), settings));
        Self { store, group_commit }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    #[tracing::instrument(
        skip_all,
        fields(
            order_id = %request.order_id,
            command = request.command.name(),
            correlation_id = %request.context.correlation_id
        )
    )]
    pub async fn execute(&self, request: CommandRequest) -> Result<Outcome, CommandError> {
        let started = Instant::now();
        let command = request.command.name();
        let result = match &self.group_commit {
            Some(group) => group.submit(request).await,
            None => execute_alone(&self.store, request).await,
        };
        let outcome = match &result {
            Ok(outcome) if outcome.replayed => "replayed",
            Ok(_) => "accepted",
            Err(error) => error.kind(),
        };
        metrics::histogram!("ledger_command_duration_seconds", "command" => command, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        if let Ok(outcome) = &result {
            if !outcome.replayed {
                metrics::counter!("ledger_events_appended_total")
                    .increment(outcome.accepted.events.len() as u64);
            }
        }
        result
    }
}

/// One command in a transaction of its own: a batch of one.
pub(crate) async fn execute_alone(
    store: &EventStore,
    request: CommandRequest,
) -> Result<Outcome, CommandError> {
    let attempts = if request.expected_version.is_some() { 1 } else { MAX_ATTEMPTS };
    for attempt in 1..=attempts {
        match write(store, std::slice::from_ref(&request)).await {
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
