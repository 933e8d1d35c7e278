//! Gap-safe reading of the whole store, in commit-consistent order.
//!
//! `global_position` comes from an identity sequence, which hands out numbers when rows
//! are inserted, not when transactions commit. A reader that remembers "I have read up to
//! position 100" skips position 99 if its transaction commits a moment later. Marten,
//! Axon and Commanded all shipped that bug.
//!
//! The rule here: read in `(tx_id, global_position)` order, and only events whose
//! transaction id is below the *append horizon*: the oldest transaction that may still
//! append events (one that holds the append lock), or the next transaction id when there
//! is none. Every appender below the horizon has finished, so no event can later appear
//! *before* the cursor: the order is final. Transactions that cannot append — in another
//! database, or writing other tables of this one — do not hold the horizon back. Why the
//! horizon is safe, and the protocol appenders follow (take the lock before the first
//! write; the database enforces it), is written out in `migrations/V017__append_horizon.sql`.
//! Its one rule for readers: the horizon is computed by a statement of its own, *before*
//! the statement that reads below it, so that the read's snapshot is the later one.
//!
//! Per stream this order is also stream-version order, because a unit of work takes its
//! stream's lock before its first write (which is when PostgreSQL assigns the transaction
//! id): the next writer of the stream gets a larger id than the previous one.
//!
//! The price: one long-running *appending* transaction holds the horizon back and delays
//! every reader until it ends. The relay reports the age of the oldest appender so an
//! operator can see it.

use chrono::{DateTime, Utc};
use futures_util::{Stream, TryStreamExt};
use uuid::Uuid;

use crate::error::StoreError;
use crate::rows::stream_version;

/// A place in the commit-consistent order. Ordering is lexicographic: `(tx_id, position)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct CommitPosition {
    pub tx_id: i64,
    pub global_position: i64,
}

/// An event as the relay publishes it: payload kept as raw JSON text, never re-parsed.
/// [`CommittedRow`] is the same, borrowed from the row it was read in.
#[derive(Clone, Debug)]
pub struct CommittedEvent {
    pub commit: CommitPosition,
    pub stream_id: Uuid,
    pub stream_version: u32,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i16,
    pub payload: String,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The W3C trace context the event was appended in, if it was recorded.
    pub traceparent: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// A [`CommittedEvent`] borrowed from its row: what the relay encodes as each row arrives,
/// without copying the payload and the ids out of it first. Its columns are a replay's
/// ([`ReplayedEvent`]), then the three taken from the metadata.
#[derive(Clone, Copy, Debug)]
pub struct CommittedRow<'a> {
    pub event: ReplayedEvent<'a>,
    pub correlation_id: Option<&'a str>,
    pub causation_id: Option<&'a str>,
    pub traceparent: Option<&'a str>,
}

impl<'a> CommittedRow<'a> {
    /// Reads a row of [`READ_COMMITTED_AFTER`] (as [`CommittedReads::stream_after`] yields
    /// them).
    pub fn from_row(row: &'a tokio_postgres::Row) -> Result<Self, StoreError> {
        Ok(Self {
            event: ReplayedEvent::from_row(row)?,
            correlation_id: row.try_get(9)?,
            causation_id: row.try_get(10)?,
            traceparent: row.try_get(11)?,
        })
    }

    pub fn to_owned(&self) -> CommittedEvent {
        let event = &self.event;
        CommittedEvent {
            commit: event.commit,
            stream_id: event.stream_id,
            stream_version: event.stream_version,
            event_id: event.event_id,
            event_type: event.event_type.to_owned(),
            event_version: event.event_version,
            payload: event.payload.to_owned(),
            correlation_id: self.correlation_id.map(str::to_owned),
            causation_id: self.causation_id.map(str::to_owned),
            traceparent: self.traceparent.map(str::to_owned),
            recorded_at: event.recorded_at,
        }
    }
}

impl CommittedEvent {
    pub fn borrow(&self) -> CommittedRow<'_> {
        CommittedRow {
            event: ReplayedEvent {
                commit: self.commit,
                stream_id: self.stream_id,
                stream_version: self.stream_version,
                event_id: self.event_id,
                event_type: &self.event_type,
                event_version: self.event_version,
                payload: &self.payload,
                recorded_at: self.recorded_at,
            },
            correlation_id: self.correlation_id.as_deref(),
            causation_id: self.causation_id.as_deref(),
            traceparent: self.traceparent.as_deref(),
        }
    }
}

/// `SELECT columns` of up to `$3` events after the commit position `($1, $2)`, in the
/// gap-safe order and below the horizon `$4` (see [`append_horizon`]): the one place the
/// rule is written down.
macro_rules! committed_after {
    ($columns:literal) => {
        concat!(
            "SELECT ",
            $columns,
            "
      FROM events
     WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2)
       AND tx_id < $4::bigint::text::xid8
     -- Qualified: a bare `tx_id` here could name an output column (a cast), which no
     -- index provides, and every batch would sort the rest of the store.
     ORDER BY events.tx_id, events.global_position
     LIMIT $3"
        )
    };
}

/// What a connection that reads the store in the gap-safe order batch after batch (the
/// relay's, a back-fill's) sets for its session first. The read is a range of the
/// commit-order index, which hands the rows over in order; but where the statistics lag
/// the table (a young store, a burst of appends, a backlog built up during a broker outage)
/// the planner expects fewer rows than the batch and prefers a bitmap scan and a sort of
/// *everything* after the cursor, spilled to disk, for every batch: 9× slower per batch on
/// a 100 000-event backlog not yet analysed (docs/performance.md). With sorting ruled out
/// it walks the index.
pub const ORDERED_READS: &str = "SET enable_sort = off";

/// The statement of [`read_committed_after`] (public for the specs that check its plan).
pub const READ_COMMITTED_AFTER: &str = committed_after!(
    "tx_id, global_position, stream_id, stream_version, event_id, event_type, event_version,
     payload::text, recorded_at, metadata->>'correlation_id', metadata->>'causation_id',
     metadata->>'traceparent'"
);

const HORIZON: &str = "SELECT ledger_append_horizon()::text::bigint";

/// The append horizon now: no transaction below it can still append an event. Read below
/// it in a *later* statement (see the module documentation).
pub async fn append_horizon(
    client: &impl tokio_postgres::GenericClient,
) -> Result<i64, StoreError> {
    let statement = client.prepare(HORIZON).await?;
    Ok(client.query_one(&statement, &[]).await?.try_get(0)?)
}

/// Up to `limit` events after `after`, in commit-consistent order, none of which can be
/// overtaken later by a transaction still in flight.
pub async fn read_committed_after(
    client: &tokio_postgres::Client,
    after: CommitPosition,
    limit: i64,
) -> Result<Vec<CommittedEvent>, StoreError> {
    let reads = CommittedReads::prepare(client).await?;
    let rows = reads.stream_after(client, after, limit).await?;
    rows.and_then(|row| async move { Ok(CommittedRow::from_row(&row)?.to_owned()) })
        .try_collect()
        .await
}

/// [`read_committed_after`]'s two statements, prepared once for a connection that reads
/// batch after batch (the relay's leader): a batch then costs the two round trips it
/// needs — the horizon, then the read below it — instead of a parse and a plan of each
/// first, which under load queue behind every other backend for the CPU.
pub struct CommittedReads {
    horizon: tokio_postgres::Statement,
    read: tokio_postgres::Statement,
}

impl CommittedReads {
    /// Prepares the statements on `client`; use them on that connection only. The read's
    /// plan is an index range scan for any cursor on a connection that set
    /// [`ORDERED_READS`], so a generic plan is as good as a custom one.
    pub async fn prepare(client: &tokio_postgres::Client) -> Result<Self, StoreError> {
        let (horizon, read) = futures_util::future::try_join(
            client.prepare(HORIZON),
            client.prepare(READ_COMMITTED_AFTER),
        )
        .await?;
        Ok(Self { horizon, read })
    }

    /// [`read_committed_after`], each event's row as it arrives (read it with
    /// [`CommittedRow::from_row`]): what a reader does with one event overlaps the
    /// server's producing the next (the relay encodes and sends a batch while PostgreSQL
    /// is still reading it, instead of after).
    pub async fn stream_after(
        &self,
        client: &tokio_postgres::Client,
        after: CommitPosition,
        limit: i64,
    ) -> Result<impl Stream<Item = Result<tokio_postgres::Row, StoreError>>, StoreError> {
        // A statement of its own, before the read: see the module documentation.
        let horizon: i64 = client.query_one(&self.horizon, &[]).await?.try_get(0)?;
        let parameters: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&after.tx_id, &after.global_position, &limit, &horizon];
        Ok(client.query_raw(&self.read, parameters).await?.map_err(StoreError::from))
    }
}

/// The gap-safe order for a replay of the whole store: the horizon and order of
/// [`READ_COMMITTED_AFTER`], only the columns a projection reads. Extracting the metadata
/// and printing the transaction id as text were most of the server's cost of a replay
/// (docs/performance.md).
const REPLAY_COMMITTED_AFTER: &str = committed_after!(
    "tx_id, global_position, stream_id, stream_version, event_id, event_type, event_version,
     payload::text, recorded_at"
);

/// Up to `limit` events after `after`, in the order and under the horizon of
/// [`read_committed_after`], handed over as they arrive, so that the caller decodes one
/// while the server sends the next. Read each with [`ReplayedEvent::from_row`].
pub async fn replay_committed_after(
    client: &impl tokio_postgres::GenericClient,
    after: CommitPosition,
    limit: i64,
) -> Result<tokio_postgres::RowStream, StoreError> {
    let horizon = append_horizon(client).await?;
    let statement = client.prepare(REPLAY_COMMITTED_AFTER).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&after.tx_id, &after.global_position, &limit, &horizon];
    Ok(client.query_raw(&statement, params).await?)
}

/// The events at `positions` that are visible now, in position order, read like a
/// replay's: for catching a projection up on events it was never delivered.
const AT_POSITIONS: &str = "
    SELECT tx_id, global_position, stream_id, stream_version, event_id, event_type, event_version,
           payload::text, recorded_at
      FROM events WHERE global_position = ANY($1) ORDER BY global_position";

/// See [`AT_POSITIONS`]; read each row with [`ReplayedEvent::from_row`].
pub async fn events_at(
    client: &impl tokio_postgres::GenericClient,
    positions: &[i64],
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let statement = client.prepare(AT_POSITIONS).await?;
    Ok(client.query(&statement, &[&positions]).await?)
}

/// An event as a replay reads it, borrowed from its row: the payload stays JSON text.
#[derive(Clone, Copy, Debug)]
pub struct ReplayedEvent<'a> {
    pub commit: CommitPosition,
    pub stream_id: Uuid,
    pub stream_version: u32,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub event_version: i16,
    pub payload: &'a str,
    pub recorded_at: DateTime<Utc>,
}

impl<'a> ReplayedEvent<'a> {
    /// Reads a row of [`replay_committed_after`] or [`events_at`].
    pub fn from_row(row: &'a tokio_postgres::Row) -> Result<Self, StoreError> {
        Ok(Self {
            commit: CommitPosition {
                tx_id: row.try_get::<_, TxId>(0)?.0,
                global_position: row.try_get(1)?,
            },
            stream_id: row.try_get(2)?,
            stream_version: stream_version(row, 3)?,
            event_id: row.try_get(4)?,
            event_type: row.try_get(5)?,
            event_version: row.try_get(6)?,
            payload: row.try_get(7)?,
            recorded_at: row.try_get(8)?,
        })
    }
}

/// A transaction id as the server sends an `xid8`: eight bytes, big-endian. (Ids count
/// transactions since the cluster was created; they stay far below `i64::MAX`.)
struct TxId(i64);

impl<'a> tokio_postgres::types::FromSql<'a> for TxId {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 8] = raw.try_into()?;
        Ok(Self(i64::try_from(u64::from_be_bytes(bytes))?))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::XID8
    }
}
