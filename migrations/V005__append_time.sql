-- Point-in-time reads ("as of T") select, per order, the events recorded at or before T.
-- now() is the transaction's start, taken before the order's lock is acquired, so two
-- commands racing for one order could record times out of version order. clock_timestamp()
-- is read as each row is inserted, after the lock is held: within an order, times then
-- rise with the version, and a transaction that has not appended yet can only record
-- times later than the present. See eventstore/src/settle.rs for why that matters.
ALTER TABLE events ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();
