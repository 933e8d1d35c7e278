//! The ground truth of the fault specs: the read models against a replay of the store,
//! queried directly, never through the API.

use std::collections::HashSet;
use std::time::Duration;

use bench::mix::Kind;
use bench::outcome::{Answered, LoadReport};
use bench::workloads::PLACED_TOTAL_MINOR as LOAD_ORDER_TOTAL;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::poll_until;

/// Waits until both projections have applied every stored event; returns the number of
/// orders in the payments read model.
pub async fn wait_until_projected(store: &Client) -> anyhow::Result<i64> {
    let behind = "SELECT count(*) FROM (SELECT stream_id, max(stream_version) AS version
                  FROM events GROUP BY stream_id) AS stored
                  LEFT JOIN projection_streams AS applied
                    ON applied.projection = $1 AND applied.stream_id = stored.stream_id
                  WHERE coalesce(applied.stream_version, 0) < stored.version";
    for projection in ["payments", "notifications"] {
        poll_until(Duration::from_secs(45), &format!("{projection} to catch up"), || async {
            let lagging: i64 = store.query_one(behind, &[&projection]).await?.get(0);
            Ok((lagging == 0).then_some(()))
        })
        .await?;
    }
    Ok(store.query_one("SELECT count(*) FROM payments", &[]).await?.get(0))
}

/// Differences between the read models and a replay of the store, described (empty when
/// they agree): per order the amount due, the captured sum, one attempt per payment event
/// and the version of its last event that changed them; per notifiable event exactly one
/// notification.
pub async fn projection_mismatches(store: &Client) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let payments = store
        .query(
            "WITH stored AS (
                SELECT stream_id,
                       max(stream_version)
                           FILTER (WHERE event_type NOT IN ('OrderShipped', 'OrderFullyPaid'))
                           AS version,
                       coalesce(sum((payload->'amount'->>'amount_minor')::bigint)
                                FILTER (WHERE event_type = 'PaymentCaptured'), 0) AS captured,
                       count(*) FILTER (WHERE event_type IN ('PaymentCaptured', 'PaymentFailed'))
                           AS attempts
                FROM events GROUP BY stream_id),
             attempts AS (SELECT order_id, count(*) AS n FROM payment_attempts GROUP BY order_id)
             SELECT format('order %s: stored (version %s, captured %s, attempts %s), \
                            projected (version %s, due %s, captured %s, attempts %s)',
                           coalesce(s.stream_id, p.order_id), s.version, s.captured, s.attempts,
                           p.stream_version, p.amount_due, p.captured, coalesce(a.n, 0))
             FROM stored s
             FULL JOIN payments p ON p.order_id = s.stream_id
             LEFT JOIN attempts a ON a.order_id = coalesce(s.stream_id, p.order_id)
             WHERE s.stream_id IS NULL OR p.order_id IS NULL
                OR p.amount_due <> $1 OR p.captured <> s.captured
                OR coalesce(a.n, 0) <> s.attempts OR p.stream_version <> s.version
             LIMIT 10",
            &[&LOAD_ORDER_TOTAL],
        )
        .await?;
    // Notifications carry their event's position; every event but OrderFullyPaid notifies.
    let notifications = store
        .query(
            "SELECT format('event at %s (%s): %s notifications', e.global_position,
                           e.event_type, count(n.id))
             FROM events e LEFT JOIN notifications n ON n.position = e.global_position
             WHERE e.event_type <> 'OrderFullyPaid'
             GROUP BY e.global_position, e.event_type
             HAVING count(n.id) <> 1
             UNION ALL
             SELECT format('notification %s has no event', n.id)
             FROM notifications n LEFT JOIN events e ON e.global_position = n.position
             WHERE e.global_position IS NULL
             LIMIT 10",
            &[],
        )
        .await?;
    let describe = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
        rows.iter().map(|row| row.get(0)).collect()
    };
    Ok((describe(payments), describe(notifications)))
}

/// What the store holds, against what clients were told.
pub struct StoreAudit {
    /// Commands answered 201.
    pub acknowledged: usize,
    /// Commands answered 201 whose events are all in the store.
    pub found: usize,
    /// Events of 201 answers that are not in the store (or the order, if the answer
    /// named no event).
    pub missing: Vec<Uuid>,
    pub stored_events: usize,
    pub stored_orders: i64,
    /// Commands that got no answer, yet were stored (allowed: the crash came after commit).
    pub unanswered_but_stored: usize,
    /// Events of one type stored more than once for one order. The load never repeats a
    /// command, so any would be a command applied twice.
    pub duplicates: i64,
}

pub async fn audit_store(store: &Client, report: &LoadReport) -> anyhow::Result<StoreAudit> {
    let rows = store.query("SELECT event_id, stream_id, event_type FROM events", &[]).await?;
    let stored_ids: HashSet<Uuid> = rows.iter().map(|row| row.get(0)).collect();
    let stored_commands: HashSet<(Uuid, String)> =
        rows.iter().map(|row| (row.get(1), row.get(2))).collect();
    // A 201 that names no event cannot be checked: it counts as missing.
    let mut missing = Vec::new();
    let mut found = 0;
    for outcome in report.acknowledged() {
        match &outcome.answer {
            Answered::Acknowledged { event_ids, .. } if !event_ids.is_empty() => {
                let before = missing.len();
                missing.extend(event_ids.iter().filter(|id| !stored_ids.contains(id)));
                found += usize::from(missing.len() == before);
            }
            _ => missing.push(outcome.order_id),
        }
    }
    let unanswered_but_stored = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.answer, Answered::NoAnswer { .. }))
        .filter(|o| {
            let event_type = match o.kind {
                Kind::Place => "OrderPlaced",
                _ => "PaymentCaptured",
            };
            stored_commands.contains(&(o.order_id, event_type.to_owned()))
        })
        .count();
    let duplicates: i64 = store
        .query_one(
            "SELECT count(*) FROM (SELECT 1 FROM events GROUP BY stream_id, event_type
             HAVING count(*) > 1) AS repeated",
            &[],
        )
        .await?
        .get(0);
    let stored_orders: i64 =
        store.query_one("SELECT count(DISTINCT stream_id) FROM events", &[]).await?.get(0);
    Ok(StoreAudit {
        acknowledged: report.acknowledged().count(),
        found,
        missing,
        stored_events: rows.len(),
        stored_orders,
        unanswered_but_stored,
        duplicates,
    })
}
