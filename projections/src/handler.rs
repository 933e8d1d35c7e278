//! A projection as a consumer of the orders channel: each batch of messages is decoded and
//! applied in one transaction ([`crate::apply`]); parked messages are recorded in
//! `dead_letters`. The watermark is moved by the catch-up's tick and by the readers that
//! need it, not after every batch.
//!
//! Traces: a batch holds messages of many traces, so it runs in a span of its own (the
//! logs of the batch carry its trace id), and each message whose trace is sampled gets a
//! short span in its own trace (`project <projection>`, a child of the span that appended
//! the event, linked to the batch's span, lasting as long as the batch). Not a `tracing`
//! span per message: those are only recorded where traces are exported, and cost nothing
//! per message elsewhere (`trace_context::record_message_spans`).

use bus::{Delivery, Failure, Handler, HandlerError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::sync::watch;
use trace_context::TraceParent;
use tracing::Instrument;

use crate::applied::AppliedSignal;
use crate::apply::{Durability, Outcome};
use crate::dead_letter::{self, FailedMessage};
use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::kind::ProjectionKind;

/// What this process applied for one projection, for the admin endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct ProjectionStats {
    pub projection: ProjectionKind,
    pub applied_events: u64,
    pub duplicates: u64,
    pub healed_events: u64,
    /// Events the catch-up applied from the store because the bus had not delivered them.
    pub caught_up_events: u64,
    /// When the catch-up last applied such events.
    pub store_supplied_at: Option<DateTime<Utc>>,
    /// When the catch-up last found nothing left to apply (older than its grace).
    pub current_at: Option<DateTime<Utc>>,
    pub dead_letters: u64,
    pub last_position: Option<i64>,
    pub last_applied_at: Option<DateTime<Utc>>,
}

pub struct ProjectionHandler {
    kind: ProjectionKind,
    pool: Pool,
    stats: watch::Sender<ProjectionStats>,
    signal: AppliedSignal,
}

impl ProjectionStats {
    pub fn new(projection: ProjectionKind) -> Self {
        Self {
            projection,
            applied_events: 0,
            duplicates: 0,
            healed_events: 0,
            caught_up_events: 0,
            store_supplied_at: None,
            current_at: None,
            dead_letters: 0,
            last_position: None,
            last_applied_at: None,
        }
    }
}

impl ProjectionHandler {
    /// A handler reporting to `stats`, waking the readers of this process through `signal`.
    pub fn new(
        kind: ProjectionKind,
        pool: Pool,
        stats: watch::Sender<ProjectionStats>,
        signal: AppliedSignal,
    ) -> Self {
        Self { kind, pool, stats, signal }
    }

    pub fn stats(&self) -> watch::Receiver<ProjectionStats> {
        self.stats.subscribe()
    }

    async fn apply_all(&self, batch: &[Delivery]) -> Result<(), ApplyError> {
        let started = std::time::Instant::now();
        let events = batch
            .iter()
            .map(|delivery| {
                ProjectedEvent::from_message(delivery.payload.as_deref().unwrap_or_default())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let delivered = metrics::histogram!("ledger_projection_delivery_delay_seconds", "projection" => self.kind.name());
        record_delays(&delivered, &events);
        let mut client = self.pool.get().await.map_err(eventstore::StoreError::from)?;
        let transaction = client.transaction().await?;
        let outcome =
            self.kind.apply(&transaction, &events, Durability::Lazy, self.signal.origin()).await?;
        transaction.commit().await?;
        self.signal.applied_here(self.kind, events.iter().map(|e| (e.stream_id, e.stream_version)));
        metrics::histogram!("ledger_projection_batch_duration_seconds", "projection" => self.kind.name())
            .record(started.elapsed().as_secs_f64());
        record(self.kind, &self.stats, &outcome);
        let applied = metrics::histogram!("ledger_projection_apply_delay_seconds", "projection" => self.kind.name());
        record_delays(&applied, &events);
        Ok(())
    }
}

/// Records, for each event, how long ago it was appended.
fn record_delays(histogram: &metrics::Histogram, events: &[ProjectedEvent]) {
    let now = Utc::now();
    for event in events {
        histogram.record((now - event.recorded_at).to_std().map_or(0.0, |d| d.as_secs_f64()));
    }
}

/// Counts a committed batch in the metrics and in this process's statistics.
pub(crate) fn record(
    kind: ProjectionKind,
    stats: &watch::Sender<ProjectionStats>,
    outcome: &Outcome,
) {
    let name = kind.name();
    metrics::counter!("ledger_projection_events_applied_total", "projection" => name)
        .increment(outcome.applied);
    metrics::counter!("ledger_projection_duplicates_total", "projection" => name)
        .increment(outcome.duplicates);
    metrics::counter!("ledger_projection_events_healed_total", "projection" => name)
        .increment(outcome.healed);
    stats.send_modify(|stats| {
        stats.applied_events += outcome.applied;
        stats.duplicates += outcome.duplicates;
        stats.healed_events += outcome.healed;
        stats.last_position = stats.last_position.max(outcome.last_position);
        stats.last_applied_at = Some(Utc::now());
    });
}

fn handler_error(error: ApplyError) -> HandlerError {
    if error.is_transient() {
        HandlerError::Transient(Box::new(error))
    } else {
        HandlerError::Permanent(Box::new(error))
    }
}

impl Handler for ProjectionHandler {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let name = self.kind.name();
        let span = tracing::info_span!(
            "project_batch",
            projection = name,
            messages = batch.len(),
            otel.kind = "consumer"
        );
        let started = std::time::SystemTime::now();
        let applied = self.apply_all(batch).instrument(span.clone()).await;
        let parents = batch
            .iter()
            .filter_map(|delivery| TraceParent::parse(delivery.traceparent.as_deref()?).ok());
        trace_context::record_message_spans(
            &format!("project {name}"),
            parents,
            &span,
            started,
            applied.is_err(),
            &[("projection", name)],
        );
        applied.map_err(handler_error)
    }

    async fn parked(&self, delivery: &Delivery, failure: &Failure) -> Result<(), HandlerError> {
        let failed = FailedMessage {
            projection: self.kind.name(),
            topic: &delivery.channel,
            partition: delivery.partition,
            offset: delivery.offset,
            key: delivery.key.as_deref(),
            payload: delivery.payload.as_deref(),
            error: &failure.error,
            attempts: failure.attempts,
        };
        let client =
            self.pool.get().await.map_err(|e| handler_error(ApplyError::Store(e.into())))?;
        dead_letter::record(&client, &failed).await.map_err(handler_error)?;
        metrics::counter!("ledger_projection_dead_lettered_total", "projection" => self.kind.name())
            .increment(1);
        self.stats.send_modify(|stats| stats.dead_letters += 1);
        Ok(())
    }

    async fn already_parked(&self, delivery: &Delivery) -> Result<bool, HandlerError> {
        let client =
            self.pool.get().await.map_err(|e| handler_error(ApplyError::Store(e.into())))?;
        dead_letter::already_parked(
            &client,
            self.kind.name(),
            &delivery.channel,
            delivery.partition,
            delivery.offset,
        )
        .await
        .map_err(handler_error)
    }

    /// The catch-up's last application of events the bus had not delivered: a projection
    /// starves exactly when its catch-up keeps doing the consumers' work (an unassigned
    /// member whose group keeps up finds nothing left for it, and does not rejoin).
    fn undelivered_at(&self) -> Option<DateTime<Utc>> {
        self.stats.borrow().store_supplied_at
    }
}
