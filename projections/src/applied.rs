//! A push for whoever waits on a read model, instead of polling it.
//!
//! - Read-your-writes waits for one order: it registers the stream and the version it
//!   needs, and the batch of this process that applies it wakes exactly that waiter
//!   ([`AppliedSignal::applied_here`]); no other batch costs it a look at the database.
//! - As-of waits need the watermark, which any batch may move: they wake on a counter per
//!   projection that every batch bumps ([`AppliedSignal::subscribe`]).
//! - Other processes' batches arrive through `LISTEN`/`NOTIFY` on [`CHANNEL`] (the payload
//!   names the projection and the signal of the process that applied it, its *origin*; a
//!   signal ignores its own):
//!   they bump the counter, and wake every read-your-writes waiter to look again, since
//!   the notification does not say which orders.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::kind::ProjectionKind;

/// The notification channel; the payload is `projection:origin`.
pub const CHANNEL: &str = "ledger_projection_applied";

const KINDS: usize = ProjectionKind::ALL.len();

/// Who waits for which version of which stream.
type Waiters = HashMap<(ProjectionKind, Uuid), Vec<(u32, Arc<Notify>)>>;

#[derive(Clone)]
pub struct AppliedSignal {
    inner: Arc<Inner>,
}

struct Inner {
    /// Names this signal in notifications.
    origin: String,
    /// Every batch, here or elsewhere.
    any: [watch::Sender<u64>; KINDS],
    /// Batches of other processes.
    foreign: [watch::Sender<u64>; KINDS],
    waiters: Mutex<Waiters>,
}

impl Default for AppliedSignal {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                origin: Uuid::new_v4().simple().to_string(),
                any: std::array::from_fn(|_| watch::Sender::new(0)),
                foreign: std::array::from_fn(|_| watch::Sender::new(0)),
                waiters: Mutex::new(HashMap::new()),
            }),
        }
    }
}

fn bump(counter: &watch::Sender<u64>) {
    counter.send_modify(|count| *count = count.wrapping_add(1));
}

impl AppliedSignal {
    /// What this signal's batches announce themselves as (see [`crate::apply::apply`]).
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// `kind` committed a batch in this process holding `versions` (stream, version): at
    /// least those versions are applied now.
    pub fn applied_here(&self, kind: ProjectionKind, versions: impl Iterator<Item = (Uuid, u32)>) {
        {
            let mut waiters = self.inner.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            if !waiters.is_empty() {
                for (stream, version) in versions {
                    let Some(waiting) = waiters.get_mut(&(kind, stream)) else { continue };
                    waiting.retain(|(needed, wake)| {
                        let satisfied = *needed <= version;
                        if satisfied {
                            wake.notify_one();
                        }
                        !satisfied
                    });
                    if waiting.is_empty() {
                        waiters.remove(&(kind, stream));
                    }
                }
            }
        }
        bump(&self.inner.any[kind as usize]);
    }

    fn applied_elsewhere(&self, kind: ProjectionKind) {
        bump(&self.inner.any[kind as usize]);
        bump(&self.inner.foreign[kind as usize]);
    }

    /// A receiver that changes whenever `kind` applies a batch, here or elsewhere.
    pub fn subscribe(&self, kind: ProjectionKind) -> watch::Receiver<u64> {
        self.inner.any[kind as usize].subscribe()
    }

    /// Registers a wait for `min_version` of `stream` in `kind`; look at the database
    /// after registering, then wait with [`StreamWait::next`].
    pub fn wait_for(&self, kind: ProjectionKind, stream: Uuid, min_version: u32) -> StreamWait {
        let wake = Arc::new(Notify::new());
        self.inner
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((kind, stream))
            .or_default()
            .push((min_version, Arc::clone(&wake)));
        let mut foreign = self.inner.foreign[kind as usize].subscribe();
        foreign.mark_unchanged();
        StreamWait { signal: self.clone(), key: (kind, stream), wake, foreign }
    }

    /// Bumps the counters from other processes' notifications until `shutdown`, connecting
    /// again after a failure. Every connection counts as a foreign batch once it listens:
    /// whatever was applied while it was away is looked at again.
    pub async fn listen(self, database_url: String, shutdown: CancellationToken) {
        // The pool was built from the same URL at start-up: it cannot fail here unless the
        // process was handed two different URLs.
        let connector = match eventstore::Connector::new(&database_url) {
            Ok(connector) => connector,
            Err(error) => {
                tracing::error!(%error, "DATABASE_URL: cannot listen for applied batches");
                return;
            }
        };
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.listen_once(&connector, &shutdown).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(%error, "listening for applied batches failed; reconnecting");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }

    async fn listen_once(
        &self,
        connector: &eventstore::Connector,
        shutdown: &CancellationToken,
    ) -> Result<(), tokio_postgres::Error> {
        let (client, mut connection) = connector.connect().await?;
        let (notified, mut notifications) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(note)) => {
                        let _ = notified.send(Ok(note.payload().to_owned()));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        let _ = notified.send(Err(error));
                        return;
                    }
                }
            }
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        for kind in ProjectionKind::ALL {
            self.applied_elsewhere(kind);
        }
        let ended = loop {
            tokio::select! {
                note = notifications.recv() => match note {
                    Some(Ok(payload)) => {
                        let (name, origin) = payload.split_once(':').unwrap_or((&payload, ""));
                        if origin != self.origin() {
                            if let Some(kind) = ProjectionKind::parse(name) {
                                self.applied_elsewhere(kind);
                            }
                        }
                    }
                    Some(Err(error)) => break Err(error),
                    None => break Ok(()),
                },
                () = shutdown.cancelled() => break Ok(()),
            }
        };
        driver.abort();
        ended
    }
}

/// A registered read-your-writes wait; unregistered when dropped.
pub struct StreamWait {
    signal: AppliedSignal,
    key: (ProjectionKind, Uuid),
    wake: Arc<Notify>,
    foreign: watch::Receiver<u64>,
}

impl StreamWait {
    /// Until a batch of this process applied the version, another process applied a
    /// batch of the projection, or `until`: then look at the database again.
    pub async fn next(&mut self, until: Instant) {
        tokio::select! {
            () = self.wake.notified() => {}
            // A closed channel (no sender) is as good as a tick: `until` bounds the wait.
            _ = self.foreign.changed() => {}
            () = tokio::time::sleep_until(until) => {}
        }
    }
}

impl Drop for StreamWait {
    fn drop(&mut self) {
        let mut waiters = self.signal.inner.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waiting) = waiters.get_mut(&self.key) {
            waiting.retain(|(_, wake)| !Arc::ptr_eq(wake, &self.wake));
            if waiting.is_empty() {
                waiters.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures_util::FutureExt;

    /// Whether `wait` has been woken (a wake is a stored permit: no waiting needed).
    fn woken(wait: &StreamWait) -> bool {
        wait.wake.notified().now_or_never().is_some()
    }

    #[tokio::test]
    async fn a_reader_is_woken_by_the_batch_that_applies_its_version_and_no_other() {
        let signal = AppliedSignal::default();
        let (order, other) = (Uuid::now_v7(), Uuid::now_v7());
        let wait = signal.wait_for(ProjectionKind::Payments, order, 3);

        signal.applied_here(ProjectionKind::Payments, [(order, 2), (other, 9)].into_iter());
        signal.applied_here(ProjectionKind::Notifications, [(order, 3)].into_iter());
        assert!(!woken(&wait), "not its version, or not its projection");

        signal.applied_here(ProjectionKind::Payments, [(other, 10), (order, 4)].into_iter());
        assert!(woken(&wait));
        drop(wait);
        assert!(signal.inner.waiters.lock().unwrap_or_else(PoisonError::into_inner).is_empty());
    }

    #[tokio::test]
    async fn another_process_batch_wakes_every_reader_of_its_projection() {
        let signal = AppliedSignal::default();
        let mut wait = signal.wait_for(ProjectionKind::Payments, Uuid::now_v7(), 1);
        let any = signal.subscribe(ProjectionKind::Payments);
        signal.applied_elsewhere(ProjectionKind::Payments);
        let until = Instant::now() + Duration::from_secs(5);
        assert!(wait.next(until).now_or_never().is_some(), "woken by the foreign batch");
        assert!(any.has_changed().unwrap_or(false));
    }
}
