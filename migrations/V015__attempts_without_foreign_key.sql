-- Read models are derived data: the projection writes an order's payments row before its
-- attempts, in the same transaction, and the rebuild specs check every table against a
-- replay of the store row for row. The foreign key from attempts to payments guarded
-- nothing those do not, yet it cost a lookup on every attempt the live workers insert and,
-- at every rebuild, a check of all attempts after the indexes were built, with nothing
-- beside it (0.26 s of a 10 s rebuild at 1M events).
ALTER TABLE payment_attempts DROP CONSTRAINT IF EXISTS payment_attempts_order_id_fkey;
