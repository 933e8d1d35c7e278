//! The notifications read model: one message per event worth telling the customer, with
//! its subject and body rendered (amounts in the currency's minor units). The id derives
//! from the event, so a replay never notifies twice. Its delivery status is not in the
//! events and lives beside the read model, in `notification_deliveries` (none: `pending`),
//! which a rebuild leaves alone.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use domain::{Event, Money};
use serde::Serialize;
use uuid::Uuid;

use crate::projection::execute;
use crate::{ApplyError, ProjectedEvent, Projection};

mod replay;
pub use replay::NotificationsReplay;

pub const NAME: &str = "notifications";

/// Namespace of notification ids (UUIDv5 of the event id).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6467_6572_4e6f_7469_6669_6361_7469);

const REMEMBER_ORDERS: &str = "
    INSERT INTO notification_orders (order_id, customer_id, recipient)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
    ON CONFLICT (order_id) DO NOTHING";
const RECIPIENTS: &str =
    "SELECT order_id, customer_id, recipient FROM notification_orders WHERE order_id = ANY($1)";
const INSERT: &str = "
    INSERT INTO notifications (id, order_id, customer_id, template, recipient, subject, body, position, created_at)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::int8[], $9::timestamptz[])
    ON CONFLICT (id) DO NOTHING";

pub struct Notifications;

/// Template, subject and body for an event, or `None` when it is not worth a message.
fn render(event: &Event, order_id: Uuid) -> Option<(&'static str, String, String)> {
    let short = &order_id.to_string()[..8];
    let money = |m: &Money| m.display();
    Some(match event {
        Event::OrderPlaced(placed) => (
            "order_confirmation",
            format!("Order {short} confirmed"),
            format!(
                "Thank you for your order of {} item(s), totalling {}.",
                placed.lines.len(),
                money(&placed.total)
            ),
        ),
        Event::PaymentCaptured(captured) => (
            "payment_receipt",
            format!("Payment received for order {short}"),
            format!(
                "We received {} by {} (payment {}).",
                money(&captured.amount),
                captured.method,
                captured.payment_id
            ),
        ),
        Event::PaymentFailed(failed) => (
            "payment_failed",
            format!("Payment failed for order {short}"),
            format!(
                "Your payment of {} did not go through: {}.",
                money(&failed.amount),
                failed.reason
            ),
        ),
        Event::PaymentRefunded(refunded) => (
            "refund_issued",
            format!("Refund issued for order {short}"),
            format!("We refunded {} ({}).", money(&refunded.amount), refunded.reason),
        ),
        Event::OrderCancelled(cancelled) => (
            "order_cancelled",
            format!("Order {short} cancelled"),
            format!("Your order was cancelled: {}.", cancelled.reason),
        ),
        Event::OrderShipped(shipped) => (
            "order_shipped",
            format!("Order {short} shipped"),
            format!(
                "Your order is on its way with {} (tracking {}).",
                shipped.carrier, shipped.tracking_number
            ),
        ),
        Event::OrderFullyPaid(_) => return None,
    })
}

/// The id of the notification about `event`.
fn id_of(event: &ProjectedEvent) -> Uuid {
    Uuid::new_v5(&ID_NAMESPACE, event.event_id.as_bytes())
}

fn no_recipient(event: &ProjectedEvent) -> ApplyError {
    ApplyError::Inconsistent(format!("no recipient for order {}", event.stream_id))
}

impl Projection for Notifications {
    type Replay = NotificationsReplay;

    fn name(&self) -> &'static str {
        NAME
    }

    fn replay(&self) -> NotificationsReplay {
        NotificationsReplay::default()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["notification_orders", "notifications"]
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[ProjectedEvent],
    ) -> Result<(), ApplyError> {
        let (mut ids, mut customers, mut emails) = (Vec::new(), Vec::new(), Vec::new());
        for event in events {
            if let Event::OrderPlaced(placed) = &event.event {
                ids.push(event.stream_id);
                customers.push(placed.customer_id.as_str());
                emails.push(placed.customer_email.as_str());
            }
        }
        if !ids.is_empty() {
            execute(tx, REMEMBER_ORDERS, &[&ids, &customers, &emails]).await?;
        }

        let rendered: Vec<(&ProjectedEvent, (&'static str, String, String))> =
            events.iter().filter_map(|e| render(&e.event, e.stream_id).map(|r| (e, r))).collect();
        if rendered.is_empty() {
            return Ok(());
        }
        let mut orders: Vec<Uuid> = rendered.iter().map(|(e, _)| e.stream_id).collect();
        orders.sort_unstable();
        orders.dedup();
        let statement = tx.prepare_cached(RECIPIENTS).await?;
        let recipients: HashMap<Uuid, (String, String)> = tx
            .query(&statement, &[&orders])
            .await?
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect();

        let mut columns = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for (event, (template, subject, body)) in rendered {
            let (customer_id, recipient) =
                recipients.get(&event.stream_id).ok_or_else(|| no_recipient(event))?;
            columns.0.push(id_of(event));
            columns.1.push(event.stream_id);
            columns.2.push(customer_id.as_str());
            columns.3.push(template);
            columns.4.push(recipient.as_str());
            columns.5.push(subject);
            columns.6.push(body);
            columns.7.push(event.position);
            columns.8.push(event.recorded_at);
        }
        let c = &columns;
        execute(tx, INSERT, &[&c.0, &c.1, &c.2, &c.3, &c.4, &c.5, &c.6, &c.7, &c.8]).await?;
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: String,
    pub template: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub position: i64,
}

/// A page of notifications in event order, after the keyset `after`.
pub async fn list(
    client: &impl GenericClient,
    customer_id: Option<&str>,
    order_id: Option<Uuid>,
    status: Option<&str>,
    after: Option<i64>,
    limit: i64,
    cut: eventstore::Cut,
) -> Result<Vec<Notification>, eventstore::StoreError> {
    // A notification is a fact: as of a cut, the ones whose event is inside it.
    let (position, time) = crate::payments::bounds(cut);
    let rows = client
        .query(
            "SELECT n.id, order_id, customer_id, template, recipient, subject, body,
                    coalesce(d.status, 'pending'), created_at, position
               FROM notifications n LEFT JOIN notification_deliveries d ON d.id = n.id
              WHERE ($1::text IS NULL OR customer_id = $1)
                AND ($2::uuid IS NULL OR order_id = $2)
                AND ($3::text IS NULL OR coalesce(d.status, 'pending') = $3)
                AND position > $4 AND position <= $6 AND created_at <= $7
              ORDER BY position LIMIT $5",
            &[&customer_id, &order_id, &status, &after.unwrap_or(0), &limit, &position, &time],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Notification {
                id: row.try_get(0)?,
                order_id: row.try_get(1)?,
                customer_id: row.try_get(2)?,
                template: row.try_get(3)?,
                recipient: row.try_get(4)?,
                subject: row.try_get(5)?,
                body: row.try_get(6)?,
                status: row.try_get(7)?,
                created_at: row.try_get(8)?,
                position: row.try_get(9)?,
            })
        })
        .collect()
}
