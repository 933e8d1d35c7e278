//! The swap: one transaction that makes the new generation the live one.

use eventstore::position::CommitPosition;

use super::error::RebuildError;
use super::generation::{in_generation, live_name, BOOKKEEPING, STREAMS};
use super::tail::apply_next;
use super::target::Target;
use super::writer::Writer;
use crate::apply::APPLY_LOCK_EXCLUSIVE;
use crate::projection::Projection;
use crate::watermark;

/// Makes the new generation the live one, in one transaction. The replay has read the
/// store up to `after`.
pub(crate) async fn swap<P: Projection>(
    client: &mut Writer,
    projection: &P,
    schema: &str,
    mut after: CommitPosition,
    batch_size: i64,
) -> Result<(), RebuildError> {
    let name = projection.name();
    let retired = format!("retired_{name}");
    let transaction = in_generation(client, schema).await?;
    // No live batch runs from here to the commit.
    transaction.execute(APPLY_LOCK_EXCLUSIVE, &[&name]).await?;
    let tables = projection.tables();
    let live: Vec<String> = tables.iter().map(|t| format!("public.{t}")).collect();
    transaction
        .batch_execute(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", live.join(", ")))
        .await?;

    // Everything the live generation applied must be in the new one. The live workers
    // apply only what the relay published, which it reads in this same gap-safe order, so
    // all of it is below the horizon now: reading on from where the replay stopped brings
    // the new generation at least as far. This costs the few events committed since the
    // catch-up, not a comparison of every order's applied version, which grows with the
    // history while the readers wait. Whatever the new generation has beyond the live
    // one, the live workers skip as already applied.
    while apply_next(&transaction, projection, Target::Live, &mut after, batch_size).await?
        == batch_size.unsigned_abs() as usize
    {}
    watermark::advance(&transaction, name).await?;

    let mut ddl = format!("DROP SCHEMA IF EXISTS {retired} CASCADE; CREATE SCHEMA {retired};");
    for table in tables {
        ddl.push_str(&format!("ALTER TABLE public.{table} SET SCHEMA {retired};"));
    }
    for table in tables {
        ddl.push_str(&format!("ALTER TABLE {schema}.{table} SET SCHEMA public;"));
    }
    // The projection's applied versions: its partition is replaced, not copied.
    let streams = live_name(STREAMS, name);
    ddl.push_str(&format!(
        "ALTER TABLE public.{STREAMS} DETACH PARTITION public.{streams};
         ALTER TABLE public.{streams} SET SCHEMA {retired};
         ALTER TABLE {schema}.{STREAMS} RENAME TO {streams};
         ALTER TABLE {schema}.{streams} SET SCHEMA public;
         ALTER TABLE public.{STREAMS} ATTACH PARTITION public.{streams} FOR VALUES IN ('{name}');
         ALTER TABLE public.{streams} DROP CONSTRAINT {STREAMS}_bound;"
    ));
    transaction.batch_execute(&ddl).await?;
    for table in BOOKKEEPING.iter().filter(|table| **table != STREAMS) {
        transaction
            .execute(&format!("DELETE FROM public.{table} WHERE projection = $1"), &[&name])
            .await?;
        transaction
            .execute(
                &format!(
                    "INSERT INTO public.{table} SELECT * FROM {schema}.{table} WHERE projection = $1"
                ),
                &[&name],
            )
            .await?;
    }
    transaction.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await?;
    transaction.commit().await?;
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {retired} CASCADE")).await?;
    Ok(())
}
