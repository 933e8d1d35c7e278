//! The bus settings as flags and environment variables: which bus (`LEDGER_BUS`), and each
//! adapter's own (only the chosen one's are used).

use bus::Channels;
use clap::Args;

use crate::bus_choice::{BusKind, BusSettings};

#[derive(Args, Clone, Debug)]
pub struct BusArgs {
    /// The bus the relay publishes to and the consumers read from.
    #[arg(long, env = "LEDGER_BUS", value_enum, default_value_t = BusKind::Kafka)]
    pub bus: BusKind,
    #[command(flatten)]
    pub kafka: bus_kafka::KafkaArgs,
    #[command(flatten)]
    pub nats: bus_nats::NatsArgs,
    #[command(flatten)]
    pub rabbitmq: bus_rabbitmq::RabbitArgs,
}

impl BusArgs {
    pub fn settings(&self) -> anyhow::Result<BusSettings> {
        let channels = Channels::new(self.kafka.topic_prefix.clone());
        let mut settings = BusSettings::new(self.bus, &channels);
        settings.kafka = self.kafka.settings();
        settings.nats = self.nats.settings(channels.clone());
        settings.rabbitmq = self.rabbitmq.settings(channels.clone());
        settings.set_channels(&channels);
        match self.bus {
            BusKind::Kafka => self.kafka.check().map_err(|error| anyhow::anyhow!(error))?,
            BusKind::Nats => settings.nats.check_url().map_err(|error| {
                anyhow::anyhow!("LEDGER_NATS_URL (--nats-url) is not a NATS server URL: {error}")
            })?,
            BusKind::Rabbitmq => settings.rabbitmq.check_url().map_err(|error| {
                anyhow::anyhow!("LEDGER_RABBITMQ_URL (--rabbitmq-url) is not an AMQP URI: {error}")
            })?,
        }
        // Outside consumers' groups (LEDGER_RABBITMQ_GROUPS) beside the ledger's own.
        let mut outside = self.rabbitmq.settings(channels).groups;
        outside.retain(|group| !settings.rabbitmq.groups.contains(group));
        settings.rabbitmq.groups.extend(outside);
        Ok(settings)
    }
}
