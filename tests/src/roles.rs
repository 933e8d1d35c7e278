//! Roles run by a test itself, outside an application: a relay publishing a test
//! database's events to a topic prefix of its own, a projection consumer; the test can
//! stop them (gracefully, or by aborting them like a `kill -9`).

use std::time::Duration;

use bus::relay::{Relay, RelaySettings, RelayStatus};
use bus::{Consumer, ConsumerSettings, ConsumerStatus};
use bus_kafka::{KafkaPublisher, KafkaSettings, KafkaSubscriber};
use projections::{ProjectionHandler, ProjectionKind, ProjectionStats};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct TestRelay {
    status: watch::Receiver<RelayStatus>,
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
}

impl TestRelay {
    /// Starts a relay that polls often and takes over fast, publishing `batch_size`
    /// events per batch.
    pub fn start(
        database_url: &str,
        kafka: &KafkaSettings,
        batch_size: i64,
    ) -> anyhow::Result<Self> {
        let settings = RelaySettings {
            batch_size,
            poll_interval: Duration::from_millis(50),
            standby_retry: Duration::from_millis(200),
            ..RelaySettings::default()
        };
        let publisher = KafkaPublisher::new(kafka.clone(), &settings.name)?;
        let status = watch::Sender::new(RelayStatus::default());
        let view = status.subscribe();
        let stop = CancellationToken::new();
        let relay = Relay::new(database_url, publisher, settings, status);
        let task = tokio::spawn(relay.run(stop.clone()));
        Ok(Self { status: view, stop, task })
    }

    pub fn status(&self) -> RelayStatus {
        self.status.borrow().clone()
    }
}

/// Kafka settings for a topic prefix of the test's own on `brokers`, with a short message
/// timeout.
pub fn test_kafka(brokers: &str) -> KafkaSettings {
    let channels = bus::Channels::new(format!("test-{}.", uuid::Uuid::new_v4().simple()));
    let mut kafka = KafkaSettings::new(brokers, channels);
    kafka.message_timeout = Duration::from_secs(3);
    kafka
}

/// One projection consuming the orders topic.
pub struct TestConsumer {
    stats: watch::Receiver<ProjectionStats>,
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
}

impl TestConsumer {
    pub fn start(kind: ProjectionKind, pool: eventstore::Pool, kafka: &KafkaSettings) -> Self {
        let stats = watch::Sender::new(ProjectionStats::new(kind));
        let view = stats.subscribe();
        let handler =
            ProjectionHandler::new(kind, pool, stats, projections::AppliedSignal::default());
        let status = watch::Sender::new(ConsumerStatus::default());
        let consumer = Consumer::new(handler, ConsumerSettings::default(), status);
        let stop = CancellationToken::new();
        let (kafka, token) = (kafka.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let group = kafka.channels.group(kind.name());
            consumer.run(|| KafkaSubscriber::join(&kafka, &group), token).await;
        });
        Self { stats: view, stop, task }
    }

    pub fn stats(&self) -> ProjectionStats {
        self.stats.borrow().clone()
    }
}
