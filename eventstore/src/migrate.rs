//! Schema migrations from `migrations/`, embedded at build time and applied by refinery.

use crate::StoreError;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Any constant would do, as long as nothing else in the database uses it.
const MIGRATION_LOCK: i64 = 0x6c65_6467_6572_0001;

/// Applies pending migrations. Several processes may start at once: an advisory lock makes
/// them take turns, and the later ones find nothing left to do.
pub async fn migrate(pool: &deadpool_postgres::Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let outcome =
        embedded::migrations::runner().set_abort_divergent(true).run_async(&mut **client).await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    let report = outcome.map_err(|error| StoreError::Migration(error.to_string()))?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied migration");
    }
    Ok(())
}

/// Changes whenever a migration is added or edited; the test harness names its template
/// database after it so a stale template is never reused.
pub fn migrations_fingerprint() -> String {
    let runner = embedded::migrations::runner();
    let mut fingerprint: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in runner.get_migrations() {
        for byte in migration.to_string().bytes().chain(migration.checksum().to_le_bytes()) {
            fingerprint = (fingerprint ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{fingerprint:016x}")
}

/// How many of the embedded migrations the database has not applied (for readiness: a
/// process built for a newer schema is not ready on an older database).
pub async fn pending_migrations(pool: &deadpool_postgres::Pool) -> Result<usize, StoreError> {
    let client = pool.get().await?;
    let applied: Vec<i32> = client
        .query("SELECT version FROM refinery_schema_history", &[])
        .await
        .or_else(|error| match error.code() {
            // No history table yet: nothing applied.
            Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(Vec::new()),
            _ => Err(error),
        })?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(embedded::migrations::runner()
        .get_migrations()
        .iter()
        .filter(|migration| !applied.contains(&(migration.version() as i32)))
        .count())
}
