//! The projection worker: consume, apply in batches, commit offsets after the database.
//!
//! A batch (up to `batch_max` messages, or what arrived within `batch_wait`) is applied
//! in one transaction together with its dedupe state; only after that commit are the
//! offsets committed to Kafka. A crash in between redelivers the batch, and the dedupe
//! state turns the redelivery into no-ops: effect exactly once.
//!
//! If a batch fails, its messages are applied one at a time; a message that still fails
//! after `max_attempts` tries with exponential backoff is parked as a dead letter and the
//! partition moves on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use eventstore::KafkaSettings;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::apply::{apply, decode};
use crate::dead_letter::{park, FailedMessage};
use crate::{ApplyError, Projection};

/// How often a worker looks whether it has been left without partitions.
const ORPHAN_CHECK: Duration = Duration::from_secs(2);
/// How long a worker may hold no partition while its projection lags before it rejoins:
/// well past a session timeout, so a normal rebalance after a member died has come and gone.
const ORPHANED_AFTER: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            batch_max: 5_000,
            batch_wait: Duration::from_millis(5),
            max_attempts: 3,
            retry_base: Duration::from_millis(100),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerStatus {
    pub projection: String,
    pub state: String,
    pub applied_events: u64,
    pub duplicates: u64,
    pub healed_events: u64,
    pub dead_letters: u64,
    pub last_position: Option<i64>,
    pub last_applied_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct WorkerStatusHandle(Arc<Mutex<WorkerStatus>>);

impl WorkerStatusHandle {
    fn lock(&self) -> MutexGuard<'_, WorkerStatus> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> WorkerStatus {
        self.lock().clone()
    }
}

pub struct Worker<P> {
    projection: Arc<P>,
    pool: Pool,
    kafka: KafkaSettings,
    settings: WorkerSettings,
    status: WorkerStatusHandle,
}

impl<P: Projection> Worker<P> {
    pub fn new(projection: P, pool: Pool, kafka: KafkaSettings, settings: WorkerSettings) -> Self {
        let status = WorkerStatusHandle::default();
        status.lock().projection = projection.name().to_owned();
        status.lock().state = "starting".to_owned();
        Self { projection: Arc::new(projection), pool, kafka, settings, status }
    }

    pub fn status(&self) -> WorkerStatusHandle {
        self.status.clone()
    }

    /// The consumer group of this projection.
    pub fn group_id(kafka: &KafkaSettings, projection: &str) -> String {
        format!("{}ledger-projection-{projection}", kafka.topic_prefix)
    }

    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let name = self.projection.name();
        let mut delay = Duration::from_millis(100);
        let (consumer, producer) = loop {
            match self.connect().await {
                Ok(clients) => break clients,
                Err(error) => {
                    self.set_state("waiting_for_broker", Some(error));
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        };
        self.set_state("running", None);
        tracing::info!(projection = name, "projection worker consuming");
        let mut orphan_check = tokio::time::interval(ORPHAN_CHECK);
        let mut unassigned_since = None;
        loop {
            let first = tokio::select! {
                received = consumer.recv() => received,
                _ = orphan_check.tick() => {
                    self.rejoin_if_orphaned(&consumer, &mut unassigned_since).await;
                    continue;
                }
                _ = shutdown.changed() => break,
            };
            let first = match first {
                Ok(message) => message.detach(),
                Err(error) => {
                    self.set_state("running", Some(error.to_string()));
                    continue;
                }
            };
            // Whatever else arrives within `batch_wait` of the first message joins its
            // batch: a backlog drains in large batches, a trickle is not held back.
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.settings.batch_wait;
            while batch.len() < self.settings.batch_max {
                match tokio::time::timeout_at(deadline, consumer.recv()).await {
                    Ok(Ok(message)) => batch.push(message.detach()),
                    _ => break,
                }
            }
            if !self.process(&batch, &producer, &mut shutdown).await {
                break; // stopping mid-outage: the batch is redelivered to the next worker
            }
            if let Err(error) = commit_offsets(&consumer, &batch).await {
                // The next commit covers these offsets; a redelivery is deduplicated.
                tracing::warn!(projection = name, %error, "offset commit failed");
            }
            self.advance_watermark().await;
        }
        self.set_state("stopped", None);
    }

    /// Rejoins the consumer group when this worker has held no partition for
    /// [`ORPHANED_AFTER`] while the store has events its projection has not applied.
    ///
    /// A healthy group never leaves a lagging projection without a consumer. A coordinator
    /// can: when a group's leader is killed (kill -9 of a worker, then a restart),
    /// Tansu 0.6.0 drops the dead leader once its session expires but never asks the
    /// remaining members to rejoin, so they heartbeat on forever with no partitions and the
    /// read models stop. Rejoining starts a new round of assignment. With more members than
    /// partitions an idle member sees no lag and stays put, so a healthy group never churns.
    async fn rejoin_if_orphaned(
        &self,
        consumer: &StreamConsumer,
        unassigned_since: &mut Option<tokio::time::Instant>,
    ) {
        let assigned = consumer.assignment().map_or(true, |partitions| partitions.count() > 0);
        if assigned {
            *unassigned_since = None;
            return;
        }
        let since = *unassigned_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() < ORPHANED_AFTER || !self.lags_the_store().await {
            return;
        }
        let name = self.projection.name();
        tracing::warn!(
            projection = name,
            "no partitions assigned for {:?} while the projection lags the store; rejoining the consumer group",
            since.elapsed()
        );
        consumer.unsubscribe();
        if let Err(error) = consumer.subscribe(&[&self.kafka.orders_topic()]) {
            self.set_state("running", Some(format!("rejoining the consumer group: {error}")));
        }
        *unassigned_since = None;
    }

    /// Whether the store holds events past the furthest position this projection applied.
    async fn lags_the_store(&self) -> bool {
        const LAGS: &str = "SELECT EXISTS (SELECT 1 FROM events WHERE global_position >
            coalesce((SELECT last_position FROM projection_status WHERE projection = $1), 0))";
        let Ok(client) = self.pool.get().await else {
            return false;
        };
        client
            .query_one(LAGS, &[&self.projection.name()])
            .await
            .is_ok_and(|row| row.get::<_, bool>(0))
    }

    async fn connect(&self) -> Result<(Arc<StreamConsumer>, FutureProducer), String> {
        self.kafka.ensure_topics().await.map_err(|e| e.to_string())?;
        let consumer: StreamConsumer = self
            .kafka
            .client_config()
            .set("group.id", Self::group_id(&self.kafka, self.projection.name()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // A fetch returns as soon as there is data, or after this: it bounds how long
            // a quiet partition delays a new event (librdkafka's default is 500 ms).
            .set("fetch.wait.max.ms", "5")
            // A member that dies without leaving (kill -9, a lost host) keeps its
            // partitions until the coordinator stops hearing from it, and the group's
            // rebalance waits that long: with librdkafka's default of 45 s, a worker
            // restarted after a crash applied nothing for 45 s. Heartbeats come from
            // librdkafka's own thread, so a long batch does not risk a false expiry.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            .create()
            .map_err(|e| e.to_string())?;
        consumer.subscribe(&[&self.kafka.orders_topic()]).map_err(|e| e.to_string())?;
        let producer: FutureProducer =
            self.kafka.client_config().create().map_err(|e| e.to_string())?;
        Ok((Arc::new(consumer), producer))
    }

    /// Applies the batch in one transaction; if that fails, message by message. While the
    /// database is unreachable nothing moves: the batch is retried until it applies (or
    /// the worker stops, leaving its offsets uncommitted).
    async fn process(
        &self,
        batch: &[OwnedMessage],
        producer: &FutureProducer,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut delay = self.settings.retry_base;
        loop {
            match self.apply_all(batch).await {
                Ok(()) => return true,
                Err(error) if error.is_transient() => {
                    self.set_state("waiting_for_database", Some(error.to_string()));
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return false,
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    tracing::debug!(%error, "batch failed; applying its messages one by one");
                    break;
                }
            }
        }
        self.set_state("running", None);
        for message in batch {
            let mut attempt = 1;
            loop {
                match self.apply_all(std::slice::from_ref(message)).await {
                    Ok(()) => break,
                    Err(error) if error.is_transient() => {
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => return false,
                        }
                    }
                    Err(error) if attempt < self.settings.max_attempts => {
                        tokio::time::sleep(self.settings.retry_base * 2u32.pow(attempt - 1)).await;
                        attempt += 1;
                        tracing::debug!(%error, attempt, "retrying message");
                    }
                    Err(error) => {
                        self.dead_letter(message, producer, error.to_string(), attempt).await;
                        break;
                    }
                }
            }
        }
        true
    }

    /// Best effort: a query that needs the watermark further advances it itself.
    async fn advance_watermark(&self) {
        let name = self.projection.name();
        let advanced = match self.pool.get().await {
            Ok(client) => crate::watermark::advance(&client, name).await,
            Err(error) => Err(error.into()),
        };
        if let Err(error) = advanced {
            tracing::debug!(projection = name, %error, "watermark not advanced");
        }
    }

    async fn apply_all(&self, batch: &[OwnedMessage]) -> Result<(), ApplyError> {
        let events = batch
            .iter()
            .map(|message| decode(message.payload().unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut client = self.pool.get().await.map_err(eventstore::StoreError::from)?;
        let transaction = client.transaction().await?;
        let outcome = apply(&transaction, self.projection.as_ref(), &events).await?;
        transaction.commit().await?;
        let mut status = self.status.lock();
        status.applied_events += outcome.applied;
        status.duplicates += outcome.duplicates;
        status.healed_events += outcome.healed;
        status.last_position = status.last_position.max(outcome.last_position);
        status.last_applied_at = Some(Utc::now());
        Ok(())
    }

    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        producer: &FutureProducer,
        error: String,
        attempts: u32,
    ) {
        let name = self.projection.name();
        tracing::warn!(projection = name, partition = message.partition(), offset = message.offset(), %error, "parking a message as a dead letter");
        let failed = FailedMessage {
            projection: name,
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            payload: message.payload(),
            error,
            attempts,
        };
        let parked = match self.pool.get().await {
            Ok(client) => park(&client, producer, &self.kafka.dead_letter_topic(), &failed).await,
            Err(error) => Err(error.to_string()),
        };
        match parked {
            Ok(()) => self.status.lock().dead_letters += 1,
            Err(error) => {
                tracing::error!(projection = name, %error, "could not park a dead letter")
            }
        }
    }

    fn set_state(&self, state: &str, error: Option<String>) {
        let mut status = self.status.lock();
        status.state = state.to_owned();
        if error.is_some() {
            status.last_error = error;
        }
    }
}

/// Commits, per partition, the offset after the last message of the batch.
///
/// A synchronous commit blocks its thread until the broker answers, which while the broker
/// is down takes as long as librdkafka's request timeout. On a runtime worker thread that
/// froze every task queued behind it, HTTP connections included, for seconds; so the
/// commit waits on the blocking pool instead.
async fn commit_offsets(
    consumer: &Arc<StreamConsumer>,
    batch: &[OwnedMessage],
) -> Result<(), rdkafka::error::KafkaError> {
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    for message in batch {
        let entry = next.entry((message.topic().to_owned(), message.partition())).or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        offsets.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
    }
    let consumer = Arc::clone(consumer);
    tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
        .await
        .unwrap_or(Err(rdkafka::error::KafkaError::Canceled))
}
