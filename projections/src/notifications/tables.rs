//! The notifications read model's tables, each row declared once for the live inserts
//! and a rebuild's `COPY` (see [`crate::table`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::table::table;

table! {
    /// Who an order's messages go to, remembered from its placement.
    AddresseeRow in "notification_orders" on_conflict "ON CONFLICT (order_id) DO NOTHING" {
        order_id: Uuid => UUID,
        customer_id: String => TEXT,
        recipient: String => TEXT,
    }
}

table! {
    /// One message; its delivery status lives beside it, in `notification_deliveries`.
    NotificationRow in "notifications" on_conflict "ON CONFLICT (id) DO NOTHING" {
        id: Uuid => UUID,
        order_id: Uuid => UUID,
        customer_id: String => TEXT,
        template: String => TEXT,
        recipient: String => TEXT,
        subject: String => TEXT,
        body: String => TEXT,
        position: i64 => INT8,
        created_at: DateTime<Utc> => TIMESTAMPTZ,
    }
}
