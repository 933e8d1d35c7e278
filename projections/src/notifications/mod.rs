//! The notifications read model: one message per event worth telling the customer, with
//! its subject and body rendered ([`render`]). Its delivery status is not in the events
//! and lives beside the read model, in `notification_deliveries` (none: `pending`), which
//! a rebuild leaves alone.

pub mod queries;
mod render;
mod replay;
mod tables;

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use domain::Event;
use uuid::Uuid;

use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::projection::Projection;
use crate::table::insert;
use render::{id_of, no_recipient, render};
use tables::{AddresseeRow, NotificationRow};

pub use queries::NotificationStatus;
pub use replay::NotificationsReplay;

const RECIPIENTS: &str =
    "SELECT order_id, customer_id, recipient FROM notification_orders WHERE order_id = ANY($1)";

pub struct Notifications;

impl Projection for Notifications {
    type Replay = NotificationsReplay;

    fn name(&self) -> &'static str {
        "notifications"
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
        let addressees: Vec<AddresseeRow> = events
            .iter()
            .filter_map(|event| match &event.event {
                Event::OrderPlaced(placed) => Some(AddresseeRow {
                    order_id: event.stream_id,
                    customer_id: placed.customer_id.as_str().to_owned(),
                    recipient: placed.customer_email.as_str().to_owned(),
                }),
                _ => None,
            })
            .collect();
        let rendered: Vec<_> =
            events.iter().filter_map(|e| render(&e.event, e.stream_id).map(|r| (e, r))).collect();
        // Orders placed in this batch are addressed from it; the others are looked up,
        // in the same round trip as the new addressees are written.
        let mut recipients: HashMap<Uuid, (String, String)> = addressees
            .iter()
            .map(|a| (a.order_id, (a.customer_id.clone(), a.recipient.clone())))
            .collect();
        let mut others: Vec<Uuid> = rendered
            .iter()
            .map(|(e, _)| e.stream_id)
            .filter(|order| !recipients.contains_key(order))
            .collect();
        others.sort_unstable();
        others.dedup();
        let looked_up = async {
            if others.is_empty() {
                return Ok(Vec::new());
            }
            let statement = tx.prepare_cached(RECIPIENTS).await?;
            tx.query(&statement, &[&others]).await
        };
        let (_, looked_up) = tokio::try_join!(insert(tx, &addressees), looked_up)?;
        for row in looked_up {
            recipients.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
        }
        if rendered.is_empty() {
            return Ok(());
        }
        let rows = rendered
            .into_iter()
            .map(|(event, message)| {
                let (customer_id, recipient) =
                    recipients.get(&event.stream_id).ok_or_else(|| no_recipient(event))?;
                Ok(NotificationRow {
                    id: id_of(event),
                    order_id: event.stream_id,
                    customer_id: customer_id.clone(),
                    template: message.template.to_owned(),
                    recipient: recipient.clone(),
                    subject: message.subject,
                    body: message.body,
                    position: event.position,
                    created_at: event.recorded_at,
                })
            })
            .collect::<Result<Vec<_>, ApplyError>>()?;
        insert(tx, &rows).await?;
        Ok(())
    }
}
