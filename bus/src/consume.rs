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
//!
//! The loop also watches its assignment: a member that holds no partition reports
//! `unassigned` (not `running`), and one starved for `orphaned_after` — no partition while
//! there is work, or work it should have been given done without it — leaves the group and
//! joins it again, whatever the coordinator does.

use std::future::Future;
use std::time::Duration;

use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::BusError;
use crate::subscribe::{Delivery, Failure, Handler, HandlerError, Subscriber};

#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub max_backoff: Duration,
    /// How often the loop looks at its assignment (and reports it).
    pub orphan_check: Duration,
    /// How long a member may be starved before it rejoins the group: holding no partition
    /// while its handler lags, or seeing work it should have been given done without it
    /// ([`Handler::undelivered_at`]) on every look. Well past a session timeout, so a
    /// normal rebalance after a member died has come and gone. A healthy group never
    /// starves a consumer; a coordinator can (Tansu 0.6.0 drops a dead member once its
    /// session expires but never asks the others to rejoin: its partitions stay with
    /// nobody, and a member that joined meanwhile heartbeats on with none).
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
            orphan_check: Duration::from_millis(250),
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
    /// Consuming: a member of the group that holds partitions.
    Running,
    /// A member of the group that holds no partition (a rebalance is pending, or the
    /// group has more members than partitions): nothing reaches it from the bus.
    Unassigned,
    WaitingForDatabase,
    /// A message failed for good and could not be parked yet.
    WaitingToPark,
    Stopped,
}

impl ConsumerState {
    /// Whether the bus feeds this consumer: it holds partitions (even while it waits out
    /// the database or a message it cannot park).
    pub fn is_fed(self) -> bool {
        matches!(self, Self::Running | Self::WaitingForDatabase | Self::WaitingToPark)
    }
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
    /// The partitions this member holds (`None`: not known, or the bus has no such notion).
    pub partitions: Option<Vec<i32>>,
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
        let mut starved_since = None;
        loop {
            let first = tokio::select! {
                received = subscriber.recv() => received,
                _ = orphan_check.tick() => {
                    self.watch_assignment(&mut subscriber, &mut starved_since).await;
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

    /// Reports the assignment, and rejoins the group when this member has been starved
    /// for [`ConsumerSettings::orphaned_after`].
    async fn watch_assignment<S: Subscriber>(
        &self,
        subscriber: &mut S,
        starved_since: &mut Option<tokio::time::Instant>,
    ) {
        let partitions = subscriber.assignment();
        let unassigned = partitions.as_ref().is_some_and(Vec::is_empty);
        self.status.send_if_modified(|status| {
            let state = match status.state {
                ConsumerState::Running | ConsumerState::Unassigned if unassigned => {
                    ConsumerState::Unassigned
                }
                ConsumerState::Unassigned => ConsumerState::Running,
                other => other,
            };
            let changed = status.state != state || status.partitions != partitions;
            status.state = state;
            status.partitions = partitions;
            changed
        });
        // Work done without this consumer within a few looks (the catch-up runs about
        // once a second while the bus feeds it).
        let window = chrono::Duration::from_std(self.settings.orphan_check * 12)
            .unwrap_or(chrono::Duration::MAX);
        let undelivered = self.handler.undelivered_at().is_some_and(|at| Utc::now() - at < window);
        if !unassigned && !undelivered {
            *starved_since = None;
            return;
        }
        let since = *starved_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() < self.settings.orphaned_after
            || !(undelivered || self.handler.lags().await)
        {
            return;
        }
        tracing::warn!(
            consumer = self.handler.name(),
            unassigned,
            "starved for {:?}: work this member was not given is done from the store; rejoining the consumer group",
            since.elapsed()
        );
        if let Err(error) = subscriber.rejoin() {
            self.set_state(ConsumerState::Running, Some(error.chain()));
        }
        *starved_since = None;
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
        let mut checked = !subscriber.offsets_name_messages();
        loop {
            if !checked {
                match self.handler.already_parked(delivery).await {
                    Ok(true) => {
                        tracing::info!(
                            consumer = failure.consumer,
                            partition = delivery.partition,
                            offset = delivery.offset,
                            "delivered again, and already parked: not parked twice"
                        );
                        return true;
                    }
                    Ok(false) => checked = true,
                    Err(error) => {
                        self.set_state(ConsumerState::WaitingToPark, Some(error.describe()));
                    }
                }
            }
            if checked && !published {
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
