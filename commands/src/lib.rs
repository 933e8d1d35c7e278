//! The command layer: how a command becomes events in the store.
//!
//! [`CommandService::execute`] takes a [`CommandRequest`] (a domain command, its
//! idempotency key, `If-Match`, who sent it and why), and answers an [`Outcome`] (the
//! events it appended, or an earlier acceptance replayed for its key) or a
//! [`CommandError`]. It knows nothing of HTTP: the API and the process managers both call
//! it, and map its errors to their own terms.
//!
//! - [`write`]: the one write path (lock, claim keys, load, decide, append, record,
//!   snapshot, commit) for one command or many.
//! - [`group_commit`]: concurrent commands sharing transactions.
//! - [`rehydrate`]: an order from its snapshot and the events after it.
//! - [`prune_expired_keys`]: idempotency records deleted after their retention.

mod accepted;
mod error;
mod group_commit;
mod key_expiry;
pub mod rehydrate;
mod request;
mod service;
mod write;

pub use accepted::{Accepted, AcceptedEvent, Outcome};
pub use error::CommandError;
pub use group_commit::GroupCommitSettings;
pub use key_expiry::{prune_expired_keys, KeyExpirySettings};
pub use request::{CommandContext, CommandRequest, Idempotency};
pub use service::CommandService;
