//! The saga's catch-up from the store: events it should have handled that the bus has not
//! delivered (a member of its consumer group left without partitions after a crash, a
//! broker that lost messages) are read from the event store and handled through the same
//! path as the consumer's. The inbox makes whichever comes second a no-op, so the two may
//! overlap freely.
//!
//! An event is the catch-up's only once it is older than `grace` (the bus's usual delay,
//! with room to spare): while the bus keeps up, every look finds nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::ServiceError;
use crate::handler::{PaymentHandler, Received, UndeliveredAt};

/// Events looked at per round, at most.
const BATCH: i64 = 500;
/// How far below the newest handled event a look starts: a transaction that committed
/// late may have appended below it.
const LOOKBACK: i64 = 10_000;

/// The saga's events in the store that the inbox does not hold: placements with a payment
/// instruction, cancellation requests, and the end of orders that have a process.
const UNHANDLED: &str = "
    SELECT e.event_id, e.stream_id, e.global_position, e.event_type, e.event_version,
           e.payload, coalesce(e.metadata->>'correlation_id', e.stream_id::text)
      FROM events e
     WHERE e.global_position > coalesce((SELECT max(position) FROM payment_process_inbox), 0) - $1
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
        while !shutdown.is_cancelled() {
            match self.round().await {
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

    /// Handles what the bus did not deliver; answers how many events.
    async fn round(&self) -> Result<usize, ServiceError> {
        let mut client = self.pool.get().await?;
        let rows = client.query(UNHANDLED, &[&LOOKBACK, &self.grace.as_secs_f64(), &BATCH]).await?;
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
