//! A read-model table's row, declared once: its columns in order with their PostgreSQL
//! types. Both ways rows are written come from that one declaration — the live apply's
//! set-based `INSERT … SELECT FROM unnest($1::uuid[], …)`, and a rebuild's binary `COPY`
//! into a new generation — so the two can never disagree on a column's place or type.

use std::pin::Pin;

use deadpool_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

/// A row of one table; implemented by [`table!`].
pub(crate) trait TableRow: Send + Sync {
    const TABLE: &'static str;
    const COLUMNS: &'static [&'static str];
    const TYPES: &'static [Type];

    /// The set-based insert, built once from the declaration.
    fn insert_statement() -> &'static str;

    /// The row's values, in column order (for `COPY`).
    fn values(&self) -> Vec<&(dyn ToSql + Sync)>;

    /// One array per column over `rows`, in column order (for `unnest`).
    fn columns(rows: &[Self]) -> Vec<Box<dyn ToSql + Send + Sync + '_>>
    where
        Self: Sized;
}

/// `INSERT INTO table (a, b) SELECT * FROM unnest($1::uuid[], $2::text[]) <on_conflict>`.
pub(crate) fn insert_statement(
    table: &str,
    columns: &[&str],
    types: &[Type],
    on_conflict: &str,
) -> String {
    let arrays: Vec<String> =
        types.iter().enumerate().map(|(i, ty)| format!("${}::{}[]", i + 1, ty.name())).collect();
    format!(
        "INSERT INTO {table} ({}) SELECT * FROM unnest({}) {on_conflict}",
        columns.join(", "),
        arrays.join(", ")
    )
}

/// Inserts `rows` in one statement, inside the apply's transaction.
pub(crate) async fn insert<R: TableRow>(
    transaction: &Transaction<'_>,
    rows: &[R],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let columns = R::columns(rows);
    let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(|c| &**c as _).collect();
    let statement = transaction.prepare_cached(R::insert_statement()).await?;
    transaction.execute(&statement, &params).await
}

/// Writes `rows` into `schema`'s copy of the table with a binary `COPY`.
pub(crate) async fn copy<R: TableRow>(
    client: &Client,
    schema: &str,
    rows: &[R],
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sink = client
        .copy_in(&format!(
            "COPY {schema}.{} ({}) FROM STDIN (FORMAT binary)",
            R::TABLE,
            R::COLUMNS.join(", ")
        ))
        .await?;
    let mut writer: Pin<Box<BinaryCopyInWriter>> =
        Box::pin(BinaryCopyInWriter::new(sink, R::TYPES));
    for row in rows {
        writer.as_mut().write(&row.values()).await?;
    }
    writer.as_mut().finish().await?;
    Ok(())
}

/// Declares a table's row struct and implements [`TableRow`] for it:
///
/// ```text
/// table! {
///     /// One attempt.
///     AttemptRow in "payment_attempts" on_conflict "" {
///         order_id: Uuid => UUID,
///         amount: i64 => INT8,
///     }
/// }
/// ```
macro_rules! table {
    (
        $(#[$doc:meta])*
        $row:ident in $table:literal on_conflict $on_conflict:literal {
            $($(#[$field_doc:meta])* $column:ident: $rust:ty => $pg:ident),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub(crate) struct $row {
            $($(#[$field_doc])* pub(crate) $column: $rust,)+
        }

        impl $crate::table::TableRow for $row {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [&'static str] = &[$(stringify!($column)),+];
            const TYPES: &'static [tokio_postgres::types::Type] =
                &[$(tokio_postgres::types::Type::$pg),+];

            fn insert_statement() -> &'static str {
                static STATEMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    $crate::table::insert_statement(
                        $table,
                        <$row as $crate::table::TableRow>::COLUMNS,
                        <$row as $crate::table::TableRow>::TYPES,
                        $on_conflict,
                    )
                });
                &STATEMENT
            }

            fn values(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
                vec![$(&self.$column),+]
            }

            fn columns(
                rows: &[Self],
            ) -> Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync + '_>> {
                vec![$(Box::new(rows.iter().map(|row| &row.$column).collect::<Vec<&$rust>>())),+]
            }
        }
    };
}
pub(crate) use table;
