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
use crate::write::write_alone;

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
            None => write_alone(&self.store, request).await,
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
