//! Reading the notifications read model: a page of messages in event order, current or
//! as of a cut (a notification is a fact: as of a cut, the ones whose event is inside it).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use eventstore::{Cut, StoreError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::text_enum::text_enum;

text_enum! {
    /// Where a notification's delivery stands.
    pub enum NotificationStatus {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
    }
}

text_enum! {
    /// Where a notification's delivery on one channel stands.
    pub enum DeliveryStatus {
        Pending => "pending",
        Sending => "sending",
        Delivered => "delivered",
        Failed => "failed",
    }
}

/// A notification's delivery on one channel (`email`, `webhook`, …); current, also in an
/// as-of answer (delivery is not part of the history).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelDelivery {
    pub channel: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
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
    /// `delivered` once every channel has delivered it, `failed` if one failed for good,
    /// else `pending`.
    pub status: NotificationStatus,
    /// Per channel, where its delivery stands (none when no channel is configured).
    pub deliveries: Vec<ChannelDelivery>,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub position: i64,
}

const PAGE: &str = "
    SELECT n.id, order_id, customer_id, template, recipient, subject, body,
           coalesce(d.status, 'pending'), created_at, position,
           (SELECT coalesce(json_agg(json_build_object(
                       'channel', x.channel, 'status', x.status, 'attempts', x.attempts,
                       'last_error', x.last_error, 'delivered_at', x.delivered_at)
                       ORDER BY x.channel), '[]'::json)
              FROM deliveries x WHERE x.notification_id = n.id)
      FROM notifications n LEFT JOIN notification_deliveries d ON d.id = n.id
     WHERE ($1::text IS NULL OR customer_id = $1)
       AND ($2::uuid IS NULL OR order_id = $2)
       AND ($3::text IS NULL OR coalesce(d.status, 'pending') = $3)
       AND position > $4 AND position <= $6 AND created_at <= $7
     ORDER BY position LIMIT $5";

/// A page of notifications in event order, after the keyset `after`.
pub async fn list(
    client: &impl GenericClient,
    customer_id: Option<&str>,
    order_id: Option<Uuid>,
    status: Option<NotificationStatus>,
    after: Option<i64>,
    limit: i64,
    cut: Cut,
) -> Result<Vec<Notification>, StoreError> {
    let (position, time) = cut.bounds();
    let after = after.unwrap_or(0);
    let rows = client
        .query(PAGE, &[&customer_id, &order_id, &status, &after, &limit, &position, &time])
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
                deliveries: serde_json::from_value(row.try_get(10)?).map_err(|error| {
                    StoreError::Invariant(format!("a notification's deliveries: {error}"))
                })?,
            })
        })
        .collect()
}
