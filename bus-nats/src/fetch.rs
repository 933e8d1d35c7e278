//! The fetcher of one held partition: pulls from the group's consumer on it and forwards
//! to the member's queue, until the coordinator stops it (by aborting the task) or the
//! member is gone (the queue is closed).
//!
//! Every message carries the epoch of the hold it was fetched under, so the member drops
//! what arrives from a partition it no longer holds (or has held again since). A message
//! the server delivers again after `ack_wait` while the consumer loop still has the
//! original (a batch retried through a database outage) is dropped here: it is in flight
//! already, and delivering it again would put it behind newer ones.
//!
//! When the pull fails (the server restarted, lost the consumer, or the stream), the
//! fetcher backs off and opens the consumer again, creating what was lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{Context, Message};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::topology::open_consumer;
use crate::NatsSettings;

/// Messages asked for per pull request: enough for a consumer loop's batch to fill from
/// one partition without a round trip per message.
const PULL_BATCH: usize = 500;
/// How long to wait before opening a failed consumer again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A message fetched from `partition` under the hold numbered `epoch`.
pub(crate) struct Fetched {
    pub partition: u32,
    pub epoch: u64,
    pub message: Message,
}

/// What the fetcher of one partition needs.
pub(crate) struct Fetcher {
    pub context: Context,
    pub settings: NatsSettings,
    pub group: String,
    pub partition: u32,
    pub epoch: u64,
    /// The messages the consumer has yet to deliver, as the server last told.
    pub pending: Arc<AtomicU64>,
    pub deliveries: mpsc::Sender<Fetched>,
}

impl Fetcher {
    pub(crate) async fn run(self, mut consumer: PullConsumer) {
        let mut last_forwarded = 0;
        loop {
            match consumer.stream().max_messages_per_batch(PULL_BATCH).messages().await {
                Ok(mut messages) => {
                    while let Some(item) = messages.next().await {
                        let message = match item {
                            Ok(message) => message,
                            Err(error) => {
                                tracing::debug!(partition = self.partition, %error, "pulling failed");
                                break;
                            }
                        };
                        let Ok(info) = message.info() else { continue };
                        let sequence = info.stream_sequence;
                        self.pending.store(info.pending, Ordering::Relaxed);
                        if sequence <= last_forwarded {
                            continue;
                        }
                        last_forwarded = sequence;
                        let fetched =
                            Fetched { partition: self.partition, epoch: self.epoch, message };
                        if self.deliveries.send(fetched).await.is_err() {
                            return; // the member is gone
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(partition = self.partition, %error, "pulling failed");
                }
            }
            consumer = self.reopen().await;
        }
    }

    async fn reopen(&self) -> PullConsumer {
        loop {
            tokio::time::sleep(RETRY_AFTER).await;
            match open_consumer(&self.context, &self.settings, &self.group, self.partition, false)
                .await
            {
                Ok((consumer, _)) => return consumer,
                Err(error) => {
                    tracing::warn!(partition = self.partition, error = %error.chain(),
                        "cannot open the partition's consumer")
                }
            }
        }
    }
}
