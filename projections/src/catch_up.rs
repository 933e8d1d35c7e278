//! Catching a projection up from the event store on events the bus did not deliver.
//!
//! The consumers heal a stream when a later event of it arrives (see [`crate::apply`]);
//! an event the broker lost (a broker restarted on in-memory storage, a topic recreated,
//! offsets skipped) whose order gets no later event would stay missing, and the watermark
//! would stop before it for good. So every `interval` this looks past the watermark for
//! committed events the projection has not applied that are older than `grace` (time the
//! bus normally needs, so that it does not race the consumers), and applies them through
//! the same [`crate::apply`], which drops whatever was applied meanwhile. A lost event is
//! therefore in the read model within about `grace + interval`, without a restart.
//!
//! While the bus does not feed this process's consumer at all (it is starting, the broker
//! is away, or the group gave it no partition — after a crash the group may wait for the
//! dead member's session to lapse, or never rebalance), the catch-up is the feed: it looks
//! every `unfed_interval` for events older than `unfed_grace`, so the read models stay
//! current within a fraction of a second whatever the group protocol does.
//!
//! It holds the projection's apply lock exclusively while it applies, so it never runs
//! beside a consumer's batch: both could otherwise apply the first event of a stream.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bus::ConsumerStatus;
use chrono::Utc;
use deadpool_postgres::Pool;
use eventstore::position::{events_at, ReplayedEvent};
use eventstore::StoreError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::applied::AppliedSignal;
use crate::apply::{Durability, Outcome, APPLY_LOCK_EXCLUSIVE};
use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::handler::{record, ProjectionStats};
use crate::kind::ProjectionKind;

#[derive(Clone, Debug)]
pub struct CatchUpSettings {
    /// How often to look.
    pub interval: Duration,
    /// How old an unapplied event must be before the store supplies it.
    pub grace: Duration,
    /// Events applied per transaction, at most.
    pub batch: i64,
    /// How often to look while the bus does not feed the consumer.
    pub unfed_interval: Duration,
    /// The grace then: short, yet long enough not to race another process's consumer that
    /// holds the partitions this one lacks.
    pub unfed_grace: Duration,
}

impl Default for CatchUpSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            grace: Duration::from_secs(2),
            batch: 5_000,
            unfed_interval: Duration::from_millis(100),
            unfed_grace: Duration::from_millis(500),
        }
    }
}

/// Positions of committed events after the watermark that `$1` has not applied and that
/// were appended more than `$2` seconds ago. Planned for its parameters on every call (an
/// unnamed statement): a generic plan cannot know how far behind the watermark is.
const UNAPPLIED: &str = "
    SELECT e.global_position
      FROM events e
      LEFT JOIN projection_streams ps ON ps.projection = $1 AND ps.stream_id = e.stream_id
     WHERE e.global_position >
           coalesce((SELECT position FROM projection_watermarks WHERE projection = $1), 0)
       AND coalesce(ps.stream_version, 0) < e.stream_version
       AND e.recorded_at < clock_timestamp() - make_interval(secs => $2)
     ORDER BY e.global_position
     LIMIT $3";

/// One projection's catch-up loop.
pub struct CatchUp {
    kind: ProjectionKind,
    pool: Pool,
    settings: CatchUpSettings,
    stats: watch::Sender<ProjectionStats>,
    signal: AppliedSignal,
    /// The consumer of the same projection in this process.
    consumer: watch::Receiver<ConsumerStatus>,
    /// Events this loop could not apply: not tried again until a restart.
    failing: Mutex<HashSet<i64>>,
}

impl CatchUp {
    pub fn new(
        kind: ProjectionKind,
        pool: Pool,
        settings: CatchUpSettings,
        stats: watch::Sender<ProjectionStats>,
        signal: AppliedSignal,
        consumer: watch::Receiver<ConsumerStatus>,
    ) -> Self {
        let failing = Mutex::new(HashSet::new());
        Self { kind, pool, settings, stats, signal, consumer, failing }
    }

    fn fed(&self) -> bool {
        self.consumer.borrow().state.is_fed()
    }

    /// Looks every `interval` (`unfed_interval` while the bus does not feed the consumer)
    /// until `shutdown`; a failure is logged and tried again at the next look.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut consumer = self.consumer.clone();
        loop {
            let fed = self.fed();
            let grace = if fed { self.settings.grace } else { self.settings.unfed_grace };
            // Readers advance the watermark when they need it; this keeps it current for
            // the ones that do not wait (and for the lag it reports).
            if let Err(error) = self.advance_watermark().await {
                tracing::debug!(projection = self.kind.name(), %error, "watermark not advanced");
            }
            // A full batch means there may be more: go on without waiting.
            loop {
                match self.once(grace).await {
                    Ok(outcome) => {
                        if outcome.applied > 0 && fed {
                            tracing::info!(
                                projection = self.kind.name(),
                                applied = outcome.applied,
                                "applied events from the store that the bus had not delivered"
                            );
                        }
                        let read = outcome.applied + outcome.duplicates;
                        if read < self.settings.batch.unsigned_abs() {
                            self.stats.send_modify(|stats| stats.current_at = Some(Utc::now()));
                            break;
                        }
                        if shutdown.is_cancelled() {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(projection = self.kind.name(), %error, "catching up from the store failed");
                        break;
                    }
                }
            }
            if fed {
                // Looks again at once when the bus stops feeding the consumer.
                tokio::select! {
                    () = tokio::time::sleep(self.settings.interval) => {}
                    _ = consumer.wait_for(|status| !status.state.is_fed()) => {}
                    () = shutdown.cancelled() => return,
                }
            } else {
                tokio::select! {
                    () = tokio::time::sleep(self.settings.unfed_interval) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }

    async fn advance_watermark(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        crate::watermark::advance(&client, self.kind.name()).await?;
        Ok(())
    }

    /// Applies the unapplied events older than `grace`, up to a batch; returns what it
    /// did. An event that cannot be applied (as the consumer would park it) does
    /// not hold back the others: it is left out, with a warning the first time.
    pub async fn once(&self, grace: Duration) -> Result<Outcome, ApplyError> {
        let name = self.kind.name();
        let client = self.pool.get().await.map_err(StoreError::from)?;
        let grace = grace.as_secs_f64();
        let failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let positions: Vec<i64> = client
            .query(UNAPPLIED, &[&name, &grace, &self.settings.batch])
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .filter(|position| position.as_ref().map_or(true, |p| !failing.contains(p)))
            .collect::<Result<_, _>>()?;
        if positions.is_empty() {
            return Ok(Outcome::default());
        }
        let rows = events_at(&**client, &positions).await?;
        drop(client);
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let decoded = ReplayedEvent::from_row(row)
                .map_err(ApplyError::from)
                .and_then(|replayed| ProjectedEvent::from_replayed(&replayed));
            match decoded {
                Ok(event) => events.push(event),
                Err(error) => self.cannot_apply(row.try_get(1).unwrap_or_default(), &error),
            }
        }
        let outcome = match self.apply(&events).await {
            Err(error) if !error.is_transient() => {
                let mut outcome = Outcome::default();
                for event in &events {
                    match self.apply(std::slice::from_ref(event)).await {
                        Ok(one) => outcome.add(one),
                        Err(error) if !error.is_transient() => {
                            self.cannot_apply(event.position, &error);
                        }
                        Err(error) => return Err(error),
                    }
                }
                outcome
            }
            other => other?,
        };
        let client = self.pool.get().await.map_err(StoreError::from)?;
        crate::watermark::advance(&client, name).await?;
        Ok(outcome)
    }

    /// Applies `events` in one transaction and tells whoever waits.
    async fn apply(&self, events: &[ProjectedEvent]) -> Result<Outcome, ApplyError> {
        if events.is_empty() {
            return Ok(Outcome::default());
        }
        let name = self.kind.name();
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let transaction = client.transaction().await?;
        transaction.execute(APPLY_LOCK_EXCLUSIVE, &[&name]).await?;
        let outcome =
            self.kind.apply(&transaction, events, Durability::Lazy, self.signal.origin()).await?;
        transaction.commit().await?;
        record(self.kind, &self.stats, &outcome);
        metrics::counter!("ledger_projection_events_caught_up_total", "projection" => name)
            .increment(outcome.applied);
        if outcome.applied > 0 {
            self.stats.send_modify(|stats| {
                stats.caught_up_events += outcome.applied;
                stats.store_supplied_at = Some(Utc::now());
            });
        }
        self.signal.applied_here(self.kind, events.iter().map(|e| (e.stream_id, e.stream_version)));
        Ok(outcome)
    }

    fn cannot_apply(&self, position: i64, error: &ApplyError) {
        if self.failing.lock().unwrap_or_else(PoisonError::into_inner).insert(position) {
            tracing::warn!(
                projection = self.kind.name(),
                position,
                error = %error,
                "the catch-up cannot apply this event; it is left out until a restart (see the dead letters)"
            );
        }
    }
}
