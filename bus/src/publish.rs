//! The publishing side of a broker adapter.

use std::future::Future;
use std::pin::Pin;

use crate::envelope::Message;
use crate::error::BusError;

/// A batch handed to the broker: completes once the broker acknowledged every message of
/// it, or fails if any was not.
pub type Pending = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>>;

/// Publishes messages to the orders channel of one broker.
pub trait Publisher: Send + 'static {
    /// Creates the channels (and whatever they need) if they are missing; called before
    /// the first batch and again after a failure, since a restarted broker may have lost
    /// them.
    fn prepare(&mut self) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Queues `messages` for the broker, in order per key after everything queued before,
    /// and returns at once: the relay reads its next batch while this one travels. A
    /// failure fails the batch (which the relay then publishes again from its
    /// checkpoint: duplicates, never loss).
    fn send(&mut self, messages: Vec<Message>) -> Result<Pending, BusError>;

    /// Publishes `messages` and returns once the broker has acknowledged every one.
    fn publish(
        &mut self,
        messages: Vec<Message>,
    ) -> impl Future<Output = Result<(), BusError>> + Send {
        let pending = self.send(messages);
        async move { pending?.await }
    }

    /// After a failed batch: lets whatever is still queued be delivered or fail, so that
    /// nothing sent before overtakes the republished batches, and starts afresh.
    fn reset(&mut self) -> impl Future<Output = Result<(), BusError>> + Send;
}
