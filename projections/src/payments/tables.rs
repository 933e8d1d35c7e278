//! The payments read model's tables, each row declared once for the live inserts and a
//! rebuild's `COPY` (see [`crate::table`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{AttemptKind, State};
use crate::table::table;

table! {
    /// An order's current payments (`payments`); its status and outstanding amount are
    /// computed by the database.
    PaymentRow in "payments" on_conflict "ON CONFLICT (order_id) DO UPDATE
        SET captured = EXCLUDED.captured, refunded = EXCLUDED.refunded,
            cancelled = EXCLUDED.cancelled, stream_version = EXCLUDED.stream_version,
            updated_at = EXCLUDED.updated_at" {
        order_id: Uuid => UUID,
        customer_id: String => TEXT,
        currency: String => TEXT,
        amount_due: i64 => INT8,
        captured: i64 => INT8,
        refunded: i64 => INT8,
        cancelled: bool => BOOL,
        placed_position: i64 => INT8,
        stream_version: i32 => INT4,
        updated_at: DateTime<Utc> => TIMESTAMPTZ,
    }
}

table! {
    /// One version of an order's payments (`payment_versions`): the state after an event,
    /// valid from its position and time until the next version's.
    VersionRow in "payment_versions" on_conflict "" {
        order_id: Uuid => UUID,
        stream_version: i32 => INT4,
        position: i64 => INT8,
        recorded_at: DateTime<Utc> => TIMESTAMPTZ,
        next_position: Option<i64> => INT8,
        next_recorded_at: Option<DateTime<Utc>> => TIMESTAMPTZ,
        customer_id: String => TEXT,
        currency: String => TEXT,
        amount_due: i64 => INT8,
        captured: i64 => INT8,
        refunded: i64 => INT8,
        cancelled: bool => BOOL,
        placed_position: i64 => INT8,
    }
}

table! {
    /// One payment attempt (`payment_attempts`): captured, failed or refunded.
    AttemptRow in "payment_attempts" on_conflict "" {
        order_id: Uuid => UUID,
        stream_version: i32 => INT4,
        payment_id: String => TEXT,
        kind: AttemptKind => TEXT,
        amount: i64 => INT8,
        method: Option<String> => TEXT,
        reason: Option<String> => TEXT,
        refund_id: Option<String> => TEXT,
        recorded_at: DateTime<Utc> => TIMESTAMPTZ,
        position: i64 => INT8,
    }
}

impl VersionRow {
    /// The version `state` starts at the event at `position`, `recorded_at`; open until the
    /// order's next event that changes its payments.
    pub(crate) fn open(
        order_id: Uuid,
        position: i64,
        recorded_at: DateTime<Utc>,
        state: State,
    ) -> Self {
        Self {
            order_id,
            stream_version: state.stream_version,
            position,
            recorded_at,
            next_position: None,
            next_recorded_at: None,
            customer_id: state.customer_id,
            currency: state.currency,
            amount_due: state.amount_due,
            captured: state.captured,
            refunded: state.refunded,
            cancelled: state.cancelled,
            placed_position: state.placed_position,
        }
    }

    /// The order's state this version holds.
    pub(crate) fn state(&self) -> State {
        State {
            customer_id: self.customer_id.clone(),
            currency: self.currency.clone(),
            amount_due: self.amount_due,
            captured: self.captured,
            refunded: self.refunded,
            cancelled: self.cancelled,
            placed_position: self.placed_position,
            stream_version: self.stream_version,
        }
    }

    /// The order's `payments` row, when this is its current version.
    pub(crate) fn current(&self) -> PaymentRow {
        PaymentRow {
            order_id: self.order_id,
            customer_id: self.customer_id.clone(),
            currency: self.currency.clone(),
            amount_due: self.amount_due,
            captured: self.captured,
            refunded: self.refunded,
            cancelled: self.cancelled,
            placed_position: self.placed_position,
            stream_version: self.stream_version,
            updated_at: self.recorded_at,
        }
    }
}
