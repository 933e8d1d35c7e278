//! The NATS JetStream adapter of the bus (async-nats, for nats-server 2.9 and later): the
//! relay's [`NatsPublisher`] and the consumer groups' [`NatsSubscriber`], configured by
//! [`NatsSettings`] (or [`NatsArgs`]).
//!
//! - [`topology`]: the orders stream of partition subjects, deduplicated by event id; the
//!   dead-letter stream; a durable pull consumer per group and partition.
//! - `publisher`: pipelined publishing, in order, every acknowledgement awaited.
//! - `lease`: which member of a group holds which partition (JetStream key-value leases,
//!   since 2.9 has no pinned consumers); `fetch`: pulling from a held partition;
//!   `subscriber`: the member the consumer loop drives.

mod args;
mod fetch;
mod lease;
mod publisher;
mod settings;
mod subscriber;
pub mod topology;

pub use args::NatsArgs;
pub use publisher::NatsPublisher;
pub use settings::{
    NatsSettings, DEFAULT_ACK_WAIT, DEFAULT_DUPLICATE_WINDOW, DEFAULT_LEASE_TTL, DEFAULT_MAX_AGE,
    DEFAULT_PARTITIONS, DEFAULT_PUBLISH_TIMEOUT, DEFAULT_REPLICAS, DEFAULT_URL,
};
pub use subscriber::NatsSubscriber;
pub use topology::ensure_streams;
