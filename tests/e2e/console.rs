//! The web console in a real browser (Debian's headless Chromium): signed in with a `read`
//! token, a person steps through an order's history with the keyboard and sees, at each
//! event, the amounts the API answers as of that event; compares two points; sees no
//! actions. With an `admin` token, a rebuild runs to "done" and a parked message re-driven
//! from the console leaves the list. Screenshots of every page, at a laptop's and a phone's
//! width, are left under `target/console/`. axe-core finds no serious or critical
//! accessibility violation on any page, at either width.

use fantoccini::key::Key;
use ledger_tests::browser::{Browser, DESKTOP, PAGE_DEADLINE, PHONE};
use ledger_tests::{
    expect_json, expect_status, kafka_brokers, poll_until, TestApp, ADMIN_TOKEN, READ_TOKEN,
};
use serde_json::{json, Value};
use uuid::Uuid;

async fn sign_in(browser: &Browser, app: &TestApp, token: &str) -> anyhow::Result<()> {
    browser.goto(&app.url("/console")).await?;
    browser.wait_for("#token").await?.send_keys(token).await?;
    let submit = browser.wait_for("form button[type=submit]").await?;
    submit.click().await?;
    browser.wait_for_text("header", "signed in", |text| text.contains("Sign out")).await?;
    Ok(())
}

/// `name` of the first element matching `css` now; `None` while there is none (the page
/// redraws as it goes, so an element found a moment ago may be gone).
async fn attribute(browser: &Browser, css: &str, name: &str) -> Option<String> {
    let element = browser.all(css).await.ok()?.into_iter().next()?;
    element.attr(name).await.ok().flatten()
}

/// The amounts the order page shows now: `data-minor` of each `data-amount`.
async fn shown_amounts(browser: &Browser) -> Value {
    let mut amounts = serde_json::Map::new();
    for name in ["total", "captured", "refunded", "outstanding"] {
        let minor = attribute(browser, &format!("[data-amount={name}]"), "data-minor").await;
        amounts.insert(name.to_owned(), json!(minor.and_then(|m| m.parse::<i64>().ok())));
    }
    Value::Object(amounts)
}

/// The same amounts from the API's answer as of `position`.
async fn api_amounts(app: &TestApp, order_id: Uuid, position: i64) -> anyhow::Result<Value> {
    let path = format!("/v1/orders/{order_id}?at_position={position}");
    let order = expect_json(app.get(&path).send().await?, 200).await?;
    Ok(json!({
        "total": order["total_minor"], "captured": order["captured_minor"],
        "refunded": order["refunded_minor"], "outstanding": order["outstanding_minor"],
    }))
}

/// Waits until the page shows the point at `position` with the API's amounts there.
async fn shows_point(
    browser: &Browser,
    app: &TestApp,
    order_id: Uuid,
    position: i64,
) -> anyhow::Result<()> {
    let expected = api_amounts(app, order_id, position).await?;
    let what = format!("the order as of position {position}: {expected}");
    let expected = &expected;
    poll_until(PAGE_DEADLINE, &what, || async move {
        if attribute(browser, "#as-of", "data-position").await != Some(position.to_string()) {
            return Ok(None);
        }
        Ok((shown_amounts(browser).await == *expected).then_some(()))
    })
    .await
}

/// An order of 30.00 EUR paid in three captures, one of them partly refunded.
async fn paid_and_refunded(app: &TestApp) -> anyhow::Result<(Uuid, Vec<i64>)> {
    let order_id = app.place_order("cus_console").await?;
    for payment in ["pay_1", "pay_2", "pay_3"] {
        expect_status(app.capture(order_id, payment, 1000).await?, 201).await?;
    }
    expect_status(app.refund(order_id, "ref_1", "pay_2", 400).await?, 201).await?;
    let history = app.history(order_id).await?;
    let positions = history["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["position"].as_i64())
        .collect();
    Ok((order_id, positions))
}

/// Parks the order's first event as the payments worker would have; re-driving it applies.
async fn park_first_event(app: &TestApp, order_id: Uuid) -> anyhow::Result<i64> {
    let client = app.database.client().await?;
    let envelope = ledger_tests::history::stored_envelope(&client, order_id, 1).await?;
    let row = client
        .query_one(
            "INSERT INTO dead_letters (projection, topic, partition, \"offset\", key, payload, error, attempts)
             VALUES ('payments', 'orders', 0, 0, $1, $2, 'simulated: the database refused the batch', 3)
             RETURNING id",
            &[&order_id.to_string(), &serde_json::to_vec(&envelope)?],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn a_read_token_steps_through_an_orders_history_with_the_keyboard() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let (order_id, positions) = paid_and_refunded(&app).await?;
    let parked = park_first_event(&app, app.place_order("cus_parked").await?).await?;
    let browser = Browser::start().await?;
    sign_in(&browser, &app, READ_TOKEN).await?;

    browser.goto(&app.url(&format!("/console/orders/{order_id}"))).await?;
    let press = |key: Key| {
        let browser = &browser;
        async move { browser.type_into("#slider", &key.to_string()).await }
    };
    press(Key::Home).await?;
    for (step, position) in positions.iter().enumerate() {
        if step > 0 {
            press(Key::Right).await?;
        }
        shows_point(&browser, &app, order_id, *position).await?;
    }
    browser.screenshot("order-desktop", DESKTOP).await?;
    browser.screenshot("order-phone", PHONE).await?;

    // Compare the point before the refund with the last one: the change is named.
    browser.wait_for("#compare-toggle").await?.click().await?;
    browser.type_into("#slider-b", &Key::End.to_string()).await?;
    press(Key::End).await?;
    press(Key::Left).await?;
    let refund = format!("PaymentRefunded (version {})", positions.len());
    let comparison = browser
        .wait_for_text("#comparison", "the comparison names the refund", |text| {
            text.contains(&refund) && text.contains("refunded: ") && text.contains("→")
        })
        .await?;
    assert!(!comparison.contains("PaymentCaptured"), "only what lies between: {comparison}");
    assert!(!comparison.contains("Nothing changed"), "{comparison}");
    browser.screenshot("order-compare-desktop", DESKTOP).await?;

    // Everything is visible to a read token, no action is offered, and the API refuses
    // the actions anyway.
    for (page, name) in [
        ("/console", "orders"),
        ("/console/customers/cus_console", "customer"),
        ("/console/pipeline", "pipeline"),
        ("/console/deliveries", "deliveries"),
    ] {
        browser.goto(&app.url(page)).await?;
        browser.wait_for("main").await?;
        browser.wait_for_text("main", "the page drawn", |t| !t.contains("Loading")).await?;
        browser.screenshot(&format!("{name}-desktop"), DESKTOP).await?;
        browser.screenshot(&format!("{name}-phone"), PHONE).await?;
    }
    browser.goto(&app.url("/console/pipeline")).await?;
    browser.wait_for_text("main", "the projections listed", |t| t.contains("payments")).await?;
    assert!(browser.all("[data-action=rebuild]").await?.is_empty(), "no rebuild for read");
    browser.goto(&app.url("/console/dead-letters")).await?;
    browser.wait_for(&format!("tr[data-dead-letter-id='{parked}']")).await?;
    assert!(browser.all("[data-action=redrive]").await?.is_empty(), "no re-drive for read");
    browser.screenshot("dead-letters-desktop", DESKTOP).await?;
    browser.screenshot("dead-letters-phone", PHONE).await?;
    let reader = ledger_tests::client_with_token(Some(READ_TOKEN))?;
    for action in [
        format!("/v1/admin/dead-letters/{parked}/redrive"),
        "/v1/admin/projections/payments/rebuild".to_owned(),
    ] {
        let refused = expect_json(reader.post(app.url(&action)).send().await?, 403).await?;
        assert_eq!(refused["code"], "forbidden");
    }
    browser.close().await
}

#[tokio::test]
async fn an_admin_rebuilds_and_re_drives_from_the_console() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_admin").await?;
    let parked = park_first_event(&app, order_id).await?;
    let browser = Browser::start().await?;
    sign_in(&browser, &app, ADMIN_TOKEN).await?;

    browser.goto(&app.url("/console/pipeline")).await?;
    browser.wait_for("[data-action=rebuild][data-projection=payments]").await?.click().await?;
    browser.wait_for("dialog[open] button[value=confirm]").await?.click().await?;
    browser
        .wait_for_text(".rebuild[data-projection=payments]", "the rebuild done", |text| {
            text.to_lowercase().contains("done")
        })
        .await?;
    browser.screenshot("pipeline-rebuilt-desktop", DESKTOP).await?;
    let projections = expect_json(app.get("/v1/admin/projections").send().await?, 200).await?;
    assert!(
        projections["rebuilds"].as_array().is_some_and(|r| !r.is_empty()),
        "the console started a rebuild: {projections}"
    );

    browser.goto(&app.url("/console/dead-letters")).await?;
    let row = format!("tr[data-dead-letter-id='{parked}']");
    browser.wait_for(&format!("{row} [data-action=redrive]")).await?.click().await?;
    poll_until(PAGE_DEADLINE, "the re-driven message leaves the list", || async {
        Ok(browser.all(&row).await?.is_empty().then_some(()))
    })
    .await?;
    let payments = app.payments(order_id, 1).await?;
    assert_eq!(payments["amount_due"], ledger_tests::ORDER_TOTAL_MINOR, "{payments}");
    browser.close().await
}

/// What axe-core finds on the page at each of a laptop's and a phone's width, once the
/// page is at rest: a panel that is fetching is dimmed and says so (`aria-busy`), for the
/// moment it takes.
async fn violations_at_both_widths(browser: &Browser, page: &str) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for (width, size) in [("desktop", DESKTOP), ("phone", PHONE)] {
        browser.client.set_window_size(size.0, size.1).await?;
        poll_until(PAGE_DEADLINE, &format!("{page}: nothing busy"), || async {
            Ok(browser.all("[aria-busy=true]").await?.is_empty().then_some(()))
        })
        .await?;
        for violation in browser.accessibility_violations().await? {
            found.push(format!("{page} at {width}: {violation}"));
        }
    }
    browser.client.set_window_size(DESKTOP.0, DESKTOP.1).await?;
    Ok(found)
}

#[tokio::test]
async fn no_page_has_a_serious_accessibility_violation() -> anyhow::Result<()> {
    // Every page with something on it, actions included (an admin sees them all).
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let (order_id, positions) = paid_and_refunded(&app).await?;
    let parked = park_first_event(&app, app.place_order("cus_parked").await?).await?;
    let browser = Browser::start().await?;

    browser.goto(&app.url("/console")).await?;
    browser.wait_for("#token").await?;
    let mut found = violations_at_both_widths(&browser, "sign-in").await?;
    sign_in(&browser, &app, ADMIN_TOKEN).await?;

    let pages = [
        ("orders", "/console".to_owned(), "main table".to_owned()),
        ("order", format!("/console/orders/{order_id}"), "#as-of[data-position]".to_owned()),
        ("customer", "/console/customers/cus_console".to_owned(), "main svg".to_owned()),
        ("pipeline", "/console/pipeline".to_owned(), "[data-action=rebuild]".to_owned()),
        (
            "dead letters",
            "/console/dead-letters".to_owned(),
            format!("tr[data-dead-letter-id='{parked}'] [data-action=redrive]"),
        ),
        ("deliveries", "/console/deliveries".to_owned(), "main table".to_owned()),
    ];
    for (name, path, drawn) in &pages {
        browser.goto(&app.url(path)).await?;
        browser.wait_for(drawn).await?;
        found.extend(violations_at_both_widths(&browser, name).await?);
    }
    // The order page at its first event (the later ones set apart), then comparing.
    browser.goto(&app.url(&format!("/console/orders/{order_id}"))).await?;
    browser.wait_for("#as-of[data-position]").await?;
    browser.type_into("#slider", &Key::Home.to_string()).await?;
    shows_point(&browser, &app, order_id, positions[0]).await?;
    found.extend(violations_at_both_widths(&browser, "order, at its first event").await?);
    browser.wait_for("#compare-toggle").await?.click().await?;
    // The comparison and the panels' refresh start together, after the controls' debounce:
    // once the comparison is drawn, the panels are fetching or done.
    browser
        .wait_for_text("#comparison", "the comparison drawn", |text| {
            text.contains("What changed from A to B")
        })
        .await?;
    found.extend(violations_at_both_widths(&browser, "order, comparing").await?);

    assert!(found.is_empty(), "serious or critical violations:\n{}", found.join("\n"));
    browser.close().await
}
