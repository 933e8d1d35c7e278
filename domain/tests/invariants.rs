//! Properties of the aggregate over arbitrary command histories: whatever is accepted keeps
//! every invariant, the state is the fold of its events, and refusals change nothing.

use domain::{
    decide, evolve, CancelOrder, CapturePayment, Carrier, Command, Currency, CustomerEmail,
    CustomerId, Event, Fulfilment, LineItem, Order, OrderId, PaymentId, PaymentMethod, PlaceOrder,
    Reason, RecordPaymentFailure, RefundId, RefundPayment, ShipOrder, TrackingNumber,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Capture { payment: u8, amount: i64 },
    Fail { payment: u8, amount: i64 },
    Refund { refund: u8, payment: u8, amount: i64 },
    Cancel,
    Ship,
    PlaceAgain,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..5, 1i64..2_500).prop_map(|(payment, amount)| Step::Capture { payment, amount }),
        1 => (0u8..5, 1i64..2_500).prop_map(|(payment, amount)| Step::Fail { payment, amount }),
        3 => (0u8..5, 0u8..5, 1i64..1_500).prop_map(|(refund, payment, amount)| Step::Refund { refund, payment, amount }),
        1 => Just(Step::Cancel),
        2 => Just(Step::Ship),
        1 => Just(Step::PlaceAgain),
    ]
}

fn items() -> impl Strategy<Value = Vec<(u32, i64)>> {
    prop::collection::vec((1u32..4, 0i64..1_500), 1..4)
}

fn place(items: &[(u32, i64)]) -> Command {
    let currency = Currency::parse("EUR").expect("currency");
    let lines = items
        .iter()
        .enumerate()
        .map(|(n, (quantity, price))| {
            LineItem::parse(&format!("SKU-{n}"), i64::from(*quantity), *price, currency)
                .expect("item")
        })
        .collect();
    Command::PlaceOrder(
        PlaceOrder::new(
            OrderId::parse("0199a0a0-0000-7000-8000-00000000000a").expect("id"),
            CustomerId::parse("cus_prop").expect("id"),
            CustomerEmail::parse("prop@example.com").expect("email"),
            currency,
            lines,
        )
        .expect("order"),
    )
}

fn command(step: &Step, items: &[(u32, i64)]) -> Command {
    let payment = |n: u8| PaymentId::parse(&format!("pay_{n}")).expect("id");
    let reason = || Reason::parse("because").expect("reason");
    match step {
        Step::Capture { payment: p, amount } => Command::CapturePayment(
            CapturePayment::new(
                payment(*p),
                *amount,
                PaymentMethod::parse("card").expect("method"),
            )
            .expect("capture"),
        ),
        Step::Fail { payment: p, amount } => Command::RecordPaymentFailure(
            RecordPaymentFailure::new(payment(*p), *amount, reason()).expect("failure"),
        ),
        Step::Refund { refund, payment: p, amount } => Command::RefundPayment(
            RefundPayment::new(
                RefundId::parse(&format!("re_{refund}")).expect("id"),
                payment(*p),
                *amount,
                reason(),
            )
            .expect("refund"),
        ),
        Step::Cancel => Command::CancelOrder(CancelOrder { reason: reason() }),
        Step::Ship => Command::ShipOrder(ShipOrder {
            carrier: Carrier::parse("DHL").expect("carrier"),
            tracking_number: TrackingNumber::parse("T1").expect("tracking"),
        }),
        Step::PlaceAgain => place(items),
    }
}

fn check_invariants(order: &Order) -> Result<(), TestCaseError> {
    let Order::Placed(order) = order else { return Ok(()) };
    prop_assert!(order.captured_minor >= 0);
    prop_assert!(order.refunded_minor >= 0);
    prop_assert!(order.refunded_minor <= order.captured_minor);
    prop_assert!(order.captured_minor <= order.total.amount_minor);
    prop_assert!(order.captured_minor - order.refunded_minor <= order.total.amount_minor);
    prop_assert!(order.outstanding_minor() >= 0);
    let mut captured = 0;
    let mut refunded = 0;
    for payment in order.payments.values() {
        prop_assert!(
            payment.refunded_minor >= 0 && payment.refunded_minor <= payment.captured_minor
        );
        captured += payment.captured_minor;
        refunded += payment.refunded_minor;
    }
    prop_assert_eq!(captured, order.captured_minor);
    prop_assert_eq!(refunded, order.refunded_minor);
    match order.fulfilment {
        Fulfilment::Cancelled { .. } => prop_assert_eq!(order.net_captured_minor(), 0),
        Fulfilment::Shipped { .. } => prop_assert!(order.is_fully_paid()),
        Fulfilment::Open => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_commands_keep_every_invariant(items in items(), steps in prop::collection::vec(step(), 0..40)) {
        let mut order = Order::default();
        let mut history: Vec<Event> = Vec::new();
        let commands = std::iter::once(place(&items)).chain(steps.iter().map(|s| command(s, &items)));
        for command in commands {
            let before = order.clone();
            let outstanding_before = match &before { Order::Placed(o) => o.outstanding_minor(), Order::Unplaced => -1 };
            let is_capture = matches!(command, Command::CapturePayment(_));
            let is_place = matches!(command, Command::PlaceOrder(_));
            let decided = decide(&order, command.clone());
            // Deterministic: the same state and command give the same answer.
            prop_assert_eq!(&decided, &decide(&order, command));
            match decided {
                Ok(events) => {
                    prop_assert!(!events.is_empty());
                    for event in &events {
                        order = evolve(order, event);
                    }
                    // OrderFullyPaid appears exactly when the balance reaches zero.
                    let fully_paid_events = events.iter().filter(|e| matches!(e, Event::OrderFullyPaid(_))).count();
                    let Order::Placed(after) = &order else { return Err(TestCaseError::fail("accepted but unplaced")) };
                    let settled = (is_capture && outstanding_before > 0 && after.outstanding_minor() == 0)
                        || (is_place && after.total.amount_minor == 0);
                    prop_assert_eq!(fully_paid_events, usize::from(settled));
                    history.extend(events);
                }
                Err(_) => prop_assert_eq!(&order, &before, "a refusal changes nothing"),
            }
            check_invariants(&order)?;
        }
        // The state is nothing but the fold of its events.
        let replayed = history.iter().fold(Order::default(), evolve);
        prop_assert_eq!(replayed, order);
    }
}
