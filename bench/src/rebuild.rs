//! Rebuild rate, through the admin API: `POST /v1/admin/projections/{name}/rebuild`, then
//! poll `GET /v1/admin/projections` until that rebuild's state is final. The rebuild
//! replays the whole event store (not just the bench's events) into a new generation
//! and swaps it in; the live read model keeps serving meanwhile.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::Api;

/// Longest a rebuild is waited for.
const PATIENCE: Duration = Duration::from_secs(30 * 60);

#[derive(Clone, Debug, Serialize)]
pub struct RebuildReport {
    pub projection: String,
    /// `done`, `failed` or `cancelled`.
    pub state: String,
    pub replayed: u64,
    /// The ledger's own figure: events replayed per second of replay.
    pub events_per_second: f64,
    /// From the request to the final state, swap included.
    pub wall_seconds: f64,
    /// `replayed ÷ wall_seconds`.
    pub wall_events_per_second: f64,
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    projection: String,
    state: String,
    #[serde(default)]
    replayed: u64,
    #[serde(default)]
    events_per_second: f64,
    started_at: Option<String>,
    error: Option<String>,
}

/// Starts a rebuild of `projection` and waits for it; `Err` says why there is no figure.
pub async fn run(api: &Api, projection: &str) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    let path = format!("/v1/admin/projections/{projection}/rebuild");
    let answer = api.admin(Method::POST, &path).await?;
    if answer.status.as_u16() != 202 {
        anyhow::bail!("POST …/{projection}/rebuild answered {}", answer.outcome());
    }
    let first: Status = serde_json::from_value(answer.body)?;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if crate::interrupt::interrupted() {
            let _ = api.admin(Method::DELETE, &path).await;
            anyhow::bail!("interrupted (the rebuild was cancelled)");
        }
        if started.elapsed() > PATIENCE {
            anyhow::bail!("the rebuild of {projection} did not finish within {PATIENCE:?}");
        }
        let answer = api.admin(Method::GET, "/v1/admin/projections").await?;
        if !answer.status.is_success() {
            anyhow::bail!("GET /v1/admin/projections answered {}", answer.outcome());
        }
        let rebuilds = answer.body.get("rebuilds").cloned().unwrap_or(Value::Null);
        let statuses: Vec<Status> = serde_json::from_value(rebuilds).unwrap_or_default();
        let Some(status) = statuses.into_iter().find(|status| {
            status.projection == projection
                && (first.started_at.is_none() || status.started_at == first.started_at)
        }) else {
            continue;
        };
        if matches!(status.state.as_str(), "done" | "failed" | "cancelled") {
            let wall_seconds = started.elapsed().as_secs_f64();
            return Ok(RebuildReport {
                projection: status.projection,
                state: status.state,
                replayed: status.replayed,
                events_per_second: status.events_per_second,
                wall_seconds,
                wall_events_per_second: status.replayed as f64 / wall_seconds.max(1e-9),
                error: status.error,
            });
        }
    }
}
