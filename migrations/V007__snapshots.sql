-- Aggregate snapshots: an order's state after `stream_version`, so loading it reads the
-- snapshot and the few events after it instead of its whole history. `shape_version` is
-- the state's JSON shape (domain::ORDER_SHAPE_VERSION): a snapshot of another shape is
-- ignored. A snapshot is a cache of the events, never a source of truth.
CREATE TABLE snapshots (
    stream_id      uuid        PRIMARY KEY,
    stream_version integer     NOT NULL,
    shape_version  integer     NOT NULL,
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now()
);
