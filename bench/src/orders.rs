//! A client's own orders, tracked locally so that the commands it sends are valid for the
//! order's state most of the time, as a real client's would be.
//!
//! Each bench client owns the orders it placed and is their only writer, so its local view
//! is exact as long as it applies what the ledger accepted: a capture never exceeds the
//! outstanding balance, a refund names a captured payment and stays within what is left
//! of it, a cancel waits until captured money is refunded, a ship until the order is fully
//! paid. A small, configurable share of commands is sent where it is *not* valid, on
//! purpose, to exercise the refusal path (409 `rule_violated`). An order whose outcome is
//! unknown (the request failed in transit and its retries too) is forgotten, not guessed.

use serde_json::{json, Value};
use uuid::Uuid;

use super::mix::{Kind, Mix};

/// Orders one client keeps acting on; the oldest are dropped past this.
const TRACKED_ORDERS: usize = 64;
const SKUS: [&str; 6] = ["BOOK-1", "MUG-2", "TEE-3", "PEN-4", "BAG-5", "CAP-6"];
/// Mostly euros, some dollars and yen (a currency without minor units).
const CURRENCIES: [&str; 5] = ["EUR", "EUR", "EUR", "USD", "JPY"];
const CUSTOMERS: u32 = 1_000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Fulfilment {
    Open,
    Cancelled,
    Shipped,
}

#[derive(Clone, Debug)]
struct Payment {
    id: String,
    captured: i64,
    refunded: i64,
}

impl Payment {
    fn refundable(&self) -> i64 {
        self.captured - self.refunded
    }
}

#[derive(Clone, Debug)]
pub struct TrackedOrder {
    pub id: Uuid,
    total: i64,
    captured: i64,
    payments: Vec<Payment>,
    fulfilment: Fulfilment,
}

impl TrackedOrder {
    fn outstanding(&self) -> i64 {
        self.total - self.captured
    }

    fn net_captured(&self) -> i64 {
        self.payments.iter().map(Payment::refundable).sum()
    }

    fn open(&self) -> bool {
        self.fulfilment == Fulfilment::Open
    }

    /// Whether a real client would send `kind` for this order now: what the ledger
    /// accepts, and a failed attempt only while something is still to pay.
    fn fits(&self, kind: Kind) -> bool {
        match kind {
            Kind::Fail => self.open() && self.outstanding() > 0,
            _ => self.accepts(kind),
        }
    }

    /// Whether the ledger would accept `kind` on this order now.
    fn accepts(&self, kind: Kind) -> bool {
        match kind {
            Kind::Place => false,
            Kind::Capture => self.open() && self.outstanding() > 0,
            Kind::Fail => self.open(),
            Kind::Refund => self.net_captured() > 0,
            Kind::Cancel => self.open() && self.net_captured() == 0,
            Kind::Ship => self.open() && self.outstanding() == 0,
        }
    }

    /// Nothing useful can be sent any more: closed with nothing left to refund.
    fn finished(&self) -> bool {
        !self.open() && self.net_captured() == 0
    }
}

/// What the ledger's answer changes locally, if it accepts the command.
#[derive(Clone, Debug)]
enum Effect {
    Placed { total: i64 },
    Captured { payment_id: String, amount: i64 },
    None,
    Refunded { payment_id: String, amount: i64 },
    Cancelled,
    Shipped,
}

/// One command, ready to send.
#[derive(Clone, Debug)]
pub struct Planned {
    pub kind: Kind,
    pub order_id: Uuid,
    /// Path below the base URL.
    pub path: String,
    pub body: Value,
    /// Sent where the client knows it breaks a rule (a refusal is the expected answer).
    pub deliberately_invalid: bool,
    /// The mix chose another command, but no order was ready for it: a place instead.
    pub fallback: bool,
    effect: Effect,
}

/// The orders of one client.
#[derive(Debug)]
pub struct Book {
    orders: Vec<TrackedOrder>,
}

impl Book {
    pub fn new() -> Book {
        Book { orders: Vec::with_capacity(TRACKED_ORDERS + 1) }
    }

    /// Chooses the next command: a kind drawn from the mix, and an order it is valid for
    /// (or, `invalid_percent` of the time, one it is not valid for).
    pub fn plan(&self, rng: &mut fastrand::Rng, mix: &Mix, invalid_percent: u32) -> Planned {
        let kind = mix.draw(rng);
        if kind == Kind::Place {
            return place(rng, false);
        }
        let invalid = rng.u32(0..100) < invalid_percent;
        let candidates: Vec<&TrackedOrder> = self
            .orders
            .iter()
            .filter(|order| if invalid { !order.accepts(kind) } else { order.fits(kind) })
            .collect();
        match candidates.get(rng.usize(0..candidates.len().max(1))) {
            Some(order) => act(rng, kind, order, invalid),
            None => place(rng, true),
        }
    }

    /// Records what the ledger accepted.
    pub fn accepted(&mut self, planned: &Planned) {
        if let Effect::Placed { total } = planned.effect {
            self.orders.push(TrackedOrder {
                id: planned.order_id,
                total,
                captured: 0,
                payments: Vec::new(),
                fulfilment: Fulfilment::Open,
            });
            if self.orders.len() > TRACKED_ORDERS {
                self.orders.remove(0);
            }
            return;
        }
        let Some(index) = self.orders.iter().position(|order| order.id == planned.order_id) else {
            return;
        };
        let order = &mut self.orders[index];
        match &planned.effect {
            Effect::Placed { .. } | Effect::None => {}
            Effect::Captured { payment_id, amount } => {
                order.captured += amount;
                order.payments.push(Payment {
                    id: payment_id.clone(),
                    captured: *amount,
                    refunded: 0,
                });
            }
            Effect::Refunded { payment_id, amount } => {
                if let Some(payment) = order.payments.iter_mut().find(|p| &p.id == payment_id) {
                    payment.refunded += amount;
                }
            }
            Effect::Cancelled => order.fulfilment = Fulfilment::Cancelled,
            Effect::Shipped => order.fulfilment = Fulfilment::Shipped,
        }
        if order.finished() {
            self.orders.remove(index);
        }
    }

    /// Stops tracking an order whose state is no longer known for sure.
    pub fn forget(&mut self, order_id: Uuid) {
        self.orders.retain(|order| order.id != order_id);
    }
}

impl Default for Book {
    fn default() -> Self {
        Book::new()
    }
}

fn token(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4().simple())
}

/// An amount in `1..=limit`: the whole of it half the time, a part of it otherwise.
fn some_of(rng: &mut fastrand::Rng, limit: i64) -> i64 {
    if limit <= 1 || rng.bool() {
        limit.max(1)
    } else {
        rng.i64(1..limit)
    }
}

fn place(rng: &mut fastrand::Rng, fallback: bool) -> Planned {
    let order_id = Uuid::now_v7();
    let mut skus = SKUS.to_vec();
    rng.shuffle(&mut skus);
    let lines = rng.usize(1..=3);
    let items: Vec<(String, i64, i64)> = skus[..lines]
        .iter()
        .map(|sku| ((*sku).to_owned(), rng.i64(1..=3), rng.i64(100..=10_000)))
        .collect();
    let total = items.iter().map(|(_, quantity, price)| quantity * price).sum();
    let customer = rng.u32(0..CUSTOMERS);
    let currency = CURRENCIES[rng.usize(0..CURRENCIES.len())];
    let body = json!({
        "order_id": order_id,
        "customer_id": format!("cus_bench_{customer}"),
        "customer_email": format!("bench+{customer}@example.com"),
        "currency": currency,
        "sales_channel": "bench",
        "items": items.iter().map(|(sku, quantity, price)| json!({
            "sku": sku, "quantity": quantity, "unit_price_minor": price
        })).collect::<Vec<_>>(),
    });
    Planned {
        kind: Kind::Place,
        order_id,
        path: "/v1/orders".to_owned(),
        body,
        deliberately_invalid: false,
        fallback,
        effect: Effect::Placed { total },
    }
}

/// `kind` on an existing order. When `invalid`, the order is one that refuses it, and the
/// body is built all the same (an amount above what is allowed, an unknown payment).
fn act(rng: &mut fastrand::Rng, kind: Kind, order: &TrackedOrder, invalid: bool) -> Planned {
    let id = order.id;
    let (path, body, effect) = match kind {
        Kind::Place => return place(rng, false),
        Kind::Capture => {
            let payment_id = token("pi");
            let amount =
                if invalid { order.outstanding() + 1 } else { some_of(rng, order.outstanding()) };
            (
                format!("/v1/orders/{id}/payments"),
                json!({ "payment_id": payment_id, "amount_minor": amount, "method": "card" }),
                Effect::Captured { payment_id, amount },
            )
        }
        Kind::Fail => (
            format!("/v1/orders/{id}/payment-failures"),
            json!({
                "payment_id": token("pi"),
                "amount_minor": some_of(rng, order.outstanding()),
                "reason": "card declined",
            }),
            Effect::None,
        ),
        Kind::Refund => {
            let refundable: Vec<&Payment> =
                order.payments.iter().filter(|p| p.refundable() > 0).collect();
            let (payment_id, amount) = match refundable.get(rng.usize(0..refundable.len().max(1))) {
                Some(payment) => (payment.id.clone(), some_of(rng, payment.refundable())),
                None => (token("pi"), 100),
            };
            (
                format!("/v1/orders/{id}/refunds"),
                json!({
                    "refund_id": token("re"),
                    "payment_id": payment_id,
                    "amount_minor": amount,
                    "reason": "customer return",
                }),
                Effect::Refunded { payment_id, amount },
            )
        }
        Kind::Cancel => (
            format!("/v1/orders/{id}/cancellation"),
            json!({ "reason": "customer changed their mind" }),
            Effect::Cancelled,
        ),
        Kind::Ship => (
            format!("/v1/orders/{id}/shipment"),
            json!({
                "carrier": "DHL",
                "tracking_number": format!("TRK{}", rng.u64(1_000_000_000..10_000_000_000)),
            }),
            Effect::Shipped,
        ),
    };
    Planned {
        kind,
        order_id: id,
        path,
        body,
        deliberately_invalid: invalid,
        fallback: false,
        effect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(planned: &Planned, name: &str) -> i64 {
        planned.body[name].as_i64().unwrap_or_default()
    }

    #[test]
    fn a_lifecycle_stays_valid_when_every_command_is_accepted() {
        let mix = Mix::default();
        let mut rng = fastrand::Rng::with_seed(42);
        let mut book = Book::new();
        let mut sent = std::collections::HashMap::<Kind, u32>::new();
        for _ in 0..5_000 {
            let planned = book.plan(&mut rng, &mix, 0);
            assert!(!planned.deliberately_invalid);
            if let Some(order) = book.orders.iter().find(|o| o.id == planned.order_id) {
                assert!(order.fits(planned.kind), "{:?} on {order:?}", planned.kind);
                match planned.kind {
                    Kind::Capture => {
                        let amount = field(&planned, "amount_minor");
                        assert!(amount >= 1 && amount <= order.outstanding());
                    }
                    Kind::Refund => {
                        let amount = field(&planned, "amount_minor");
                        let payment = planned.body["payment_id"].as_str().unwrap_or_default();
                        let paid = order.payments.iter().find(|p| p.id == payment);
                        assert!(paid.is_some_and(|p| amount >= 1 && amount <= p.refundable()));
                    }
                    _ => {}
                }
            } else {
                assert_eq!(planned.kind, Kind::Place);
            }
            *sent.entry(planned.kind).or_default() += 1;
            book.accepted(&planned);
            assert!(book.orders.len() <= TRACKED_ORDERS);
        }
        for kind in Kind::ALL {
            assert!(sent.get(&kind).copied().unwrap_or_default() > 50, "{kind}: {sent:?}");
        }
    }

    #[test]
    fn deliberately_invalid_commands_target_orders_that_refuse_them() {
        let mix = Mix::parse("place=1,capture=1,ship=1").expect("mix");
        let mut rng = fastrand::Rng::with_seed(1);
        let mut book = Book::new();
        for _ in 0..20 {
            let planned = book.plan(&mut rng, &Mix::parse("place=1").expect("mix"), 0);
            book.accepted(&planned);
        }
        let invalid: Vec<Planned> = (0..200)
            .map(|_| book.plan(&mut rng, &mix, 100))
            .filter(|p| p.kind != Kind::Place)
            .collect();
        assert!(!invalid.is_empty());
        for planned in invalid {
            let order = book.orders.iter().find(|o| o.id == planned.order_id).expect("tracked");
            assert!(planned.deliberately_invalid);
            assert!(!order.accepts(planned.kind));
        }
    }
}
