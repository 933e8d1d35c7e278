//! A given / when / then harness for the order aggregate, in the style of cqrs-es:
//!
//! ```text
//! given([placed(), captured("pay_1", 1000)])
//!     .when(capture("pay_2", 2000))
//!     .then_expect([captured("pay_2", 2000), fully_paid(TOTAL)]);
//! ```
//!
//! The history is a list of events (facts), folded with `evolve` exactly as the event store
//! does; the command goes through `decide`; the `then_*` methods assert the answer. Every
//! `when` also asks `decide` a second time and requires the same answer, so each rule test
//! doubles as a check that `decide` is a pure function.
//!
//! Builders for valid commands and for the events they record live in [`commands`] and
//! [`events`], with the same fixed ids, reasons and prices, so an expected event can be
//! written next to the command that records it.

// Each test crate (`rules`, `properties`) uses only part of the harness.
#![allow(dead_code, unused_imports)]

mod commands;
mod events;

pub use commands::*;
pub use events::*;

use domain::{decide, evolve, Command, DomainError, Event, Order, PlacedOrder};

/// The order's history before the command under test.
pub struct Given {
    state: Order,
}

/// Starts a specification from the events already recorded for the order.
pub fn given(history: impl IntoIterator<Item = Event>) -> Given {
    Given {
        state: history.into_iter().fold(Order::default(), |order, event| evolve(order, &event)),
    }
}

/// An order that was never placed: the state of an empty stream.
pub fn given_no_history() -> Given {
    given([])
}

impl Given {
    /// Decides `command` against the history.
    #[track_caller]
    pub fn when(self, command: Command) -> When {
        let outcome = decide(&self.state, command.clone());
        assert_eq!(
            decide(&self.state, command.clone()),
            outcome,
            "decide answered {} differently the second time",
            command.name()
        );
        When { state: self.state, command, outcome }
    }
}

/// The answer `decide` gave, waiting to be checked.
#[must_use = "a specification without a `then_*` asserts nothing"]
pub struct When {
    state: Order,
    command: Command,
    outcome: Result<Vec<Event>, DomainError>,
}

impl When {
    /// The command was accepted and recorded exactly these events, in this order.
    #[track_caller]
    pub fn then_expect(self, expected: impl IntoIterator<Item = Event>) -> Then {
        let expected: Vec<Event> = expected.into_iter().collect();
        let events = match self.outcome {
            Ok(events) => events,
            Err(error) => panic!(
                "expected {} to record {expected:#?}\nbut it was refused: {error:?}",
                self.command.name()
            ),
        };
        assert_eq!(events, expected, "{} recorded other events", self.command.name());
        Then { state: events.iter().fold(self.state, evolve) }
    }

    /// The command was refused for exactly this reason (a [`domain::Rule`] converts).
    #[track_caller]
    pub fn then_expect_error(self, expected: impl Into<DomainError>) {
        let expected = expected.into();
        match self.outcome {
            Err(error) => {
                assert_eq!(
                    error,
                    expected,
                    "{} was refused for another reason",
                    self.command.name()
                )
            }
            Ok(events) => panic!(
                "expected {} to be refused with {expected:?}\nbut it recorded {events:#?}",
                self.command.name()
            ),
        }
    }

    /// The command was accepted; `check` inspects the order once its events are applied.
    #[track_caller]
    pub fn then_state(self, check: impl FnOnce(&PlacedOrder)) {
        let name = self.command.name();
        match self.outcome {
            Ok(events) => check(placed_order(&events.iter().fold(self.state, evolve))),
            Err(error) => panic!("expected {name} to be accepted, but it was refused: {error:?}"),
        }
    }
}

/// The state after an accepted command, for specifications that also check it.
pub struct Then {
    state: Order,
}

impl Then {
    #[track_caller]
    pub fn and_state(self, check: impl FnOnce(&PlacedOrder)) {
        check(placed_order(&self.state));
    }
}

#[track_caller]
fn placed_order(order: &Order) -> &PlacedOrder {
    match order {
        Order::Placed(placed) => placed,
        Order::Unplaced => panic!("expected a placed order, but the order is unplaced"),
    }
}
