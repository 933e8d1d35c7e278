//! The order's rulebook: one given / when / then specification per rule of `decide`.
//!
//! Unless a test says otherwise the order is the standard one: 2 × 12.50 + 1 × 5.00 EUR,
//! a total of [`TOTAL`] = 3000 cents.

mod support;

use domain::{DomainError, Fulfilment, Rule};
use support::*;

// Placing an order

#[test]
fn placing_an_order_records_its_lines_and_total() {
    given_no_history().when(place_order()).then_expect([placed()]).and_state(|order| {
        assert_eq!(order.total, euros(TOTAL));
        assert_eq!(order.lines.len(), 2);
        assert_eq!(order.outstanding_minor(), TOTAL);
        assert_eq!(order.fulfilment, Fulfilment::Open);
    });
}

#[test]
fn a_free_order_is_fully_paid_on_placement() {
    let free = [("GIFT-CARD-SLEEVE", 3, 0)];
    given_no_history()
        .when(place_order_with(&free))
        .then_expect([placed_with(&free), fully_paid(0)]);
    // Nothing to capture, so it can ship straight away.
    given([placed_with(&free), fully_paid(0)]).when(ship()).then_expect([shipped()]);
}

#[test]
fn placing_twice_is_refused() {
    given([placed()]).when(place_order()).then_expect_error(Rule::OrderAlreadyPlaced);
    given([placed(), cancelled()]).when(place_order()).then_expect_error(Rule::OrderAlreadyPlaced);
}

#[test]
fn commands_on_an_unplaced_order_are_not_found() {
    for command in
        [capture("pay_1", 1), fail("pay_1", 1), refund("re_1", "pay_1", 1), cancel(), ship()]
    {
        given_no_history().when(command).then_expect_error(DomainError::OrderNotFound);
    }
}

// Capturing payments

#[test]
fn capture_up_to_the_outstanding_balance_is_accepted() {
    given([placed()])
        .when(capture("pay_1", 1000))
        .then_expect([captured("pay_1", 1000)])
        .and_state(|order| {
            assert_eq!(order.captured_minor, 1000);
            assert_eq!(order.outstanding_minor(), 2000);
            assert!(!order.is_fully_paid());
        });
}

#[test]
fn capture_that_settles_the_balance_also_records_order_fully_paid() {
    given([placed(), captured("pay_1", 1000)])
        .when(capture("pay_2", 2000))
        .then_expect([captured("pay_2", 2000), fully_paid(TOTAL)])
        .and_state(|order| assert!(order.is_fully_paid()));
    // In one go as well.
    given([placed()])
        .when(capture("pay_1", TOTAL))
        .then_expect([captured("pay_1", TOTAL), fully_paid(TOTAL)]);
}

#[test]
fn capture_above_outstanding_is_refused_with_the_amounts() {
    given([placed(), captured("pay_1", 1000)])
        .when(capture("pay_2", 2001))
        .then_expect_error(Rule::CaptureExceedsOutstanding { outstanding: 2000, requested: 2001 });
    given([placed(), captured("pay_1", TOTAL), fully_paid(TOTAL)])
        .when(capture("pay_2", 1))
        .then_expect_error(Rule::CaptureExceedsOutstanding { outstanding: 0, requested: 1 });
}

#[test]
fn a_free_order_takes_no_capture() {
    let free = [("GIFT-CARD-SLEEVE", 1, 0)];
    given([placed_with(&free), fully_paid(0)])
        .when(capture("pay_1", 1))
        .then_expect_error(Rule::CaptureExceedsOutstanding { outstanding: 0, requested: 1 });
}

#[test]
fn the_same_payment_id_cannot_capture_twice() {
    given([placed(), captured("pay_1", 1000)])
        .when(capture("pay_1", 1000))
        .then_expect_error(Rule::PaymentAlreadyCaptured);
}

// Failed payment attempts

#[test]
fn failed_attempt_is_recorded_and_counted() {
    given([placed(), failed("pay_1", TOTAL)])
        .when(fail("pay_1", TOTAL))
        .then_expect([failed("pay_1", TOTAL)])
        .and_state(|order| {
            assert_eq!(order.failed_attempts, 2);
            assert_eq!(order.captured_minor, 0, "a failed attempt moves no money");
            assert_eq!(order.outstanding_minor(), TOTAL);
        });
}

#[test]
fn a_declined_payment_may_be_retried_under_the_same_id() {
    given([placed(), failed("pay_1", TOTAL)])
        .when(capture("pay_1", TOTAL))
        .then_expect([captured("pay_1", TOTAL), fully_paid(TOTAL)]);
}

#[test]
fn a_failure_under_a_captured_payment_id_is_refused() {
    given([placed(), captured("pay_1", 1000)])
        .when(fail("pay_1", 1000))
        .then_expect_error(Rule::PaymentAlreadyCaptured);
}

// Refunds

#[test]
fn refund_is_limited_to_what_that_payment_captured_less_its_refunds() {
    let history = || {
        [placed(), captured("pay_1", 1000), captured("pay_2", 2000), refunded("re_1", "pay_1", 600)]
    };
    given(history())
        .when(refund("re_2", "pay_1", 400))
        .then_expect([refunded("re_2", "pay_1", 400)]);
    // pay_2 still holds 2000, but a refund is drawn from one payment only.
    given(history())
        .when(refund("re_2", "pay_1", 401))
        .then_expect_error(Rule::RefundExceedsRefundable { refundable: 400, requested: 401 });
}

#[test]
fn refund_of_unknown_payment_is_refused() {
    given([placed(), captured("pay_1", 1000)])
        .when(refund("re_1", "pay_9", 1))
        .then_expect_error(Rule::UnknownPayment);
    // A declined attempt captured nothing, so there is nothing to refund.
    given([placed(), failed("pay_1", 1000)])
        .when(refund("re_1", "pay_1", 1))
        .then_expect_error(Rule::UnknownPayment);
}

#[test]
fn refund_id_cannot_be_reused() {
    given([placed(), captured("pay_1", 1000), refunded("re_1", "pay_1", 1)])
        .when(refund("re_1", "pay_1", 1))
        .then_expect_error(Rule::RefundAlreadyRecorded);
}

#[test]
fn refund_after_shipping_is_accepted() {
    given([placed(), captured("pay_1", TOTAL), fully_paid(TOTAL), shipped()])
        .when(refund("re_1", "pay_1", TOTAL))
        .then_expect([refunded("re_1", "pay_1", TOTAL)])
        .and_state(|order| {
            assert_eq!(order.net_captured_minor(), 0);
            assert!(matches!(order.fulfilment, Fulfilment::Shipped { .. }));
        });
}

/// A refund is money given back (a return, a goodwill gesture), not a debt the customer
/// owes again: the balance stays settled, no new capture is taken and the order can still
/// ship. (Commit 4748705 made this the rule; before it a refund reopened the balance.)
#[test]
fn a_refund_does_not_reopen_the_balance() {
    let refunded_in_part =
        || [placed(), captured("pay_1", TOTAL), fully_paid(TOTAL), refunded("re_1", "pay_1", 500)];
    given([placed(), captured("pay_1", TOTAL), fully_paid(TOTAL)])
        .when(refund("re_1", "pay_1", 500))
        .then_expect([refunded("re_1", "pay_1", 500)])
        .and_state(|order| {
            assert_eq!(order.net_captured_minor(), TOTAL - 500);
            assert_eq!(order.outstanding_minor(), 0);
            assert!(order.is_fully_paid());
        });
    given(refunded_in_part())
        .when(capture("pay_2", 500))
        .then_expect_error(Rule::CaptureExceedsOutstanding { outstanding: 0, requested: 500 });
    given(refunded_in_part()).when(ship()).then_expect([shipped()]);
    // Even a full refund before shipping leaves the order paid and shippable.
    given([
        placed(),
        captured("pay_1", TOTAL),
        fully_paid(TOTAL),
        refunded("re_1", "pay_1", TOTAL),
    ])
    .when(ship())
    .then_expect([shipped()]);
}

// Cancelling

#[test]
fn cancel_is_refused_while_captured_money_is_not_refunded() {
    given([placed(), captured("pay_1", 1000), refunded("re_1", "pay_1", 400)])
        .when(cancel())
        .then_expect_error(Rule::CapturedFundsNotRefunded { net_captured: 600 });
}

#[test]
fn cancel_of_an_unpaid_order_is_accepted() {
    given([placed(), failed("pay_1", TOTAL)])
        .when(cancel())
        .then_expect([cancelled()])
        .and_state(|order| assert!(matches!(order.fulfilment, Fulfilment::Cancelled { .. })));
}

#[test]
fn cancel_after_full_refund_is_accepted() {
    given([
        placed(),
        captured("pay_1", 1000),
        captured("pay_2", 500),
        refunded("re_1", "pay_1", 1000),
        refunded("re_2", "pay_2", 200),
        refunded("re_3", "pay_2", 300),
    ])
    .when(cancel())
    .then_expect([cancelled()]);
}

#[test]
fn cancel_is_refused_once_shipped() {
    given([placed(), captured("pay_1", TOTAL), fully_paid(TOTAL), shipped()])
        .when(cancel())
        .then_expect_error(Rule::OrderShipped);
}

#[test]
fn no_capture_or_failure_or_ship_after_cancel() {
    for command in [capture("pay_1", 1), fail("pay_1", 1), ship(), cancel()] {
        given([placed(), cancelled()]).when(command).then_expect_error(Rule::OrderCancelled);
    }
}

#[test]
fn a_cancelled_order_has_nothing_left_to_refund() {
    given([placed(), captured("pay_1", 1000), refunded("re_1", "pay_1", 1000), cancelled()])
        .when(refund("re_2", "pay_1", 1))
        .then_expect_error(Rule::RefundExceedsRefundable { refundable: 0, requested: 1 });
}

// Shipping

#[test]
fn ship_only_when_fully_paid() {
    given([placed()]).when(ship()).then_expect_error(Rule::NotFullyPaid { outstanding: TOTAL });
    given([placed(), captured("pay_1", 2999)])
        .when(ship())
        .then_expect_error(Rule::NotFullyPaid { outstanding: 1 });
    given([placed(), captured("pay_1", 2999), captured("pay_2", 1), fully_paid(TOTAL)])
        .when(ship())
        .then_expect([shipped()])
        .and_state(|order| assert!(matches!(order.fulfilment, Fulfilment::Shipped { .. })));
}

#[test]
fn ship_twice_is_refused() {
    given([placed(), captured("pay_1", TOTAL), fully_paid(TOTAL), shipped()])
        .when(ship())
        .then_expect_error(Rule::OrderShipped);
}

#[test]
fn no_capture_or_failure_after_shipping() {
    for command in [capture("pay_2", 1), fail("pay_2", 1)] {
        given([placed(), captured("pay_1", TOTAL), fully_paid(TOTAL), shipped()])
            .when(command)
            .then_expect_error(Rule::OrderShipped);
    }
}

// Every refusal has a stable code for clients.

// Cancelling with a refund through the payment service

#[test]
fn cancel_with_refund_of_an_order_holding_provider_captures_asks_for_the_refunds_first() {
    given([placed_to_charge(), captured_via_provider("pay_1", 1000)])
        .when(cancel_with_refund())
        .then_expect([cancellation_requested()])
        .and_state(|order| assert!(order.is_cancelling()));
}

#[test]
fn while_the_refunds_are_under_way_the_order_cannot_ship_nor_be_asked_again() {
    let cancelling = [
        placed_to_charge(),
        captured_via_provider("pay_1", TOTAL),
        fully_paid(TOTAL),
        cancellation_requested(),
    ];
    given(cancelling.clone()).when(ship()).then_expect_error(Rule::CancellationRequested);
    given(cancelling.clone())
        .when(cancel_with_refund())
        .then_expect_error(Rule::CancellationRequested);
    // A charge the provider made before the request is still recorded, to be refunded.
    given([placed_to_charge(), cancellation_requested()])
        .when(capture_via_provider("pay_1", 1000))
        .then_expect([captured_via_provider("pay_1", 1000)]);
}

#[test]
fn once_everything_is_refunded_the_requested_cancellation_is_recorded() {
    given([
        placed_to_charge(),
        captured_via_provider("pay_1", 1000),
        cancellation_requested(),
        refunded("re_1", "pay_1", 1000),
    ])
    .when(cancel())
    .then_expect([cancelled()]);
}

#[test]
fn cancel_with_refund_of_an_order_holding_no_money_cancels_at_once() {
    given([placed_to_charge()]).when(cancel_with_refund()).then_expect([cancelled()]);
}

#[test]
fn cancel_with_refund_needs_every_payment_holding_money_to_be_known_to_the_provider() {
    given([placed(), captured_via_provider("pay_1", 1000), captured("pay_2", 500)])
        .when(cancel_with_refund())
        .then_expect_error(Rule::RefundNotPossible { payment_id: "pay_2".to_owned() });
    // Refunded by hand, it no longer stands in the way.
    given([placed(), captured("pay_2", 500), refunded("re_1", "pay_2", 500)])
        .when(cancel_with_refund())
        .then_expect([cancelled()]);
}

#[test]
fn a_payment_instruction_on_an_order_with_nothing_to_pay_is_refused() {
    let free = try_place_order(line_items(&[("GIFT", 1, 0)])).expect("a valid order");
    let instruction = domain::PaymentInstruction {
        payment_method: domain::PaymentMethodId::parse(PAYMENT_METHOD_ID).expect("valid"),
    };
    let refused = free.with_payment(instruction).map(|_| ()).map_err(|error| error.field);
    assert_eq!(refused, Err("payment".to_owned()));
}

#[test]
fn each_rule_has_its_own_stable_code() {
    let rules = [
        (Rule::OrderAlreadyPlaced, "order_already_placed"),
        (Rule::OrderCancelled, "order_cancelled"),
        (Rule::OrderShipped, "order_shipped"),
        (
            Rule::CaptureExceedsOutstanding { outstanding: 1, requested: 2 },
            "capture_exceeds_outstanding",
        ),
        (Rule::PaymentAlreadyCaptured, "payment_already_captured"),
        (Rule::UnknownPayment, "unknown_payment"),
        (Rule::RefundAlreadyRecorded, "refund_already_recorded"),
        (
            Rule::RefundExceedsRefundable { refundable: 1, requested: 2 },
            "refund_exceeds_refundable",
        ),
        (Rule::CapturedFundsNotRefunded { net_captured: 1 }, "captured_funds_not_refunded"),
        (Rule::NotFullyPaid { outstanding: 1 }, "not_fully_paid"),
    ];
    for (rule, code) in &rules {
        assert_eq!(rule.code(), *code);
    }
    let mut codes: Vec<&str> = rules.iter().map(|(rule, _)| rule.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), rules.len(), "two rules share a code");
}

#[test]
fn refusals_quote_the_amounts_to_the_client() {
    let message =
        Rule::CaptureExceedsOutstanding { outstanding: 2000, requested: 2001 }.to_string();
    assert!(message.contains("2000") && message.contains("2001"), "{message}");
    let message = Rule::RefundExceedsRefundable { refundable: 400, requested: 401 }.to_string();
    assert!(message.contains("400") && message.contains("401"), "{message}");
}

// Validation: commands can only be built from valid values, and every refusal names the
// field in the client's terms.

mod validation {
    use domain::{
        Currency, LineItem, PositiveAmount, Quantity, UnitPrice, ValidationError, LIMITS,
    };

    use crate::support::*;

    fn field<T: std::fmt::Debug>(result: Result<T, ValidationError>) -> String {
        match result {
            Err(error) => error.field,
            Ok(value) => panic!("expected a validation error, got {value:?}"),
        }
    }

    #[test]
    fn the_limits_are_the_documented_ones() {
        assert_eq!(LIMITS.max_items, 100);
        assert_eq!(LIMITS.max_quantity, 10_000);
        assert_eq!(LIMITS.max_unit_price_minor, 1_000_000_000);
        assert_eq!(LIMITS.max_amount_minor, 1_000_000_000_000_000);
    }

    #[test]
    fn a_line_item_quantity_is_between_1_and_10_000() {
        assert!(LineItem::parse("A", 1, 100, eur()).is_ok());
        assert!(LineItem::parse("A", 10_000, 100, eur()).is_ok());
        for quantity in [0, -1, 10_001, i64::MIN, i64::MAX] {
            assert_eq!(field(LineItem::parse("A", quantity, 100, eur())), "quantity", "{quantity}");
        }
        // 2^32 + 1 must not wrap to a quantity of 1 on the way to u32.
        assert_eq!(field(LineItem::parse("A", (1 << 32) + 1, 100, eur())), "quantity");
    }

    #[test]
    fn a_line_item_unit_price_is_between_0_and_10_to_the_9_minor_units() {
        assert!(LineItem::parse("A", 1, 0, eur()).is_ok());
        assert!(LineItem::parse("A", 1, 1_000_000_000, eur()).is_ok());
        for price in [-1, 1_000_000_001, i64::MIN, i64::MAX] {
            assert_eq!(field(LineItem::parse("A", 1, price, eur())), "unit_price_minor", "{price}");
        }
    }

    #[test]
    fn a_line_item_sku_is_a_short_token() {
        assert!(LineItem::parse(&"S".repeat(64), 1, 1, eur()).is_ok());
        for sku in ["", "two words", "tab\t", &"S".repeat(65)] {
            assert_eq!(field(LineItem::parse(sku, 1, 1, eur())), "sku", "{sku:?}");
        }
    }

    #[test]
    fn a_line_item_error_is_placed_under_its_index() {
        let error = LineItem::parse("A", 0, 1, eur()).expect_err("quantity 0 is refused");
        assert_eq!(error.within("items[2]").field, "items[2].quantity");
        assert_eq!(ValidationError::new("", "m").within("items").field, "items");
        assert_eq!(ValidationError::new("[2]", "m").within("items").field, "items[2]");
    }

    #[test]
    fn an_order_holds_1_to_100_items() {
        assert_eq!(field(try_place_order(vec![])), "items");
        assert!(try_place_order(numbered_items(1, 1, 1)).is_ok());
        assert!(try_place_order(numbered_items(100, 1, 1)).is_ok());
        assert_eq!(field(try_place_order(numbered_items(101, 1, 1))), "items");
    }

    #[test]
    fn an_order_lists_each_sku_once_and_names_the_repeated_item() {
        let mut items = numbered_items(3, 1, 100);
        items.push(items[1].clone());
        let error = try_place_order(items).expect_err("SKU-1 appears twice");
        assert_eq!(error.field, "items[3].sku");
        let items = line_items(&[("A", 1, 1), ("B", 1, 1), ("A", 2, 5)]);
        assert_eq!(field(try_place_order(items)), "items[2].sku");
    }

    #[test]
    fn an_order_total_is_the_sum_of_quantity_times_unit_price() {
        let order = try_place_order(line_items(&[("A", 3, 1_999), ("B", 7, 1), ("C", 10, 0)]))
            .expect("a valid order");
        assert_eq!(order.total(), euros(3 * 1_999 + 7));
        assert_eq!(place_order_of(4), {
            let order = try_place_order(numbered_items(4, 1, 100)).expect("a valid order");
            assert_eq!(order.total(), euros(400));
            domain::Command::PlaceOrder(order)
        });
    }

    #[test]
    fn the_largest_order_allowed_does_not_overflow_and_can_be_paid_in_one_capture() {
        let biggest = try_place_order(numbered_items(
            LIMITS.max_items,
            i64::from(LIMITS.max_quantity),
            LIMITS.max_unit_price_minor,
        ))
        .expect("the largest order within the limits is valid");
        let total = biggest.total().amount_minor();
        assert_eq!(total, 100 * 10_000 * 1_000_000_000);
        assert!(total <= LIMITS.max_amount_minor, "a capture of the whole total is allowed");
        given_no_history().when(domain::Command::PlaceOrder(biggest)).then_state(|order| {
            assert_eq!(order.outstanding_minor(), total);
        });
    }

    #[test]
    fn every_item_is_priced_in_the_order_currency() {
        let yen = Currency::parse("JPY").expect("JPY is an ISO 4217 code");
        let mut items = line_items(&[("A", 1, 100)]);
        items.push(LineItem::parse("B", 1, 100, yen).expect("a valid item"));
        let error = try_place_order(items).expect_err("a JPY item in a EUR order is refused");
        assert_eq!(error.field, "items[1].unit_price");
    }

    #[test]
    fn amounts_must_be_positive_and_within_the_limit() {
        let max = LIMITS.max_amount_minor;
        for amount in [1, 2, max] {
            let parsed = PositiveAmount::parse("amount_minor", amount).map(|a| a.minor_units());
            assert_eq!(parsed, Ok(amount));
        }
        for amount in [0, -1, i64::MIN, max + 1, i64::MAX] {
            assert_eq!(field(PositiveAmount::parse("amount_minor", amount)), "amount_minor");
        }
        assert_eq!(field(PositiveAmount::parse("refund.amount_minor", 0)), "refund.amount_minor");
    }

    #[test]
    fn quantities_and_unit_prices_have_their_own_bounds() {
        assert_eq!(Quantity::parse(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::parse(10_000).map(Quantity::get), Ok(10_000));
        for quantity in [0, -1, 10_001, i64::MAX] {
            assert_eq!(field(Quantity::parse(quantity)), "quantity");
        }
        assert_eq!(UnitPrice::parse(0).map(UnitPrice::minor_units), Ok(0));
        for price in [-1, LIMITS.max_unit_price_minor + 1] {
            assert_eq!(field(UnitPrice::parse(price)), "unit_price_minor");
        }
    }

    #[test]
    fn ids_and_texts_name_their_field() {
        assert_eq!(field(domain::PaymentId::parse("")), "payment_id");
        assert_eq!(field(domain::RefundId::parse("re 1")), "refund_id");
        assert_eq!(field(domain::CustomerId::parse(&"c".repeat(65))), "customer_id");
        assert_eq!(field(domain::OrderId::parse("not-a-uuid")), "order_id");
        assert_eq!(field(domain::CustomerEmail::parse("ada.example.com")), "customer_email");
        assert_eq!(field(domain::Currency::parse("eur")), "currency");
        assert_eq!(field(domain::Reason::parse(" ")), "reason");
    }
}

// Events are stored as JSON (one payload per event type, see `eventstore::schema`): every
// variant must come back from its JSON unchanged, and the JSON shape is a stored contract.

mod stored_json {
    use domain::{
        decide, evolve, Event, OrderCancellationRequested, OrderCancelled, OrderFullyPaid,
        OrderPlaced, OrderShipped, PaymentCaptured, PaymentFailed, PaymentRefunded,
    };
    use serde_json::{json, Value};

    use crate::support::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn to_json(event: &Event) -> serde_json::Result<Value> {
        match event {
            Event::OrderPlaced(payload) => serde_json::to_value(payload),
            Event::PaymentCaptured(payload) => serde_json::to_value(payload),
            Event::PaymentFailed(payload) => serde_json::to_value(payload),
            Event::PaymentRefunded(payload) => serde_json::to_value(payload),
            Event::OrderFullyPaid(payload) => serde_json::to_value(payload),
            Event::OrderCancellationRequested(payload) => serde_json::to_value(payload),
            Event::OrderCancelled(payload) => serde_json::to_value(payload),
            Event::OrderShipped(payload) => serde_json::to_value(payload),
        }
    }

    fn from_json(event_type: &str, json: Value) -> serde_json::Result<Event> {
        use serde::de::Error;
        Ok(match event_type {
            "OrderPlaced" => Event::OrderPlaced(serde_json::from_value::<OrderPlaced>(json)?),
            "PaymentCaptured" => {
                Event::PaymentCaptured(serde_json::from_value::<PaymentCaptured>(json)?)
            }
            "PaymentFailed" => Event::PaymentFailed(serde_json::from_value::<PaymentFailed>(json)?),
            "PaymentRefunded" => {
                Event::PaymentRefunded(serde_json::from_value::<PaymentRefunded>(json)?)
            }
            "OrderFullyPaid" => {
                Event::OrderFullyPaid(serde_json::from_value::<OrderFullyPaid>(json)?)
            }
            "OrderCancelled" => {
                Event::OrderCancelled(serde_json::from_value::<OrderCancelled>(json)?)
            }
            "OrderCancellationRequested" => {
                Event::OrderCancellationRequested(serde_json::from_value::<
                    OrderCancellationRequested,
                >(json)?)
            }
            "OrderShipped" => Event::OrderShipped(serde_json::from_value::<OrderShipped>(json)?),
            other => return Err(serde_json::Error::custom(format!("unknown event type {other}"))),
        })
    }

    /// Every event variant, as `decide` records them in two real histories.
    fn every_kind_of_event() -> Result<Vec<Event>, domain::DomainError> {
        let mut events = Vec::new();
        for history in [
            vec![
                place_order(),
                fail("pay_0", TOTAL),
                capture("pay_1", 1000),
                capture("pay_2", 2000),
                refund("re_1", "pay_1", 250),
                ship(),
            ],
            vec![place_order_with(&[("GIFT", 1, 0)]), cancel()],
            vec![
                place_order_to_charge(),
                capture_via_provider("pay_1", 1000),
                cancel_with_refund(),
            ],
        ] {
            let mut order = domain::Order::default();
            for command in history {
                for event in decide(&order, command)? {
                    order = evolve(order, &event);
                    events.push(event);
                }
            }
        }
        Ok(events)
    }

    #[test]
    fn every_event_survives_a_json_round_trip() -> TestResult {
        let events = every_kind_of_event()?;
        let mut kinds: Vec<&str> = events.iter().map(Event::event_type).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), 8, "every variant is exercised: {kinds:?}");
        for event in &events {
            let stored = serde_json::to_string(&to_json(event)?)?;
            let read = from_json(event.event_type(), serde_json::from_str(&stored)?)?;
            assert_eq!(&read, event, "{stored}");
        }
        Ok(())
    }

    #[test]
    fn the_stored_shape_of_each_event_is_stable() -> TestResult {
        let eur = |amount: i64| json!({ "amount_minor": amount, "currency": "EUR" });
        let placed_json = json!({
            "order_id": ORDER_ID,
            "customer_id": CUSTOMER_ID,
            "customer_email": CUSTOMER_EMAIL,
            "lines": [
                { "sku": "BOOK-1", "quantity": 2, "unit_price": eur(1250) },
                { "sku": "PEN-7", "quantity": 1, "unit_price": eur(500) },
            ],
            "total": eur(TOTAL),
            // Version 2; version 1 had no channel (see eventstore/tests/versions.rs).
            "sales_channel": SALES_CHANNEL,
        });
        // Version 3: the instruction, absent when the client records payments itself.
        let mut placed_to_charge_json = placed_json.clone();
        placed_to_charge_json["payment"] = json!({ "payment_method": PAYMENT_METHOD_ID });
        let expected = [
            (placed(), placed_json),
            (
                captured("pay_1", 1000),
                json!({ "payment_id": "pay_1", "amount": eur(1000), "method": METHOD }),
            ),
            (
                failed("pay_1", 1000),
                json!({ "payment_id": "pay_1", "amount": eur(1000), "reason": FAILURE_REASON }),
            ),
            (
                refunded("re_1", "pay_1", 5),
                json!({
                    "refund_id": "re_1",
                    "payment_id": "pay_1",
                    "amount": eur(5),
                    "reason": REFUND_REASON,
                }),
            ),
            (fully_paid(TOTAL), json!({ "total": eur(TOTAL) })),
            (cancelled(), json!({ "reason": CANCEL_REASON })),
            (cancellation_requested(), json!({ "reason": CANCEL_REASON })),
            (placed_to_charge(), placed_to_charge_json),
            (
                captured_via_provider("pay_1", 1000),
                json!({
                    "payment_id": "pay_1",
                    "amount": eur(1000),
                    "method": METHOD,
                    // Version 2 of the payment events: absent when not known.
                    "provider_reference": PROVIDER_REFERENCE,
                }),
            ),
            (shipped(), json!({ "carrier": CARRIER, "tracking_number": TRACKING_NUMBER })),
        ];
        for (event, json) in expected {
            assert_eq!(to_json(&event)?, json, "{}", event.event_type());
            assert_eq!(from_json(event.event_type(), json)?, event);
        }
        Ok(())
    }

    #[test]
    fn stored_json_is_parsed_into_valid_values_only() {
        let invalid = [
            (
                "PaymentCaptured",
                json!({ "payment_id": "pay_1", "amount": { "amount_minor": 1, "currency": "eur" }, "method": "card" }),
            ),
            (
                "PaymentCaptured",
                json!({ "payment_id": "", "amount": { "amount_minor": 1, "currency": "EUR" }, "method": "card" }),
            ),
            ("OrderCancelled", json!({ "reason": "   " })),
            ("OrderShipped", json!({ "carrier": "DHL", "tracking_number": "has spaces" })),
            ("OrderFullyPaid", json!({})),
        ];
        for (event_type, json) in invalid {
            assert!(
                from_json(event_type, json.clone()).is_err(),
                "{event_type} {json} was accepted"
            );
        }
    }
}
