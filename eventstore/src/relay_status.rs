//! What the relay is doing, for `/v1/admin/relay`, `ledger relay status` and metrics: its
//! in-process state, and its durable state in the database (checkpoint, backlog, and the
//! age of the oldest open transaction, which holds the gap-safe horizon back).

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::position::CommitPosition;
use crate::StoreError;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayRole {
    #[default]
    Starting,
    /// Another relay holds the lock; this one waits to take over.
    Standby,
    /// This relay publishes.
    Active,
    Stopped,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerHealth {
    #[default]
    Unknown,
    Reachable,
    Unreachable,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RelayStatus {
    pub role: RelayRole,
    pub broker: BrokerHealth,
    pub last_error: Option<String>,
    /// Events this process published (a republished batch counts again).
    pub published_events: u64,
    pub published_batches: u64,
    /// Looks at the store for new events (each one reads up to a batch).
    pub reads: u64,
    pub last_published_at: Option<DateTime<Utc>>,
    pub checkpoint: Option<CommitPosition>,
}

/// Shared, cheaply cloned view of one relay's state.
#[derive(Clone, Debug, Default)]
pub struct RelayStatusHandle(Arc<Mutex<RelayStatus>>);

impl RelayStatusHandle {
    fn lock(&self) -> MutexGuard<'_, RelayStatus> {
        // A panic while holding this lock leaves plain counters behind; keep using them.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> RelayStatus {
        self.lock().clone()
    }

    pub fn broker(&self) -> BrokerHealth {
        self.lock().broker
    }

    pub(crate) fn set_role(&self, role: RelayRole) {
        self.lock().role = role;
    }

    pub(crate) fn set_error(&self, role: RelayRole, error: String) {
        let mut status = self.lock();
        status.role = role;
        status.last_error = Some(error);
    }

    pub(crate) fn read(&self) {
        self.lock().reads += 1;
    }

    pub(crate) fn set_checkpoint(&self, checkpoint: CommitPosition) {
        self.lock().checkpoint = Some(checkpoint);
    }

    pub(crate) fn broker_unreachable(&self, error: String) {
        let mut status = self.lock();
        status.broker = BrokerHealth::Unreachable;
        status.last_error = Some(error);
    }

    pub(crate) fn published(&self, events: usize, checkpoint: CommitPosition) {
        let mut status = self.lock();
        status.broker = BrokerHealth::Reachable;
        status.published_events += events as u64;
        status.published_batches += 1;
        status.last_published_at = Some(Utc::now());
        status.checkpoint = Some(checkpoint);
    }
}

/// The relay's durable state, read from the database.
#[derive(Clone, Debug, Serialize)]
pub struct RelayReport {
    pub name: String,
    pub checkpoint: Option<CommitPosition>,
    pub published_events: i64,
    pub last_published_at: Option<DateTime<Utc>>,
    /// Events committed (or in flight) after the checkpoint: not yet published.
    pub backlog: i64,
    /// Age of the oldest transaction that has written something; while it runs, nothing
    /// committed after it can be published (the gap-safe horizon).
    pub oldest_open_transaction_seconds: Option<f64>,
}

const REPORT: &str = "
    SELECT c.tx_id::text::bigint, c.global_position, c.published_events, c.last_published_at,
           (SELECT count(*) FROM events e
             WHERE c.tx_id IS NULL
                OR (e.tx_id, e.global_position) > (c.tx_id, c.global_position)),
           (SELECT extract(epoch FROM now() - min(xact_start))::float8
              FROM pg_stat_activity WHERE backend_xid IS NOT NULL)
      FROM (SELECT 1) AS one
      LEFT JOIN relay_checkpoints c ON c.name = $1";

pub async fn relay_report(
    pool: &deadpool_postgres::Pool,
    name: &str,
) -> Result<RelayReport, StoreError> {
    let client = pool.get().await?;
    let row = client.query_one(REPORT, &[&name]).await?;
    let tx_id: Option<i64> = row.try_get(0)?;
    let global_position: Option<i64> = row.try_get(1)?;
    Ok(RelayReport {
        name: name.to_owned(),
        checkpoint: tx_id
            .zip(global_position)
            .map(|(tx_id, global_position)| CommitPosition { tx_id, global_position }),
        published_events: row.try_get::<_, Option<i64>>(2)?.unwrap_or(0),
        last_published_at: row.try_get(3)?,
        backlog: row.try_get(4)?,
        oldest_open_transaction_seconds: row.try_get(5)?,
    })
}
