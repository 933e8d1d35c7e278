//! The adapter's settings, shared by the publisher and the subscribers, and the one way
//! both connect to the server.
//!
//! A connection reconnects by itself after an outage (async-nats retries for ever);
//! meanwhile every JetStream request fails after `publish_timeout`, which the relay and
//! the consumer loop turn into a retry. The first connection is not retried here: a
//! server that is not there yet fails `connect`, and the caller backs off.

use std::time::Duration;

use async_nats::jetstream;
use bus::{BusError, Channels};

pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_PARTITIONS: u32 = 8;
pub const DEFAULT_REPLICAS: usize = 1;
/// How long the orders stream keeps a message: long enough for a consumer group to be
/// down over a long weekend and still catch up from the bus.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// JetStream's own default: a relay that republishes a batch after a failure does so
/// well within two minutes.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(2 * 60);
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct NatsSettings {
    pub url: String,
    pub channels: Channels,
    /// How many subjects the orders channel is split into; fixed once the stream exists
    /// (the publisher's placement of keys depends on it).
    pub partitions: u32,
    /// Replicas of the streams the adapter creates (3 on a production cluster).
    pub replicas: usize,
    /// Retention of the orders stream.
    pub max_age: Duration,
    /// How long the server remembers a message id to drop a republished duplicate.
    pub duplicate_window: Duration,
    /// How long the server waits for a consumer's acknowledgement before delivering a
    /// message again (the subscriber drops such redeliveries while it still holds the
    /// original: the consumer loop retries a batch itself).
    pub ack_wait: Duration,
    /// How long a member's claim on a partition, and its membership, outlive its last
    /// renewal: a member that dies without leaving hands its partitions over after this.
    pub lease_ttl: Duration,
    /// Bounds every JetStream request and publish acknowledgement.
    pub publish_timeout: Duration,
}

impl NatsSettings {
    pub fn new(url: impl Into<String>, channels: Channels) -> Self {
        Self {
            url: url.into(),
            channels,
            partitions: DEFAULT_PARTITIONS,
            replicas: DEFAULT_REPLICAS,
            max_age: DEFAULT_MAX_AGE,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            ack_wait: DEFAULT_ACK_WAIT,
            lease_ttl: DEFAULT_LEASE_TTL,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
        }
    }

    /// Whether every comma-separated URL is a server address, for a start-up check (the
    /// connection is made later, and again whenever it was lost).
    pub fn check_url(&self) -> Result<(), String> {
        for url in self.url.split(',') {
            url.trim()
                .parse::<async_nats::ServerAddr>()
                .map_err(|error| format!("{}: {error}", url.trim()))?;
        }
        Ok(())
    }

    /// Connects to the server (a new connection per call) and returns its JetStream
    /// context. `name` shows in the server's connection list.
    pub async fn connect(&self, name: &str) -> Result<jetstream::Context, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(name)
            .connect(self.url.as_str())
            .await
            .map_err(|error| BusError::new("connecting to NATS", error))?;
        Ok(jetstream::ContextBuilder::new().timeout(self.publish_timeout).build(client))
    }
}
