//! The ledger's schema: the ordered SQL migrations in this folder (`V001__events.sql`, …),
//! embedded at build time and applied by refinery, and `schema.sql`, the schema they
//! produce, dumped, so that a reader sees the live schema in one file (a test keeps it
//! current).
//!
//! Every process may migrate at start-up: an advisory lock makes concurrent starts take
//! turns, and the later ones find nothing left to do. A migration is history: once
//! released it is never edited (refinery refuses a database whose applied migrations
//! diverge from these), and a change is a new file.

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;

mod embedded {
    refinery::embed_migrations!(".");
}

/// Any constant would do, as long as nothing else in the database uses it.
const MIGRATION_LOCK: i64 = 0x6c65_6467_6572_0001;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("no database connection")]
    Connection(#[source] deadpool_postgres::PoolError),
    #[error("database error while migrating")]
    Database(#[from] tokio_postgres::Error),
    #[error("a migration failed")]
    Failed(#[source] refinery::Error),
}

impl MigrationError {
    /// Whether trying again later may succeed (the database was unreachable), as opposed to
    /// a migration that does not apply.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connection(_) => true,
            Self::Database(error) => error.code().is_none() || error.is_closed(),
            Self::Failed(_) => false,
        }
    }
}

/// Applies pending migrations.
pub async fn migrate(pool: &Pool) -> Result<(), MigrationError> {
    let mut client = pool.get().await.map_err(MigrationError::Connection)?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let outcome =
        embedded::migrations::runner().set_abort_divergent(true).run_async(&mut **client).await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    let report = outcome.map_err(MigrationError::Failed)?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied migration");
    }
    Ok(())
}

/// Changes whenever a migration is added or edited; the test harness names its template
/// database after it so a stale template is never reused.
pub fn fingerprint() -> String {
    let mut digest = Sha256::new();
    for migration in embedded::migrations::runner().get_migrations() {
        digest.update(migration.to_string().as_bytes());
        digest.update(migration.checksum().to_le_bytes());
    }
    digest.finalize()[..8].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// How many of the embedded migrations the database has not applied (for readiness: a
/// process built for a newer schema is not ready on an older database).
pub async fn pending(pool: &Pool) -> Result<usize, MigrationError> {
    let client = pool.get().await.map_err(MigrationError::Connection)?;
    let applied: Vec<i32> = client
        .query("SELECT version FROM refinery_schema_history", &[])
        .await
        .or_else(|error| match error.code() {
            // No history table yet: nothing applied.
            Some(&SqlState::UNDEFINED_TABLE) => Ok(Vec::new()),
            _ => Err(error),
        })?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(embedded::migrations::runner()
        .get_migrations()
        .iter()
        .filter(|migration| i32::try_from(migration.version()).is_ok_and(|v| !applied.contains(&v)))
        .count())
}
