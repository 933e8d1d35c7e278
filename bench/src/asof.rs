//! Point-in-time query latency, after the load (so that the projections have applied
//! every cut asked about and the figure is the query's, not a wait for the watermark):
//!
//! - `GET /v1/payments?at_position=P&limit=50`, P drawn uniformly between the lowest and
//!   highest positions the load's commands answered: a page of the temporal payments
//!   read model as of that event.
//! - `GET /v1/orders/{id}?as_of=T` for a random order placed during the load, T drawn
//!   between its placement and the end of the load: the aggregate rebuilt from the event
//!   store up to that time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::SecondsFormat;
use serde::Serialize;

use super::client::Api;
use super::load::Placed;
use super::stats::{Latencies, Summary};

/// Queries in flight at once.
pub const CONCURRENCY: usize = 8;

#[derive(Clone, Debug, Serialize)]
pub struct AsOfReport {
    pub payments_at_position: QueryReport,
    pub order_as_of: QueryReport,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct QueryReport {
    /// Latency of the queries answered 200.
    pub latency: Summary,
    pub outcomes: BTreeMap<String, u64>,
}

struct Tally {
    latency: Latencies,
    outcomes: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> anyhow::Result<Tally> {
        Ok(Tally { latency: Latencies::precise()?, outcomes: BTreeMap::new() })
    }

    fn report(&self) -> QueryReport {
        QueryReport { latency: self.latency.summary(), outcomes: self.outcomes.clone() }
    }
}

/// Runs `queries` as-of queries, half of each kind.
pub async fn run(
    api: &Api,
    queries: u32,
    positions: (i64, i64),
    placed: &[Placed],
    end: chrono::DateTime<chrono::Utc>,
    seed: u64,
) -> anyhow::Result<AsOfReport> {
    let tallies = Arc::new(Mutex::new((Tally::new()?, Tally::new()?)));
    let placed = Arc::new(placed.to_vec());
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let workers: Vec<_> = (0..CONCURRENCY as u64)
        .map(|worker| {
            let (api, tallies, placed, next) =
                (api.clone(), Arc::clone(&tallies), Arc::clone(&placed), Arc::clone(&next));
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(worker));
                loop {
                    let query = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if query >= queries || crate::interrupt::interrupted() {
                        return;
                    }
                    let by_position = query % 2 == 0 || placed.is_empty();
                    let path = if by_position {
                        let position = rng.i64(positions.0..=positions.1);
                        format!("/v1/payments?at_position={position}&limit=50")
                    } else {
                        let order = &placed[rng.usize(0..placed.len())];
                        let span = (end - order.at).num_microseconds().unwrap_or(0).max(0);
                        let at = order.at + chrono::Duration::microseconds(rng.i64(0..=span));
                        let at = at.to_rfc3339_opts(SecondsFormat::Micros, true);
                        format!("/v1/orders/{}?as_of={at}", order.order_id)
                    };
                    let answer = api.get(&path).await;
                    let mut guard = tallies.lock().unwrap_or_else(PoisonError::into_inner);
                    let tally = if by_position { &mut guard.0 } else { &mut guard.1 };
                    let outcome = match answer {
                        Ok(answer) => {
                            if answer.status.as_u16() == 200 {
                                tally.latency.record(answer.latency);
                            }
                            answer.outcome()
                        }
                        Err(_) => "transport".to_owned(),
                    };
                    *tally.outcomes.entry(outcome).or_default() += 1;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let guard = tallies.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(AsOfReport { payments_at_position: guard.0.report(), order_as_of: guard.1.report() })
}
