//! The consumer loop every subscriber of the orders channel runs: receive in batches,
//! hand each batch to a [`Handler`], acknowledge after the handler's work is durable.
//!
//! A batch (up to `batch_max` messages, or what arrived within `batch_wait` of the first)
//! goes to the handler in one call; only once it succeeded is the batch acknowledged to
//! the broker. A crash in between redelivers the batch, which a handler that is idempotent
//! (the projections dedupe by stream version) turns into no-ops: effect exactly once.
//!
//! A failing batch is retried while the failure is transient (the database is away): the
//! loop waits it out and nothing moves. A batch that fails for good is handled message by
//! message; a message that still fails after `max_attempts` tries with exponential backoff
//! is parked on the dead-letter channel and by the handler, and the partition moves on. A
//! message that cannot be parked (the dead-letter channel is unreachable) is retried until
//! it can: the loop never acknowledges past a message it did not either handle or park.

use std::error::Error;
use std::future::Future;
use std::time::Duration;

use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::BusError;

/// One message as a subscriber received it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub channel: String,
    /// Where it came from, for acknowledging and for the dead-letter record: the Kafka
    /// partition and offset (another bus maps its own notion of place onto these).
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// Why a message was parked.
#[derive(Clone, Debug)]
pub struct Failure {
    pub consumer: &'static str,
    pub error: String,
    pub attempts: u32,
}

/// The receiving side of a broker adapter: one member of a consumer group.
pub trait Subscriber: Send + 'static {
    /// The next message. Cancel-safe: dropping the future loses nothing.
    fn recv(&mut self) -> impl Future<Output = Result<Delivery, BusError>> + Send;

    /// Acknowledges every message of `batch` (and what came before it on its partition).
    fn commit(&mut self, batch: &[Delivery]) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Publishes `delivery` to the dead-letter channel with the reason.
    fn park(
        &mut self,
        delivery: &Delivery,
        failure: &Failure,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Whether this member holds any partition now (`None`: the bus has no such notion).
    fn holds_partitions(&self) -> Option<bool> {
        None
    }

    /// Messages on this member's partitions not yet acknowledged, as the broker last told
    /// (`None`: not known yet, or the bus has no such notion).
    fn lag(&self) -> Option<i64> {
        None
    }

    /// Leaves the group and joins it again, starting a new round of assignment.
    fn rejoin(&mut self) -> Result<(), BusError> {
        Ok(())
    }
}

/// A failure of a handler: worth waiting out, or a message that cannot be processed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("transient failure")]
    Transient(#[source] Box<dyn Error + Send + Sync>),
    #[error("cannot be processed")]
    Permanent(#[source] Box<dyn Error + Send + Sync>),
}

impl HandlerError {
    fn describe(&self) -> String {
        let mut text = self.to_string();
        let mut source = self.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// What consumes the messages: a projection, a delivery service, a process manager.
pub trait Handler: Send + Sync + 'static {
    /// Names the consumer group, the logs and the status.
    fn name(&self) -> &'static str;

    /// Processes a batch, all or nothing.
    fn handle(&self, batch: &[Delivery]) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Records a message parked on the dead-letter channel.
    fn parked(
        &self,
        delivery: &Delivery,
        failure: &Failure,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Whether there is work this consumer has not been given (see
    /// [`ConsumerSettings::orphaned_after`]).
    fn lags(&self) -> impl Future<Output = bool> + Send {
        async { false }
    }
}

#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub max_backoff: Duration,
    /// How often the loop looks whether it has been left without partitions.
    pub orphan_check: Duration,
    /// How long a member may hold no partition while its handler lags before it rejoins:
    /// well past a session timeout, so a normal rebalance after a member died has come and
    /// gone. A healthy group never leaves a lagging consumer without work; a coordinator
    /// can (Tansu 0.6.0 drops a dead group leader once its session expires but never asks
    /// the remaining members to rejoin, so they heartbeat on with no partitions).
    pub orphaned_after: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            batch_max: 5_000,
            batch_wait: Duration::from_millis(1),
            max_attempts: 3,
            retry_base: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            orphan_check: Duration::from_secs(2),
            orphaned_after: Duration::from_secs(15),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerState {
    #[default]
    Starting,
    WaitingForBroker,
    Running,
    WaitingForDatabase,
    /// A message failed for good and could not be parked yet.
    WaitingToPark,
    Stopped,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ConsumerStatus {
    pub name: String,
    pub state: ConsumerState,
    pub batches: u64,
    pub messages: u64,
    pub dead_letters: u64,
    /// Messages on this member's partitions not yet acknowledged (the consumer group's
    /// lag, in messages), as the broker last reported it.
    pub lag_messages: Option<i64>,
    pub last_batch_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// One subscriber's loop; see the module documentation.
pub struct Consumer<H> {
    handler: H,
    settings: ConsumerSettings,
    status: watch::Sender<ConsumerStatus>,
}

impl<H: Handler> Consumer<H> {
    /// A consumer reporting to `status` (the caller keeps the channel, so a consumer
    /// started again after a failure reports to the same receivers).
    pub fn new(
        handler: H,
        settings: ConsumerSettings,
        status: watch::Sender<ConsumerStatus>,
    ) -> Self {
        Self { handler, settings, status }
    }

    pub fn status(&self) -> watch::Receiver<ConsumerStatus> {
        self.status.subscribe()
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.settings.retry_base)
            .with_max_delay(self.settings.max_backoff)
            .without_max_times()
            .build()
    }

    /// Connects with `connect` (again and again, with backoff, while it fails), then
    /// consumes until `shutdown` is cancelled.
    pub async fn run<S, F, Fut>(self, connect: F, shutdown: CancellationToken)
    where
        S: Subscriber,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<S, BusError>>,
    {
        let name = self.handler.name();
        let mut backoff = self.backoff();
        let mut subscriber = loop {
            match connect().await {
                Ok(subscriber) => break subscriber,
                Err(error) => {
                    self.set_state(ConsumerState::WaitingForBroker, Some(error.chain()));
                    let delay = backoff.next().unwrap_or(self.settings.max_backoff);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => return self.stopped(),
                    }
                }
            }
        };
        self.set_state(ConsumerState::Running, None);
        tracing::info!(consumer = name, "consuming");
        let mut orphan_check = tokio::time::interval(self.settings.orphan_check);
        let mut unassigned_since = None;
        loop {
            let first = tokio::select! {
                received = subscriber.recv() => received,
                _ = orphan_check.tick() => {
                    self.rejoin_if_orphaned(&mut subscriber, &mut unassigned_since).await;
                    let lag = subscriber.lag();
                    self.status.send_if_modified(|s| std::mem::replace(&mut s.lag_messages, lag) != lag);
                    continue;
                }
                () = shutdown.cancelled() => break,
            };
            let first = match first {
                Ok(delivery) => delivery,
                Err(error) => {
                    self.set_state(ConsumerState::Running, Some(error.chain()));
                    continue;
                }
            };
            // Whatever else arrives within `batch_wait` of the first message joins its
            // batch: a backlog drains in large batches, a trickle is not held back.
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.settings.batch_wait;
            while batch.len() < self.settings.batch_max {
                match tokio::time::timeout_at(deadline, subscriber.recv()).await {
                    Ok(Ok(delivery)) => batch.push(delivery),
                    _ => break,
                }
            }
            if !self.process(&batch, &mut subscriber, &shutdown).await {
                break; // stopping mid-outage: the batch is redelivered to the next member
            }
            if let Err(error) = subscriber.commit(&batch).await {
                // The next commit covers these; a redelivery is a no-op for the handler.
                tracing::warn!(consumer = name, error = %error.chain(), "acknowledging failed");
            }
            let lag = subscriber.lag();
            self.status.send_modify(|s| {
                s.batches += 1;
                s.messages += batch.len() as u64;
                s.last_batch_at = Some(Utc::now());
                s.lag_messages = lag;
            });
        }
        self.stopped();
    }

    fn stopped(&self) {
        self.set_state(ConsumerState::Stopped, None);
    }

    async fn rejoin_if_orphaned<S: Subscriber>(
        &self,
        subscriber: &mut S,
        unassigned_since: &mut Option<tokio::time::Instant>,
    ) {
        if subscriber.holds_partitions() != Some(false) {
            *unassigned_since = None;
            return;
        }
        let since = *unassigned_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() < self.settings.orphaned_after || !self.handler.lags().await {
            return;
        }
        tracing::warn!(
            consumer = self.handler.name(),
            "no partitions assigned for {:?} while there is work to do; rejoining the consumer group",
            since.elapsed()
        );
        if let Err(error) = subscriber.rejoin() {
            self.set_state(ConsumerState::Running, Some(error.chain()));
        }
        *unassigned_since = None;
    }

    /// Handles the batch at once, or else message by message, parking what fails for good.
    /// False when it had to stop (shutdown) before the batch was done.
    async fn process<S: Subscriber>(
        &self,
        batch: &[Delivery],
        subscriber: &mut S,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = self.backoff();
        loop {
            match self.handler.handle(batch).await {
                Ok(()) => {
                    self.recovered();
                    return true;
                }
                Err(error @ HandlerError::Transient(_)) => {
                    self.set_state(ConsumerState::WaitingForDatabase, Some(error.describe()));
                    if !self.pause(&mut backoff, shutdown).await {
                        return false;
                    }
                }
                Err(error @ HandlerError::Permanent(_)) => {
                    tracing::debug!(error = %error.describe(), "batch failed; handling its messages one by one");
                    break;
                }
            }
        }
        for delivery in batch {
            let mut attempt = 1;
            loop {
                match self.handler.handle(std::slice::from_ref(delivery)).await {
                    Ok(()) => break,
                    Err(HandlerError::Transient(_)) => {
                        if !self.pause(&mut backoff, shutdown).await {
                            return false;
                        }
                    }
                    Err(error) if attempt < self.settings.max_attempts => {
                        tracing::debug!(error = %error.describe(), attempt, "retrying a message");
                        tokio::time::sleep(self.settings.retry_base * 2u32.pow(attempt - 1)).await;
                        attempt += 1;
                    }
                    Err(error) => {
                        let failure = Failure {
                            consumer: self.handler.name(),
                            error: error.describe(),
                            attempts: attempt,
                        };
                        if !self.park(delivery, &failure, subscriber, shutdown).await {
                            return false;
                        }
                        break;
                    }
                }
            }
        }
        self.recovered();
        true
    }

    /// Parks `delivery` on the dead-letter channel and with the handler, retrying until
    /// both took it (or shutdown: then the batch is not acknowledged and comes back).
    async fn park<S: Subscriber>(
        &self,
        delivery: &Delivery,
        failure: &Failure,
        subscriber: &mut S,
        shutdown: &CancellationToken,
    ) -> bool {
        tracing::warn!(
            consumer = failure.consumer,
            partition = delivery.partition,
            offset = delivery.offset,
            error = %failure.error,
            "parking a message as a dead letter"
        );
        let mut backoff = self.backoff();
        let mut published = false;
        loop {
            if !published {
                match subscriber.park(delivery, failure).await {
                    Ok(()) => published = true,
                    Err(error) => {
                        self.set_state(ConsumerState::WaitingToPark, Some(error.chain()));
                    }
                }
            }
            if published {
                match self.handler.parked(delivery, failure).await {
                    Ok(()) => {
                        self.status.send_modify(|s| s.dead_letters += 1);
                        return true;
                    }
                    Err(error) => {
                        self.set_state(ConsumerState::WaitingToPark, Some(error.describe()));
                    }
                }
            }
            if !self.pause(&mut backoff, shutdown).await {
                return false;
            }
        }
    }

    /// Waits the next backoff delay; false if shutdown came first.
    async fn pause(
        &self,
        backoff: &mut impl Iterator<Item = Duration>,
        shutdown: &CancellationToken,
    ) -> bool {
        let delay = backoff.next().unwrap_or(self.settings.max_backoff);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = shutdown.cancelled() => false,
        }
    }

    fn recovered(&self) {
        if self.status.borrow().state != ConsumerState::Running {
            self.set_state(ConsumerState::Running, None);
        }
    }

    fn set_state(&self, state: ConsumerState, error: Option<String>) {
        self.status.send_modify(|s| {
            s.state = state;
            if error.is_some() {
                s.last_error = error;
            }
        });
    }
}
