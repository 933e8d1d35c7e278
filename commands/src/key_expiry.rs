//! Forgetting idempotency keys after their retention: a background task that deletes the
//! expired records in small batches (see [`eventstore::idempotency`]). Expiry itself does
//! not depend on it — a key past its retention is claimed afresh even while its record is
//! still there — so a late or stopped pruner only costs disk, never correctness.

use std::time::Duration;

use eventstore::EventStore;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug)]
pub struct KeyExpirySettings {
    /// How often expired records are looked for.
    pub interval: Duration,
    /// Records deleted per transaction: small, so no lock is held for long.
    pub batch: u32,
}

impl Default for KeyExpirySettings {
    fn default() -> Self {
        Self { interval: Duration::from_secs(60), batch: 1_000 }
    }
}

/// Prunes every `interval` until `shutdown`; a failure is logged and tried again at the
/// next look.
pub async fn prune_expired_keys(
    store: EventStore,
    settings: KeyExpirySettings,
    shutdown: CancellationToken,
) {
    let retention = store.idempotency_retention();
    loop {
        match store.client().await {
            Ok(client) => {
                match eventstore::idempotency::prune(&client, retention, settings.batch).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        metrics::counter!("ledger_idempotency_keys_expired_total")
                            .increment(deleted);
                        tracing::debug!(deleted, ?retention, "expired idempotency keys deleted");
                    }
                    Err(error) => tracing::warn!(%error, "pruning idempotency keys failed"),
                }
            }
            Err(error) => tracing::warn!(%error, "pruning idempotency keys: no connection"),
        }
        tokio::select! {
            () = tokio::time::sleep(settings.interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
