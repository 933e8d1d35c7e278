//! Channel names. Every broker carries the order events on one channel (a Kafka topic, a
//! NATS subject, a RabbitMQ exchange) and parks what cannot be processed on its
//! dead-letter channel; a configurable prefix lets tenants and tests share a broker.
//!
//! The names on each bus, one place for the adapters and the published contract:
//!
//! | | Kafka | NATS JetStream | RabbitMQ |
//! |---|---|---|---|
//! | orders | topic [`Channels::orders`], key = order id | subjects [`Channels::partition`] `<orders>.<p>` in stream [`Channels::stream`] | direct exchange [`Channels::orders`], routing key `<p>` |
//! | per consumer group | the group | a durable consumer per partition ([`Channels::partition_consumer`]) | a queue per partition ([`Channels::partition_queue`]) |
//! | dead letters | topic [`Channels::dead_letters`] | subject [`Channels::dead_letters`] in stream [`Channels::dead_letter_stream`] | exchange [`Channels::dead_letters`] and its queue of the same name |
//!
//! `<p>` is [`crate::partition::partition_of`] the order id.

/// The order events' channel, before the prefix.
pub const ORDERS: &str = "ledger.orders.v1";
/// Appended to a channel's name for its dead letters.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    prefix: String,
    /// The orders channel's name when it is not `<prefix>ledger.orders.v1`: a back-fill
    /// target (`ledger relay republish --to`).
    orders: Option<String>,
}

impl Channels {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into(), orders: None }
    }

    /// These channels with the orders channel (and so its partitions and dead letters)
    /// called `name`: where `ledger relay republish --to` sends history.
    #[must_use]
    pub fn with_orders(mut self, name: impl Into<String>) -> Self {
        self.orders = Some(name.into());
        self
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn orders(&self) -> String {
        match &self.orders {
            Some(name) => name.clone(),
            None => format!("{}{ORDERS}", self.prefix),
        }
    }

    pub fn dead_letters(&self) -> String {
        format!("{}{DEAD_LETTER_SUFFIX}", self.orders())
    }

    /// The subject (NATS) of partition `p` of the orders channel.
    pub fn partition(&self, p: u32) -> String {
        format!("{}.{p}", self.orders())
    }

    /// The JetStream stream holding the orders subjects (stream names allow no dots).
    pub fn stream(&self) -> String {
        stream_name(&self.orders())
    }

    /// The JetStream stream holding the dead-letter subject.
    pub fn dead_letter_stream(&self) -> String {
        stream_name(&self.dead_letters())
    }

    /// The durable JetStream consumer of `group` on partition `p`.
    pub fn partition_consumer(&self, group: &str, p: u32) -> String {
        format!("{}-{p}", stream_name(group))
    }

    /// The RabbitMQ queue of `group` for partition `p`.
    pub fn partition_queue(&self, group: &str, p: u32) -> String {
        format!("{group}.{p}")
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

/// `name` as a JetStream stream, consumer or bucket name: only letters, digits, `-` and `_`.
pub fn stream_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_on_each_bus_derive_from_the_prefix() {
        let channels = Channels::new("t1.");
        assert_eq!(channels.orders(), "t1.ledger.orders.v1");
        assert_eq!(channels.partition(3), "t1.ledger.orders.v1.3");
        assert_eq!(channels.stream(), "t1_ledger_orders_v1");
        assert_eq!(channels.dead_letter_stream(), "t1_ledger_orders_v1_dlq");
        let group = channels.group("payments");
        assert_eq!(channels.partition_consumer(&group, 2), "t1_ledger-projection-payments-2");
        assert_eq!(channels.partition_queue(&group, 2), "t1.ledger-projection-payments.2");
        let backfill = channels.with_orders("replay.orders");
        assert_eq!(backfill.partition(0), "replay.orders.0");
        assert_eq!(backfill.stream(), "replay_orders");
    }
}
