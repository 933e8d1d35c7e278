//! The saga's inbox: the order events, consumed in the service's own consumer group. An
//! event that starts or redirects a process changes its state in the same transaction as
//! the inbox record of the event, so a redelivered event changes nothing, and a crash
//! between the two is impossible.

use std::sync::Arc;

use bus::envelope::Envelope;
use bus::{Delivery, Failure, Handler, HandlerError};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use domain::Event;
use tokio::sync::Notify;
use trace_context::TraceParent;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::ServiceError;
use crate::process::PaymentProcess;
use crate::store;

/// The consumer group's name, the logs' and the dead letters' `projection` column.
pub const CONSUMER: &str = "payment-service";

pub struct PaymentHandler {
    pool: Pool,
    /// Wakes this process's worker when a process becomes due.
    wake: Arc<Notify>,
    /// When the catch-up last handled events the bus had not delivered to this consumer.
    undelivered: Arc<UndeliveredAt>,
}

/// When the catch-up from the store last did work the consumer should have done: a member
/// starved of partitions sees it and rejoins its group (see `bus::ConsumerSettings`).
#[derive(Debug, Default)]
pub struct UndeliveredAt(std::sync::Mutex<Option<DateTime<Utc>>>);

impl UndeliveredAt {
    pub fn mark(&self, at: DateTime<Utc>) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some(at);
        }
    }

    pub fn get(&self) -> Option<DateTime<Utc>> {
        self.0.lock().ok().and_then(|last| *last)
    }
}

/// One event the saga reacts to, decoded from its envelope or read from the store.
pub(crate) struct Received {
    pub(crate) event_id: Uuid,
    pub(crate) order_id: Uuid,
    pub(crate) position: i64,
    pub(crate) correlation_id: String,
    /// The trace the event was appended in (its `traceparent`), if it carries a valid one.
    pub(crate) trace: Option<TraceParent>,
    pub(crate) event: Event,
}

fn decode(delivery: &Delivery) -> Result<Received, HandlerError> {
    let permanent = |error: String| HandlerError::Permanent(error.into());
    let payload = delivery.payload.as_deref().ok_or_else(|| permanent("no payload".into()))?;
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_slice(payload).map_err(|e| permanent(e.to_string()))?;
    let event =
        eventstore::schema::decode(&envelope.event_type, envelope.event_version, &envelope.data)
            .map_err(|e| permanent(e.to_string()))?;
    Ok(Received {
        event_id: envelope.event_id,
        order_id: envelope.stream_id,
        position: envelope.position,
        correlation_id: envelope.correlation_id.unwrap_or_else(|| envelope.stream_id.to_string()),
        trace: delivery.traceparent.as_deref().and_then(|value| TraceParent::parse(value).ok()),
        event,
    })
}

/// Whether the saga cares about `event` at all (most events only move read models).
fn concerns_the_saga(event: &Event) -> bool {
    match event {
        Event::OrderPlaced(placed) => placed.payment.is_some(),
        Event::OrderCancellationRequested(_)
        | Event::OrderCancelled(_)
        | Event::OrderShipped(_) => true,
        Event::PaymentCaptured(_)
        | Event::PaymentFailed(_)
        | Event::PaymentRefunded(_)
        | Event::OrderFullyPaid(_) => false,
    }
}

impl PaymentHandler {
    pub fn new(pool: Pool, wake: Arc<Notify>, undelivered: Arc<UndeliveredAt>) -> Self {
        Self { pool, wake, undelivered }
    }

    /// Applies one event to its order's process inside `transaction`; `true` if a process
    /// became due. Shared by the consumer and the catch-up from the store: the inbox makes
    /// whichever comes second a no-op. Runs in a span of the event's trace.
    pub(crate) async fn receive(
        transaction: &impl GenericClient,
        received: Received,
    ) -> Result<bool, ServiceError> {
        let span = tracing::info_span!(
            "saga_inbox",
            order_id = %received.order_id,
            event_id = %received.event_id,
            otel.kind = "consumer",
        );
        if let Some(parent) = received.trace {
            trace_context::continue_from(&span, parent, None);
        }
        Self::apply(transaction, received).instrument(span).await
    }

    async fn apply(
        transaction: &impl GenericClient,
        received: Received,
    ) -> Result<bool, ServiceError> {
        let Received { event_id, order_id, position, correlation_id, trace, event } = received;
        // What the process's next steps continue: this span's place in the event's trace.
        let trace = trace_context::pass_on(&tracing::Span::current(), trace);
        let stored = store::lock(transaction, order_id).await?;
        // Most orders end without the saga: their cancellation or shipment is nothing to it,
        // and is not even remembered.
        if stored.is_none() && matches!(event, Event::OrderCancelled(_) | Event::OrderShipped(_)) {
            return Ok(false);
        }
        if !store::first_delivery(transaction, event_id, order_id, position).await? {
            return Ok(false);
        }
        let read = stored.as_ref().map(|s| s.revision);
        let existing = stored.map(|s| s.process);
        let now = Utc::now();
        let mut next = match (event, existing) {
            (Event::OrderPlaced(placed), None) => match placed.payment {
                Some(payment) => PaymentProcess::started(
                    order_id,
                    correlation_id,
                    payment.payment_method.to_string(),
                    event_id,
                    position,
                    now,
                ),
                None => return Ok(false),
            },
            // A placement seen again under another event id cannot happen (one per order).
            (Event::OrderPlaced(_), Some(_)) => return Ok(false),
            (Event::OrderCancellationRequested(requested), existing) => {
                PaymentProcess::cancellation_requested(
                    existing,
                    order_id,
                    correlation_id,
                    requested.reason.to_string(),
                    event_id,
                    position,
                    now,
                )
            }
            (Event::OrderCancelled(_) | Event::OrderShipped(_), Some(process)) => {
                process.cancelled_elsewhere(position)
            }
            _ => return Ok(false),
        };
        // The event that now drives the process: the next steps continue its trace.
        if next.cause == event_id {
            next.trace = Some(trace.to_string());
        }
        let due = next.due_at.is_some_and(|due| due <= now);
        // The row is locked (or absent, and an order's events are handled one at a time:
        // its partition's, or the catch-up's after the inbox told them apart).
        if store::save(transaction, &next, read, false).await?.is_none() {
            return Err(ServiceError::Database(eventstore::StoreError::Invariant(format!(
                "payment process {order_id} changed while locked"
            ))));
        }
        Ok(due)
    }
}

impl Handler for PaymentHandler {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let mut received = Vec::new();
        for delivery in batch {
            let event = decode(delivery)?;
            if concerns_the_saga(&event.event) {
                received.push(event);
            }
        }
        if received.is_empty() {
            return Ok(());
        }
        let transient = |error: ServiceError| HandlerError::Transient(Box::new(error));
        let mut client = self.pool.get().await.map_err(|e| transient(e.into()))?;
        let transaction = client.transaction().await.map_err(|e| transient(e.into()))?;
        let mut due = false;
        for event in received {
            due |= Self::receive(&transaction, event).await.map_err(transient)?;
        }
        transaction.commit().await.map_err(|e| transient(e.into()))?;
        if due {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn undelivered_at(&self) -> Option<DateTime<Utc>> {
        self.undelivered.get()
    }

    async fn already_parked(&self, delivery: &Delivery) -> Result<bool, HandlerError> {
        let transient = |error: ServiceError| HandlerError::Transient(Box::new(error));
        let client = self.pool.get().await.map_err(|e| transient(e.into()))?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT FROM dead_letters
                  WHERE projection = $1 AND topic = $2 AND partition = $3 AND \"offset\" = $4)",
                &[&CONSUMER, &delivery.channel, &delivery.partition, &delivery.offset],
            )
            .await
            .map_err(|e| transient(e.into()))?;
        row.try_get(0).map_err(|e| transient(e.into()))
    }

    async fn parked(&self, delivery: &Delivery, failure: &Failure) -> Result<(), HandlerError> {
        let transient = |error: ServiceError| HandlerError::Transient(Box::new(error));
        let client = self.pool.get().await.map_err(|e| transient(e.into()))?;
        let key = delivery.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned());
        let attempts = i32::try_from(failure.attempts).unwrap_or(i32::MAX);
        client
            .execute(
                "INSERT INTO dead_letters (projection, topic, partition, \"offset\", key, payload, error, attempts)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &CONSUMER,
                    &delivery.channel,
                    &delivery.partition,
                    &delivery.offset,
                    &key,
                    &delivery.payload,
                    &failure.error,
                    &attempts,
                ],
            )
            .await
            .map_err(|e| transient(e.into()))?;
        Ok(())
    }
}
