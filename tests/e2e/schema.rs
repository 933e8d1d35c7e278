//! `migrations/schema.sql` is the schema the migrations produce, dumped: a newcomer reads
//! the live schema in one file, and this spec keeps it true. After adding a migration, run
//! `UPDATE_SCHEMA=1 cargo test -p ledger-tests --test e2e schema` and commit the result.

use std::path::PathBuf;

use anyhow::Context;
use ledger_tests::TestDatabase;

/// The dump, without the lines that differ between runs and machines: the versions of
/// the server and of `pg_dump`, and the random key of recent `pg_dump`s' `\restrict`.
fn normalised(dump: &str) -> String {
    const VARYING: [&str; 4] = ["-- Dumped from", "-- Dumped by", "\\restrict ", "\\unrestrict "];
    dump.lines()
        .filter(|line| !VARYING.iter().any(|prefix| line.starts_with(prefix)))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[tokio::test]
async fn the_committed_schema_is_what_the_migrations_make() -> anyhow::Result<()> {
    let database = TestDatabase::create().await?;
    let output = tokio::process::Command::new("pg_dump")
        .args(["--schema-only", "--no-owner", "--no-privileges"])
        .args(["--exclude-table", "refinery_schema_history"])
        .args(["--dbname", &database.url])
        .output()
        .await
        .context("running pg_dump (scripts/test installs the PostgreSQL client)")?;
    anyhow::ensure!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dumped = normalised(&String::from_utf8(output.stdout)?);
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations/schema.sql");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&file, &dumped)?;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == dumped,
        "migrations/schema.sql is not the migrated schema; regenerate it with \
         UPDATE_SCHEMA=1 cargo test -p ledger-tests --test e2e schema"
    );
    Ok(())
}
