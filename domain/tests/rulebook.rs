//! The order's rulebook, as given / when / then specifications of `decide`.

use domain::{
    decide, evolve, CancelOrder, CapturePayment, Carrier, Command, Currency, CustomerEmail,
    CustomerId, DomainError, Event, LineItem, Order, OrderId, PaymentId, PaymentMethod, PlaceOrder,
    Reason, RecordPaymentFailure, RefundId, RefundPayment, Rule, ShipOrder, TrackingNumber,
    ValidationError, LIMITS,
};

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

struct Given(Order);

fn given(commands: Vec<Command>) -> std::result::Result<Given, DomainError> {
    let mut order = Order::default();
    for command in commands {
        for event in decide(&order, command)? {
            order = evolve(order, &event);
        }
    }
    Ok(Given(order))
}

impl Given {
    fn when(&self, command: Command) -> std::result::Result<Vec<Event>, DomainError> {
        decide(&self.0, command)
    }
}

fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::event_type).collect()
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("EUR is a currency")
}

fn order_id() -> OrderId {
    OrderId::parse("0199a0a0-0000-7000-8000-000000000001").expect("a UUID")
}

/// An order of 2 × 1250 + 1 × 500 = 3000 EUR cents.
fn place() -> Command {
    place_with(vec![("BOOK-1", 2, 1250), ("PEN-7", 1, 500)])
}

fn place_with(items: Vec<(&str, i64, i64)>) -> Command {
    let items = items
        .into_iter()
        .map(|(sku, quantity, price)| LineItem::parse(sku, quantity, price, eur()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .expect("valid items");
    Command::PlaceOrder(
        PlaceOrder::new(
            order_id(),
            CustomerId::parse("cus_1").expect("id"),
            CustomerEmail::parse("ada@example.com").expect("email"),
            eur(),
            items,
        )
        .expect("a valid order"),
    )
}

fn capture(payment: &str, amount: i64) -> Command {
    Command::CapturePayment(
        CapturePayment::new(
            PaymentId::parse(payment).expect("id"),
            amount,
            PaymentMethod::parse("card").expect("method"),
        )
        .expect("valid capture"),
    )
}

fn fail(payment: &str, amount: i64) -> Command {
    Command::RecordPaymentFailure(
        RecordPaymentFailure::new(
            PaymentId::parse(payment).expect("id"),
            amount,
            Reason::parse("card declined").expect("reason"),
        )
        .expect("valid failure"),
    )
}

fn refund(refund_id: &str, payment: &str, amount: i64) -> Command {
    Command::RefundPayment(
        RefundPayment::new(
            RefundId::parse(refund_id).expect("id"),
            PaymentId::parse(payment).expect("id"),
            amount,
            Reason::parse("damaged").expect("reason"),
        )
        .expect("valid refund"),
    )
}

fn cancel() -> Command {
    Command::CancelOrder(CancelOrder { reason: Reason::parse("changed mind").expect("reason") })
}

fn ship() -> Command {
    Command::ShipOrder(ShipOrder {
        carrier: Carrier::parse("DHL").expect("carrier"),
        tracking_number: TrackingNumber::parse("JD01").expect("tracking"),
    })
}

fn rule(error: std::result::Result<Vec<Event>, DomainError>) -> Option<Rule> {
    match error {
        Err(DomainError::RuleViolated(rule)) => Some(rule),
        _ => None,
    }
}

#[test]
fn placing_an_order_records_its_lines_and_total() -> Result {
    let events = given(vec![])?.when(place())?;
    let [Event::OrderPlaced(placed)] = events.as_slice() else {
        return Err(format!("expected one OrderPlaced, got {events:?}").into());
    };
    assert_eq!(placed.total.amount_minor, 3000);
    assert_eq!(placed.total.currency, eur());
    assert_eq!(placed.lines.len(), 2);
    assert_eq!(placed.lines[0].quantity, 2);
    Ok(())
}

#[test]
fn a_free_order_is_fully_paid_on_placement() -> Result {
    let events = given(vec![])?.when(place_with(vec![("GIFT", 1, 0)]))?;
    assert_eq!(types(&events), ["OrderPlaced", "OrderFullyPaid"]);
    let shipped = given(vec![place_with(vec![("GIFT", 1, 0)])])?.when(ship())?;
    assert_eq!(types(&shipped), ["OrderShipped"]);
    Ok(())
}

#[test]
fn placing_twice_is_refused() -> Result {
    assert_eq!(rule(given(vec![place()])?.when(place())), Some(Rule::OrderAlreadyPlaced));
    Ok(())
}

#[test]
fn commands_on_an_unplaced_order_are_not_found() -> Result {
    for command in [capture("p", 1), fail("p", 1), refund("r", "p", 1), cancel(), ship()] {
        assert_eq!(given(vec![])?.when(command), Err(DomainError::OrderNotFound));
    }
    Ok(())
}

#[test]
fn capture_up_to_the_outstanding_balance_is_accepted() -> Result {
    let events = given(vec![place()])?.when(capture("p1", 1000))?;
    assert_eq!(types(&events), ["PaymentCaptured"]);
    Ok(())
}

#[test]
fn capture_that_settles_the_balance_also_records_order_fully_paid() -> Result {
    let events = given(vec![place(), capture("p1", 1000)])?.when(capture("p2", 2000))?;
    assert_eq!(types(&events), ["PaymentCaptured", "OrderFullyPaid"]);
    Ok(())
}

#[test]
fn capture_above_outstanding_is_refused_with_the_amounts() -> Result {
    let refused = given(vec![place(), capture("p1", 1000)])?.when(capture("p2", 2001));
    assert_eq!(
        rule(refused),
        Some(Rule::CaptureExceedsOutstanding { outstanding: 2000, requested: 2001 })
    );
    Ok(())
}

#[test]
fn the_same_payment_id_cannot_capture_twice() -> Result {
    let refused = given(vec![place(), capture("p1", 1000)])?.when(capture("p1", 1000));
    assert_eq!(rule(refused), Some(Rule::PaymentAlreadyCaptured));
    Ok(())
}

#[test]
fn a_failed_attempt_is_recorded_and_counted() -> Result {
    let given = given(vec![place(), fail("p1", 3000), fail("p1", 3000)])?;
    let Order::Placed(order) = &given.0 else { return Err("not placed".into()) };
    assert_eq!(order.failed_attempts, 2);
    assert_eq!(order.captured_minor, 0);
    // The retry of a declined payment may then succeed under the same id.
    assert_eq!(types(&given.when(capture("p1", 3000))?), ["PaymentCaptured", "OrderFullyPaid"]);
    Ok(())
}

#[test]
fn a_failure_under_a_captured_payment_id_is_refused() -> Result {
    let refused = given(vec![place(), capture("p1", 1000)])?.when(fail("p1", 1000));
    assert_eq!(rule(refused), Some(Rule::PaymentAlreadyCaptured));
    Ok(())
}

#[test]
fn refund_is_limited_to_what_that_payment_captured_less_its_refunds() -> Result {
    let history = vec![place(), capture("p1", 1000), capture("p2", 2000), refund("r1", "p1", 600)];
    assert_eq!(types(&given(history.clone())?.when(refund("r2", "p1", 400))?), ["PaymentRefunded"]);
    let refused = given(history)?.when(refund("r2", "p1", 401));
    assert_eq!(
        rule(refused),
        Some(Rule::RefundExceedsRefundable { refundable: 400, requested: 401 })
    );
    Ok(())
}

#[test]
fn refund_of_an_unknown_payment_is_refused() -> Result {
    let refused = given(vec![place(), capture("p1", 1000)])?.when(refund("r1", "p9", 1));
    assert_eq!(rule(refused), Some(Rule::UnknownPayment));
    Ok(())
}

#[test]
fn a_refund_id_cannot_be_reused() -> Result {
    let refused = given(vec![place(), capture("p1", 1000), refund("r1", "p1", 1)])?
        .when(refund("r1", "p1", 1));
    assert_eq!(rule(refused), Some(Rule::RefundAlreadyRecorded));
    Ok(())
}

#[test]
fn refund_after_shipping_is_accepted() -> Result {
    let events =
        given(vec![place(), capture("p1", 3000), ship()])?.when(refund("r1", "p1", 3000))?;
    assert_eq!(types(&events), ["PaymentRefunded"]);
    Ok(())
}

#[test]
fn a_refund_does_not_reopen_the_balance() -> Result {
    let given = given(vec![place(), capture("p1", 3000), refund("r1", "p1", 500)])?;
    let Order::Placed(order) = &given.0 else { return Err("not placed".into()) };
    assert_eq!(order.outstanding_minor(), 0);
    assert!(order.is_fully_paid());
    assert_eq!(
        rule(given.when(capture("p2", 1))),
        Some(Rule::CaptureExceedsOutstanding { outstanding: 0, requested: 1 })
    );
    assert_eq!(types(&given.when(ship())?), ["OrderShipped"]);
    Ok(())
}

#[test]
fn cancel_is_refused_while_captured_money_is_not_refunded() -> Result {
    let refused =
        given(vec![place(), capture("p1", 1000), refund("r1", "p1", 400)])?.when(cancel());
    assert_eq!(rule(refused), Some(Rule::CapturedFundsNotRefunded { net_captured: 600 }));
    Ok(())
}

#[test]
fn cancel_after_a_full_refund_is_accepted() -> Result {
    let events =
        given(vec![place(), capture("p1", 1000), refund("r1", "p1", 1000)])?.when(cancel())?;
    assert_eq!(types(&events), ["OrderCancelled"]);
    Ok(())
}

#[test]
fn cancel_is_refused_once_shipped() -> Result {
    let refused = given(vec![place(), capture("p1", 3000), ship()])?.when(cancel());
    assert_eq!(rule(refused), Some(Rule::OrderShipped));
    Ok(())
}

#[test]
fn nothing_but_refunds_after_a_cancel() -> Result {
    let cancelled = given(vec![place(), cancel()])?;
    for command in [capture("p1", 1), fail("p1", 1), ship(), cancel()] {
        assert_eq!(rule(cancelled.when(command)), Some(Rule::OrderCancelled));
    }
    Ok(())
}

#[test]
fn ship_only_when_fully_paid() -> Result {
    let refused = given(vec![place(), capture("p1", 2999)])?.when(ship());
    assert_eq!(rule(refused), Some(Rule::NotFullyPaid { outstanding: 1 }));
    Ok(())
}

#[test]
fn ship_twice_is_refused() -> Result {
    let refused = given(vec![place(), capture("p1", 3000), ship()])?.when(ship());
    assert_eq!(rule(refused), Some(Rule::OrderShipped));
    Ok(())
}

fn field(error: ValidationError) -> String {
    error.field
}

#[test]
fn line_items_are_bounded() {
    assert!(LineItem::parse("A", 1, 0, eur()).is_ok());
    assert!(LineItem::parse(
        "A",
        i64::from(LIMITS.max_quantity),
        LIMITS.max_unit_price_minor,
        eur()
    )
    .is_ok());
    assert_eq!(LineItem::parse("A", 0, 1, eur()).map_err(field), Err("quantity".to_owned()));
    assert_eq!(LineItem::parse("A", 10_001, 1, eur()).map_err(field), Err("quantity".to_owned()));
    assert_eq!(LineItem::parse("A", -1, 1, eur()).map_err(field), Err("quantity".to_owned()));
    assert_eq!(
        LineItem::parse("A", 1, -1, eur()).map_err(field),
        Err("unit_price_minor".to_owned())
    );
    assert_eq!(
        LineItem::parse("A", 1, 1_000_000_001, eur()).map_err(field),
        Err("unit_price_minor".to_owned())
    );
    assert_eq!(LineItem::parse("", 1, 1, eur()).map_err(field), Err("sku".to_owned()));
}

#[test]
fn an_order_holds_one_to_a_hundred_distinct_items_and_its_total_never_overflows() -> Result {
    let build = |items: Vec<LineItem>| {
        PlaceOrder::new(
            order_id(),
            CustomerId::parse("c")?,
            CustomerEmail::parse("a@b.c")?,
            eur(),
            items,
        )
    };
    assert_eq!(build(vec![]).map_err(field), Err("items".to_owned()));
    let item = |n: usize| LineItem::parse(&format!("SKU-{n}"), 10_000, 1_000_000_000, eur());
    let most = (0..100).map(item).collect::<std::result::Result<Vec<_>, _>>()?;
    let biggest = build(most.clone())?;
    assert_eq!(biggest.total.amount_minor, 100 * 10_000 * 1_000_000_000);
    let too_many = (0..101).map(item).collect::<std::result::Result<Vec<_>, _>>()?;
    assert_eq!(build(too_many).map_err(field), Err("items".to_owned()));
    let mut duplicate = most[..2].to_vec();
    duplicate.push(most[0].clone());
    assert_eq!(build(duplicate).map_err(field), Err("items[2].sku".to_owned()));
    Ok(())
}

#[test]
fn amounts_must_be_positive() {
    let id = || PaymentId::parse("p").expect("id");
    let method = || PaymentMethod::parse("card").expect("method");
    assert!(CapturePayment::new(id(), 0, method()).is_err());
    assert!(CapturePayment::new(id(), -5, method()).is_err());
    assert!(CapturePayment::new(id(), LIMITS.max_amount_minor + 1, method()).is_err());
    assert!(CapturePayment::new(id(), 1, method()).is_ok());
}

#[test]
fn every_event_survives_a_json_round_trip() -> Result {
    let history = vec![
        place(),
        fail("p0", 10),
        capture("p1", 1000),
        capture("p2", 2000),
        refund("r1", "p1", 5),
        ship(),
    ];
    let mut order = Order::default();
    let mut events = Vec::new();
    for command in history.into_iter().chain([]) {
        for event in decide(&order, command)? {
            order = evolve(order, &event);
            events.push(event);
        }
    }
    events.extend(given(vec![place()])?.when(cancel())?);
    let mut seen = std::collections::BTreeSet::new();
    for event in &events {
        seen.insert(event.event_type());
        let json = match event {
            Event::OrderPlaced(e) => serde_json::to_string(e)?,
            Event::PaymentCaptured(e) => serde_json::to_string(e)?,
            Event::PaymentFailed(e) => serde_json::to_string(e)?,
            Event::PaymentRefunded(e) => serde_json::to_string(e)?,
            Event::OrderFullyPaid(e) => serde_json::to_string(e)?,
            Event::OrderCancelled(e) => serde_json::to_string(e)?,
            Event::OrderShipped(e) => serde_json::to_string(e)?,
        };
        let back = match event {
            Event::OrderPlaced(_) => Event::OrderPlaced(serde_json::from_str(&json)?),
            Event::PaymentCaptured(_) => Event::PaymentCaptured(serde_json::from_str(&json)?),
            Event::PaymentFailed(_) => Event::PaymentFailed(serde_json::from_str(&json)?),
            Event::PaymentRefunded(_) => Event::PaymentRefunded(serde_json::from_str(&json)?),
            Event::OrderFullyPaid(_) => Event::OrderFullyPaid(serde_json::from_str(&json)?),
            Event::OrderCancelled(_) => Event::OrderCancelled(serde_json::from_str(&json)?),
            Event::OrderShipped(_) => Event::OrderShipped(serde_json::from_str(&json)?),
        };
        assert_eq!(&back, event);
    }
    assert_eq!(seen.len(), 7, "every event type was exercised: {seen:?}");
    Ok(())
}
