//! Properties of the aggregate over random histories of up to 40 commands against one
//! order. Amounts are drawn relative to the state when the command is issued (around the
//! outstanding balance for captures, around what the payment still holds for refunds), so a
//! history mixes accepted commands with refusals of every kind.
//!
//! Each history is played once into a trace of turns (state before, command, answer, state
//! after); each property reads the trace. Set `PROPTEST_CASES` to run more than the default
//! 256 histories per property.

mod support;

use std::collections::BTreeSet;

use domain::{decide, evolve, Command, DomainError, Event, Fulfilment, Order, Rule};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use support::{
    cancel, cancel_with_refund, capture, capture_via_provider, fail, place_order_with, refund, ship,
};

/// An amount chosen when the command is issued, relative to a base the state gives.
#[derive(Clone, Debug)]
enum Amount {
    /// `base + delta`: exactly the base, or just under or over it.
    Near(i64),
    /// `base × quarters / 4`.
    Share(i64),
    /// An amount unrelated to the state.
    Exactly(i64),
}

impl Amount {
    /// Commands only hold positive amounts, so anything below 1 becomes 1.
    fn against(&self, base: i64) -> i64 {
        let amount = match *self {
            Amount::Near(delta) => base + delta,
            Amount::Share(quarters) => base * quarters / 4,
            Amount::Exactly(amount) => amount,
        };
        amount.max(1)
    }
}

#[derive(Clone, Debug)]
enum Action {
    Place,
    /// Against the outstanding balance, under one of `pay_0` … `pay_7`.
    Capture {
        payment: u8,
        amount: Amount,
        /// Recorded by the payment service, naming the provider's charge.
        via_provider: bool,
    },
    Fail {
        payment: u8,
        amount: i64,
    },
    /// Against what the payment still holds (0 if unknown).
    Refund {
        refund: u8,
        payment: RefundOf,
        amount: Amount,
    },
    /// `refund`: give captured money back through the payment service first.
    Cancel {
        refund: bool,
    },
    Ship,
}

/// Which payment a refund draws on.
#[derive(Clone, Debug)]
enum RefundOf {
    /// The n-th captured payment (counting round), or an unknown one if none was captured.
    Captured(usize),
    /// A payment id that never captured anything.
    Unknown,
}

#[derive(Clone, Debug)]
struct Scenario {
    /// `(quantity, unit price)`; one in six prices is 0, so some orders are free.
    items: Vec<(i64, i64)>,
    actions: Vec<Action>,
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        3 => (-2i64..=2).prop_map(Amount::Near),
        2 => (0i64..=5).prop_map(Amount::Share),
        1 => (1i64..=4_000).prop_map(Amount::Exactly),
    ]
}

fn refund_of() -> impl Strategy<Value = RefundOf> {
    prop_oneof![4 => (0usize..4).prop_map(RefundOf::Captured), 1 => Just(RefundOf::Unknown)]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        1 => Just(Action::Place),
        6 => (0u8..8, amount(), any::<bool>())
            .prop_map(|(payment, amount, via_provider)| Action::Capture { payment, amount, via_provider }),
        1 => (0u8..8, 1i64..=4_000).prop_map(|(payment, amount)| Action::Fail { payment, amount }),
        5 => (0u8..12, refund_of(), amount())
            .prop_map(|(refund, payment, amount)| Action::Refund { refund, payment, amount }),
        1 => any::<bool>().prop_map(|refund| Action::Cancel { refund }),
        1 => Just(Action::Ship),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let price = prop_oneof![1 => Just(0i64), 5 => 1i64..=1_500];
    let items = prop::collection::vec((1i64..=3, price), 1..=3);
    // Nine histories in ten start by placing the order; the others try commands first.
    let first = prop_oneof![9 => Just(Action::Place), 1 => action()];
    let rest = prop::collection::vec(action(), 0..40);
    (items, first, rest).prop_map(|(items, first, rest)| Scenario {
        items,
        actions: std::iter::once(first).chain(rest).collect(),
    })
}

/// The command an action stands for, given the order it is about to be decided against.
fn command(action: &Action, items: &[(i64, i64)], order: &Order) -> Command {
    let placed = match order {
        Order::Placed(placed) => Some(placed),
        Order::Unplaced => None,
    };
    match action {
        Action::Place => {
            let skus: Vec<String> = (0..items.len()).map(|n| format!("SKU-{n}")).collect();
            let items: Vec<(&str, i64, i64)> = skus
                .iter()
                .zip(items)
                .map(|(sku, &(quantity, price))| (sku.as_str(), quantity, price))
                .collect();
            place_order_with(&items)
        }
        Action::Capture { payment, amount, via_provider } => {
            let outstanding = placed.map_or(0, |order| order.outstanding_minor());
            let (payment, amount) = (format!("pay_{payment}"), amount.against(outstanding));
            if *via_provider {
                capture_via_provider(&payment, amount)
            } else {
                capture(&payment, amount)
            }
        }
        Action::Fail { payment, amount } => fail(&format!("pay_{payment}"), *amount),
        Action::Refund { refund: refund_number, payment, amount } => {
            let captured: Vec<_> =
                placed.map(|order| order.payments.iter().collect()).unwrap_or_default();
            let (payment, refundable) = match payment {
                RefundOf::Captured(n) if !captured.is_empty() => {
                    let (id, payment) = captured[n % captured.len()];
                    (id.to_string(), payment.refundable_minor())
                }
                _ => ("pay_unknown".to_owned(), 0),
            };
            refund(&format!("re_{refund_number}"), &payment, amount.against(refundable))
        }
        Action::Cancel { refund: false } => cancel(),
        Action::Cancel { refund: true } => cancel_with_refund(),
        Action::Ship => ship(),
    }
}

/// One command of a history and what became of it.
#[derive(Debug)]
struct Turn {
    before: Order,
    command: Command,
    outcome: Result<Vec<Event>, DomainError>,
    after: Order,
}

fn play(scenario: &Scenario) -> Vec<Turn> {
    let mut order = Order::default();
    let mut turns = Vec::with_capacity(scenario.actions.len());
    for action in &scenario.actions {
        let command = command(action, &scenario.items, &order);
        let outcome = decide(&order, command.clone());
        let after = match &outcome {
            Ok(events) => events.iter().fold(order.clone(), evolve),
            Err(_) => order.clone(),
        };
        turns.push(Turn { before: order, command, outcome, after: after.clone() });
        order = after;
    }
    turns
}

fn outstanding(order: &Order) -> Option<i64> {
    match order {
        Order::Placed(placed) => Some(placed.outstanding_minor()),
        Order::Unplaced => None,
    }
}

fn check_invariants(order: &Order) -> Result<(), TestCaseError> {
    let Order::Placed(order) = order else {
        return Err(TestCaseError::fail("a command was accepted but the order is unplaced"));
    };
    let total = order.total.amount_minor();
    prop_assert!(order.captured_minor >= 0, "captured {}", order.captured_minor);
    prop_assert!(order.refunded_minor >= 0, "refunded {}", order.refunded_minor);
    prop_assert!(order.refunded_minor <= order.captured_minor, "refunded more than captured");
    prop_assert!(order.captured_minor <= total, "captured more than the total");
    prop_assert!(order.net_captured_minor() <= total, "kept more than the total");
    prop_assert!(order.outstanding_minor() >= 0);
    for (payment_id, payment) in &order.payments {
        prop_assert!(
            0 <= payment.refunded_minor && payment.refunded_minor <= payment.captured_minor,
            "{payment_id}: refunded {} of {}",
            payment.refunded_minor,
            payment.captured_minor
        );
    }
    // The order's sums are the sums of its payments.
    prop_assert_eq!(
        order.payments.values().map(|p| p.captured_minor).sum::<i64>(),
        order.captured_minor
    );
    prop_assert_eq!(
        order.payments.values().map(|p| p.refunded_minor).sum::<i64>(),
        order.refunded_minor
    );
    match order.fulfilment {
        Fulfilment::Cancelled { .. } => {
            prop_assert_eq!(order.net_captured_minor(), 0, "a cancelled order keeps no money")
        }
        Fulfilment::Shipped { .. } => prop_assert!(order.is_fully_paid()),
        Fulfilment::Open | Fulfilment::Cancelling { .. } => {}
    }
    Ok(())
}

proptest! {
    /// (a) Whatever is accepted keeps the money invariants.
    #[test]
    fn accepted_commands_keep_every_invariant(scenario in scenario()) {
        for turn in play(&scenario) {
            let Ok(events) = &turn.outcome else { continue };
            prop_assert!(!events.is_empty(), "{} was accepted but recorded nothing", turn.command.name());
            check_invariants(&turn.after)?;
            if let Command::ShipOrder(_) = turn.command {
                prop_assert_eq!(outstanding(&turn.before), Some(0), "shipped with a balance");
            }
            if let Order::Placed(before) = &turn.before {
                if let Fulfilment::Cancelled { .. } = before.fulfilment {
                    prop_assert!(
                        matches!(turn.command, Command::RefundPayment(_)),
                        "{} was accepted on a cancelled order",
                        turn.command.name()
                    );
                }
            }
        }
    }

    /// (b) The state is nothing but the fold of the accepted events, at every step.
    #[test]
    fn the_state_is_the_fold_of_its_events(scenario in scenario()) {
        let mut history: Vec<Event> = Vec::new();
        for turn in play(&scenario) {
            if let Ok(events) = turn.outcome {
                history.extend(events);
            }
            let replayed = history.iter().fold(Order::default(), evolve);
            prop_assert_eq!(&replayed, &turn.after);
        }
    }

    /// (c) A refusal records nothing and changes nothing: deciding the same command again,
    /// against the state as it was or as replayed, gives the same refusal.
    #[test]
    fn a_refused_command_changes_nothing(scenario in scenario()) {
        let mut history: Vec<Event> = Vec::new();
        for turn in play(&scenario) {
            match &turn.outcome {
                Ok(events) => history.extend(events.iter().cloned()),
                Err(_) => {
                    prop_assert_eq!(&turn.after, &turn.before);
                    let replayed = history.iter().fold(Order::default(), evolve);
                    prop_assert_eq!(&decide(&replayed, turn.command.clone()), &turn.outcome);
                }
            }
        }
    }

    /// (d) `OrderFullyPaid` is recorded exactly when a capture brings the balance to zero,
    /// or when a free order is placed; once per order, after the capture that settled it.
    #[test]
    fn order_fully_paid_is_recorded_exactly_when_the_balance_reaches_zero(scenario in scenario()) {
        let mut recorded = 0;
        for turn in play(&scenario) {
            let Ok(events) = &turn.outcome else { continue };
            let fully_paid: Vec<usize> = events
                .iter()
                .enumerate()
                .filter(|(_, event)| matches!(event, Event::OrderFullyPaid(_)))
                .map(|(position, _)| position)
                .collect();
            let settled = match turn.command {
                Command::PlaceOrder(_) | Command::CapturePayment(_) => {
                    outstanding(&turn.before) != Some(0) && outstanding(&turn.after) == Some(0)
                }
                _ => false,
            };
            if settled {
                prop_assert_eq!(fully_paid, vec![events.len() - 1], "{:?}", events);
                let (Event::OrderFullyPaid(paid), Order::Placed(order)) = (&events[events.len() - 1], &turn.after) else {
                    return Err(TestCaseError::fail("OrderFullyPaid on an unplaced order"));
                };
                prop_assert_eq!(paid.total, order.total);
                recorded += 1;
            } else {
                prop_assert!(fully_paid.is_empty(), "{} recorded {:?}", turn.command.name(), events);
            }
        }
        prop_assert!(recorded <= 1, "OrderFullyPaid recorded {} times", recorded);
    }

    /// (e) `decide` is deterministic: the same state and command give the same answer.
    #[test]
    fn decide_is_deterministic(scenario in scenario()) {
        for turn in play(&scenario) {
            let state = turn.before.clone();
            prop_assert_eq!(&decide(&state, turn.command.clone()), &turn.outcome);
            prop_assert_eq!(&decide(&turn.before, turn.command), &turn.outcome);
        }
    }
}

/// The properties only mean something if the histories reach every rule. This plays a
/// fixed-seed sample and checks that every event and every refusal shows up.
#[test]
fn the_random_histories_reach_every_event_and_every_refusal() -> Result<(), String> {
    let mut runner = TestRunner::deterministic();
    let strategy = scenario();
    let mut events = BTreeSet::new();
    let mut refusals = BTreeSet::new();
    let (mut accepted, mut refused) = (0usize, 0usize);
    for _ in 0..256 {
        let scenario =
            strategy.new_tree(&mut runner).map_err(|reason| reason.to_string())?.current();
        for turn in play(&scenario) {
            match turn.outcome {
                Ok(recorded) => {
                    accepted += 1;
                    events.extend(recorded.iter().map(Event::event_type));
                }
                Err(DomainError::OrderNotFound) => {
                    refused += 1;
                    refusals.insert("order_not_found");
                }
                Err(DomainError::RuleViolated(rule)) => {
                    refused += 1;
                    refusals.insert(rule.code());
                }
            }
        }
    }
    let every_refusal = [
        Rule::OrderAlreadyPlaced,
        Rule::OrderCancelled,
        Rule::OrderShipped,
        Rule::CaptureExceedsOutstanding { outstanding: 0, requested: 0 },
        Rule::PaymentAlreadyCaptured,
        Rule::UnknownPayment,
        Rule::RefundAlreadyRecorded,
        Rule::RefundExceedsRefundable { refundable: 0, requested: 0 },
        Rule::CapturedFundsNotRefunded { net_captured: 0 },
        Rule::NotFullyPaid { outstanding: 0 },
        Rule::CancellationRequested,
        Rule::RefundNotPossible { payment_id: String::new() },
    ]
    .iter()
    .map(Rule::code)
    .chain(["order_not_found"])
    .collect::<BTreeSet<_>>();
    assert_eq!(refusals, every_refusal);
    assert_eq!(events.len(), 8, "every event type is recorded: {events:?}");
    // Neither kind of answer is rare (about one command in five is accepted: once an order
    // ships or is cancelled, most of what follows is refused).
    assert!(accepted * 10 > accepted + refused, "{accepted} accepted, {refused} refused");
    assert!(refused * 10 > accepted + refused, "{accepted} accepted, {refused} refused");
    Ok(())
}

/// What the API documents as each command's refusals (`domain::rules_of`) is exactly what
/// `decide` answers: no refusal outside a command's list, and every listed one reached.
#[test]
fn each_command_is_refused_by_exactly_the_rules_it_documents() -> Result<(), String> {
    let mut runner = TestRunner::deterministic();
    let strategy = scenario();
    let mut seen = BTreeSet::new();
    for _ in 0..512 {
        let scenario =
            strategy.new_tree(&mut runner).map_err(|reason| reason.to_string())?.current();
        for turn in play(&scenario) {
            if let Err(DomainError::RuleViolated(rule)) = &turn.outcome {
                let documented = turn.command.rules();
                if !documented.contains(&rule.code()) {
                    return Err(format!(
                        "{} refused by undocumented {}",
                        turn.command.name(),
                        rule.code()
                    ));
                }
                seen.insert((turn.command.name(), rule.code()));
            }
        }
    }
    for command in domain::COMMAND_NAMES {
        for rule in domain::rules_of(command) {
            if !seen.contains(&(command, *rule)) {
                return Err(format!("{command} documents {rule}, which no history produced"));
            }
        }
    }
    Ok(())
}
