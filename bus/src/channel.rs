//! Channel names. Every broker carries the order events on one channel (a Kafka topic, a
//! NATS subject, a RabbitMQ exchange) and parks what cannot be processed on its
//! dead-letter channel; a configurable prefix lets tenants and tests share a broker.

/// The order events' channel, before the prefix.
pub const ORDERS: &str = "ledger.orders.v1";
/// Appended to a channel's name for its dead letters.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    prefix: String,
}

impl Channels {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn orders(&self) -> String {
        format!("{}{ORDERS}", self.prefix)
    }

    pub fn dead_letters(&self) -> String {
        format!("{}{DEAD_LETTER_SUFFIX}", self.orders())
    }

    /// The consumer group of the projection called `name`.
    pub fn group(&self, name: &str) -> String {
        format!("{}ledger-projection-{name}", self.prefix)
    }

    /// The consumer group of a service that acts on the events (not a projection), such
    /// as `payment-service`.
    pub fn service_group(&self, name: &str) -> String {
        format!("{}ledger-{name}", self.prefix)
    }
}
