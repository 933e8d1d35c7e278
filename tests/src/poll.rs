//! Waiting for something to become true, with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 20 ms until it returns `Some`, or fails after `deadline`.
pub async fn poll_until<T, F, Fut>(
    deadline: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    // Looks at once, then every 20 ms; a slow check delays the next look, never doubles it.
    let mut looks = tokio::time::interval(Duration::from_millis(20));
    looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        looks.tick().await;
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if started.elapsed() > deadline {
            anyhow::bail!("gave up after {deadline:?} waiting for {what}");
        }
    }
}
