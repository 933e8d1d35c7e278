//! End-to-end latency under a steady load, for the benches: a stream of captures at a
//! fixed rate, and for each the time from its 201 until the payments read model applied
//! its version. One watcher polls the database every millisecond for all commands still
//! pending, so watching adds one small query per millisecond.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::TestApp;

/// Sends captures at `rate` per second for `seconds` to `app` (which runs every role);
/// returns each one's latency, sorted.
pub async fn latencies(app: &TestApp, rate: u64, seconds: u64) -> anyhow::Result<Vec<Duration>> {
    // Timed from when the bus feeds the projections, not the catch-up from the store
    // (which, half a second late, would be timed as the bus's path).
    app.consumers_fed().await?;
    let mut orders = Vec::new();
    for _ in 0..50 {
        orders.push(app.place_order("cus_latency").await?);
    }
    // Warm-up: the consumer groups have joined and caught up before the clock runs.
    for order_id in &orders {
        app.payments(*order_id, 1).await?;
    }
    let pending: Arc<Mutex<Vec<(Uuid, i32, Instant)>>> = Arc::default();
    let sending = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (pending, sending) = (pending.clone(), sending.clone());
        let client = app.database.client().await?;
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut every_millisecond = tokio::time::interval(Duration::from_millis(1));
            loop {
                every_millisecond.tick().await;
                let waiting: Vec<(Uuid, i32, Instant)> =
                    pending.lock().map(|p| p.clone()).unwrap_or_default();
                if waiting.is_empty() && !sending.load(Ordering::SeqCst) {
                    return anyhow::Ok(latencies);
                }
                if !waiting.is_empty() {
                    let ids: Vec<Uuid> = waiting.iter().map(|(id, _, _)| *id).collect();
                    let rows = client
                        .query(
                            "SELECT stream_id, stream_version FROM projection_streams
                              WHERE projection = 'payments' AND stream_id = ANY($1)",
                            &[&ids],
                        )
                        .await?;
                    let applied: HashMap<Uuid, i32> =
                        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                    let now = Instant::now();
                    if let Ok(mut pending) = pending.lock() {
                        pending.retain(|(id, version, acknowledged)| {
                            let done = applied.get(id).is_some_and(|a| a >= version);
                            if done {
                                latencies.push(now - *acknowledged);
                            }
                            !done
                        });
                    }
                }
            }
        })
    };
    let interval = Duration::from_micros(1_000_000 / rate.max(1));
    let mut ticker = tokio::time::interval(interval);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0usize;
    while Instant::now() < deadline {
        ticker.tick().await;
        let order_id = orders[sent % orders.len()];
        let response = app.capture(order_id, &format!("pay_{sent}"), 1).await?;
        let acknowledged = Instant::now();
        let version = TestApp::version_of(response).await?;
        if let Ok(mut pending) = pending.lock() {
            pending.push((order_id, i32::try_from(version)?, acknowledged));
        }
        sent += 1;
    }
    sending.store(false, Ordering::SeqCst);
    let mut latencies = tokio::time::timeout(Duration::from_secs(60), watcher).await???;
    latencies.sort();
    Ok(latencies)
}
