//! The workloads the fault specs drive the load generator with.

use serde_json::json;
use uuid::Uuid;

use crate::engine::{Command, Workload};
use crate::mix::Kind;
use crate::outcome::{Answered, Outcome};

/// The amount every order of [`PlaceThenCapture`] is placed for (1 × 3000 EUR cents).
pub const PLACED_TOTAL_MINOR: i64 = 3000;

/// Places an order, then (optionally) captures part of it: two events on each stream, so
/// an order is both created and changed under load.
pub struct PlaceThenCapture {
    customer_id: String,
    capture_minor: Option<i64>,
    to_capture: Option<Uuid>,
}

impl PlaceThenCapture {
    pub fn new(customer_id: &str, capture_minor: Option<i64>) -> Self {
        Self { customer_id: customer_id.to_owned(), capture_minor, to_capture: None }
    }
}

impl Workload for PlaceThenCapture {
    fn next(&mut self, _: &mut fastrand::Rng) -> Option<Command> {
        Some(match (self.to_capture.take(), self.capture_minor) {
            (Some(order_id), Some(amount)) => Command {
                kind: Kind::Capture,
                order_id,
                path: format!("/v1/orders/{order_id}/payments"),
                body: json!({ "payment_id": "pay_load", "amount_minor": amount, "method": "card" }),
            },
            _ => {
                let order_id = Uuid::now_v7();
                Command {
                    kind: Kind::Place,
                    order_id,
                    path: "/v1/orders".to_owned(),
                    body: json!({
                        "order_id": order_id,
                        "customer_id": self.customer_id,
                        "customer_email": format!("{}@example.com", self.customer_id),
                        "currency": "EUR",
                        "items": [{ "sku": "LOAD-1", "quantity": 1, "unit_price_minor": PLACED_TOTAL_MINOR }]
                    }),
                }
            }
        })
    }

    fn answered(&mut self, command: &Command, outcome: &Outcome, _: &mut fastrand::Rng) {
        if command.kind == Kind::Place && matches!(outcome.answer, Answered::Acknowledged { .. }) {
            self.to_capture = Some(command.order_id);
        }
    }
}
