-- The event store: one row per recorded fact, never changed or removed.
--
-- global_position orders all events but is NOT commit order: identity values are taken
-- when a row is inserted, and transactions commit in any order. Readers that follow the
-- whole store (the relay, projection rebuilds) therefore read in (tx_id, global_position)
-- order below the oldest transaction still running; see eventstore/src/position.rs.
CREATE TABLE events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id       uuid        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL CHECK (event_type <> ''),
    event_version   smallint    NOT NULL DEFAULT 1 CHECK (event_version > 0),
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    -- Optimistic concurrency lives here: two writers that both read version N and append
    -- N + 1 collide on this constraint, and exactly one of them commits.
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_commit_order ON events (tx_id, global_position);

-- Append-only is a property of the database, not a convention of the code: any UPDATE,
-- DELETE or TRUNCATE of events fails, whoever issues it.
CREATE FUNCTION events_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_reject_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();
