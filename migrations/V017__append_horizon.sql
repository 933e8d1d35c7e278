-- A gap-safe horizon that waits only for transactions that can still append events.
--
-- Until now readers of the whole store (the relay, rebuilds) read below
-- pg_snapshot_xmin(pg_current_snapshot()): the oldest transaction still running anywhere on
-- the server. Any long writing transaction, in another database or on a table that is not
-- `events`, froze publishing and every projection for as long as it lived.
--
-- THE PROTOCOL. A transaction that may append events takes the *append lock* (a shared,
-- transaction-scoped advisory lock on a fixed key of this database) before its first
-- write of any kind, and keeps it to its end. The database enforces it in one place, the
-- statement trigger on `events`: an insert (or COPY) by a transaction without the lock
-- takes it there if the transaction has not written yet (it has no transaction id, so it
-- is above every horizon computed so far), and is refused if it has. ledger_append_lock()
-- refuses the same way. The lock and the marker setting are taken in the same
-- (sub)transaction, so a rolled-back savepoint drops both together.
--
-- THE HORIZON (ledger_append_horizon). Take a snapshot S, then read the lock table L. The
-- horizon is the smallest transaction id in progress in S whose transaction holds the
-- append lock at L, or S's xmax when there is none. Nothing can still appear below it:
--   * T with id X below the horizon has X < xmax(S), so it got X before S. If T appends,
--     it took the lock before its first write, which is when it got X, so before S and L.
--     Had T still been running at L, it would have held the lock there with X in progress
--     in S, and the horizon would be at most X. So T had ended at L: rolled back, or
--     committed and visible to every snapshot taken after L (a transaction leaves the
--     proc array before it releases its locks). Readers therefore read below the horizon
--     with a snapshot taken *after* it: a statement of their own.
--   * A session that gets its id between S and L: the id is at or above xmax(S).
--   * A backend that ends between S and L: it is not in L; it ended, see above.
--   * A transaction holding the lock without an id yet: its id will be at or above
--     xmax(S).
--   * Prepared transactions keep their locks and their ids: seen as holders.
--   * Ids in pg_locks are 32 bits; they are matched to the 64-bit ids in progress by their
--     low 32 bits (ids in progress are less than 2^31 apart, so no two share them).
--   * Transactions in other databases hold no lock of this database: never waited for.
--
-- APPEND TIMES AND POSITIONS. Rows take their position (a sequence) and their append time
-- (clock_timestamp()) while the statement runs, after its statement trigger, so an
-- appender holds the lock before it has either. Readers that reason about positions and
-- times of events not visible yet (the watermark, as-of cuts) read the holders' start
-- times with ledger_append_frontier(): a holder at that moment started at or before any
-- event it may still commit; a transaction that takes the lock later appends later than
-- the frontier's `now`.

CREATE FUNCTION ledger_append_lock() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('ledger.append_lock', true) = 'held' THEN
        RETURN;
    END IF;
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'a transaction that appends events must take the append lock before its first write'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'call ledger_append_lock() first in the transaction';
    END IF;
    -- 1818584167 is 'ledg'; the second key names the lock. Shared: appenders never
    -- exclude one another.
    PERFORM pg_advisory_xact_lock_shared(1818584167, 1);
    PERFORM set_config('ledger.append_lock', 'held', true);
END;
$$;

CREATE FUNCTION events_require_append_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_append_lock();
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_append_lock
    BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_require_append_lock();

-- The sessions of this database holding the append lock, and when their transactions
-- started (NULL when unknown: a prepared transaction has no session).
CREATE FUNCTION ledger_appenders(OUT pid integer, OUT started timestamptz) RETURNS SETOF record
LANGUAGE sql VOLATILE AS $$
    SELECT lock.pid, activity.xact_start
      FROM pg_locks AS lock
      LEFT JOIN pg_stat_activity AS activity ON activity.pid = lock.pid
     WHERE lock.locktype = 'advisory'
       AND lock.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND lock.classid = 1818584167 AND lock.objid = 1 AND lock.objsubid = 2
       AND lock.granted
$$;

-- See the header: read the events below it in a later statement.
CREATE FUNCTION ledger_append_horizon() RETURNS xid8
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    snapshot pg_snapshot := pg_current_snapshot();
    holders bigint[];
BEGIN
    -- Strictly after the snapshot: a statement of its own.
    SELECT array_agg(own.transactionid::text::bigint) INTO holders
      FROM pg_locks AS lock
      JOIN pg_locks AS own
        ON own.virtualtransaction = lock.virtualtransaction
       AND own.locktype = 'transactionid' AND own.mode = 'ExclusiveLock' AND own.granted
     WHERE lock.locktype = 'advisory'
       AND lock.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND lock.classid = 1818584167 AND lock.objid = 1 AND lock.objsubid = 2
       AND lock.granted;
    -- Subtransaction ids among the holders match nothing: a snapshot's in-progress list
    -- holds top-level ids only.
    RETURN least(
        pg_snapshot_xmax(snapshot),
        (SELECT min(running) FROM pg_snapshot_xip(snapshot) AS running
          WHERE running::text::bigint % 4294967296 = ANY (holders)));
END;
$$;

-- `now` (read first), and when the oldest transaction holding the append lock at a moment
-- after `now` began (the epoch when one's start is unknown, NULL when there is none): an
-- event not visible yet was, or will be, appended no earlier than the older of the two.
CREATE FUNCTION ledger_append_frontier(OUT now timestamptz, OUT oldest_appender timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    now := clock_timestamp();
    SELECT min(coalesce(started, 'epoch'::timestamptz)) INTO oldest_appender
      FROM ledger_appenders()
     WHERE pid IS DISTINCT FROM pg_backend_pid();
END;
$$;
