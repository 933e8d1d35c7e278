//! The stall scenario: transactions that cannot append events, held open in the middle of
//! the load. One writes a table in another database of the same server (another
//! application's batch job), one writes a scratch table in the ledger's own database and
//! stays idle in transaction (a forgotten `psql` session). Neither may hold the read side
//! back; the end-to-end probes accepted while they are open are reported apart from the
//! others, so the two can be compared in one run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

/// The other application's database, created when missing and left for the next run.
const OTHER_DATABASE: &str = "ledger_bench_other_application";
/// A scratch table of the bench's own in the ledger's database, dropped afterwards.
const SCRATCH_TABLE: &str = "ledger_bench_held_scratch";

/// When the held transactions were open.
#[derive(Debug, Default)]
pub struct HoldWindow {
    window: Mutex<Option<(Instant, Option<Instant>)>>,
}

impl HoldWindow {
    /// Whether `at` falls while the transactions were open.
    pub fn contains(&self, at: Instant) -> bool {
        let window = *self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        window.is_some_and(|(from, to)| at >= from && to.is_none_or(|to| at < to))
    }

    fn set(&self, value: (Instant, Option<Instant>)) {
        *self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(value);
    }
}

/// Connects to `database` on the server of `url` (`None`: the URL's own database).
async fn connect(url: &str, database: Option<&str>) -> anyhow::Result<tokio_postgres::Client> {
    let mut connector = eventstore::Connector::new(url).context("--database-url")?;
    if let Some(database) = database {
        connector.config_mut().dbname(database);
    }
    let (client, connection) =
        connector.connect().await.context("connecting for the held transactions")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Waits `after`, then holds both transactions for `hold`, recording the window.
pub async fn hold(
    database_url: &str,
    after: Duration,
    hold: Duration,
    window: &HoldWindow,
) -> anyhow::Result<()> {
    let ledger = connect(database_url, None).await?;
    let exists = ledger
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&OTHER_DATABASE])
        .await?
        .is_some();
    if !exists {
        ledger.batch_execute(&format!("CREATE DATABASE {OTHER_DATABASE}")).await?;
    }
    let other = connect(database_url, Some(OTHER_DATABASE)).await?;
    other.batch_execute("CREATE TABLE IF NOT EXISTS batch_job (n int)").await?;
    ledger.batch_execute(&format!("CREATE TABLE IF NOT EXISTS {SCRATCH_TABLE} (n int)")).await?;

    tokio::time::sleep(after).await;
    other.batch_execute("BEGIN; INSERT INTO batch_job VALUES (1)").await?;
    ledger.batch_execute(&format!("BEGIN; INSERT INTO {SCRATCH_TABLE} VALUES (1)")).await?;
    let from = Instant::now();
    window.set((from, None));
    eprintln!("holding a write transaction in {OTHER_DATABASE} and one idle in the ledger's database for {hold:?}");
    tokio::time::sleep(hold).await;
    window.set((from, Some(Instant::now())));
    other.batch_execute("ROLLBACK").await?;
    ledger.batch_execute(&format!("ROLLBACK; DROP TABLE {SCRATCH_TABLE}")).await?;
    Ok(())
}
