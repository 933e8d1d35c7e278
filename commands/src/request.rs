//! A command as the layer receives it: the domain command and what surrounds it.

use domain::{Command, OrderId};
use eventstore::Metadata;
use uuid::Uuid;

pub struct CommandRequest {
    pub order_id: OrderId,
    pub command: Command,
    pub idempotency: Option<Idempotency>,
    /// `If-Match`: apply only if the order is at this version.
    pub expected_version: Option<u32>,
    pub context: CommandContext,
}

/// An idempotency key and what makes two uses of it "the same request" (for HTTP: the
/// method, path and body).
#[derive(Clone, Debug)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: Vec<u8>,
}

/// Who sent a command and why; recorded in the metadata of every event it appends.
#[derive(Clone, Debug, Default)]
pub struct CommandContext {
    /// Follows one request (or one saga) through every system it touches: the business
    /// conversation.
    pub correlation_id: String,
    /// The command or event that directly caused this command: the triggering event's id
    /// for a command a process manager issues; `None` for a client's command, which is
    /// then its own cause (a fresh id, see [`CommandRequest::metadata`]).
    pub causation_id: Option<String>,
    /// Who: a principal label (`write#1`) or a process (`process:payments`).
    pub actor: Option<String>,
    /// The technical trace: the W3C `traceparent` of the span the command was sent from
    /// (the request's, or the saga step's), as `trace_context::TraceParent` writes it.
    pub traceparent: Option<String>,
}

impl CommandRequest {
    /// The metadata recorded with the command's events. The causation id names the command
    /// itself when nothing else caused it: every event then says what caused it.
    pub fn metadata(&self) -> Metadata {
        Metadata {
            correlation_id: self.context.correlation_id.clone(),
            causation_id: Some(
                self.context.causation_id.clone().unwrap_or_else(|| Uuid::now_v7().to_string()),
            ),
            idempotency_key: self.idempotency.as_ref().map(|i| i.key.clone()),
            actor: self.context.actor.clone(),
            command: Some(self.command.name().to_owned()),
            traceparent: self.context.traceparent.clone(),
        }
    }
}
