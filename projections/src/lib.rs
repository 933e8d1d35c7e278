//! Read models built from the order events: payments and notifications.
//!
//! - [`Projection`]: what a read model implements: how a batch of events changes its
//!   tables, inside a transaction it is given; [`ProjectionKind`]: the registry of them.
//! - [`apply`]: exactly-once application. Per projection and order, the last applied
//!   stream version is kept in the same transaction as the read-model write: a duplicate
//!   changes nothing, and a version that skips ahead first pulls the missing events from
//!   the event store, so a lost message heals instead of drifting.
//! - [`ProjectionHandler`]: a projection as a consumer of the orders channel (the bus's
//!   consumer loop batches, retries and parks; this applies and records [`dead_letter`]s);
//!   [`catch_up`]: what the bus did not deliver, applied from the store after a grace
//!   period; [`applied`]: the push that wakes readers waiting for a batch.
//! - [`rebuild`]: a new generation replayed from the event store beside the live one, then
//!   swapped in atomically; or built as of a past cut for investigation. [`replay`]: how
//!   it folds history in memory and bulk-loads the rows.
//! - [`payments`] / [`notifications`]: the two read models and their queries, current or
//!   as of a cut ([`watermark`]: how far each projection is complete); [`status`]: their
//!   durable progress.

pub mod applied;
pub mod apply;
pub mod catch_up;
pub mod dead_letter;
mod error;
mod event;
mod handler;
mod kind;
pub mod notifications;
pub mod payments;
pub mod positions;
mod projection;
pub mod rebuild;
pub mod replay;
pub mod status;
mod table;
mod text_enum;
pub mod watermark;

pub use applied::AppliedSignal;
pub use catch_up::{CatchUp, CatchUpSettings};
pub use error::ApplyError;
pub use event::ProjectedEvent;
pub use handler::{ProjectionHandler, ProjectionStats};
pub use kind::ProjectionKind;
pub use projection::Projection;
