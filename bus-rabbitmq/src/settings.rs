//! The adapter's settings, shared by the publisher and the subscribers, and the one way
//! both connect to the broker.
//!
//! The partition count is part of the topology: a queue per group and partition, bound
//! with the partition's number. Changing it on a live broker moves keys to other queues
//! (order per key would break across the change), so it is set once per deployment.

use std::time::Duration;

use bus::{BusError, Channels};
use lapin::{Connection, ConnectionProperties};

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_PARTITIONS: u32 = 8;
pub const DEFAULT_QUEUE_TYPE: QueueType = QueueType::Quorum;
pub const DEFAULT_PREFETCH: u16 = 1_000;
pub const DEFAULT_DELIVERY_LIMIT: u32 = 20;
pub const DEFAULT_PUBLISH_TIMEOUT_MS: u64 = 15_000;
pub const DEFAULT_REBALANCE_INTERVAL_MS: u64 = 1_000;

/// The kind of the partition and dead-letter queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueType {
    /// Replicated (Raft), survives the loss of a minority of nodes; the default.
    Quorum,
    /// A single node's queue: faster, lost with its node.
    Classic,
}

impl QueueType {
    /// The `x-queue-type` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::Classic => "classic",
        }
    }
}

#[derive(Clone, Debug)]
pub struct RabbitSettings {
    /// The AMQP URI, credentials and vhost included.
    pub url: String,
    pub channels: Channels,
    /// How many queues per group the orders are spread over (see the module docs).
    pub partitions: u32,
    pub queue_type: QueueType,
    /// The consumer groups whose queues the publisher declares: RabbitMQ drops what no
    /// queue is bound for, so a group's queues must exist before the first message is
    /// published for it, not only once a member joined.
    pub groups: Vec<String>,
    /// Unacknowledged messages the broker sends ahead, per partition queue a member holds.
    pub prefetch: u16,
    /// Quorum queues only (`x-delivery-limit`): after this many deliveries the broker
    /// gives a message up to the dead-letter exchange. A backstop for a message that
    /// kills its consumer before it can be parked; every handover of a partition counts
    /// a delivery for the messages in flight, so it stays well above one.
    pub delivery_limit: u32,
    /// How long a batch may wait for the broker's confirms (and a connection attempt for
    /// the broker's answer) before it fails and is retried.
    pub publish_timeout: Duration,
    /// How often a member looks at the group: live members, free partitions, its share.
    pub rebalance_interval: Duration,
    /// Queues unused this long (no consumer, no declaration) are deleted by the broker
    /// (`x-expires`); `None`: kept for ever. For groups that come and go (tests, demos):
    /// a production group down for longer would lose its queue and what it held.
    pub queue_expires: Option<Duration>,
}

impl RabbitSettings {
    pub fn new(url: impl Into<String>, channels: Channels) -> Self {
        Self {
            url: url.into(),
            channels,
            partitions: DEFAULT_PARTITIONS,
            queue_type: DEFAULT_QUEUE_TYPE,
            groups: Vec::new(),
            prefetch: DEFAULT_PREFETCH,
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
            publish_timeout: Duration::from_millis(DEFAULT_PUBLISH_TIMEOUT_MS),
            rebalance_interval: Duration::from_millis(DEFAULT_REBALANCE_INTERVAL_MS),
            queue_expires: None,
        }
    }

    /// Whether the URL is an AMQP URI, for a start-up check (the connection is made later,
    /// and again whenever it was lost).
    pub fn check_url(&self) -> Result<(), String> {
        self.url.parse::<lapin::uri::AMQPUri>().map(|_| ())
    }

    /// A new connection named `name` (as the management tools show it). lapin does not
    /// reconnect by itself: whoever holds a connection replaces it once it died.
    pub(crate) async fn connect(&self, name: &str) -> Result<Connection, BusError> {
        const DOING: &str = "connecting to RabbitMQ";
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        tokio::time::timeout(self.publish_timeout, Connection::connect(&self.url, properties))
            .await
            .map_err(|elapsed| BusError::new(DOING, elapsed))?
            .map_err(|error| BusError::new(DOING, error))
    }
}
