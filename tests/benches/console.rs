//! What a console tab costs the API: request latency under a steady load of commands and
//! queries with no browser, with headless Chromium on a blank tab (the browser's own cost
//! on the same machine), on an order's page (drawn once, no polling) and on the pipeline
//! page (which polls the relay and projection status every 5 s), and with no browser but
//! the pipeline page's requests sent by the bench, alternating, in one run.
//!
//! `cargo bench -p ledger-tests --bench console` (needs PostgreSQL, Tansu, Chromium and
//! chromedriver, as the tests do). `BENCH_RATE` (requests/s, default 200),
//! `BENCH_SECONDS` (per phase, default 10), `BENCH_ROUNDS` (default 2).

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bench::measure::{env_or, percentile};
use ledger_tests::browser::Browser;
use ledger_tests::{expect_status, kafka_brokers, TestApp, ADMIN_TOKEN};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rate: u64 = env_or("BENCH_RATE", 200);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let rounds: usize = env_or("BENCH_ROUNDS", 2);
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let orders = fresh_orders(&app).await?;
    // A browser on the same two cores costs the API something whatever it shows: a blank
    // tab measures that, the pipeline tab what its polling adds.
    let (mut without, mut polled, mut blank, mut still, mut with) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        without.extend(load(&app, &fresh_orders(&app).await?, rate, seconds).await?);
        // The pipeline page's two requests every 5 s with no browser: what of the tab's
        // cost is the API answering them.
        let poller = tokio::spawn(poll_like_the_pipeline_page(app.http.clone(), app.url("")));
        polled.extend(load(&app, &fresh_orders(&app).await?, rate, seconds).await?);
        poller.abort();
        let browser = Browser::start().await?;
        browser.goto("about:blank").await?;
        blank.extend(load(&app, &fresh_orders(&app).await?, rate, seconds).await?);
        browser.goto(&app.url("/console")).await?;
        browser.type_into("#token", ADMIN_TOKEN).await?;
        browser.wait_for("form button[type=submit]").await?.click().await?;
        browser.goto(&app.url(&format!("/console/orders/{}", orders[0]))).await?;
        browser.wait_for("#slider").await?;
        still.extend(load(&app, &fresh_orders(&app).await?, rate, seconds).await?);
        browser.goto(&app.url("/console/pipeline")).await?;
        browser.wait_for_text("main", "the pipeline drawn", |t| t.contains("payments")).await?;
        with.extend(load(&app, &fresh_orders(&app).await?, rate, seconds).await?);
        browser.close().await?;
        println!("round {round} of {rounds} done");
    }
    without.sort_unstable();
    polled.sort_unstable();
    blank.sort_unstable();
    still.sort_unstable();
    with.sort_unstable();
    let row = |name: &str, latencies: &[Duration]| {
        println!(
            "| {name} | {} | {:.2?} | {:.2?} | {:.2?} |",
            latencies.len(),
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
            percentile(latencies, 1.0)
        );
    };
    println!("\n| API at {rate} requests/s | requests | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    row("no browser", &without);
    row("no browser, the pipeline page's requests every 5 s", &polled);
    row("a browser on a blank tab", &blank);
    row("a console tab on an order (no polling)", &still);
    row("a console tab on the pipeline page", &with);
    let ratio = |a: &[Duration], b: &[Duration], q| {
        percentile(a, q).as_secs_f64() / percentile(b, q).as_secs_f64()
    };
    println!(
        "\npipeline tab / no browser: p50 {:.2}, p99 {:.2}; pipeline tab / blank tab: p50 {:.2}, p99 {:.2}; \
         its requests alone / no browser: p50 {:.2}, p99 {:.2}",
        ratio(&with, &without, 0.5),
        ratio(&with, &without, 0.99),
        ratio(&with, &blank, 0.5),
        ratio(&with, &blank, 0.99),
        ratio(&polled, &without, 0.5),
        ratio(&polled, &without, 0.99)
    );
    Ok(())
}

/// Orders of the phase's own: each capture makes an order's history longer, and a phase on
/// the orders of the phases before it would read longer histories than they did.
async fn fresh_orders(app: &TestApp) -> anyhow::Result<Vec<Uuid>> {
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(app.place_order("cus_console_bench").await?);
    }
    Ok(orders)
}

/// What the pipeline page asks every 5 s, until aborted.
async fn poll_like_the_pipeline_page(http: reqwest::Client, base: String) -> anyhow::Result<()> {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        let (relay, projections) = tokio::join!(
            http.get(format!("{base}/v1/admin/relay")).send(),
            http.get(format!("{base}/v1/admin/projections")).send()
        );
        expect_status(relay?, 200).await?;
        expect_status(projections?, 200).await?;
    }
}

/// `rate` requests a second for `seconds`, alternating a capture and a read of an order;
/// each one's latency.
async fn load(
    app: &TestApp,
    orders: &[Uuid],
    rate: u64,
    seconds: u64,
) -> anyhow::Result<Vec<Duration>> {
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut requests = Vec::new();
    let mut sent = 0usize;
    while Instant::now() < deadline {
        ticker.tick().await;
        let order_id = orders[sent % orders.len()];
        let request = if sent.is_multiple_of(2) {
            let body = serde_json::json!({
                "payment_id": format!("pay_{}", Uuid::now_v7().simple()),
                "amount_minor": 1, "method": "card",
            });
            (app.http.post(app.url(&format!("/v1/orders/{order_id}/payments"))).json(&body), 201)
        } else {
            (app.http.get(app.url(&format!("/v1/orders/{order_id}"))), 200)
        };
        requests.push(tokio::spawn(async move {
            let (request, status) = request;
            let started = Instant::now();
            expect_status(request.send().await?, status).await?;
            anyhow::Ok(started.elapsed())
        }));
        sent += 1;
    }
    let mut latencies = Vec::with_capacity(requests.len());
    for request in requests {
        latencies.push(request.await??);
    }
    Ok(latencies)
}
