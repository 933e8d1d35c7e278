//! Snapshots store the order's state as JSON. Its shape is pinned here: if this test
//! fails, the state changed shape — bump `ORDER_SHAPE_VERSION` (old snapshots are then
//! ignored, never misread) and record the new shape as `fixtures/order_shape_v<N>.json`
//! (`BLESS_ORDER_SHAPE=1 cargo test -p domain --test snapshot_shape`).

mod support;

use domain::{decide, evolve, Command, Order, ORDER_SHAPE_VERSION};
use support::*;

/// An order that has been through every kind of event.
fn lived_order() -> Order {
    let commands: Vec<Command> = vec![
        place_order_to_charge(),
        fail("pay_declined", 1000),
        capture("pay_1", 1000),
        capture_via_provider("pay_2", 2000),
        refund("ref_1", "pay_1", 400),
        ship(),
    ];
    commands.into_iter().fold(Order::default(), |order, command| {
        let events = decide(&order, command).expect("every command of the script is accepted");
        events.iter().fold(order, evolve)
    })
}

#[test]
fn the_snapshot_shape_is_the_recorded_one() {
    let path = format!(
        "{}/tests/fixtures/order_shape_v{ORDER_SHAPE_VERSION}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let shape = serde_json::to_string_pretty(&lived_order()).expect("the state serializes");
    if std::env::var_os("BLESS_ORDER_SHAPE").is_some() {
        // Recording a new shape is a deliberate act, together with the version bump.
        std::fs::write(&path, format!("{shape}\n")).expect("the fixture is writable");
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        shape.trim(),
        recorded.trim(),
        "the order's snapshot shape changed: bump ORDER_SHAPE_VERSION and record the new shape in {path}"
    );
}

#[test]
fn a_snapshot_round_trips_to_the_same_state() {
    for order in [Order::default(), lived_order()] {
        let json = serde_json::to_value(&order).expect("the state serializes");
        let back: Order = serde_json::from_value(json).expect("and reads back");
        assert_eq!(back, order);
    }
}
