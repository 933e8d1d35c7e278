//! The connection that writes a new generation, pipelined with the fold: one batch of
//! rows is written (in a task of its own) while the next is folded.

use crate::apply::AppliedRow;
use crate::error::ApplyError;
use crate::replay::Replay;
use crate::table::copy;

use super::error::RebuildError;

/// The connection that writes the new generation.
pub(crate) type Writer = deadpool_postgres::ClientWrapper;

/// The writer connection: idle, or writing a batch of rows in a task of its own.
pub(crate) enum Writing {
    Idle(Box<Writer>),
    Busy(tokio::task::JoinHandle<Result<Writer, ApplyError>>),
}

impl Writing {
    /// Writes the fold's `rows` and the last versions of the orders it evicted.
    pub(crate) fn start<R: Replay>(
        client: Writer,
        schema: &str,
        rows: R::Rows,
        evicted: Vec<AppliedRow>,
    ) -> Self {
        let schema = schema.to_owned();
        Self::Busy(tokio::spawn(async move {
            R::write(&client, &schema, rows).await?;
            copy(&client, &schema, &evicted).await?;
            Ok(client)
        }))
    }

    /// Waits for the write under way, if any, and hands the connection back.
    pub(crate) async fn finish(self) -> Result<Writer, RebuildError> {
        match self {
            Self::Idle(client) => Ok(*client),
            Self::Busy(task) => Ok(task
                .await
                .map_err(|e| ApplyError::Inconsistent(format!("the replay's writer: {e}")))??),
        }
    }
}
