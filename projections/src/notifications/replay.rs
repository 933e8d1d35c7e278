//! The notifications read model folded in memory, for a rebuild's bulk replay: every row
//! is final when its event comes; only each order's recipient is remembered.

use std::collections::hash_map::Entry;

use chrono::{DateTime, Utc};
use domain::Event;
use tokio_postgres::types::Type;
use tokio_postgres::Client;
use uuid::Uuid;

use super::{id_of, no_recipient, render};
use crate::replay::{copy_in, ByOrder, Replay};
use crate::{ApplyError, ProjectedEvent};

const ORDER_COLUMNS: &[&str] = &["order_id", "customer_id", "recipient"];
const ORDER_TYPES: &[Type] = &[Type::UUID, Type::TEXT, Type::TEXT];
const NOTIFICATION_COLUMNS: &[&str] = &[
    "id",
    "order_id",
    "customer_id",
    "template",
    "recipient",
    "subject",
    "body",
    "position",
    "created_at",
];
const NOTIFICATION_TYPES: &[Type] = &[
    Type::UUID,
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TIMESTAMPTZ,
];

/// Who an order's messages go to.
struct Addressee {
    customer_id: String,
    recipient: String,
}

/// One row of `notifications` (its status is the default, `pending`).
struct Row {
    id: Uuid,
    order_id: Uuid,
    template: &'static str,
    subject: String,
    body: String,
    position: i64,
    created_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct NotificationsReplay {
    addressees: ByOrder<Addressee>,
    /// Orders placed since the last flush, not yet in `notification_orders`.
    placed: Vec<Uuid>,
    rows: Vec<Row>,
}

/// Orders placed and notifications made since the last take, each with its addressee
/// (customer id, recipient).
pub struct NotificationRows {
    orders: Vec<(Uuid, (String, String))>,
    rows: Vec<((String, String), Row)>,
}

impl Replay for NotificationsReplay {
    type Rows = NotificationRows;

    fn feed(&mut self, event: &ProjectedEvent) -> Result<(), ApplyError> {
        if let Event::OrderPlaced(placed) = &event.event {
            // The first placement wins, as `ON CONFLICT DO NOTHING` does in `apply`.
            if let Entry::Vacant(entry) = self.addressees.entry(event.stream_id) {
                entry.insert(Addressee {
                    customer_id: placed.customer_id.as_str().to_owned(),
                    recipient: placed.customer_email.as_str().to_owned(),
                });
                self.placed.push(event.stream_id);
            }
        }
        let Some((template, subject, body)) = render(&event.event, event.stream_id) else {
            return Ok(());
        };
        if !self.addressees.contains_key(&event.stream_id) {
            return Err(no_recipient(event));
        }
        self.rows.push(Row {
            id: id_of(event),
            order_id: event.stream_id,
            template,
            subject,
            body,
            position: event.position,
            created_at: event.recorded_at,
        });
        Ok(())
    }

    fn take(&mut self, _end: bool) -> NotificationRows {
        let addressee = |order_id: &Uuid| {
            self.addressees
                .get(order_id)
                .map(|a| (a.customer_id.clone(), a.recipient.clone()))
                .unwrap_or_default()
        };
        NotificationRows {
            orders: self.placed.drain(..).map(|id| (id, addressee(&id))).collect(),
            rows: self.rows.drain(..).map(|row| (addressee(&row.order_id), row)).collect(),
        }
    }

    async fn write(
        client: &Client,
        schema: &str,
        rows: NotificationRows,
    ) -> Result<(), ApplyError> {
        let mut orders =
            copy_in(client, schema, "notification_orders", ORDER_COLUMNS, ORDER_TYPES).await?;
        for (order_id, (customer_id, recipient)) in &rows.orders {
            orders.as_mut().write(&[order_id, customer_id, recipient]).await?;
        }
        orders.as_mut().finish().await?;

        let mut notifications =
            copy_in(client, schema, "notifications", NOTIFICATION_COLUMNS, NOTIFICATION_TYPES)
                .await?;
        for ((customer_id, recipient), row) in &rows.rows {
            notifications
                .as_mut()
                .write(&[
                    &row.id,
                    &row.order_id,
                    customer_id,
                    &row.template,
                    recipient,
                    &row.subject,
                    &row.body,
                    &row.position,
                    &row.created_at,
                ])
                .await?;
        }
        notifications.as_mut().finish().await?;
        Ok(())
    }
}
