//! The saga's catch-up from the store: events it should have handled that the bus has not
//! delivered (a member of its consumer group left without partitions after a crash, a
//! broker that lost messages) are read from the event store and handled through the same
//! path as the consumer's. The inbox makes whichever comes second a no-op, so the two may
//! overlap freely.
//!
//! An event is the catch-up's only once it is older than `grace` (the bus's usual delay,
//! with room to spare): while the bus keeps up, every look finds nothing.
//!
//! Each look reads the store above a cursor, less a look-back (a transaction that
//! committed late may have appended below the newest events). The cursor starts at the
//! newest event the inbox holds (after downtime, everything since is looked at), or at the
//! end of the store when the inbox is empty, and moves up to the newest event older than
//! `grace` after each look: a look costs the events since the last one plus the
//! look-back, however long the history.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::ServiceError;
use crate::handler::{PaymentHandler, Received, UndeliveredAt};
use trace_context::TraceParent;

/// Events looked at per round, at most.
const BATCH: i64 = 500;
/// How far below the newest handled event a look starts: a transaction that committed
/// late may have appended below it.
const LOOKBACK: i64 = 10_000;

/// Where the first look starts: the newest event the inbox holds, else the store's end.
const START: &str = "
    SELECT coalesce((SELECT max(position) FROM payment_process_inbox),
                    (SELECT max(global_position) FROM events), 0)";

/// The newest event above the cursor that is older than the grace.
const SETTLED: &str = "
    SELECT max(global_position) FROM events
     WHERE global_position > $1 AND recorded_at < now() - make_interval(secs => $2::float8)";

/// The saga's events in the store that the inbox does not hold: placements with a payment
/// instruction, cancellation requests, and the end of orders that have a process.
const UNHANDLED: &str = "
    SELECT e.event_id, e.stream_id, e.global_position, e.event_type, e.event_version,
           e.payload, coalesce(e.metadata->>'correlation_id', e.stream_id::text),
           e.metadata->>'traceparent'
      FROM events e
     WHERE e.global_position > $1
       AND e.recorded_at < now() - make_interval(secs => $2::float8)
       AND (   (e.event_type = 'OrderPlaced' AND e.payload ? 'payment')
            OR  e.event_type = 'OrderCancellationRequested'
            OR (e.event_type IN ('OrderCancelled', 'OrderShipped')
                AND EXISTS (SELECT 1 FROM payment_processes p WHERE p.order_id = e.stream_id)))
       AND NOT EXISTS (SELECT 1 FROM payment_process_inbox i WHERE i.event_id = e.event_id)
     ORDER BY e.global_position
     LIMIT $3";

pub struct CatchUp {
    pool: Pool,
    wake: Arc<Notify>,
    undelivered: Arc<UndeliveredAt>,
    grace: Duration,
    interval: Duration,
}

impl CatchUp {
    pub fn new(
        pool: Pool,
        wake: Arc<Notify>,
        undelivered: Arc<UndeliveredAt>,
        grace: Duration,
        interval: Duration,
    ) -> Self {
        Self { pool, wake, undelivered, grace, interval }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut cursor = None;
        while !shutdown.is_cancelled() {
            match self.round(&mut cursor).await {
                Ok(handled) if handled > 0 => {
                    tracing::info!(handled, "the payment service handled events from the store that the bus had not delivered");
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %error.chain(), "the payment service's catch-up failed");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Handles what the bus did not deliver above the cursor; answers how many events.
    async fn round(&self, cursor: &mut Option<i64>) -> Result<usize, ServiceError> {
        let mut client = self.pool.get().await?;
        let grace = self.grace.as_secs_f64();
        let from = match *cursor {
            Some(from) => from,
            None => client.query_one(START, &[]).await?.try_get(0)?,
        };
        let rows = client.query(UNHANDLED, &[&(from - LOOKBACK), &grace, &BATCH]).await?;
        // A full batch may leave more behind it: the next look starts at its last event.
        // Otherwise everything old enough above the cursor was looked at.
        let reached: Option<i64> = if rows.len() as i64 >= BATCH {
            rows.last().map(|row| row.try_get(2)).transpose()?
        } else {
            client.query_one(SETTLED, &[&from, &grace]).await?.try_get(0)?
        };
        *cursor = Some(reached.map_or(from, |reached| reached.max(from)));
        if rows.is_empty() {
            return Ok(0);
        }
        let transaction = client.transaction().await?;
        let mut due = false;
        for row in &rows {
            let (event_type, version): (String, i16) = (row.try_get(3)?, row.try_get(4)?);
            let payload: serde_json::Value = row.try_get(5)?;
            let event_id = row.try_get(0)?;
            let event = eventstore::schema::decode(&event_type, version, &payload)
                .map_err(|source| eventstore::StoreError::Decode { event_id, source })?;
            let received = Received {
                event_id,
                order_id: row.try_get(1)?,
                position: row.try_get(2)?,
                correlation_id: row.try_get(6)?,
                trace: row
                    .try_get::<_, Option<&str>>(7)?
                    .and_then(|value| TraceParent::parse(value).ok()),
                event,
            };
            due |= PaymentHandler::receive(&transaction, received).await?;
        }
        transaction.commit().await?;
        self.undelivered.mark(Utc::now());
        if due {
            self.wake.notify_one();
        }
        Ok(rows.len())
    }
}
