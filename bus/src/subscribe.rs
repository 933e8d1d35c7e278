//! The two sides a consumer loop joins: the [`Subscriber`] a broker adapter provides (one
//! member of a consumer group) and the [`Handler`] that processes what it receives.

use std::error::Error;
use std::future::Future;

use chrono::{DateTime, Utc};

use crate::error::BusError;
/// One message as a subscriber received it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub channel: String,
    /// Where it came from, for acknowledging and for the dead-letter record: the Kafka
    /// partition and offset (another bus maps its own notion of place onto these).
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The message's `traceparent` header, as received (a consumer parses it, and treats
    /// an invalid one as absent).
    pub traceparent: Option<String>,
}

/// Why a message was parked.
#[derive(Clone, Debug)]
pub struct Failure {
    pub consumer: &'static str,
    pub error: String,
    pub attempts: u32,
}

/// The receiving side of a broker adapter: one member of a consumer group.
pub trait Subscriber: Send + 'static {
    /// The next message. Cancel-safe: dropping the future loses nothing.
    fn recv(&mut self) -> impl Future<Output = Result<Delivery, BusError>> + Send;

    /// Acknowledges every message of `batch` (and what came before it on its partition).
    fn commit(&mut self, batch: &[Delivery]) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Publishes `delivery` to the dead-letter channel with the reason.
    fn park(
        &mut self,
        delivery: &Delivery,
        failure: &Failure,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// The partitions this member holds now (`None`: the bus has no such notion).
    fn assignment(&self) -> Option<Vec<i32>> {
        None
    }

    /// Messages on this member's partitions not yet acknowledged, as the broker last told
    /// (`None`: not known yet, or the bus has no such notion).
    fn lag(&self) -> Option<i64> {
        None
    }

    /// Leaves the group and joins it again, starting a new round of assignment.
    fn rejoin(&mut self) -> Result<(), BusError> {
        Ok(())
    }

    /// Whether a message delivered again comes back with the same partition and offset
    /// (a Kafka offset, a JetStream stream sequence), so that the offset names it for
    /// good; false where the offset is only a delivery tag (RabbitMQ).
    fn offsets_name_messages(&self) -> bool {
        true
    }
}

/// A failure of a handler: worth waiting out, or a message that cannot be processed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("transient failure")]
    Transient(#[source] Box<dyn Error + Send + Sync>),
    #[error("cannot be processed")]
    Permanent(#[source] Box<dyn Error + Send + Sync>),
}

impl HandlerError {
    pub(crate) fn describe(&self) -> String {
        crate::error::chain(self)
    }
}

/// What consumes the messages: a projection, a delivery service, a process manager.
pub trait Handler: Send + Sync + 'static {
    /// Names the consumer group, the logs and the status.
    fn name(&self) -> &'static str;

    /// Processes a batch, all or nothing.
    fn handle(&self, batch: &[Delivery]) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Records a message parked on the dead-letter channel.
    fn parked(
        &self,
        delivery: &Delivery,
        failure: &Failure,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Whether this consumer has already parked the message at `delivery`'s partition and
    /// offset: a poison message delivered again (its acknowledgement had not reached the
    /// broker before a rebalance) is not parked, nor shown to the operator, twice.
    fn already_parked(
        &self,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<bool, HandlerError>> + Send {
        let _ = delivery;
        async { Ok(false) }
    }

    /// Whether there is work this consumer has not been given (see
    /// [`ConsumerSettings::orphaned_after`]).
    fn lags(&self) -> impl Future<Output = bool> + Send {
        async { false }
    }

    /// When work this consumer should have been given was last done without it (a
    /// projection's catch-up applied events from the store that the bus had not
    /// delivered); `None`: never, or the handler has no such notion.
    fn undelivered_at(&self) -> Option<DateTime<Utc>> {
        None
    }
}
