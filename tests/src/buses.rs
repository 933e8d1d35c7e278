//! The three buses for specs that run on each: the shared brokers (`KAFKA_BROKERS`,
//! `LEDGER_NATS_URL`, `LEDGER_RABBITMQ_URL`, started by `scripts/test`), a test's own
//! channels on them, and a reader that consumes the orders channel the way the ledger's
//! own consumers do (the adapter's subscriber in a consumer group of the test's own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::envelope::Envelope;
use bus::{Consumer, ConsumerSettings, ConsumerStatus, Delivery, Failure, Handler, HandlerError};
use bus_kafka::KafkaSettings;
use ledger::bus_choice::{BusKind, BusSettings};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub fn nats_url() -> String {
    std::env::var("LEDGER_NATS_URL").unwrap_or_else(|_| bus_nats::DEFAULT_URL.to_owned())
}

pub fn rabbitmq_url() -> String {
    std::env::var("LEDGER_RABBITMQ_URL").unwrap_or_else(|_| bus_rabbitmq::DEFAULT_URL.to_owned())
}

/// The consumer group of [`BusReader`] under `channels`.
pub fn reader_group(channels: &bus::Channels) -> String {
    channels.service_group("test-reader")
}

/// `kind` on the shared brokers, under the channels (and Kafka settings) of `kafka`. On
/// RabbitMQ the publisher also declares the queues of the test's reader, so that it
/// misses nothing published before it started.
pub fn test_bus(kind: BusKind, kafka: &KafkaSettings) -> BusSettings {
    let mut bus = BusSettings::new(kind, &kafka.channels);
    bus.kafka = kafka.clone();
    bus.nats.url = nats_url();
    bus.rabbitmq.url = rabbitmq_url();
    bus.rabbitmq.groups.push(reader_group(&kafka.channels));
    // Every test leaves its queues behind: the broker deletes them once unused, and fewer
    // partitions keep the quorum queues (a Raft group each) of parallel tests few.
    bus.rabbitmq.queue_expires = Some(Duration::from_secs(60));
    bus.rabbitmq.partitions = 4;
    bus.nats.partitions = 4;
    bus
}

/// One message as the reader received it.
#[derive(Clone, Debug)]
pub struct BusMessage {
    pub key: String,
    pub partition: i32,
    pub payload: Vec<u8>,
    /// Its `traceparent` header.
    pub traceparent: Option<String>,
}

impl BusMessage {
    pub fn envelope(&self) -> anyhow::Result<Envelope<serde_json::Value>> {
        Ok(serde_json::from_slice(&self.payload)?)
    }
}

/// Reads the orders channel of a bus in a consumer group of its own, through the same
/// adapter and consumer loop as the ledger's consumers.
pub struct BusReader {
    received: Arc<Mutex<Vec<BusMessage>>>,
    status: watch::Receiver<ConsumerStatus>,
    stop: CancellationToken,
}

struct Collect(Arc<Mutex<Vec<BusMessage>>>);

impl Handler for Collect {
    fn name(&self) -> &'static str {
        "test-reader"
    }

    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let mut received = self.0.lock().map_err(|_| {
            HandlerError::Permanent("a reader panicked while holding its messages".into())
        })?;
        received.extend(batch.iter().map(|delivery| {
            BusMessage {
                key: delivery
                    .key
                    .as_deref()
                    .map(|key| String::from_utf8_lossy(key).into_owned())
                    .unwrap_or_default(),
                partition: delivery.partition,
                payload: delivery.payload.clone().unwrap_or_default(),
                traceparent: delivery.traceparent.clone(),
            }
        }));
        Ok(())
    }

    async fn parked(&self, _: &Delivery, _: &Failure) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl BusReader {
    /// Starts reading `bus`'s orders channel from its beginning, in the group
    /// [`reader_group`] (whose queues the test's publisher declares on RabbitMQ).
    pub fn start(bus: &BusSettings) -> Self {
        Self::start_in(bus, reader_group(bus.channels()))
    }

    /// Starts reading `bus`'s orders channel in consumer group `group`.
    pub fn start_in(bus: &BusSettings, group: String) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let status = watch::Sender::new(ConsumerStatus::default());
        let view = status.subscribe();
        let consumer =
            Consumer::new(Collect(Arc::clone(&received)), ConsumerSettings::default(), status);
        let (bus, token) = (bus.clone(), stop.clone());
        tokio::spawn(async move { bus.consume(consumer, group, token).await });
        Self { received, status: view, stop }
    }

    /// Waits until the reader has joined its group (on RabbitMQ: its queues are bound).
    pub async fn wait_until_joined(&self, deadline: Duration) -> anyhow::Result<()> {
        crate::poll_until(deadline, "the reader to join its group", || async {
            Ok((self.status.borrow().state != bus::ConsumerState::Starting
                && self.status.borrow().state != bus::ConsumerState::WaitingForBroker)
                .then_some(()))
        })
        .await
    }

    /// What it has read so far.
    pub fn messages(&self) -> Vec<BusMessage> {
        self.received.lock().map(|received| received.clone()).unwrap_or_default()
    }

    /// Waits until `done(messages)` holds, or fails after `deadline`.
    pub async fn read_until(
        &self,
        deadline: Duration,
        what: &str,
        done: impl Fn(&[BusMessage]) -> bool,
    ) -> anyhow::Result<Vec<BusMessage>> {
        crate::poll_until(deadline, what, || async {
            let messages = self.messages();
            Ok(done(&messages).then_some(messages))
        })
        .await
    }

    /// The envelopes read so far, by order id, in the order they arrived.
    pub fn by_order(
        &self,
    ) -> anyhow::Result<HashMap<uuid::Uuid, Vec<Envelope<serde_json::Value>>>> {
        let mut orders: HashMap<_, Vec<_>> = HashMap::new();
        for message in self.messages() {
            let envelope = message.envelope()?;
            orders.entry(envelope.stream_id).or_default().push(envelope);
        }
        Ok(orders)
    }
}

impl Drop for BusReader {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `host:port` of the shared broker of `bus` (NATS or RabbitMQ).
pub fn broker_address(bus: BusKind) -> String {
    let url = match bus {
        BusKind::Nats => nats_url(),
        BusKind::Rabbitmq => rabbitmq_url(),
        BusKind::Kafka => return crate::kafka_brokers(),
    };
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Messages on the dead-letter channel of `bus` (its Kafka topic, JetStream stream or
/// RabbitMQ queue).
pub async fn dead_letters_on_bus(bus: &BusSettings) -> anyhow::Result<u64> {
    let channels = bus.channels();
    match bus.kind {
        BusKind::Kafka => {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            let consumer: BaseConsumer = bus.kafka.client_config().create()?;
            let (topic, partitions) = (channels.dead_letters(), bus.kafka.partitions);
            // The calls block: off the runtime, which an in-process ledger may share.
            tokio::task::spawn_blocking(move || {
                let mut total = 0;
                for partition in 0..partitions {
                    let (low, high) =
                        consumer.fetch_watermarks(&topic, partition, Duration::from_secs(5))?;
                    total += u64::try_from(high - low).unwrap_or(0);
                }
                Ok(total)
            })
            .await?
        }
        BusKind::Nats => {
            let client = async_nats::connect(nats_url()).await?;
            let jetstream = async_nats::jetstream::new(client);
            let mut stream = jetstream.get_stream(channels.dead_letter_stream()).await?;
            Ok(stream.info().await?.state.messages)
        }
        BusKind::Rabbitmq => {
            let connection = rabbitmq().await?;
            let channel = connection.create_channel().await?;
            let queue = channel
                .queue_declare(
                    channels.dead_letters().as_str().into(),
                    lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                    lapin::types::FieldTable::default(),
                )
                .await?;
            Ok(u64::from(queue.message_count()))
        }
    }
}

/// Deletes the test's channels on the shared broker of `bus` (NATS streams; RabbitMQ
/// exchanges and queues), as a broker that lost its state would have.
pub async fn forget_channels(bus: &BusSettings) -> anyhow::Result<()> {
    let channels = bus.channels();
    match bus.kind {
        BusKind::Kafka => anyhow::bail!("the shared Kafka broker is not for forgetting"),
        BusKind::Nats => {
            let client = async_nats::connect(nats_url()).await?;
            let jetstream = async_nats::jetstream::new(client);
            for stream in [channels.stream(), channels.dead_letter_stream()] {
                jetstream.delete_stream(&stream).await?;
            }
        }
        BusKind::Rabbitmq => {
            let connection = rabbitmq().await?;
            let channel = connection.create_channel().await?;
            for group in &bus.rabbitmq.groups {
                for p in 0..bus.rabbitmq.partitions {
                    let queue = channels.partition_queue(group, p);
                    channel.queue_delete(queue.as_str().into(), Default::default()).await?;
                }
            }
            channel
                .queue_delete(channels.dead_letters().as_str().into(), Default::default())
                .await?;
            for exchange in [channels.orders(), channels.dead_letters()] {
                channel.exchange_delete(exchange.as_str().into(), Default::default()).await?;
            }
        }
    }
    Ok(())
}

async fn rabbitmq() -> anyhow::Result<lapin::Connection> {
    Ok(lapin::Connection::connect(&rabbitmq_url(), lapin::ConnectionProperties::default()).await?)
}
