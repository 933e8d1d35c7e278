//! A projection's new generation: its tables in a schema of their own (`rebuild_<name>`),
//! created empty without indexes, then given the live tables' keys and indexes in one
//! sort each, analysed, and vacuumed where index-only scans need the visibility map.

use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool, Transaction};
use eventstore::StoreError;

use super::error::RebuildError;
use super::writer::Writer;
use crate::error::ApplyError;
use crate::projection::Projection;

/// The tables besides the read model's own that hold a projection's bookkeeping, keyed by
/// projection name.
pub(crate) const BOOKKEEPING: &[&str] = &[STREAMS, "projection_status", "projection_watermarks"];
/// The bookkeeping table with one row per stream, partitioned by projection.
pub(crate) const STREAMS: &str = "projection_streams";

/// The schema a projection's new generation is built in.
pub fn schema_of(projection: &str) -> String {
    format!("rebuild_{projection}")
}

/// How the bulk load's batches commit: without waiting for the WAL to reach the disk. A
/// crash loses an unfinished generation either way (a rebuild starts over), and the load's
/// last rows commit durably, which flushes every earlier record with their own. (The index
/// builds commit durably: an asynchronous commit marks the commit-log group it shares
/// with the load's last transactions as not yet flushed, and a vacuum beside the builds
/// could then not mark the loaded pages all-visible.)
pub(crate) const BULK_COMMITS: &str = "synchronous_commit = off";

/// The bulk phase's statements (a count of the store, index builds over millions of rows,
/// vacuums) take as long as the history is big: the pool's statement timeout, set for
/// requests, would cancel them on a large store. A rebuild is stopped by cancelling it.
pub(crate) const NO_TIMEOUT: &str = "statement_timeout = 0";

/// A transaction that reads and writes the new generation (and everything else, such as
/// the events, in `public`).
pub(crate) async fn in_generation<'a>(
    client: &'a mut Writer,
    schema: &str,
) -> Result<Transaction<'a>, RebuildError> {
    let transaction = client.transaction().await?;
    transaction.batch_execute(&format!("SET LOCAL search_path = {schema}, public")).await?;
    Ok(transaction)
}

/// An empty copy of the live tables, and of the bookkeeping: columns, defaults, generated
/// columns and checks, but no indexes or keys yet ([`index_generation`] adds them once
/// the bulk load is in).
///
/// Each statement of the load commits on its own. (Loading in the transaction that creates
/// the tables would let `COPY … FREEZE` skip the vacuum, but that transaction's id would
/// hold the gap-safe horizon, and with it the relay, for the whole replay.)
pub(crate) async fn create_generation<P: Projection>(
    client: &Writer,
    projection: &P,
    schema: &str,
) -> Result<(), RebuildError> {
    let name = projection.name();
    let mut ddl = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};");
    for table in projection.tables().iter().chain(BOOKKEEPING) {
        ddl.push_str(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL EXCLUDING INDEXES);"
        ));
    }
    // The swap attaches this table as the projection's partition; with the partition's
    // bound as a check, attaching needs no scan to prove it.
    ddl.push_str(&format!(
        "ALTER TABLE {schema}.{STREAMS} ADD CONSTRAINT {STREAMS}_bound CHECK (projection = '{name}');"
    ));
    client.batch_execute(&ddl).await?;
    Ok(())
}

/// The live table a generation's `table` replaces: the projection's own partition of the
/// applied versions, the table itself otherwise.
pub(crate) fn live_name(table: &str, projection: &str) -> String {
    if table == STREAMS {
        format!("{STREAMS}_{projection}")
    } else {
        table.to_owned()
    }
}

/// Gives the new generation the live tables' keys and indexes, with the same names: every
/// index is built, a few at a time on connections of their own (one sort each; building
/// several at once overlaps their single-threaded phases), and every table analysed; then
/// primary and unique keys are attached to their indexes and the foreign keys added
/// (re-pointed at the new generation).
pub(crate) async fn index_generation<P: Projection>(
    pool: &Pool,
    client: &mut Writer,
    projection: &P,
    schema: &str,
) -> Result<(), RebuildError> {
    /// Index builds at once. The longest build (the covering index over every version)
    /// decides when the phase ends; on two cores a third build beside it made the phase
    /// longer, not shorter (docs/performance.md).
    const BUILDERS: usize = 2;
    const INDEXES: &str = "
        SELECT c.relname, i.indisunique, regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', ''),
               k.contype::text, pg_relation_size(i.indexrelid), i.indnkeyatts < i.indnatts
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          LEFT JOIN pg_constraint k
                 ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u')
         WHERE i.indrelid = ('public.' || $1)::regclass";
    const FOREIGN_KEYS: &str = "
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = ('public.' || $1)::regclass AND contype = 'f'";
    // The read model's own tables, biggest (last) first, then the bookkeeping.
    let tables: Vec<&str> = projection.tables().iter().rev().chain(BOOKKEEPING).copied().collect();
    let mut builds = Vec::new();
    let mut keys = String::new();
    // Tables with a covering index, which is there for index-only scans.
    let mut covered = Vec::new();
    for table in &tables {
        for index in client.query(INDEXES, &[&live_name(table, projection.name())]).await? {
            let name: String = index.try_get(0)?;
            let unique: bool = index.try_get(1)?;
            let definition: String = index.try_get(2)?;
            let constraint: Option<String> = index.try_get(3)?;
            if index.try_get::<_, bool>(5)? && !covered.contains(table) {
                covered.push(*table);
            }
            let unique = if unique { "UNIQUE " } else { "" };
            builds.push((
                index.try_get::<_, i64>(4)?,
                format!("CREATE {unique}INDEX {name} ON {schema}.{table} USING {definition}"),
            ));
            let kind = match constraint.as_deref() {
                Some("p") => "PRIMARY KEY",
                Some(_) => "UNIQUE",
                None => continue,
            };
            keys.push_str(&format!(
                "ALTER TABLE {schema}.{table} ADD CONSTRAINT {name} {kind} USING INDEX {name};"
            ));
        }
    }
    for table in &tables {
        for key in client.query(FOREIGN_KEYS, &[&live_name(table, projection.name())]).await? {
            let (name, definition): (String, String) = (key.try_get(0)?, key.try_get(1)?);
            // Printed with `public` on the search path, the referenced table is unqualified,
            // so it resolves to the new generation's.
            keys.push_str(&format!(
                "ALTER TABLE {schema}.{table} ADD CONSTRAINT {name} {definition};"
            ));
        }
    }

    // The longest builds first, so that they do not end up running alone at the end: by
    // the size of the index they replace.
    builds.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    // Sort in memory rather than in temporary files when it can, in this process: the
    // builds already run side by side, and a parallel build's workers would only add their
    // merge and shared temporary files.
    let mut jobs: Vec<String> = builds
        .into_iter()
        .map(|(_, build)| {
            format!(
                "BEGIN; SET LOCAL maintenance_work_mem = '256MB'; SET LOCAL {NO_TIMEOUT};
                 SET LOCAL max_parallel_maintenance_workers = 0; {build}; COMMIT"
            )
        })
        .collect();
    // Statistics for the planner, and, where a covering index is there for index-only
    // scans, the visibility map that lets them skip the table: a table loaded in bulk has
    // neither until autovacuum comes by. (Elsewhere a vacuum would only set hint bits, which
    // the first index build has set.) Queued after every build, so they run beside the
    // last ones; a table's waits for the builds on it.
    jobs.extend(tables.iter().map(|table| {
        let vacuum = if covered.contains(table) { "VACUUM (ANALYZE)" } else { "ANALYZE" };
        format!("{vacuum} {schema}.{table}")
    }));

    let builders = Arc::new(tokio::sync::Semaphore::new(BUILDERS));
    let mut running = tokio::task::JoinSet::new();
    for job in jobs {
        // Taken here, so the jobs start in the order queued (the biggest tables first).
        let turn = builders.clone().acquire_owned().await;
        let pool = pool.clone();
        running.spawn(async move {
            let _turn = turn;
            let client = pool.get().await.map_err(StoreError::from)?;
            // A vacuum cannot run in a transaction, so its timeout is lifted for the
            // session and put back after (a build lifts it in its own transaction).
            client.batch_execute(&format!("SET {NO_TIMEOUT}")).await?;
            client.batch_execute(&job).await?;
            client.batch_execute("RESET statement_timeout").await?;
            Ok::<_, RebuildError>(())
        });
    }
    while let Some(built) = running.join_next().await {
        built.map_err(|e| ApplyError::Inconsistent(format!("an index build: {e}")))??;
    }
    for table in &covered {
        make_all_visible(client, &format!("{schema}.{table}")).await?;
    }
    let transaction = in_generation(client, schema).await?;
    transaction.batch_execute(&keys).await?;
    transaction.commit().await?;
    Ok(())
}

/// Vacuums `table` again until every page is marked all-visible, a few times at most.
///
/// A vacuum leaves a page unmarked while any transaction might still not see its rows, or
/// while their commit might still be lost. The second can happen after the load's last
/// commit was flushed: another session's asynchronous commit that shares a commit-log
/// group with the load's last transactions makes that group wait for the WAL again (for up
/// to the WAL writer's delay). Index-only scans need the mark, so on a short count this
/// flushes the WAL (a durable commit flushes everything before it) and vacuums again.
async fn make_all_visible(client: &Writer, table: &str) -> Result<(), RebuildError> {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        let row = client
            .query_one(
                "SELECT relpages, relallvisible FROM pg_class WHERE oid = $1::text::regclass",
                &[&table],
            )
            .await?;
        let (pages, visible): (i32, i32) = (row.try_get(0)?, row.try_get(1)?);
        if visible >= pages {
            return Ok(());
        }
        tracing::debug!(table, pages, visible, attempt, "vacuuming again for the visibility map");
        client.batch_execute("BEGIN; SELECT pg_current_xact_id(); COMMIT").await?;
        tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
        client.batch_execute(&format!("VACUUM {table}")).await?;
    }
    Ok(())
}

/// Whether `projection`'s rebuild schema holds the same rows as its live tables, table by
/// table (for tests and investigation).
pub async fn generation_equals_live<P: Projection>(
    client: &impl GenericClient,
    projection: &P,
) -> Result<bool, RebuildError> {
    let schema = schema_of(projection.name());
    for table in projection.tables() {
        let differing: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM ((SELECT * FROM public.{table} EXCEPT ALL SELECT * FROM {schema}.{table})
                      UNION ALL (SELECT * FROM {schema}.{table} EXCEPT ALL SELECT * FROM public.{table})) d"
                ),
                &[],
            )
            .await?
            .try_get(0)?;
        if differing != 0 {
            return Ok(false);
        }
    }
    Ok(true)
}
