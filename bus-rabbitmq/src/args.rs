//! The adapter's settings as flags and environment variables, for the `ledger` binary
//! and the bench alike. The channel names come from the caller, which owns the prefix.

use std::time::Duration;

use bus::Channels;
use clap::{value_parser, Args};

use crate::settings::{
    QueueType, RabbitSettings, DEFAULT_DELIVERY_LIMIT, DEFAULT_PARTITIONS, DEFAULT_PREFETCH,
    DEFAULT_PUBLISH_TIMEOUT_MS, DEFAULT_QUEUE_TYPE, DEFAULT_REBALANCE_INTERVAL_MS, DEFAULT_URL,
};

#[derive(Args, Clone, Debug)]
pub struct RabbitArgs {
    /// The AMQP URI of the broker, credentials and vhost included.
    #[arg(long, env = "LEDGER_RABBITMQ_URL", default_value = DEFAULT_URL, hide_env_values = true)]
    pub rabbitmq_url: String,
    /// Queues per consumer group the orders are spread over; fixed for a deployment.
    #[arg(long, env = "LEDGER_RABBITMQ_PARTITIONS", default_value_t = DEFAULT_PARTITIONS,
          value_parser = value_parser!(u32).range(1..))]
    pub rabbitmq_partitions: u32,
    /// The type of the queues the ledger declares.
    #[arg(long, env = "LEDGER_RABBITMQ_QUEUE_TYPE", value_enum, default_value_t = DEFAULT_QUEUE_TYPE)]
    pub rabbitmq_queue_type: QueueType,
    /// Consumer groups whose queues the relay declares before publishing, comma separated.
    #[arg(long, env = "LEDGER_RABBITMQ_GROUPS", value_delimiter = ',')]
    pub rabbitmq_groups: Vec<String>,
    /// Unacknowledged messages per partition queue a member holds.
    #[arg(long, env = "LEDGER_RABBITMQ_PREFETCH", default_value_t = DEFAULT_PREFETCH,
          value_parser = value_parser!(u16).range(1..))]
    pub rabbitmq_prefetch: u16,
    /// Deliveries of a message after which a quorum queue dead-letters it.
    #[arg(long, env = "LEDGER_RABBITMQ_DELIVERY_LIMIT", default_value_t = DEFAULT_DELIVERY_LIMIT,
          value_parser = value_parser!(u32).range(1..))]
    pub rabbitmq_delivery_limit: u32,
    /// How long a batch may wait for the broker's confirms before it is retried.
    #[arg(long, env = "LEDGER_RABBITMQ_PUBLISH_TIMEOUT_MS", default_value_t = DEFAULT_PUBLISH_TIMEOUT_MS,
          value_parser = value_parser!(u64).range(1..))]
    pub rabbitmq_publish_timeout_ms: u64,
    /// How often a group member looks at the group to take or give up partitions.
    #[arg(long, env = "LEDGER_RABBITMQ_REBALANCE_INTERVAL_MS", default_value_t = DEFAULT_REBALANCE_INTERVAL_MS,
          value_parser = value_parser!(u64).range(1..))]
    pub rabbitmq_rebalance_interval_ms: u64,
    /// Delete the ledger's queues once unused this long (`x-expires`); unset: never.
    #[arg(long, env = "LEDGER_RABBITMQ_QUEUE_EXPIRES_MS", value_parser = value_parser!(u64).range(1..))]
    pub rabbitmq_queue_expires_ms: Option<u64>,
}

impl RabbitArgs {
    pub fn settings(&self, channels: Channels) -> RabbitSettings {
        let mut settings = RabbitSettings::new(self.rabbitmq_url.clone(), channels);
        settings.partitions = self.rabbitmq_partitions;
        settings.queue_type = self.rabbitmq_queue_type;
        settings.groups = self.rabbitmq_groups.iter().filter(|g| !g.is_empty()).cloned().collect();
        settings.prefetch = self.rabbitmq_prefetch;
        settings.delivery_limit = self.rabbitmq_delivery_limit;
        settings.publish_timeout = Duration::from_millis(self.rabbitmq_publish_timeout_ms);
        settings.rebalance_interval = Duration::from_millis(self.rabbitmq_rebalance_interval_ms);
        settings.queue_expires = self.rabbitmq_queue_expires_ms.map(Duration::from_millis);
        settings
    }
}
