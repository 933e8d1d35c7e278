//! The notifications read model folded in memory, for a rebuild's bulk replay: every row
//! is final when its event comes; only each order's addressee is remembered.

use std::collections::hash_map::Entry;

use domain::Event;
use tokio_postgres::Client;

use super::render::{id_of, no_recipient, render};
use super::tables::{AddresseeRow, NotificationRow};
use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::replay::{ByOrder, Replay};
use crate::table::copy;

#[derive(Default)]
pub struct NotificationsReplay {
    addressees: ByOrder<AddresseeRow>,
    /// Orders placed since the last take.
    placed: Vec<AddresseeRow>,
    rows: Vec<NotificationRow>,
}

/// Orders placed and notifications made since the last take.
pub struct NotificationRows {
    addressees: Vec<AddresseeRow>,
    rows: Vec<NotificationRow>,
}

impl Replay for NotificationsReplay {
    type Rows = NotificationRows;

    fn feed(&mut self, event: &ProjectedEvent) -> Result<(), ApplyError> {
        if let Event::OrderPlaced(placed) = &event.event {
            // The first placement wins, as `ON CONFLICT DO NOTHING` does in `apply`.
            if let Entry::Vacant(entry) = self.addressees.entry(event.stream_id) {
                let addressee = AddresseeRow {
                    order_id: event.stream_id,
                    customer_id: placed.customer_id.as_str().to_owned(),
                    recipient: placed.customer_email.as_str().to_owned(),
                };
                self.placed.push(entry.insert(addressee).clone());
            }
        }
        let Some(message) = render(&event.event, event.stream_id) else {
            return Ok(());
        };
        let addressee = self.addressees.get(&event.stream_id).ok_or_else(|| no_recipient(event))?;
        self.rows.push(NotificationRow {
            id: id_of(event),
            order_id: event.stream_id,
            customer_id: addressee.customer_id.clone(),
            template: message.template.to_owned(),
            recipient: addressee.recipient.clone(),
            subject: message.subject,
            body: message.body,
            position: event.position,
            created_at: event.recorded_at,
        });
        Ok(())
    }

    fn evict(&mut self, order: uuid::Uuid) {
        // Its addressee row was written when it was placed.
        self.addressees.remove(&order);
    }

    fn take(&mut self, _end: bool) -> NotificationRows {
        NotificationRows {
            addressees: std::mem::take(&mut self.placed),
            rows: std::mem::take(&mut self.rows),
        }
    }

    async fn write(
        client: &Client,
        schema: &str,
        rows: NotificationRows,
    ) -> Result<(), ApplyError> {
        copy(client, schema, &rows.addressees).await?;
        copy(client, schema, &rows.rows).await?;
        Ok(())
    }
}
