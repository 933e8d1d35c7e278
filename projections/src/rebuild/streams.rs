//! The bookkeeping `apply` keeps, kept by a rebuild's bulk replay instead.

use chrono::{DateTime, Utc};

use crate::apply::AppliedRow;
use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::replay::ByOrder;
use crate::table::copy;

/// The bookkeeping `apply` keeps, kept by the bulk replay: each stream's last version (the
/// replay checks that none is skipped) and every event applied (its position and time).
#[derive(Default)]
pub(crate) struct Streams {
    versions: ByOrder<u32>,
    /// Position and append time of every event applied, for the watermark.
    pub(crate) applied: Vec<(i64, DateTime<Utc>)>,
}

impl Streams {
    pub(crate) fn feed(&mut self, event: &ProjectedEvent) -> Result<(), ApplyError> {
        let last = self.versions.entry(event.stream_id).or_insert(0);
        if event.stream_version != *last + 1 {
            return Err(ApplyError::Inconsistent(format!(
                "order {} has version {} after {} in the gap-safe order",
                event.stream_id, event.stream_version, last
            )));
        }
        *last = event.stream_version;
        self.applied.push((event.position, event.recorded_at));
        Ok(())
    }

    pub(crate) async fn flush(
        &self,
        client: &tokio_postgres::Client,
        schema: &str,
        projection: &'static str,
    ) -> Result<(), ApplyError> {
        let rows = self
            .versions
            .iter()
            .map(|(stream_id, version)| {
                Ok(AppliedRow {
                    projection,
                    stream_id: *stream_id,
                    stream_version: eventstore::to_stored_version(*version)?,
                })
            })
            .collect::<Result<Vec<_>, ApplyError>>()?;
        copy(client, schema, &rows).await?;
        if let Ok(applied @ 1..) = i64::try_from(self.applied.len()) {
            client
                .execute(
                    &format!(
                        "INSERT INTO {schema}.projection_status (projection, applied_events, last_position, last_applied_at, updated_at)
                         VALUES ($1, $2, $3, now(), now())"
                    ),
                    &[&projection, &applied, &self.applied.iter().map(|(position, _)| *position).max()],
                )
                .await?;
        }
        Ok(())
    }
}
