//! The relay: publishes every committed event to Kafka, at least once, in stream order
//! per order id, none skipped.
//!
//! The events table is the outbox. One relay publishes at a time: leadership is a
//! session-level advisory lock held on a dedicated connection, and everything the leader
//! reads and every checkpoint it writes goes through that same connection, so a leader
//! that lost its connection (and with it the lock) can neither read nor checkpoint.
//! Standby relays retry the lock every `standby_retry` and take over from the stored
//! checkpoint when the leader dies.
//!
//! One batch: read up to `batch_size` events after the checkpoint in gap-safe order
//! ([`crate::position`]), produce them all (idempotent producer, `acks=all`, lz4, key =
//! order id), wait for every delivery report, then advance the checkpoint. A crash between
//! publishing and checkpointing republishes the batch (duplicates, never loss); a failed
//! delivery retries the batch from the checkpoint with capped exponential backoff.
//! The checkpoint only moves forward, even if a deposed leader writes late.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::envelope::{
    self, HEADER_CONTENT_TYPE, HEADER_CORRELATION_ID, HEADER_EVENT_TYPE, HEADER_EVENT_VERSION,
};
use crate::position::{read_committed_after, CommitPosition, CommittedEvent};
use crate::relay_status::{BrokerHealth, RelayRole, RelayStatusHandle};
use crate::{KafkaSettings, StoreError};

#[derive(Clone, Debug)]
pub struct RelaySettings {
    /// Names the checkpoint and the leadership lock; relays with the same name compete.
    pub name: String,
    pub batch_size: i64,
    /// Longest wait between looks at the store when no notification arrives.
    pub poll_interval: Duration,
    /// How often a standby relay tries to become the leader.
    pub standby_retry: Duration,
    pub max_backoff: Duration,
    /// librdkafka `message.timeout.ms`: how long a message may wait for the broker before
    /// its batch is declared failed and retried from the checkpoint.
    pub message_timeout: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            name: "kafka".to_owned(),
            batch_size: 20_000,
            poll_interval: Duration::from_millis(500),
            standby_retry: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            message_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LeadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("lost the leader connection")]
    LostConnection,
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

impl From<tokio_postgres::Error> for LeadError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Store(error.into())
    }
}

pub struct Relay {
    database_url: String,
    kafka: KafkaSettings,
    settings: RelaySettings,
    status: RelayStatusHandle,
}

impl Relay {
    pub fn new(
        database_url: impl Into<String>,
        kafka: KafkaSettings,
        settings: RelaySettings,
    ) -> Self {
        Self {
            database_url: database_url.into(),
            kafka,
            settings,
            status: RelayStatusHandle::default(),
        }
    }

    pub fn status(&self) -> RelayStatusHandle {
        self.status.clone()
    }

    /// Runs until `shutdown` turns true; finishes the batch in flight first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.settings.max_backoff);
        while !*shutdown.borrow() {
            let leader = match Leader::acquire(&self.database_url, &self.settings.name).await {
                Ok(Some(leader)) => leader,
                Ok(None) => {
                    self.status.set_role(RelayRole::Standby);
                    wait(&mut shutdown, self.settings.standby_retry, None).await;
                    continue;
                }
                Err(error) => {
                    self.status.set_error(RelayRole::Standby, format!("database: {error}"));
                    wait(&mut shutdown, backoff.next(), None).await;
                    continue;
                }
            };
            tracing::info!(relay = %self.settings.name, "relay is the leader; publishing");
            self.status.set_role(RelayRole::Active);
            match self.lead(&leader, &mut shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, "relay stepped down; will try to lead again");
                    self.status.set_error(RelayRole::Standby, error.to_string());
                    drop(leader);
                    wait(&mut shutdown, backoff.next(), None).await;
                }
            }
        }
        self.status.set_role(RelayRole::Stopped);
    }

    /// Spawns [`run`](Self::run) on the current runtime.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    fn producer(&self) -> Result<FutureProducer, rdkafka::error::KafkaError> {
        producer_config(&self.kafka, self.settings.message_timeout)
            .set("client.id", format!("ledger-relay-{}", self.settings.name))
            .create()
    }

    async fn lead(
        &self,
        leader: &Leader,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Result<(), LeadError> {
        let topic = self.kafka.orders_topic();
        let mut producer = self.producer()?;
        let mut topics_ready = false;
        let mut checkpoint = leader.checkpoint(&self.settings.name).await?;
        self.status.set_checkpoint(checkpoint);
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if leader.is_closed() {
                return Err(LeadError::LostConnection);
            }
            if !topics_ready {
                match self.kafka.ensure_topics().await {
                    Ok(()) => topics_ready = true,
                    Err(error) => {
                        self.broker_down(&error.to_string());
                        wait(shutdown, backoff.next(), None).await;
                        continue;
                    }
                }
            }
            let batch =
                read_committed_after(&leader.client, checkpoint, self.settings.batch_size).await?;
            self.status.read();
            let Some(last) = batch.last().map(|event| event.commit) else {
                wait(shutdown, self.settings.poll_interval, Some(&leader.appended)).await;
                continue;
            };
            match publish(&producer, &topic, &batch).await {
                Ok(()) => {
                    leader.save_checkpoint(&self.settings.name, last, batch.len()).await?;
                    checkpoint = last;
                    backoff.reset();
                    if self.status.broker() != BrokerHealth::Reachable {
                        tracing::info!("broker reachable; publishing");
                    }
                    self.status.published(batch.len(), checkpoint);
                }
                Err(error) => {
                    self.broker_down(&error.to_string());
                    // A restarted broker may have lost its topics (in-memory storage) and
                    // will not know this producer's id: start over with a fresh producer,
                    // whose idempotence sequence begins anew.
                    topics_ready = false;
                    let retired = std::mem::replace(&mut producer, self.producer()?);
                    // Dropping a producer waits for its queue and threads: not on a runtime
                    // thread, which serves HTTP in the same process.
                    tokio::task::spawn_blocking(move || drop(retired));
                    wait(shutdown, backoff.next(), None).await;
                }
            }
        }
    }

    /// Logs once per change of state, not once per retry.
    fn broker_down(&self, error: &str) {
        if self.status.broker() != BrokerHealth::Unreachable {
            tracing::warn!(%error, "broker unreachable; retrying with backoff, commands are still accepted");
        }
        self.status.broker_unreachable(error.to_owned());
    }
}

/// The relay's producer settings (idempotent, every replica acknowledges, lz4, a
/// millisecond of linger), for the relay and for baselines that compare with it.
pub fn producer_config(kafka: &KafkaSettings, message_timeout: Duration) -> ClientConfig {
    let mut config = kafka.client_config();
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "1")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", message_timeout.as_millis().to_string());
    config
}

/// Produces the batch and waits for every delivery report. Any failure fails the batch.
async fn publish(
    producer: &FutureProducer,
    topic: &str,
    batch: &[CommittedEvent],
) -> Result<(), String> {
    let mut deliveries = Vec::with_capacity(batch.len());
    for event in batch {
        let value = envelope::encode(event).map_err(|e| e.to_string())?;
        let key = event.stream_id.to_string();
        let version = event.event_version.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header { key: HEADER_EVENT_TYPE, value: Some(event.event_type.as_str()) })
            .insert(Header { key: HEADER_EVENT_VERSION, value: Some(version.as_str()) })
            .insert(Header { key: HEADER_CONTENT_TYPE, value: Some("application/json") });
        if let Some(correlation_id) = &event.correlation_id {
            headers = headers.insert(Header {
                key: HEADER_CORRELATION_ID,
                value: Some(correlation_id.as_str()),
            });
        }
        let record = FutureRecord::to(topic).key(&key).payload(&value).headers(headers);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((error, _)) => return Err(error.to_string()),
        }
    }
    let mut first_error = None;
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => {
                first_error.get_or_insert_with(|| error.to_string());
            }
            Err(_) => {
                first_error.get_or_insert_with(|| "producer dropped the message".to_owned());
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(error) => {
            // Nothing is left queued from this batch before it is retried from the checkpoint.
            // `flush` blocks for up to its timeout, so it runs on the blocking pool.
            let producer = producer.clone();
            let _ =
                tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(1))).await;
            Err(error)
        }
    }
}

/// The leader's dedicated connection: holds the advisory lock, listens for append hints,
/// reads batches and writes checkpoints.
struct Leader {
    client: tokio_postgres::Client,
    appended: Arc<Notify>,
    closed: Arc<AtomicBool>,
    connection: JoinHandle<()>,
}

const CHECKPOINT: &str = "
    INSERT INTO relay_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING;
";
const LOAD_CHECKPOINT: &str =
    "SELECT tx_id::text::bigint, global_position FROM relay_checkpoints WHERE name = $1";
const SAVE_CHECKPOINT: &str = "
    UPDATE relay_checkpoints
       SET tx_id = $2::bigint::text::xid8, global_position = $3,
           published_events = published_events + $4,
           last_published_at = now(), updated_at = now()
     WHERE name = $1 AND (tx_id, global_position) < ($2::bigint::text::xid8, $3)";

impl Leader {
    async fn acquire(database_url: &str, name: &str) -> Result<Option<Self>, StoreError> {
        let (client, mut connection) = tokio_postgres::connect(database_url, NoTls).await?;
        let appended = Arc::new(Notify::new());
        let closed = Arc::new(AtomicBool::new(false));
        let (wake, gone) = (appended.clone(), closed.clone());
        let connection = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "relay leader connection failed");
                        break;
                    }
                }
            }
            gone.store(true, Ordering::SeqCst);
            wake.notify_one();
        });
        let leader = Self { client, appended, closed, connection };
        let locked: bool = leader
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&lock_key(name)])
            .await?
            .get(0);
        if !locked {
            return Ok(None);
        }
        leader.client.batch_execute("LISTEN ledger_events_appended").await?;
        Ok(Some(leader))
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.client.is_closed()
    }

    async fn checkpoint(&self, name: &str) -> Result<CommitPosition, StoreError> {
        self.client.execute(CHECKPOINT, &[&name]).await?;
        let row = self.client.query_one(LOAD_CHECKPOINT, &[&name]).await?;
        Ok(CommitPosition { tx_id: row.try_get(0)?, global_position: row.try_get(1)? })
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        to: CommitPosition,
        published: usize,
    ) -> Result<(), StoreError> {
        let published = i64::try_from(published).unwrap_or(i64::MAX);
        self.client
            .execute(SAVE_CHECKPOINT, &[&name, &to.tx_id, &to.global_position, &published])
            .await?;
        Ok(())
    }
}

impl Drop for Leader {
    /// Closing the connection releases the lock at the server at once.
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The advisory lock key for a relay name (FNV-1a, so it is stable across builds).
fn lock_key(name: &str) -> i64 {
    let hash =
        format!("ledger-relay:{name}").bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Sleeps for `duration`, or until `wake` fires, or until shutdown.
async fn wait(shutdown: &mut watch::Receiver<bool>, duration: Duration, wake: Option<&Notify>) {
    let woken = async {
        match wake {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = woken => {}
        _ = shutdown.changed() => {}
    }
}

/// Capped exponential backoff: 100 ms, 200 ms, … up to the cap.
struct Backoff {
    current: Duration,
    cap: Duration,
}

impl Backoff {
    const START: Duration = Duration::from_millis(100);

    fn new(cap: Duration) -> Self {
        Self { current: Self::START, cap }
    }

    fn next(&mut self) -> Duration {
        let delay = self.current;
        self.current = (self.current * 2).min(self.cap);
        delay
    }

    fn reset(&mut self) {
        self.current = Self::START;
    }
}
