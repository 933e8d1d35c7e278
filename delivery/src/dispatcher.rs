//! The dispatcher's loop: enqueue what is new, claim what is due, send it through its
//! channel (several at once), record the outcome; wait a little when nothing was due.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::channel::{Channel, SendError};
use crate::error::DeliveryError;
use crate::queue::{self, Attempted, Claimed, Outcome};
use crate::settings::DeliverySettings;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DispatcherState {
    #[default]
    Starting,
    Running,
    WaitingForDatabase,
    Stopped,
}

/// What this process's dispatcher did, for the admin status.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DispatcherStatus {
    pub state: DispatcherState,
    pub channels: Vec<String>,
    pub delivered: u64,
    pub retried: u64,
    pub failed: u64,
    pub last_delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

pub struct Dispatcher {
    pool: Pool,
    channels: HashMap<String, Arc<dyn Channel>>,
    names: Vec<String>,
    settings: DeliverySettings,
    /// This process's name on its claims.
    me: String,
    status: watch::Sender<DispatcherStatus>,
    depth_read_at: Mutex<Option<Instant>>,
    enqueued_at: Mutex<Option<Instant>>,
    /// Whether the last round's claim was full.
    draining: AtomicBool,
}

impl Dispatcher {
    pub fn new(
        pool: Pool,
        channels: Vec<Arc<dyn Channel>>,
        settings: DeliverySettings,
        status: watch::Sender<DispatcherStatus>,
    ) -> Self {
        let mut names: Vec<String> = channels.iter().map(|c| c.name().to_owned()).collect();
        names.sort();
        let channels = channels.into_iter().map(|c| (c.name().to_owned(), c)).collect();
        let me = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        status.send_modify(|status| status.channels.clone_from(&names));
        Self {
            pool,
            channels,
            names,
            settings,
            me,
            status,
            depth_read_at: Mutex::default(),
            enqueued_at: Mutex::default(),
            draining: AtomicBool::new(false),
        }
    }

    /// Delivers until `shutdown`; a message being sent then is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.open().await {
                Ok(()) => break,
                Err(error) => {
                    if !self.pause_after(&error, &shutdown).await {
                        return self.set_state(DispatcherState::Stopped, None);
                    }
                }
            }
        }
        // Two lanes, each claiming and sending its own batches: while one records its
        // outcomes and claims anew, the other's messages travel. (They share the work as
        // two dispatchers would; an order's messages still go out one after the other.)
        futures_util::future::join(self.lane(&shutdown), self.lane(&shutdown)).await;
        self.set_state(DispatcherState::Stopped, None);
    }

    async fn lane(&self, shutdown: &CancellationToken) {
        loop {
            let pause = match self.round().await {
                Ok(claimed) => {
                    self.set_state(DispatcherState::Running, None);
                    // A full claim means more is due: go on at once.
                    if claimed >= self.claim_limit() {
                        if shutdown.is_cancelled() {
                            return;
                        }
                        continue;
                    }
                    self.settings.poll_interval
                }
                Err(error) => {
                    if !self.pause_after(&error, shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Logs `error` and waits before the next try; false when shutting down.
    async fn pause_after(&self, error: &DeliveryError, shutdown: &CancellationToken) -> bool {
        let chain = error_chain(error);
        tracing::warn!(error = %chain, "delivering notifications failed; trying again");
        self.set_state(DispatcherState::WaitingForDatabase, Some(chain));
        tokio::select! {
            () = tokio::time::sleep(self.settings.poll_interval.max(Duration::from_secs(1))) => true,
            () = shutdown.cancelled() => false,
        }
    }

    /// Messages one lane sends at once.
    fn lane_concurrency(&self) -> usize {
        self.settings.concurrency.div_ceil(2).max(1)
    }

    /// Messages a lane claims per round: several per sender, so that a round's fixed costs
    /// (claim, record) spread over many; twice this is the most a crash can send twice.
    fn claim_limit(&self) -> i64 {
        i64::try_from(self.lane_concurrency() * 4).unwrap_or(i64::MAX)
    }

    async fn open(&self) -> Result<(), DeliveryError> {
        let client = self.pool.get().await?;
        for name in &self.names {
            queue::open_channel(&client, name, self.settings.start).await?;
        }
        Ok(())
    }

    /// One round; returns how many messages it claimed.
    async fn round(&self) -> Result<i64, DeliveryError> {
        let mut client = self.pool.get().await?;
        // While a backlog drains (every claim full), new notifications can wait a little:
        // enqueueing costs a transaction per channel.
        if !self.draining.load(Ordering::Relaxed)
            || self.due(&self.enqueued_at, self.settings.poll_interval)
        {
            for name in &self.names {
                queue::enqueue(&mut client, name).await?;
            }
        }
        let claimed =
            queue::claim(&client, &self.names, self.claim_limit(), self.settings.lease, &self.me)
                .await?;
        if self.due(&self.depth_read_at, std::time::Duration::from_secs(1)) {
            for (channel, depth) in queue::depth(&client).await? {
                metrics::gauge!("ledger_notification_queue_depth", "channel" => channel)
                    .set(depth as f64);
            }
        }
        drop(client);
        let count = claimed.len() as i64;
        self.draining.store(count >= self.claim_limit(), Ordering::Relaxed);
        if claimed.is_empty() {
            return Ok(0);
        }
        let attempted: Vec<Attempted> = stream::iter(claimed)
            .map(|claimed| self.attempt(claimed))
            .buffer_unordered(self.lane_concurrency())
            .collect()
            .await;
        let mut client = self.pool.get().await?;
        let recorded = queue::record(&mut client, &self.me, &attempted).await?;
        self.count(&attempted, &recorded);
        Ok(count)
    }

    /// Whether `every` has passed since `last` (which it then resets). The queue depth,
    /// for one, is a gauge for people: read once a second, not every round.
    fn due(&self, last: &Mutex<Option<Instant>>, every: Duration) -> bool {
        let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= every);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    async fn attempt(&self, claimed: Claimed) -> Attempted {
        let Claimed { channel, message } = claimed;
        let outcome = match self.channels.get(&channel) {
            Some(sender) => match sender.send(&message).await {
                Ok(()) => Outcome::Delivered,
                Err(SendError::Permanent(error)) => Outcome::Failed { error },
                Err(SendError::Transient { reason, .. })
                    if message.attempt >= self.settings.max_attempts =>
                {
                    Outcome::Failed {
                        error: format!("{reason} (gave up after {} attempts)", message.attempt),
                    }
                }
                Err(SendError::Transient { reason, retry_after }) => {
                    let attempts = message.attempt.unsigned_abs();
                    let after = self.settings.backoff.delay(attempts, retry_after, fastrand::f64());
                    Outcome::Retry { error: reason, after }
                }
            },
            None => Outcome::Failed { error: format!("no channel {channel} is configured") },
        };
        Attempted { id: message.id, channel, outcome }
    }

    fn count(&self, attempted: &[Attempted], recorded: &[queue::Recorded]) {
        for (channel, event_at, delivered_at) in recorded {
            let latency = (*delivered_at - *event_at).to_std().unwrap_or_default();
            metrics::histogram!("ledger_notification_delivery_seconds", "channel" => channel.clone())
                .record(latency.as_secs_f64());
        }
        let (mut delivered, mut retried, mut failed) = (0, 0, 0);
        for attempt in attempted {
            let channel = attempt.channel.clone();
            match &attempt.outcome {
                Outcome::Delivered => {
                    delivered += 1;
                    metrics::counter!("ledger_notifications_delivered_total", "channel" => channel)
                        .increment(1);
                }
                Outcome::Retry { error, .. } => {
                    retried += 1;
                    metrics::counter!("ledger_notification_retries_total", "channel" => channel)
                        .increment(1);
                    tracing::info!(id = %attempt.id, error, "a notification will be sent again");
                }
                Outcome::Failed { error } => {
                    failed += 1;
                    metrics::counter!("ledger_notifications_failed_total", "channel" => channel)
                        .increment(1);
                    tracing::warn!(id = %attempt.id, error, "a notification could not be delivered");
                }
            }
        }
        self.status.send_modify(|status| {
            status.delivered += delivered;
            status.retried += retried;
            status.failed += failed;
            if delivered > 0 {
                status.last_delivered_at = Some(Utc::now());
            }
        });
    }

    fn set_state(&self, state: DispatcherState, error: Option<String>) {
        self.status.send_if_modified(|status| {
            let changed = status.state != state || error.is_some();
            status.state = state;
            if error.is_some() {
                status.last_error = error;
            }
            changed
        });
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
