//! Point-in-time read models, as a property: after a random history of commands over
//! several orders, customers and currencies, every as-of query of the payments and
//! notifications read models — at random positions and times, on event boundaries, between
//! them, before the first and past the last — equals a replay, in this test, of the events
//! the store holds up to that cut.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use ledger_tests::{expect_json, kafka_brokers, TestApp};
use serde_json::{json, Value};
use uuid::Uuid;

/// Seeded, so a failure is reproducible from the printed seed.
struct Rng(fastrand::Rng);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.u64(0..n.max(1))
    }
}

/// One stored event, as the history endpoint shows it.
struct Stored {
    order_id: Uuid,
    version: u64,
    position: i64,
    recorded_at: DateTime<Utc>,
    event_type: String,
    data: Value,
}

/// The payments read model of one order, replayed here from its events.
#[derive(Clone, Debug, Default, PartialEq)]
struct Payments {
    customer_id: String,
    currency: String,
    amount_due: i64,
    captured: i64,
    refunded: i64,
    cancelled: bool,
    stream_version: u64,
    attempts: usize,
}

impl Payments {
    fn status(&self) -> &'static str {
        match self {
            p if p.cancelled => "cancelled",
            p if p.refunded > 0 && p.refunded == p.captured => "refunded",
            p if p.refunded > 0 => "partially_refunded",
            p if p.captured >= p.amount_due => "paid",
            p if p.captured > 0 => "partially_paid",
            _ => "awaiting_payment",
        }
    }
}

/// Everything the read models should say as of a cut.
#[derive(Default)]
struct Expected {
    payments: BTreeMap<Uuid, Payments>,
    notifications: BTreeMap<Uuid, usize>,
}

fn replay(events: &[&Stored]) -> Expected {
    let mut expected = Expected::default();
    for event in events {
        let amount = event.data["amount"]["amount_minor"].as_i64().unwrap_or(0);
        if event.event_type != "OrderFullyPaid" {
            *expected.notifications.entry(event.order_id).or_default() += 1;
        }
        if event.event_type == "OrderPlaced" {
            expected.payments.insert(
                event.order_id,
                Payments {
                    customer_id: event.data["customer_id"].as_str().unwrap_or_default().to_owned(),
                    currency: event.data["total"]["currency"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    amount_due: event.data["total"]["amount_minor"].as_i64().unwrap_or(0),
                    ..Payments::default()
                },
            );
        }
        let Some(order) = expected.payments.get_mut(&event.order_id) else { continue };
        // Shipping and the fully-paid marker leave an order's payments as they were.
        if !matches!(event.event_type.as_str(), "OrderShipped" | "OrderFullyPaid") {
            order.stream_version = event.version;
        }
        match event.event_type.as_str() {
            "PaymentCaptured" => {
                order.captured += amount;
                order.attempts += 1;
            }
            "PaymentFailed" => order.attempts += 1,
            "PaymentRefunded" => {
                order.refunded += amount;
                order.attempts += 1;
            }
            "OrderCancelled" => order.cancelled = true,
            _ => {}
        }
    }
    expected
}

/// Sends one random command; refusals (409/422) are part of a random history.
async fn random_command(
    app: &TestApp,
    rng: &mut Rng,
    orders: &mut Vec<Uuid>,
) -> anyhow::Result<()> {
    let customers = ["cus_ada", "cus_bob", "cus_cyd"];
    let currencies = ["EUR", "JPY"];
    if orders.is_empty() || rng.below(5) == 0 {
        let order_id = Uuid::now_v7();
        let customer = customers[rng.below(3) as usize];
        let body = json!({
            "order_id": order_id, "customer_id": customer,
            "customer_email": format!("{customer}@example.com"),
            "currency": currencies[rng.below(2) as usize],
            "items": [{ "sku": "SKU-1", "quantity": 1 + rng.below(3), "unit_price_minor": 100 * (1 + rng.below(20)) }]
        });
        app.post("/v1/orders").json(&body).send().await?;
        orders.push(order_id);
        return Ok(());
    }
    let order_id = orders[rng.below(orders.len() as u64) as usize];
    let payment = format!("pay_{}", rng.below(3));
    let amount = 50 * (1 + rng.below(30)) as i64;
    match rng.below(10) {
        0..=3 => app.capture(order_id, &payment, amount).await?,
        4 => app.fail_payment(order_id, &payment, amount).await?,
        5 | 6 => {
            app.refund(order_id, &format!("ref_{}", rng.0.u64(..)), &payment, amount / 2).await?
        }
        7 => app.cancel(order_id).await?,
        _ => app.ship(order_id).await?,
    };
    Ok(())
}

async fn get(app: &TestApp, path: &str) -> anyhow::Result<(u16, Value)> {
    let response = app.get(path).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

async fn check_cut(
    app: &TestApp,
    cut: &str,
    expected: &Expected,
    orders: &[Uuid],
) -> anyhow::Result<()> {
    // One order at a time.
    for order_id in orders {
        let (status, body) = get(app, &format!("/v1/payments/{order_id}?{cut}")).await?;
        match expected.payments.get(order_id) {
            None => anyhow::ensure!(status == 404, "{cut} {order_id}: {status} {body}"),
            Some(order) => {
                anyhow::ensure!(status == 200, "{cut} {order_id}: {status} {body}");
                let actual = (
                    body["captured"].as_i64(),
                    body["refunded"].as_i64(),
                    body["status"].as_str(),
                    body["stream_version"].as_u64(),
                    body["attempts"].as_array().map(Vec::len),
                );
                let wanted = (
                    Some(order.captured),
                    Some(order.refunded),
                    Some(order.status()),
                    Some(order.stream_version),
                    Some(order.attempts),
                );
                anyhow::ensure!(actual == wanted, "{cut} {order_id}: {actual:?} != {wanted:?}");
            }
        }
    }
    // The list: which orders exist, and their status.
    let (status, page) = get(app, &format!("/v1/payments?limit=500&{cut}")).await?;
    anyhow::ensure!(status == 200, "{cut}: {status} {page}");
    let listed: BTreeMap<String, String> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["order_id"].as_str().unwrap_or_default().to_owned(),
                p["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let wanted: BTreeMap<String, String> =
        expected.payments.iter().map(|(id, p)| (id.to_string(), p.status().to_owned())).collect();
    anyhow::ensure!(listed == wanted, "{cut}: list {listed:?} != {wanted:?}");
    // Filtered by status: the orders in that status as of the cut, and no others.
    for wanted_status in ["paid", "partially_refunded", "cancelled", "awaiting_payment"] {
        let (status, page) =
            get(app, &format!("/v1/payments?limit=500&status={wanted_status}&{cut}")).await?;
        anyhow::ensure!(status == 200, "{cut}: {status} {page}");
        let listed: BTreeSet<String> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["order_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let wanted: BTreeSet<String> =
            wanted.iter().filter(|(_, s)| *s == wanted_status).map(|(id, _)| id.clone()).collect();
        anyhow::ensure!(listed == wanted, "{cut} {wanted_status}: {listed:?} != {wanted:?}");
    }
    // Balances per customer and currency.
    for customer in ["cus_ada", "cus_bob", "cus_cyd"] {
        let (status, body) = get(app, &format!("/v1/customers/{customer}/balance?{cut}")).await?;
        anyhow::ensure!(status == 200, "{cut}: {status} {body}");
        let actual: BTreeSet<(String, i64, i64, i64, i64, i64)> = body["balances"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                (
                    b["currency"].as_str().unwrap_or_default().to_owned(),
                    b["amount_due"].as_i64().unwrap_or(-1),
                    b["captured"].as_i64().unwrap_or(-1),
                    b["refunded"].as_i64().unwrap_or(-1),
                    b["outstanding"].as_i64().unwrap_or(-1),
                    b["orders"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        let mut sums: BTreeMap<String, (i64, i64, i64, i64, i64)> = BTreeMap::new();
        for order in expected.payments.values().filter(|p| p.customer_id == customer) {
            let sum = sums.entry(order.currency.clone()).or_default();
            sum.0 += order.amount_due;
            sum.1 += order.captured;
            sum.2 += order.refunded;
            if !order.cancelled {
                sum.3 += order.amount_due - order.captured;
            }
            sum.4 += 1;
        }
        let wanted: BTreeSet<_> =
            sums.into_iter().map(|(c, s)| (c, s.0, s.1, s.2, s.3, s.4)).collect();
        anyhow::ensure!(actual == wanted, "{cut} {customer}: {actual:?} != {wanted:?}");
    }
    // Notifications: how many per order.
    let (status, page) = get(app, &format!("/v1/notifications?limit=500&{cut}")).await?;
    anyhow::ensure!(status == 200, "{cut}: {status} {page}");
    let mut counted: BTreeMap<Uuid, usize> = BTreeMap::new();
    for item in page["items"].as_array().into_iter().flatten() {
        if let Some(id) = item["order_id"].as_str().and_then(|id| Uuid::parse_str(id).ok()) {
            *counted.entry(id).or_default() += 1;
        }
    }
    anyhow::ensure!(
        counted == expected.notifications,
        "{cut}: notifications {counted:?} != {:?}",
        expected.notifications
    );
    Ok(())
}

#[tokio::test]
async fn every_as_of_answer_equals_a_replay_of_the_store_up_to_the_cut() -> anyhow::Result<()> {
    let seed = std::env::var("AS_OF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        u64::from(std::process::id()) * 0x9e37_79b9 + Utc::now().timestamp_subsec_nanos() as u64
    }) | 1;
    eprintln!("as-of property: AS_OF_SEED={seed}");
    let mut rng = Rng(fastrand::Rng::with_seed(seed));
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let mut orders = Vec::new();
    for _ in 0..120 {
        random_command(&app, &mut rng, &mut orders).await?;
    }

    let mut stored: Vec<Stored> = Vec::new();
    for order_id in &orders {
        let (status, history) = get(&app, &format!("/v1/orders/{order_id}/events")).await?;
        if status == 404 {
            continue;
        }
        for event in history["events"].as_array().into_iter().flatten() {
            stored.push(Stored {
                order_id: *order_id,
                version: event["stream_version"].as_u64().unwrap_or(0),
                position: event["position"].as_i64().unwrap_or(0),
                recorded_at: serde_json::from_value(event["recorded_at"].clone())?,
                event_type: event["event_type"].as_str().unwrap_or_default().to_owned(),
                data: event["data"].clone(),
            });
        }
    }
    stored.sort_by_key(|e| e.position);
    anyhow::ensure!(stored.len() > 30, "a history worth checking: {} events", stored.len());

    // Cuts: before everything, every kind of boundary, and past the end.
    let first = stored[0].position;
    let last = stored[stored.len() - 1].position;
    let mut positions = vec![first - 1, last, last + 1_000];
    let mut times = vec![stored[0].recorded_at - chrono::Duration::seconds(1)];
    for _ in 0..12 {
        let event = &stored[rng.below(stored.len() as u64) as usize];
        positions.push(event.position);
        positions.push(event.position - 1);
        times.push(event.recorded_at);
    }
    for position in positions {
        let inside: Vec<&Stored> = stored.iter().filter(|e| e.position <= position).collect();
        check_cut(&app, &format!("at_position={position}"), &replay(&inside), &orders).await?;
    }
    for time in times {
        let inside: Vec<&Stored> = stored.iter().filter(|e| e.recorded_at <= time).collect();
        let cut = format!("as_of={}", time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        check_cut(&app, &cut, &replay(&inside), &orders).await?;
    }
    // And the present, through both kinds of "future".
    let now = replay(&stored.iter().collect::<Vec<_>>());
    check_cut(&app, "as_of=2999-01-01T00:00:00Z", &now, &orders).await?;
    let current = expect_json(app.get("/v1/payments?limit=500").send().await?, 200).await?;
    let future =
        expect_json(app.get("/v1/payments?limit=500&at_position=999999999").send().await?, 200)
            .await?;
    assert_eq!(current["items"].as_array().map(Vec::len), future["items"].as_array().map(Vec::len));
    Ok(())
}
