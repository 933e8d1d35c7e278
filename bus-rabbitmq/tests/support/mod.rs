//! The harness of the adapter's specs: a fresh channel prefix per test against the real
//! broker, messages whose payload says their key and sequence, polling with deadlines,
//! and a broker handle to inspect and delete what a test declared.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bus::envelope::Message;
use bus::partition::partition_of;
use bus::{Channels, Delivery, Subscriber};
use bus_rabbitmq::topology::members_queue;
use bus_rabbitmq::{RabbitSettings, DEFAULT_URL};
use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Channel, Connection, ConnectionProperties};

pub const GROUP: &str = "spec";
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Settings under a prefix no other test uses, with `GROUP` declared by the publisher
/// and quick rounds.
pub fn settings() -> RabbitSettings {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "bus_rabbitmq=info".to_owned());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    let prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
    let mut settings = RabbitSettings::new(DEFAULT_URL, Channels::new(prefix));
    settings.groups = vec![group(&settings)];
    settings.rebalance_interval = Duration::from_millis(200);
    settings
}

pub fn group(settings: &RabbitSettings) -> String {
    settings.channels.service_group(GROUP)
}

/// The `sequence`th message of `key`; its payload is `key:sequence`.
pub fn message(key: &str, sequence: usize) -> Message {
    Message {
        id: uuid::Uuid::new_v4(),
        key: key.to_owned(),
        payload: format!("{key}:{sequence}").into_bytes(),
        headers: vec![(bus::envelope::HEADER_EVENT_TYPE, "OrderPlaced".to_owned())],
    }
}

/// The key and sequence a delivery's payload says.
pub fn parse(delivery: &Delivery) -> (String, usize) {
    let text = String::from_utf8(delivery.payload.clone().unwrap()).unwrap();
    let (key, sequence) = text.rsplit_once(':').unwrap();
    (key.to_owned(), sequence.parse().unwrap())
}

/// One key per partition.
pub fn key_per_partition(partitions: u32) -> BTreeMap<u32, String> {
    let mut keys = BTreeMap::new();
    for n in 0.. {
        let key = format!("order-{n}");
        keys.entry(partition_of(&key, partitions)).or_insert(key);
        if keys.len() == partitions as usize {
            break;
        }
    }
    keys
}

/// Receives `count` deliveries, failing the test past the deadline.
pub async fn receive(subscriber: &mut impl Subscriber, count: usize) -> Vec<Delivery> {
    let mut received = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while received.len() < count {
        match tokio::time::timeout_at(deadline, subscriber.recv()).await {
            Ok(Ok(delivery)) => received.push(delivery),
            Ok(Err(error)) => panic!("receiving failed: {}", error.chain()),
            Err(_) => panic!("received {} of {count} messages in time", received.len()),
        }
    }
    received
}

/// Whether anything arrives within `window`.
pub async fn receives_within(subscriber: &mut impl Subscriber, window: Duration) -> bool {
    tokio::time::timeout(window, subscriber.recv()).await.is_ok()
}

/// Polls `condition` until it holds, failing the test past the deadline.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection of the test's own, to look at and delete what the adapter declared.
pub struct Broker {
    _connection: Connection,
    channel: Channel,
}

impl Broker {
    pub async fn connect() -> Self {
        let connection = Connection::connect(DEFAULT_URL, ConnectionProperties::default())
            .await
            .expect("RabbitMQ at 127.0.0.1:5672");
        let channel = connection.create_channel().await.unwrap();
        Self { _connection: connection, channel }
    }

    /// The next message on the dead-letter queue, if any.
    pub async fn dead_letter(&self, settings: &RabbitSettings) -> Option<lapin::message::Delivery> {
        let queue = settings.channels.dead_letters();
        let options = BasicGetOptions { no_ack: true };
        let got = self.channel.basic_get(queue.as_str().into(), options).await.unwrap();
        got.map(|message| message.delivery)
    }

    /// The next message on the dead-letter queue, failing the test past the deadline.
    pub async fn await_dead_letter(&self, settings: &RabbitSettings) -> lapin::message::Delivery {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(parked) = self.dead_letter(settings).await {
                return parked;
            }
            assert!(tokio::time::Instant::now() < deadline, "no dead letter within {DEADLINE:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Deletes every exchange and queue of `settings` (what a broker that lost its state
    /// would have, and the cleanup after a test).
    pub async fn delete_all(&self, settings: &RabbitSettings) {
        let mut queues = vec![settings.channels.dead_letters()];
        for group in &settings.groups {
            queues.push(members_queue(group));
            queues.extend(
                (0..settings.partitions).map(|p| settings.channels.partition_queue(group, p)),
            );
        }
        for queue in queues {
            self.channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .unwrap();
        }
        for exchange in [settings.channels.orders(), settings.channels.dead_letters()] {
            self.channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .unwrap();
        }
    }
}
