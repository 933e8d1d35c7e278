//! What travels on the message bus, and the two loops that move it.
//!
//! - [`envelope`]: the message published for each event (key, JSON envelope, headers):
//!   the contract outside consumers read. [`Channels`]: the channel names.
//! - [`Publisher`] and [`Subscriber`]: the two traits a broker adapter implements
//!   (`bus-kafka`); everything else here is the same whatever the broker.
//! - [`relay`]: publishes every committed event from the store (the outbox) in the
//!   gap-safe order, one active relay at a time.
//! - [`republish`]: re-sends a range of history to a channel of its own (back-fill for a
//!   new consumer), without touching the relay.
//! - [`Consumer`]: the loop every subscriber runs: batches to a [`Handler`], acknowledged
//!   after the handler's work is durable; retries, dead letters.

mod channel;
mod consume;
mod duration;
pub mod envelope;
mod error;
pub mod partition;
mod publish;
pub mod relay;
pub mod republish;
mod subscribe;

pub use channel::{stream_name, Channels, DEAD_LETTER_SUFFIX, ORDERS};
pub use consume::{Consumer, ConsumerSettings, ConsumerState, ConsumerStatus};
pub use duration::parse_duration;
pub use error::{chain, BusError};
pub use publish::{Pending, Publisher};
pub use subscribe::{Delivery, Failure, Handler, HandlerError, Subscriber};
