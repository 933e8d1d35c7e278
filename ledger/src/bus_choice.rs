//! Which bus this ledger speaks (`LEDGER_BUS=kafka|nats|rabbitmq`), and the one place
//! that turns the choice into an adapter: the relay's publisher and every consumer's
//! subscriber. Everything else (the relay, the consumer loop, the handlers) is the same
//! whatever the bus.
//!
//! Each bus has its own relay checkpoint (named after it): a ledger moved to another bus
//! publishes its whole history there, as a new bus needs.

use bus::envelope::Message;
use bus::relay::{Relay, RelaySettings, RelayStatus};
use bus::{BusError, Channels, Consumer, Handler, Pending, Publisher};
use bus_kafka::{KafkaPublisher, KafkaSettings, KafkaSubscriber};
use bus_nats::{NatsPublisher, NatsSettings, NatsSubscriber};
use bus_rabbitmq::{RabbitPublisher, RabbitSettings, RabbitSubscriber};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BusKind {
    #[default]
    Kafka,
    /// NATS JetStream.
    Nats,
    /// RabbitMQ (AMQP 0.9.1).
    Rabbitmq,
}

impl BusKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Nats => "nats",
            Self::Rabbitmq => "rabbitmq",
        }
    }
}

/// The chosen bus and the settings of each adapter (only the chosen one is used).
#[derive(Clone, Debug)]
pub struct BusSettings {
    pub kind: BusKind,
    pub kafka: KafkaSettings,
    pub nats: NatsSettings,
    pub rabbitmq: RabbitSettings,
}

impl BusSettings {
    /// Every adapter on its default address, under `channels`.
    pub fn new(kind: BusKind, channels: &Channels) -> Self {
        let mut settings = Self {
            kind,
            kafka: KafkaSettings::new(bus_kafka::DEFAULT_BROKERS, channels.clone()),
            nats: NatsSettings::new(bus_nats::DEFAULT_URL, channels.clone()),
            rabbitmq: RabbitSettings::new(bus_rabbitmq::DEFAULT_URL, channels.clone()),
        };
        settings.set_channels(channels);
        settings
    }

    /// The channel names on the chosen bus.
    pub fn channels(&self) -> &Channels {
        match self.kind {
            BusKind::Kafka => &self.kafka.channels,
            BusKind::Nats => &self.nats.channels,
            BusKind::Rabbitmq => &self.rabbitmq.channels,
        }
    }

    /// Every adapter under `channels` (the prefix). RabbitMQ keeps only what a queue is
    /// bound for: its publisher declares the queues of every consumer group the ledger
    /// runs, so that none misses what was published before it first joined.
    pub fn set_channels(&mut self, channels: &Channels) {
        self.kafka.channels = channels.clone();
        self.nats.channels = channels.clone();
        self.rabbitmq.channels = channels.clone();
        self.rabbitmq.groups = known_groups(channels);
    }

    /// These settings publishing to `target` instead of the orders channel, for a
    /// back-fill: on RabbitMQ no queue of the live groups is declared for it (the new
    /// consumer binds its own queue to the target exchange before the back-fill starts).
    #[must_use]
    pub fn backfilling(mut self, target: &str) -> Self {
        let channels = self.channels().clone().with_orders(target);
        self.set_channels(&channels);
        self.rabbitmq.groups.clear();
        self
    }

    /// The name of the relay (its checkpoint and leadership lock) on the chosen bus.
    pub fn relay_name(&self) -> &'static str {
        self.kind.name()
    }

    /// Runs the relay on the chosen bus until `shutdown`.
    pub async fn run_relay(
        &self,
        database_url: String,
        relay: RelaySettings,
        status: watch::Sender<RelayStatus>,
        shutdown: CancellationToken,
    ) {
        match self.publisher(&relay.name).await {
            Ok(publisher) => Relay::new(database_url, publisher, relay, status).run(shutdown).await,
            Err(error) => tracing::error!(error = %error.chain(), "the relay cannot start"),
        }
    }

    /// A publisher on the chosen bus, for the relay called `name` or a back-fill.
    pub async fn publisher(&self, name: &str) -> Result<AnyPublisher, BusError> {
        Ok(match self.kind {
            BusKind::Kafka => AnyPublisher::Kafka(KafkaPublisher::new(self.kafka.clone(), name)?),
            BusKind::Nats => {
                AnyPublisher::Nats(NatsPublisher::connect(self.nats.clone(), name).await?)
            }
            BusKind::Rabbitmq => {
                AnyPublisher::Rabbitmq(RabbitPublisher::new(self.rabbitmq.clone(), name))
            }
        })
    }

    /// Runs `consumer` as a member of `group` on the chosen bus until `shutdown`.
    pub async fn consume<H: Handler>(
        &self,
        consumer: Consumer<H>,
        group: String,
        shutdown: CancellationToken,
    ) {
        match self.kind {
            BusKind::Kafka => {
                let kafka = self.kafka.clone();
                consumer.run(|| KafkaSubscriber::join(&kafka, &group), shutdown).await;
            }
            BusKind::Nats => {
                let nats = self.nats.clone();
                consumer.run(|| NatsSubscriber::join(&nats, &group), shutdown).await;
            }
            BusKind::Rabbitmq => {
                let rabbitmq = self.rabbitmq.clone();
                consumer.run(|| RabbitSubscriber::join(&rabbitmq, &group), shutdown).await;
            }
        }
    }
}

/// A publisher on one of the buses (the [`Publisher`] trait is not object-safe).
pub enum AnyPublisher {
    Kafka(KafkaPublisher),
    Nats(NatsPublisher),
    Rabbitmq(RabbitPublisher),
}

impl Publisher for AnyPublisher {
    async fn prepare(&mut self) -> Result<(), BusError> {
        match self {
            Self::Kafka(publisher) => publisher.prepare().await,
            Self::Nats(publisher) => publisher.prepare().await,
            Self::Rabbitmq(publisher) => publisher.prepare().await,
        }
    }

    fn send(&mut self, messages: Vec<Message>) -> Result<Pending, BusError> {
        match self {
            Self::Kafka(publisher) => publisher.send(messages),
            Self::Nats(publisher) => publisher.send(messages),
            Self::Rabbitmq(publisher) => publisher.send(messages),
        }
    }

    async fn reset(&mut self) -> Result<(), BusError> {
        match self {
            Self::Kafka(publisher) => publisher.reset().await,
            Self::Nats(publisher) => publisher.reset().await,
            Self::Rabbitmq(publisher) => publisher.reset().await,
        }
    }
}

/// The consumer groups of everything the ledger runs on the bus.
pub fn known_groups(channels: &Channels) -> Vec<String> {
    projections::ProjectionKind::ALL
        .iter()
        .map(|kind| channels.group(kind.name()))
        .chain([channels.service_group(payment_service::CONSUMER)])
        .collect()
}

/// The AsyncAPI document of the events on every bus, with these settings' channel names
/// and servers.
pub fn asyncapi(settings: &BusSettings) -> serde_json::Value {
    contract::asyncapi(&contract::AsyncApiOptions {
        prefix: settings.channels().prefix().to_owned(),
        kafka_brokers: settings.kafka.brokers.clone(),
        nats_url: settings.nats.url.clone(),
        amqp_url: settings.rabbitmq.url.clone(),
        partitions: settings.nats.partitions,
    })
}
