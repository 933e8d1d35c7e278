//! The RabbitMQ adapter of the bus (AMQP 0-9-1, through `lapin`): the relay's
//! [`RabbitPublisher`] and the consumer groups' [`RabbitSubscriber`], configured by
//! [`RabbitSettings`] (or [`RabbitArgs`] from flags and environment variables).
//!
//! RabbitMQ has no partitions of its own: the publisher routes each message to the
//! partition of its key ([`bus::partition::partition_of`]) through a direct exchange,
//! each consumer group has a queue per partition ([`topology`]), and the members of a
//! group hold those queues one member each (an exclusive holder queue each, a presence queue
//! counting the members: see `membership.rs`), so order per key holds
//! while they share the work.

mod args;
mod confirm;
mod membership;
mod publisher;
mod settings;
mod subscriber;
pub mod topology;

pub use args::RabbitArgs;
pub use confirm::Refused;
pub use publisher::RabbitPublisher;
pub use settings::{
    QueueType, RabbitSettings, DEFAULT_DELIVERY_LIMIT, DEFAULT_PARTITIONS, DEFAULT_PREFETCH,
    DEFAULT_PUBLISH_TIMEOUT_MS, DEFAULT_QUEUE_TYPE, DEFAULT_REBALANCE_INTERVAL_MS, DEFAULT_URL,
};
pub use subscriber::RabbitSubscriber;
