//! Reading the notifications read model: a page of messages in event order, current or
//! as of a cut (a notification is a fact: as of a cut, the ones whose event is inside it).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use eventstore::{Cut, StoreError};
use serde::Serialize;
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: String,
    pub template: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub status: NotificationStatus,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub position: i64,
}

const PAGE: &str = "
    SELECT n.id, order_id, customer_id, template, recipient, subject, body,
           coalesce(d.status, 'pending'), created_at, position
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
            })
        })
        .collect()
}
