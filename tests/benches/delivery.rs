//! Notification delivery: the dispatcher's rate against a raw send loop through the same
//! crate to the same server in the same run (email: lettre's pooled transport to aiosmtpd;
//! webhooks: reqwest POSTs to the in-process receiver), and the latency from a command's
//! 201 to its email arriving under a steady moderate load.
//!
//! `cargo bench -p ledger-tests --bench delivery` (`BENCH_MESSAGES`, default 1000;
//! `BENCH_CONCURRENCY`, default 16; `BENCH_RATE` orders/s for the latency, default 20).

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::measure::{env_or, percentile};
use delivery::{Channel, DeliverySettings, DeliveryStart, Dispatcher, DispatcherStatus};
use delivery_channels::{
    ChannelSettings, SmtpChannel, SmtpSettings, WebhookChannel, WebhookSecret,
};
use futures_util::stream::{self, StreamExt};
use ledger::Role;
use ledger_tests::webhook::generate_secret;
use ledger_tests::{poll_until, TestApp, TestReceiver, TestSmtp};
use lettre::message::header::ContentType;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(300);
const SENDER: &str = "orders@shop.example";

/// An app with every role but the dispatcher and `count` placed orders, each with its
/// notification in the read model.
async fn with_notifications(count: usize) -> anyhow::Result<TestApp> {
    let app = TestApp::spawn_all(&ledger_tests::kafka_brokers()).await?;
    stream::iter(0..count)
        .map(|n| {
            let app = &app;
            async move { app.place_order(&format!("cus_bench_{n}")).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client = app.database.client().await?;
    poll_until(DEADLINE, "every notification in the read model", || async {
        let projected: i64 =
            client.query_one("SELECT count(*) FROM notifications", &[]).await?.get(0);
        Ok((projected as usize >= count).then_some(()))
    })
    .await?;
    Ok(app)
}

/// Runs a dispatcher over `channel` until it delivered `count` messages; returns the rate.
async fn dispatch(app: &TestApp, channel: Arc<dyn Channel>, count: usize) -> anyhow::Result<f64> {
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 16);
    let settings = DeliverySettings {
        start: DeliveryStart::All,
        concurrency,
        poll_interval: Duration::from_millis(5),
        ..DeliverySettings::default()
    };
    let status = watch::Sender::new(DispatcherStatus::default());
    let mut delivered = status.subscribe();
    let stop = CancellationToken::new();
    let dispatcher = Dispatcher::new(app.database.pool()?, vec![channel], settings, status);
    let started = Instant::now();
    let running = tokio::spawn(dispatcher.run(stop.clone()));
    tokio::time::timeout(DEADLINE, delivered.wait_for(|s| s.delivered as usize >= count)).await??;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    running.await?;
    Ok(rate)
}

fn mail(n: usize) -> anyhow::Result<Message> {
    Ok(Message::builder()
        .from(SENDER.parse()?)
        .to(format!("cus_raw_{n}@example.com").parse()?)
        .subject("Your order is confirmed")
        .message_id(Some(format!("<{}@shop.example>", Uuid::new_v4())))
        .date_now()
        .header(ContentType::TEXT_PLAIN)
        .body("Thank you for your order of 30.00 EUR: 2 × BOOK-1, 1 × PEN-7.".to_owned())?)
}

async fn email() -> anyhow::Result<String> {
    let count: usize = env_or("BENCH_MESSAGES", 1000);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 16);
    let smtp = TestSmtp::start().await?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp.url())?
        .pool_config(PoolConfig::new().max_size(concurrency as u32))
        .build();
    let started = Instant::now();
    let sent: Vec<anyhow::Result<()>> = stream::iter(0..count)
        .map(|n| {
            let transport = &transport;
            async move {
                transport.send(mail(n)?).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    sent.into_iter().collect::<anyhow::Result<()>>()?;
    let raw = count as f64 / started.elapsed().as_secs_f64();

    let app = with_notifications(count).await?;
    let settings = SmtpSettings::parse(&smtp.url(), SENDER).map_err(anyhow::Error::msg)?;
    let channel = SmtpChannel::new(&settings, concurrency as u32).map_err(anyhow::Error::msg)?;
    let dispatched = dispatch(&app, Arc::new(channel), count).await?;
    Ok(format!(
        "email, {count} messages, {concurrency} at once: raw lettre loop {raw:.0}/s, \
         dispatcher {dispatched:.0}/s = {:.2} × raw",
        dispatched / raw
    ))
}

async fn webhooks() -> anyhow::Result<String> {
    let count: usize = env_or("BENCH_MESSAGES", 1000);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 16);
    let secret = generate_secret();
    let receiver = TestReceiver::start(&secret).await?;
    let http = reqwest::Client::new();
    let url = receiver.url("/raw");
    let started = Instant::now();
    let sent: Vec<anyhow::Result<()>> = stream::iter(0..count)
        .map(|n| {
            let (http, url) = (&http, &url);
            async move {
                let body = serde_json::json!({"type": "notification.order_placed", "data": {
                    "id": Uuid::new_v4(), "n": n, "subject": "Your order is confirmed",
                    "body": "Thank you for your order of 30.00 EUR: 2 × BOOK-1, 1 × PEN-7."}});
                http.post(url).json(&body).send().await?.error_for_status()?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    sent.into_iter().collect::<anyhow::Result<()>>()?;
    let raw = count as f64 / started.elapsed().as_secs_f64();

    let app = with_notifications(count).await?;
    let channel = WebhookChannel::new(
        "webhook".to_owned(),
        receiver.url("/hooks"),
        WebhookSecret::parse(&secret).map_err(anyhow::Error::msg)?,
        Duration::from_secs(10),
    );
    let dispatched = dispatch(&app, Arc::new(channel), count).await?;
    Ok(format!(
        "webhooks, {count} messages, {concurrency} at once: raw reqwest loop {raw:.0}/s, \
         dispatcher {dispatched:.0}/s = {:.2} × raw",
        dispatched / raw
    ))
}

/// Orders placed at a steady rate with every role and the dispatcher; the email of each is
/// timed from the 201 to its arrival (the sink's file, looked at every 2 ms).
async fn latency() -> anyhow::Result<String> {
    let rate: f64 = env_or("BENCH_RATE", 20.0);
    let orders = (rate * 10.0) as usize;
    let smtp = TestSmtp::start().await?;
    let channels = ChannelSettings {
        smtp: Some(SmtpSettings::parse(&smtp.url(), SENDER).map_err(anyhow::Error::msg)?),
        ..ChannelSettings::default()
    };
    let app = TestApp::spawn_with(move |settings| {
        settings.roles = Role::ALL.into_iter().chain([Role::Dispatcher]).collect();
        settings.channels = channels.clone();
    })
    .await?;
    let watcher = {
        let stop = CancellationToken::new();
        let seen_stop = stop.clone();
        let dir = smtp.dir().to_owned();
        let task = tokio::spawn(async move {
            let mut seen: HashMap<String, Instant> = HashMap::new();
            let file = dir.join("messages.jsonl");
            // The sink appends each mail to the file as it accepts it: read it every 2 ms.
            let mut looks = tokio::time::interval(Duration::from_millis(2));
            while !seen_stop.is_cancelled() {
                looks.tick().await;
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                for line in text.lines() {
                    if let Ok(mail) = serde_json::from_str::<serde_json::Value>(line) {
                        let to = mail["rcpt_tos"][0].as_str().unwrap_or_default().to_owned();
                        seen.entry(to).or_insert_with(Instant::now);
                    }
                }
            }
            seen
        });
        (stop, task)
    };
    let mut acknowledged = HashMap::new();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    for n in 0..orders {
        ticks.tick().await;
        let customer = format!("cus_latency_{n}");
        app.place_order(&customer).await?;
        acknowledged.insert(format!("{customer}@example.com"), Instant::now());
    }
    smtp.wait_for(orders, DEADLINE).await?;
    let (stop, task) = watcher;
    stop.cancel();
    let seen = task.await?;
    let mut latencies: Vec<Duration> = acknowledged
        .iter()
        .filter_map(|(to, at)| seen.get(to).map(|arrived| arrived.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    Ok(format!(
        "201 → email received at {rate} orders/s, {} orders: p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let lines = [email().await?, webhooks().await?, latency().await?];
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
