-- The payments read model keeps a version only for the events that change an order's
-- payments (placement, a payment captured, failed or refunded, a cancellation), and those
-- alone set an order's `stream_version` and `updated_at`: shipping, or the `OrderFullyPaid`
-- marker recorded with the capture that settles an order, changes nothing a payments query
-- answers, yet made about a third of all versions. Existing rows are brought to what a
-- rebuild now writes: those versions go, the version before each takes over its validity,
-- and each order's row names its last change.
DELETE FROM payment_versions v
 USING events e
 WHERE e.stream_id = v.order_id AND e.stream_version = v.stream_version
   AND e.event_type IN ('OrderFullyPaid', 'OrderShipped');

UPDATE payment_versions v
   SET next_position = n.next_position, next_recorded_at = n.next_recorded_at
  FROM (SELECT order_id, stream_version,
               lead(position) OVER w AS next_position,
               lead(recorded_at) OVER w AS next_recorded_at
          FROM payment_versions
        WINDOW w AS (PARTITION BY order_id ORDER BY stream_version)) n
 WHERE n.order_id = v.order_id AND n.stream_version = v.stream_version
   AND (v.next_position, v.next_recorded_at) IS DISTINCT FROM (n.next_position, n.next_recorded_at);

UPDATE payments p
   SET stream_version = v.stream_version, updated_at = v.recorded_at
  FROM payment_versions v
 WHERE v.order_id = p.order_id AND v.next_position IS NULL
   AND (p.stream_version, p.updated_at) IS DISTINCT FROM (v.stream_version, v.recorded_at);
