//! The relay: publishes every committed event to the bus, at least once, in stream order
//! per order id, none skipped.
//!
//! The events table is the outbox. One relay publishes at a time: leadership is a
//! session-level advisory lock held on a dedicated connection ([`leader`]), and everything
//! the leader reads and every checkpoint it writes goes through that same connection.
//! Standby relays retry the lock every `standby_retry` and take over from the stored
//! checkpoint when the leader dies.
//!
//! One batch: read up to `batch_size` events after the last batch read, in the gap-safe
//! order (`eventstore::position`), handing them to the [`Publisher`] a chunk at a time as
//! the rows arrive, so that the store's read, the encoding and the broker's work overlap;
//! while up to `max_in_flight` batches travel to the broker the relay reads on, and as each
//! is acknowledged, in order, the checkpoint advances past it. A crash before a checkpoint
//! republishes what came after it (duplicates, never loss); a failed batch drops every
//! batch in flight, and publishing starts again from the checkpoint with capped
//! exponential backoff.

mod leader;
mod report;
mod status;

use std::collections::VecDeque;
use std::time::Duration;

use backon::BackoffBuilder;
use chrono::Utc;
use eventstore::position::{CommitPosition, CommittedRow};
use eventstore::StoreError;
use futures_util::{FutureExt, TryStreamExt};
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
    /// Batches travelling to the broker at once, at most (1: each waits for the last).
    /// A relay that dies republishes up to this many batches.
    pub max_in_flight: usize,
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
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
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

/// Batches sent to the broker and not acknowledged yet, at most, unless configured: reading
/// the next batch overlaps the broker's round trip for the last one.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1;

/// Messages handed to the publisher at a time while a batch is read: the broker takes the
/// first of a batch while the store still reads the rest, instead of after all of it.
const CHUNK: usize = 1_000;

/// A batch on its way to the broker, sent chunk by chunk as it was read.
struct InFlight {
    /// Every chunk acknowledged.
    pending: crate::publish::Pending,
    /// Its last event: the checkpoint once it is acknowledged.
    last: CommitPosition,
    /// Its events' append times, for the publish delay.
    recorded_at: Vec<chrono::DateTime<Utc>>,
    /// When its last chunk was handed over.
    sent_at: std::time::Instant,
}

/// What reading the next batch came to.
enum Read {
    Sent(InFlight),
    /// Nothing after the cursor below the horizon.
    Empty,
    /// The publisher refused a chunk: the broker is down, start over from the checkpoint.
    Refused(BusError),
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
        // Batches sent and not yet acknowledged, oldest first; `read` is where the next
        // batch starts: ahead of the checkpoint by what is in flight.
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut read = checkpoint;
        loop {
            if shutdown.is_cancelled() && in_flight.is_empty() {
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
            let mut sent = false;
            if in_flight.len() < self.settings.max_in_flight && !shutdown.is_cancelled() {
                let Self { publisher, settings, status, .. } = self;
                match send_next(leader, read, settings.batch_size, status, publisher).await? {
                    Read::Sent(batch) => {
                        read = batch.last;
                        in_flight.push_back(batch);
                        sent = true;
                    }
                    Read::Empty => {}
                    Read::Refused(error) => {
                        self.failed(&error, &mut in_flight, &mut prepared).await;
                        read = checkpoint;
                        wait(shutdown, next(&mut backoff, self.settings.max_backoff), None).await;
                        continue;
                    }
                }
            }
            let room = in_flight.len() < self.settings.max_in_flight;
            let Some(oldest) = in_flight.front_mut() else {
                wait(shutdown, self.settings.poll_interval, Some(&leader.appended)).await;
                continue;
            };
            // With room for another batch, a new append goes round again (and so does a
            // batch just sent, if more may follow it); otherwise wait for the oldest
            // batch's acknowledgement.
            let acknowledged = if sent && room {
                (&mut oldest.pending).now_or_never()
            } else {
                tokio::select! {
                    result = oldest.pending.as_mut() => Some(result),
                    () = leader.appended.notified(), if room => None,
                }
            };
            let Some(result) = acknowledged else { continue };
            match result {
                Ok(()) => {
                    let Some(done) = in_flight.pop_front() else { continue };
                    metrics::histogram!("ledger_relay_broker_ack_seconds")
                        .record(done.sent_at.elapsed().as_secs_f64());
                    let now = Utc::now();
                    let delay = metrics::histogram!("ledger_relay_publish_delay_seconds");
                    for recorded_at in &done.recorded_at {
                        delay.record(seconds_between(*recorded_at, now));
                    }
                    let count = done.recorded_at.len();
                    leader.save_checkpoint(&self.settings.name, done.last, count).await?;
                    checkpoint = done.last;
                    backoff = self.backoff();
                    self.published(count, checkpoint);
                }
                Err(error) => {
                    self.failed(&error, &mut in_flight, &mut prepared).await;
                    read = checkpoint;
                    wait(shutdown, next(&mut backoff, self.settings.max_backoff), None).await;
                }
            }
        }
    }

    /// A batch failed: drops every batch in flight (they are published again from the
    /// checkpoint) and starts over with a fresh publisher, which a restarted broker that
    /// lost its channels and forgot this producer needs.
    async fn failed(
        &mut self,
        error: &BusError,
        in_flight: &mut VecDeque<InFlight>,
        prepared: &mut bool,
    ) {
        self.broker_down(error);
        in_flight.clear();
        if let Err(error) = self.publisher.reset().await {
            tracing::warn!(error = %error.chain(), "could not reset the publisher");
        }
        *prepared = false;
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

/// Reads the next batch after `after` in the gap-safe order, through the leader's
/// connection, and hands it to the publisher [`CHUNK`] messages at a time as its rows
/// arrive: PostgreSQL reads, the relay encodes and the broker takes the batch at once.
/// Every chunk is queued behind the last, so order per key holds across them.
async fn send_next<P: Publisher>(
    leader: &Leader,
    after: CommitPosition,
    batch_size: i64,
    status: &watch::Sender<RelayStatus>,
    publisher: &mut P,
) -> Result<Read, LeadError> {
    let events = leader.reads.stream_after(&leader.client, after, batch_size).await?;
    let mut events = std::pin::pin!(events);
    let mut chunks = Vec::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut last = None;
    let mut recorded_at = Vec::new();
    while let Some(row) = events.try_next().await? {
        let committed = CommittedRow::from_row(&row)?;
        chunk.push(envelope::encode(&committed)?);
        last = Some(committed.event.commit);
        recorded_at.push(committed.event.recorded_at);
        if chunk.len() == CHUNK {
            match publisher.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))) {
                Ok(pending) => chunks.push(pending),
                // The rest of the statement's rows are discarded by the connection.
                Err(error) => return Ok(Read::Refused(error)),
            }
        }
    }
    status.send_modify(|s| s.reads += 1);
    let Some(last) = last else { return Ok(Read::Empty) };
    if !chunk.is_empty() {
        match publisher.send(chunk) {
            Ok(pending) => chunks.push(pending),
            Err(error) => return Ok(Read::Refused(error)),
        }
    }
    let pending = Box::pin(async move {
        for chunk in chunks {
            chunk.await?;
        }
        Ok(())
    });
    Ok(Read::Sent(InFlight { pending, last, recorded_at, sent_at: std::time::Instant::now() }))
}

/// From `earlier` to `later` in seconds (0 if the clocks disagree).
fn seconds_between(earlier: chrono::DateTime<Utc>, later: chrono::DateTime<Utc>) -> f64 {
    (later - earlier).to_std().map_or(0.0, |elapsed| elapsed.as_secs_f64())
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
