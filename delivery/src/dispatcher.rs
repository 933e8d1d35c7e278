//! The dispatcher's loop: enqueue what is new, claim what is due, send it through its
//! channel (several at once), record the outcome; wait a little when nothing was due.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::channel::{Channel, SendError};
use crate::error::DeliveryError;
use crate::queue::{self, Claimed, Outcome};
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
        Self { pool, channels, names, settings, me, status }
    }

    /// Delivers until `shutdown`; a message being sent then is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut opened = false;
        loop {
            let round = async {
                if !opened {
                    self.open().await?;
                    opened = true;
                }
                self.round().await
            };
            let pause = match round.await {
                Ok(claimed) => {
                    self.set_state(DispatcherState::Running, None);
                    // A full claim means more is due: go on at once.
                    if claimed >= self.claim_limit() {
                        continue;
                    }
                    self.settings.poll_interval
                }
                Err(error) => {
                    let chain = error_chain(&error);
                    tracing::warn!(error = %chain, "delivering notifications failed; trying again");
                    self.set_state(DispatcherState::WaitingForDatabase, Some(chain));
                    self.settings.poll_interval.max(std::time::Duration::from_secs(1))
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.cancelled() => break,
            }
        }
        self.set_state(DispatcherState::Stopped, None);
    }

    fn claim_limit(&self) -> i64 {
        i64::try_from(self.settings.concurrency.max(1) * 2).unwrap_or(i64::MAX)
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
        for name in &self.names {
            queue::enqueue(&mut client, name).await?;
        }
        let claimed =
            queue::claim(&client, &self.names, self.claim_limit(), self.settings.lease, &self.me)
                .await?;
        for (channel, depth) in queue::depth(&client).await? {
            metrics::gauge!("ledger_notification_queue_depth", "channel" => channel)
                .set(depth as f64);
        }
        drop(client);
        let count = claimed.len() as i64;
        let results: Vec<Result<(), DeliveryError>> = stream::iter(claimed)
            .map(|claimed| self.deliver(claimed))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(count)
    }

    async fn deliver(&self, claimed: Claimed) -> Result<(), DeliveryError> {
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
        let mut client = self.pool.get().await?;
        let delivered =
            queue::record(&mut client, message.id, &channel, &self.me, &outcome).await?;
        self.count(&channel, &outcome, delivered);
        Ok(())
    }

    fn count(
        &self,
        channel: &str,
        outcome: &Outcome,
        delivered: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) {
        let channel = channel.to_owned();
        match outcome {
            Outcome::Delivered => {
                metrics::counter!("ledger_notifications_delivered_total", "channel" => channel.clone())
                    .increment(1);
                if let Some((event_at, at)) = delivered {
                    let latency = (at - event_at).to_std().unwrap_or_default().as_secs_f64();
                    metrics::histogram!("ledger_notification_delivery_seconds", "channel" => channel)
                        .record(latency);
                }
                self.status.send_modify(|status| {
                    status.delivered += 1;
                    status.last_delivered_at = Some(Utc::now());
                });
            }
            Outcome::Retry { error, .. } => {
                metrics::counter!("ledger_notification_retries_total", "channel" => channel)
                    .increment(1);
                tracing::info!(error, "a notification will be sent again");
                self.status.send_modify(|status| status.retried += 1);
            }
            Outcome::Failed { error } => {
                metrics::counter!("ledger_notifications_failed_total", "channel" => channel)
                    .increment(1);
                tracing::warn!(error, "a notification could not be delivered");
                self.status.send_modify(|status| status.failed += 1);
            }
        }
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
