//! The relay: publishes every committed event to the bus, at least once, in stream order
//! per order id, none skipped.
//!
//! The events table is the outbox. One relay publishes at a time: leadership is a
//! session-level advisory lock held on a dedicated connection ([`leader`]), and everything
//! the leader reads and every checkpoint it writes goes through that same connection.
//! Standby relays retry the lock every `standby_retry` and take over from the stored
//! checkpoint when the leader dies.
//!
//! One batch: read up to `batch_size` events after the checkpoint in the gap-safe order
//! (`eventstore::position`), hand them to the [`Publisher`], which returns once the broker
//! has acknowledged every one, then advance the checkpoint. A crash between publishing and
//! checkpointing republishes the batch (duplicates, never loss); a failed batch is retried
//! from the checkpoint with capped exponential backoff.

mod leader;
mod report;
mod status;

use std::time::Duration;

use backon::BackoffBuilder;
use chrono::Utc;
use eventstore::position::{read_committed_after, CommitPosition};
use eventstore::StoreError;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::envelope;
use crate::error::BusError;
use crate::publish::Publisher;
use leader::Leader;

pub use report::{relay_report, RelayReport};
pub use status::{BrokerHealth, RelayRole, RelayStatus};

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
}

/// The name of the relay that publishes the order events (its checkpoint row).
pub const RELAY_NAME: &str = "kafka";

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            name: RELAY_NAME.to_owned(),
            batch_size: 20_000,
            poll_interval: Duration::from_millis(500),
            standby_retry: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LeadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("lost the leader connection")]
    LostConnection,
    #[error("encoding an envelope")]
    Encode(#[from] serde_json::Error),
}

pub struct Relay<P> {
    database_url: String,
    publisher: P,
    settings: RelaySettings,
    status: watch::Sender<RelayStatus>,
}

impl<P: Publisher> Relay<P> {
    /// A relay reporting to `status` (the caller keeps the channel, so a relay started
    /// again after a failure reports to the same receivers).
    pub fn new(
        database_url: impl Into<String>,
        publisher: P,
        settings: RelaySettings,
        status: watch::Sender<RelayStatus>,
    ) -> Self {
        Self { database_url: database_url.into(), publisher, settings, status }
    }

    pub fn status(&self) -> watch::Receiver<RelayStatus> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` is cancelled; finishes the batch in flight first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = self.backoff();
        while !shutdown.is_cancelled() {
            let leader = match Leader::acquire(&self.database_url, &self.settings.name).await {
                Ok(Some(leader)) => leader,
                Ok(None) => {
                    self.set_role(RelayRole::Standby);
                    wait(&shutdown, self.settings.standby_retry, None).await;
                    continue;
                }
                Err(error) => {
                    self.set_error(format!("database: {error}"));
                    wait(&shutdown, next(&mut backoff, self.settings.max_backoff), None).await;
                    continue;
                }
            };
            tracing::info!(relay = %self.settings.name, "relay is the leader; publishing");
            self.set_role(RelayRole::Active);
            match self.lead(&leader, &shutdown).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, "relay stepped down; will try to lead again");
                    self.set_error(error.to_string());
                    drop(leader);
                    wait(&shutdown, next(&mut backoff, self.settings.max_backoff), None).await;
                }
            }
        }
        self.set_role(RelayRole::Stopped);
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(self.settings.max_backoff)
            .without_max_times()
            .build()
    }

    async fn lead(
        &mut self,
        leader: &Leader,
        shutdown: &CancellationToken,
    ) -> Result<(), LeadError> {
        let mut backoff = self.backoff();
        let mut prepared = false;
        let mut checkpoint = leader.checkpoint(&self.settings.name).await?;
        self.status.send_modify(|s| s.checkpoint = Some(checkpoint));
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if leader.is_closed() {
                return Err(LeadError::LostConnection);
            }
            if !prepared {
                match self.publisher.prepare().await {
                    Ok(()) => prepared = true,
                    Err(error) => {
                        self.broker_down(&error);
                        wait(shutdown, next(&mut backoff, self.settings.max_backoff), None).await;
                        continue;
                    }
                }
            }
            let batch =
                read_committed_after(&leader.client, checkpoint, self.settings.batch_size).await?;
            self.status.send_modify(|s| s.reads += 1);
            let Some(last) = batch.last().map(|event| event.commit) else {
                wait(shutdown, self.settings.poll_interval, Some(&leader.appended)).await;
                continue;
            };
            let count = batch.len();
            let messages = batch.iter().map(envelope::encode).collect::<Result<Vec<_>, _>>()?;
            match self.publisher.publish(messages).await {
                Ok(()) => {
                    leader.save_checkpoint(&self.settings.name, last, count).await?;
                    checkpoint = last;
                    backoff = self.backoff();
                    self.published(count, checkpoint);
                }
                Err(error) => {
                    self.broker_down(&error);
                    // A restarted broker may have lost its channels and will not know this
                    // producer: start over with a fresh one, and prepare the channels again.
                    if let Err(error) = self.publisher.reset().await {
                        tracing::warn!(error = %error.chain(), "could not reset the publisher");
                    }
                    prepared = false;
                    wait(shutdown, next(&mut backoff, self.settings.max_backoff), None).await;
                }
            }
        }
    }

    fn set_role(&self, role: RelayRole) {
        metrics::gauge!("ledger_relay_active").set(f64::from(u8::from(role == RelayRole::Active)));
        self.status.send_modify(|s| s.role = role);
    }

    fn set_error(&self, error: String) {
        metrics::gauge!("ledger_relay_active").set(0.0);
        self.status.send_modify(|s| {
            s.role = RelayRole::Standby;
            s.last_error = Some(error);
        });
    }

    /// Logs once per change of state, not once per retry.
    fn broker_down(&self, error: &BusError) {
        let error = error.chain();
        if self.status.borrow().broker != BrokerHealth::Unreachable {
            tracing::warn!(%error, "broker unreachable; retrying with backoff, commands are still accepted");
        }
        metrics::gauge!("ledger_relay_broker_reachable").set(0.0);
        self.status.send_modify(|s| {
            s.broker = BrokerHealth::Unreachable;
            s.last_error = Some(error);
        });
    }

    fn published(&self, events: usize, checkpoint: CommitPosition) {
        if self.status.borrow().broker != BrokerHealth::Reachable {
            tracing::info!("broker reachable; publishing");
        }
        let now = Utc::now();
        metrics::counter!("ledger_relay_events_published_total").increment(events as u64);
        metrics::counter!("ledger_relay_batches_published_total").increment(1);
        metrics::gauge!("ledger_relay_broker_reachable").set(1.0);
        metrics::gauge!("ledger_relay_last_publish_timestamp_seconds")
            .set(now.timestamp_millis() as f64 / 1000.0);
        self.status.send_modify(|s| {
            s.broker = BrokerHealth::Reachable;
            s.published_events += events as u64;
            s.published_batches += 1;
            s.last_published_at = Some(now);
            s.checkpoint = Some(checkpoint);
        });
    }
}

/// The next delay of a backoff that never runs out.
fn next(backoff: &mut impl Iterator<Item = Duration>, cap: Duration) -> Duration {
    backoff.next().unwrap_or(cap)
}

/// Sleeps for `duration`, or until `wake` fires, or until shutdown.
async fn wait(shutdown: &CancellationToken, duration: Duration, wake: Option<&Notify>) {
    let woken = async {
        match wake {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = woken => {}
        () = shutdown.cancelled() => {}
    }
}
