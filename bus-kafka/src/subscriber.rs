//! A member of a consumer group on the orders topic: offsets are committed only when the
//! consumer loop says its batch is done; dead letters go to the `….dlq` topic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bus::envelope::HEADER_TRACEPARENT;
use bus::{BusError, Delivery, Failure, Subscriber};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};

use crate::KafkaSettings;

/// No lag reported yet.
const UNKNOWN_LAG: i64 = -1;

/// librdkafka's default assignors, both eager (every rebalance revokes everything, then
/// assigns), named so that [`LagContext::rebalance`] can rely on it.
const ASSIGNORS: &str = "range,roundrobin";

/// Keeps the group's lag on this member's partitions from librdkafka's statistics
/// (`statistics.interval.ms`): per partition, the high watermark minus the committed
/// offset.
#[derive(Clone)]
pub struct LagContext {
    lag: Arc<AtomicI64>,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        let lag = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|partition| partition.partition >= 0 && partition.desired)
            .map(|partition| partition.consumer_lag.max(0))
            .sum();
        self.lag.store(lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for LagContext {
    /// Applies an assignment or a revocation as the eager protocol does (the group's
    /// assignors, [`ASSIGNORS`], are eager), and nothing once the group is closed.
    /// rdkafka's own `rebalance` asks librdkafka for the protocol first, a request to the
    /// group that librdkafka drops unanswered once it has terminated, and waits for the
    /// answer forever: a consumer dropped while a rebalance event was pending never
    /// finished dropping (a hung shutdown in a broker-outage spec, 1 run in 4).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        assignment: &mut TopicPartitionList,
    ) {
        if consumer.closed() {
            // The group is gone: librdkafka drops whatever is asked of it now, unanswered.
            return;
        }
        let applied = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => consumer.assign(assignment),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => consumer.unassign(),
            error => {
                tracing::warn!(?error, "a rebalance failed; dropping this member's partitions");
                consumer.unassign()
            }
        };
        if let Err(error) = applied {
            tracing::warn!(%error, "applying a rebalance failed");
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(error) = result {
            tracing::debug!(%error, "an offset commit failed; the next one covers it");
        }
    }
}

pub struct KafkaSubscriber {
    consumer: Member,
    lag: Arc<AtomicI64>,
    producer: FutureProducer,
    topic: String,
    dead_letter_topic: String,
}

impl KafkaSubscriber {
    /// Creates the topics if missing and joins `group` on the orders topic.
    pub async fn join(settings: &KafkaSettings, group: &str) -> Result<Self, BusError> {
        settings.ensure_topics().await?;
        let failed = |error| BusError::new("joining the consumer group", error);
        let lag = Arc::new(AtomicI64::new(UNKNOWN_LAG));
        let consumer: StreamConsumer<LagContext> = settings
            .client_config()
            .set("group.id", group)
            .set("partition.assignment.strategy", ASSIGNORS)
            .set("statistics.interval.ms", "1000")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // See `KafkaSettings::fetch_wait` (librdkafka's default is 500 ms).
            .set("fetch.wait.max.ms", settings.fetch_wait.as_millis().to_string())
            // A member that dies without leaving (kill -9, a lost host) keeps its
            // partitions until the coordinator stops hearing from it, and the group's
            // rebalance waits that long: with librdkafka's default of 45 s, a worker
            // restarted after a crash applied nothing for 45 s. Heartbeats come from
            // librdkafka's own thread, so a long batch does not risk a false expiry.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            .create_with_context(LagContext { lag: Arc::clone(&lag) })
            .map_err(failed)?;
        let topic = settings.orders_topic();
        consumer.subscribe(&[&topic]).map_err(failed)?;
        let producer: FutureProducer =
            settings.dead_letter_producer_config().create().map_err(failed)?;
        Ok(Self {
            consumer: Member(Some(consumer)),
            lag,
            producer,
            topic,
            dead_letter_topic: settings.dead_letter_topic(),
        })
    }
}

/// How long dropping a subscriber waits for its consumer to leave the group.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// The group member, closed on a thread of its own when dropped, for [`CLOSE_WITHIN`] at
/// most: closing polls librdkafka until the group has let the member go, which would
/// otherwise hold a runtime thread for as long as that takes.
struct Member(Option<StreamConsumer<LagContext>>);

impl std::ops::Deref for Member {
    type Target = StreamConsumer<LagContext>;

    #[allow(clippy::expect_used)]
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("taken only when the member is dropped")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let Some(consumer) = self.0.take() else { return };
        let (closed, on_close) = std::sync::mpsc::channel();
        let closing = std::thread::Builder::new().name("kafka-close".to_owned()).spawn(move || {
            drop(consumer);
            let _ = closed.send(());
        });
        if closing.is_ok() && on_close.recv_timeout(CLOSE_WITHIN).is_err() {
            tracing::warn!(within = ?CLOSE_WITHIN, "the Kafka consumer did not close in time; left to close on its own");
        }
    }
}

impl Subscriber for KafkaSubscriber {
    async fn recv(&mut self) -> Result<Delivery, BusError> {
        let message =
            self.consumer.recv().await.map_err(|error| BusError::new("receiving", error))?;
        Ok(Delivery {
            channel: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            traceparent: message
                .headers()
                .and_then(|headers| headers.iter().find(|h| h.key == HEADER_TRACEPARENT))
                .and_then(|header| header.value)
                .and_then(|value| std::str::from_utf8(value).ok())
                .map(str::to_owned),
        })
    }

    /// Commits, per partition, the offset after the batch's last message, without waiting
    /// for the broker's answer (the loop goes on to the next batch meanwhile; a commit
    /// that fails is covered by the next one, and a redelivery is a no-op for the
    /// handler). A synchronous commit cost a round trip to the broker per batch, and
    /// while the broker was down it blocked for librdkafka's request timeout.
    async fn commit(&mut self, batch: &[Delivery]) -> Result<(), BusError> {
        let failed = |error| BusError::new("committing offsets", error);
        let mut next: HashMap<(&str, i32), i64> = HashMap::new();
        for delivery in batch {
            let entry = next.entry((delivery.channel.as_str(), delivery.partition)).or_insert(0);
            *entry = (*entry).max(delivery.offset + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            offsets
                .add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(failed)?;
        }
        self.consumer.commit(&offsets, CommitMode::Async).map_err(failed)
    }

    async fn park(&mut self, delivery: &Delivery, failure: &Failure) -> Result<(), BusError> {
        let partition = delivery.partition.to_string();
        let offset = delivery.offset.to_string();
        let attempts = failure.attempts.to_string();
        let headers = OwnedHeaders::new_with_capacity(6)
            .insert(Header { key: "error", value: Some(failure.error.as_str()) })
            .insert(Header { key: "projection", value: Some(failure.consumer) })
            .insert(Header { key: "source-topic", value: Some(delivery.channel.as_str()) })
            .insert(Header { key: "source-partition", value: Some(partition.as_str()) })
            .insert(Header { key: "source-offset", value: Some(offset.as_str()) })
            .insert(Header { key: "attempts", value: Some(attempts.as_str()) });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.dead_letter_topic).headers(headers);
        if let Some(key) = &delivery.key {
            record = record.key(key);
        }
        if let Some(payload) = &delivery.payload {
            record = record.payload(payload);
        }
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(error, _)| BusError::new("publishing a dead letter", error))
    }

    fn assignment(&self) -> Option<Vec<i32>> {
        let assigned = self.consumer.assignment().ok()?;
        let mut partitions: Vec<i32> =
            assigned.elements().iter().map(|element| element.partition()).collect();
        partitions.sort_unstable();
        Some(partitions)
    }

    fn lag(&self) -> Option<i64> {
        Some(self.lag.load(Ordering::Relaxed)).filter(|lag| *lag != UNKNOWN_LAG)
    }

    fn rejoin(&mut self) -> Result<(), BusError> {
        self.consumer.unsubscribe();
        self.consumer
            .subscribe(&[&self.topic])
            .map_err(|error| BusError::new("rejoining the consumer group", error))
    }
}
