//! A push for whoever waits on a read model (read-your-writes, as-of cuts): each committed
//! batch bumps its projection's counter, directly in the process that applied it and,
//! through `LISTEN`/`NOTIFY` on [`CHANNEL`], in every other process. A waiter looks at the
//! database again when its counter moves instead of polling it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::kind::ProjectionKind;

/// The notification channel; the payload is the projection's name.
pub const CHANNEL: &str = "ledger_projection_applied";

/// One counter per projection, bumped after each batch it applied.
#[derive(Clone)]
pub struct AppliedSignal {
    counters: Arc<[watch::Sender<u64>; ProjectionKind::ALL.len()]>,
}

impl Default for AppliedSignal {
    fn default() -> Self {
        Self { counters: Arc::new(std::array::from_fn(|_| watch::Sender::new(0))) }
    }
}

impl AppliedSignal {
    fn counter(&self, kind: ProjectionKind) -> &watch::Sender<u64> {
        &self.counters[kind as usize]
    }

    /// `kind` applied a batch.
    pub fn bump(&self, kind: ProjectionKind) {
        self.counter(kind).send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A receiver that changes whenever `kind` applies a batch from now on.
    pub fn subscribe(&self, kind: ProjectionKind) -> watch::Receiver<u64> {
        self.counter(kind).subscribe()
    }

    /// Bumps the counters from other processes' notifications until `shutdown`, connecting
    /// again after a failure. Every connection bumps all counters once it listens: whatever
    /// was applied while it was away is looked at again.
    pub async fn listen(self, database_url: String, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.listen_once(&database_url, &shutdown).await {
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
        database_url: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), tokio_postgres::Error> {
        let (client, mut connection) = tokio_postgres::connect(database_url, NoTls).await?;
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
            self.bump(kind);
        }
        let ended = loop {
            tokio::select! {
                note = notifications.recv() => match note {
                    Some(Ok(name)) => {
                        if let Some(kind) = ProjectionKind::parse(&name) {
                            self.bump(kind);
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
