//! The relay's publisher: one connection, one channel in publisher-confirm mode.
//!
//! `send` hands the batch to a task that owns the channel and publishes batch after
//! batch, message after message, without waiting for confirms in between: publishing
//! order is the order of `send` calls, and the broker confirms while more is published.
//! The [`Pending`] of a batch waits for every confirm of its messages; a nack, a message
//! returned as unroutable, or no confirm within `publish_timeout` fails the batch.
//!
//! Once a publish failed (the channel or connection died), every later batch on that
//! channel fails too, unpublished: a batch published after one that failed could
//! overtake its republication. `reset` closes the connection (the broker keeps what it
//! already received, in order) and `prepare` opens a new one and declares the topology.
//!
//! Messages are `mandatory` when the settings name consumer groups: a message then routes
//! to their queues, so one that routes nowhere means the broker lost the topology, and
//! failing the batch makes the relay re-declare it and publish again. Without groups
//! nothing would route until a member declared its queues, so nothing is mandatory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bus::envelope::{Message, HEADER_KEY};
use bus::partition::partition_of;
use bus::{BusError, Pending, Publisher};
use lapin::PublisherConfirm;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::confirm::{confirmed, properties, ConfirmChannel, Refused};
use crate::topology::declare;
use crate::RabbitSettings;

pub struct RabbitPublisher {
    settings: RabbitSettings,
    name: String,
    link: Option<Link>,
}

struct Link {
    channel: Arc<ConfirmChannel>,
    batches: mpsc::UnboundedSender<Batch>,
    publishing: JoinHandle<()>,
}

struct Batch {
    messages: Vec<Message>,
    published: oneshot::Sender<Result<Vec<PublisherConfirm>, BusError>>,
}

/// Where and how the task publishes.
struct Route {
    exchange: String,
    partitions: u32,
    mandatory: bool,
}

impl RabbitPublisher {
    /// A publisher for the relay called `name`; it connects in `prepare`.
    pub fn new(settings: RabbitSettings, name: &str) -> Self {
        Self { settings, name: format!("ledger-relay-{name}"), link: None }
    }

    async fn open(&self) -> Result<Link, BusError> {
        let connection = self.settings.connect(&self.name).await?;
        let channel = Arc::new(ConfirmChannel::open(connection).await?);
        let route = Route {
            exchange: self.settings.channels.orders(),
            partitions: self.settings.partitions,
            mandatory: !self.settings.groups.is_empty(),
        };
        let (batches, queued) = mpsc::unbounded_channel();
        let publishing = tokio::spawn(publish_batches(Arc::clone(&channel), route, queued));
        Ok(Link { channel, batches, publishing })
    }

    /// Lets the task publish what it was given (within `publish_timeout`), then closes
    /// the connection.
    async fn close(&mut self) {
        let Some(link) = self.link.take() else { return };
        drop(link.batches);
        let mut publishing = link.publishing;
        if tokio::time::timeout(self.settings.publish_timeout, &mut publishing).await.is_err() {
            publishing.abort();
        }
        tokio::time::timeout(self.settings.publish_timeout, link.channel.close()).await.ok();
    }
}

impl Publisher for RabbitPublisher {
    async fn prepare(&mut self) -> Result<(), BusError> {
        if !self.link.as_ref().is_some_and(|link| link.channel.is_open()) {
            self.close().await;
            self.link = Some(self.open().await?);
        }
        let Some(link) = &self.link else {
            return Err(BusError::new("preparing", Refused::NotConfirmed));
        };
        let declared = declare(&link.channel.channel, &self.settings, &self.settings.groups);
        tokio::time::timeout(self.settings.publish_timeout, declared)
            .await
            .map_err(|_| BusError::new("declaring the exchanges and queues", Refused::TimedOut))?
    }

    fn send(&mut self, messages: Vec<Message>) -> Result<Pending, BusError> {
        let not_connected = || BusError::new("publishing", NotConnected);
        let link = self.link.as_ref().ok_or_else(not_connected)?;
        let (published, confirms) = oneshot::channel();
        link.batches.send(Batch { messages, published }).map_err(|_| not_connected())?;
        let timeout = self.settings.publish_timeout;
        Ok(Box::pin(async move {
            let timed_out = |_| BusError::new("publishing", Refused::TimedOut);
            let deadline = tokio::time::Instant::now() + timeout;
            let confirms = tokio::time::timeout_at(deadline, confirms)
                .await
                .map_err(timed_out)?
                .map_err(|dropped| BusError::new("publishing", dropped))??;
            for confirm in confirms {
                tokio::time::timeout_at(deadline, confirmed(confirm))
                    .await
                    .map_err(timed_out)??;
            }
            Ok(())
        }))
    }

    async fn reset(&mut self) -> Result<(), BusError> {
        self.close().await;
        Ok(())
    }
}

/// `send` before `prepare`, or after the connection failed.
#[derive(Debug, thiserror::Error)]
#[error("not connected: prepare the publisher first")]
struct NotConnected;

async fn publish_batches(
    channel: Arc<ConfirmChannel>,
    route: Route,
    mut batches: mpsc::UnboundedReceiver<Batch>,
) {
    let mut failed = false;
    while let Some(batch) = batches.recv().await {
        let result = if failed {
            Err(BusError::new("publishing", AfterFailure))
        } else {
            publish_batch(&channel, &route, &batch.messages).await
        };
        failed |= result.is_err();
        // The relay may have given up on the batch: nothing to tell then.
        let _ = batch.published.send(result);
    }
}

/// An earlier batch failed on this channel (see the module docs).
#[derive(Debug, thiserror::Error)]
#[error("not published: an earlier batch failed on this channel")]
struct AfterFailure;

async fn publish_batch(
    channel: &ConfirmChannel,
    route: &Route,
    messages: &[Message],
) -> Result<Vec<PublisherConfirm>, BusError> {
    let mut confirms = Vec::with_capacity(messages.len());
    for chunk in messages.chunks(PIPELINED) {
        let publishes = chunk.iter().map(|message| {
            let partition = partition_of(&message.key, route.partitions).to_string();
            let headers = message
                .headers
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .chain([(HEADER_KEY, message.key.as_str())]);
            let properties = properties(Some(message.id.to_string()), headers);
            Box::pin(async move {
                channel
                    .publish(
                        &route.exchange,
                        &partition,
                        route.mandatory,
                        &message.payload,
                        properties,
                    )
                    .await
            })
        });
        for confirm in join_in_order(publishes.collect()).await {
            confirms.push(confirm?);
        }
    }
    Ok(confirms)
}

/// Messages handed to lapin before waiting for their frames to be written: lapin queues
/// a message's frames (and numbers it for its confirm) on the first poll of its publish,
/// so polling a chunk's publishes in order queues them in order, and the writes of a
/// whole chunk share the wake-ups of one.
const PIPELINED: usize = 64;

/// Awaits every future of `futures`, polling them in their order each time.
async fn join_in_order<F: Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match Pin::new(future).poll(context) {
                    Poll::Ready(ready) => *output = Some(ready),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
