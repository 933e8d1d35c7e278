//! The publishing side of a broker adapter.

use std::future::Future;

use crate::envelope::Message;
use crate::error::BusError;

/// Publishes messages to the orders channel of one broker.
pub trait Publisher: Send + 'static {
    /// Creates the channels (and whatever they need) if they are missing; called before
    /// the first batch and again after a failure, since a restarted broker may have lost
    /// them.
    fn prepare(&mut self) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Publishes `messages`, in order per key, and returns once the broker has
    /// acknowledged every one; any failure fails the whole batch (which the relay then
    /// publishes again from its checkpoint: duplicates, never loss).
    fn publish(
        &mut self,
        messages: Vec<Message>,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Drops whatever is in flight and starts afresh after a failed batch.
    fn reset(&mut self) -> impl Future<Output = Result<(), BusError>> + Send;
}
