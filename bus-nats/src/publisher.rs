//! The relay's publisher: each message goes to the partition subject of its key, with its
//! event id as `Nats-Msg-Id` so the server stores a republished message once (within the
//! stream's duplicate window).
//!
//! One task publishes every batch, in the order `send` queued them, on one connection, and
//! hands each batch's acknowledgements to a task of its own: batches travel pipelined,
//! never waiting for the previous one's acknowledgements, and the order on the wire is the
//! order of `send`. A batch succeeds when the server acknowledged every message (a
//! duplicate counts as stored).
//!
//! Once a batch fails, every batch queued after it fails too without being published,
//! until [`Publisher::reset`]: the relay republishes from its checkpoint, and a later batch
//! stored ahead of the republished one would overtake it for good (the server drops the
//! later batch's republished copy as a duplicate). Batches already on the wire when the
//! failure is known cannot be called back; the failure is then usually the server's for
//! all of them alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::Context;
use async_nats::HeaderMap;
use bus::envelope::{Message, HEADER_KEY};
use bus::partition::partition_of;
use bus::{BusError, Pending, Publisher};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::topology::ensure_streams;
use crate::NatsSettings;

struct Batch {
    messages: Vec<Message>,
    done: oneshot::Sender<Result<(), BusError>>,
}

pub struct NatsPublisher {
    context: Context,
    settings: NatsSettings,
    queue: mpsc::UnboundedSender<Batch>,
    sender: JoinHandle<()>,
}

impl NatsPublisher {
    /// Connects for the relay called `name`. The streams are created by
    /// [`Publisher::prepare`].
    pub async fn connect(settings: NatsSettings, name: &str) -> Result<Self, BusError> {
        let context = settings.connect(&format!("ledger-relay-{name}")).await?;
        let (queue, sender) = start(&context, &settings);
        Ok(Self { context, settings, queue, sender })
    }

    /// The JetStream context the publisher uses (for benches and tests).
    pub fn context(&self) -> &Context {
        &self.context
    }
}

fn start(
    context: &Context,
    settings: &NatsSettings,
) -> (mpsc::UnboundedSender<Batch>, JoinHandle<()>) {
    let (queue, batches) = mpsc::unbounded_channel();
    let subjects = (0..settings.partitions).map(|p| settings.channels.partition(p)).collect();
    let sender = tokio::spawn(publish_batches(context.clone(), subjects, batches));
    (queue, sender)
}

async fn publish_batches(
    context: Context,
    subjects: Vec<String>,
    mut batches: mpsc::UnboundedReceiver<Batch>,
) {
    let failed = Arc::new(AtomicBool::new(false));
    while let Some(batch) = batches.recv().await {
        if failed.load(Ordering::Acquire) {
            let _ = batch.done.send(Err(BusError::new(
                "publishing",
                "an earlier batch failed; the publisher awaits a reset",
            )));
            continue;
        }
        // The acknowledgements are awaited while the batch is still being published: the
        // client lets only so many be outstanding (its `max_ack_inflight`) and makes the
        // next publish wait for one of them, so a batch larger than that whose
        // acknowledgements were awaited only after it was on the wire would never finish.
        let (acks, pending) = mpsc::unbounded_channel();
        let acknowledging = tokio::spawn(acknowledged(pending));
        let published = publish(&context, &subjects, batch.messages, &acks).await;
        drop(acks);
        if published.is_err() {
            failed.store(true, Ordering::Release);
        }
        let failed = Arc::clone(&failed);
        tokio::spawn(async move {
            let acknowledged = acknowledging.await.unwrap_or_else(|_| {
                Err(BusError::new("publishing", "the acknowledging task stopped"))
            });
            // A failed acknowledgement is the cause when publishing stopped for it.
            let result = acknowledged.and(published);
            if result.is_err() {
                failed.store(true, Ordering::Release);
            }
            let _ = batch.done.send(result);
        });
    }
}

/// Hands every message to the connection, in order, passing each acknowledgement on to be
/// awaited as soon as it is promised.
async fn publish(
    context: &Context,
    subjects: &[String],
    messages: Vec<Message>,
    acks: &mpsc::UnboundedSender<PublishAckFuture>,
) -> Result<(), BusError> {
    let partitions = u32::try_from(subjects.len()).unwrap_or(u32::MAX);
    for message in messages {
        let partition = partition_of(&message.key, partitions) as usize;
        let subject = subjects.get(partition).cloned().unwrap_or_default();
        let mut headers = HeaderMap::new();
        for (name, value) in message.headers {
            headers.insert(name, value);
        }
        headers.insert(async_nats::header::NATS_MESSAGE_ID, message.id.to_string());
        headers.insert(HEADER_KEY, message.key);
        let ack = context
            .publish_with_headers(subject, headers, message.payload.into())
            .await
            .map_err(|error| BusError::new("publishing", error))?;
        if acks.send(ack).is_err() {
            return Err(BusError::new("publishing", "an acknowledgement failed"));
        }
    }
    Ok(())
}

/// Every acknowledgement passed on, in order, until the batch is all published; the first
/// failure ends it (dropping the rest, which the client then awaits on its own).
async fn acknowledged(mut acks: mpsc::UnboundedReceiver<PublishAckFuture>) -> Result<(), BusError> {
    while let Some(ack) = acks.recv().await {
        ack.await.map_err(|error| BusError::new("publishing", error))?;
    }
    Ok(())
}

impl Publisher for NatsPublisher {
    async fn prepare(&mut self) -> Result<(), BusError> {
        ensure_streams(&self.context, &self.settings).await
    }

    fn send(&mut self, messages: Vec<Message>) -> Result<Pending, BusError> {
        let (done, result) = oneshot::channel();
        self.queue
            .send(Batch { messages, done })
            .map_err(|_| BusError::new("queueing a batch", "the publishing task stopped"))?;
        Ok(Box::pin(async move {
            result.await.map_err(|_| BusError::new("publishing", "the publishing task stopped"))?
        }))
    }

    /// Lets the publishing task go through what is queued (publishing it, or failing it
    /// after a failure) for up to the publish timeout, then starts a fresh one: whatever
    /// was queued before is on the wire, ahead of what comes next, or was never sent.
    async fn reset(&mut self) -> Result<(), BusError> {
        let (queue, sender) = start(&self.context, &self.settings);
        drop(std::mem::replace(&mut self.queue, queue));
        let mut retired = std::mem::replace(&mut self.sender, sender);
        if tokio::time::timeout(self.settings.publish_timeout, &mut retired).await.is_err() {
            retired.abort();
        }
        Ok(())
    }
}
