//! The Kafka adapter of the bus (librdkafka, through `rdkafka`): the relay's
//! [`KafkaPublisher`] and the consumer groups' [`KafkaSubscriber`], configured by
//! [`KafkaSettings`]. Works with Apache Kafka, Redpanda and Tansu.

mod args;
mod publisher;
mod settings;
mod subscriber;

pub use args::KafkaArgs;
pub use publisher::KafkaPublisher;
pub use settings::{
    KafkaSettings, DEFAULT_BROKERS, DEFAULT_MESSAGE_TIMEOUT_MS, DEFAULT_PARTITIONS,
    DEFAULT_REPLICATION,
};
pub use subscriber::KafkaSubscriber;
