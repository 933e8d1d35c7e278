//! A member of a consumer group on the orders stream: it consumes the partitions its
//! [`Coordinator`](crate::lease) holds for it, one durable pull consumer each, merged into
//! one queue; acknowledges only when the consumer loop commits; parks on the dead-letter
//! subject.
//!
//! Order per key holds because a partition is consumed by one member at a time, from one
//! consumer, in stream order, and acknowledgements are cumulative (`AckPolicy::All`): the
//! last message of a batch on a partition acknowledges the batch there.
//!
//! `recv` only takes from the queue the fetchers fill, so dropping it loses nothing. What
//! it returned is kept until committed, for acknowledging. A message from a partition
//! released meanwhile is dropped unacknowledged: the next holder gets it again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::jetstream::{Context, Message};
use async_nats::HeaderMap;
use bus::envelope::{HEADER_KEY, HEADER_TRACEPARENT};
use bus::{BusError, Delivery, Failure, Subscriber};
use tokio::sync::mpsc;

use crate::fetch::Fetched;
use crate::lease::{lock, Assignment, Command, Coordinator};
use crate::topology::ensure_streams;
use crate::NatsSettings;

/// Messages fetched ahead of the consumer loop, over all held partitions.
const QUEUE: usize = 2_000;

/// What was delivered and not yet committed on one partition, under one hold.
struct Uncommitted {
    epoch: u64,
    messages: BTreeMap<u64, Message>,
}

pub struct NatsSubscriber {
    context: Context,
    dead_letters: String,
    assignment: Assignment,
    deliveries: mpsc::Receiver<Fetched>,
    uncommitted: HashMap<u32, Uncommitted>,
    /// Dropped with the subscriber: the coordinator then releases everything and leaves.
    commands: mpsc::UnboundedSender<Command>,
}

impl NatsSubscriber {
    /// Creates the streams and the group's buckets if missing and joins `group`; the
    /// member claims its share of the partitions within a round.
    pub async fn join(settings: &NatsSettings, group: &str) -> Result<Self, BusError> {
        let context = settings.connect(group).await?;
        ensure_streams(&context, settings).await?;
        let assignment = Assignment::default();
        let (deliveries_sender, deliveries) = mpsc::channel(QUEUE);
        let coordinator = Coordinator::new(
            context.clone(),
            settings.clone(),
            group.to_owned(),
            Arc::clone(&assignment),
            deliveries_sender,
        )
        .await?;
        let (commands, received) = mpsc::unbounded_channel();
        tokio::spawn(coordinator.run(received));
        Ok(Self {
            context,
            dead_letters: settings.channels.dead_letters(),
            assignment,
            deliveries,
            uncommitted: HashMap::new(),
            commands,
        })
    }

    /// Whether `partition` is held now under the hold `epoch`.
    fn holds(&self, partition: u32, epoch: u64) -> bool {
        lock(&self.assignment).get(&partition).is_some_and(|holding| holding.epoch == epoch)
    }
}

impl Subscriber for NatsSubscriber {
    async fn recv(&mut self) -> Result<Delivery, BusError> {
        loop {
            let Fetched { partition, epoch, message } = self
                .deliveries
                .recv()
                .await
                .ok_or_else(|| BusError::new("receiving", "the group coordinator stopped"))?;
            if !self.holds(partition, epoch) {
                continue;
            }
            let Ok(info) = message.info() else { continue };
            let sequence = info.stream_sequence;
            let delivery = Delivery {
                channel: message.subject.to_string(),
                partition: i32::try_from(partition).unwrap_or(i32::MAX),
                offset: i64::try_from(sequence).unwrap_or(i64::MAX),
                key: message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(HEADER_KEY))
                    .map(|key| key.as_str().as_bytes().to_vec()),
                payload: Some(message.payload.to_vec()),
                traceparent: message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(HEADER_TRACEPARENT))
                    .map(|value| value.as_str().to_owned()),
            };
            let assignment = Arc::clone(&self.assignment);
            let held = lock(&assignment);
            self.uncommitted.retain(|partition, pending| {
                held.get(partition).is_some_and(|holding| holding.epoch == pending.epoch)
            });
            drop(held);
            self.uncommitted
                .entry(partition)
                .or_insert_with(|| Uncommitted { epoch, messages: BTreeMap::new() })
                .messages
                .insert(sequence, message);
            return Ok(delivery);
        }
    }

    /// Acknowledges, on each partition still held, the batch's last message there (which
    /// acknowledges everything before it), and waits for the server to confirm.
    async fn commit(&mut self, batch: &[Delivery]) -> Result<(), BusError> {
        let mut last: HashMap<u32, u64> = HashMap::new();
        for delivery in batch {
            let (Ok(partition), Ok(offset)) =
                (u32::try_from(delivery.partition), u64::try_from(delivery.offset))
            else {
                continue;
            };
            let entry = last.entry(partition).or_insert(offset);
            *entry = (*entry).max(offset);
        }
        let mut acknowledgements = Vec::new();
        for (partition, offset) in last {
            let Some(uncommitted) = self.uncommitted.get_mut(&partition) else { continue };
            let later = uncommitted.messages.split_off(&(offset + 1));
            let done = std::mem::replace(&mut uncommitted.messages, later);
            if let Some((_, message)) = done.into_iter().next_back() {
                acknowledgements.push(async move { message.double_ack().await });
            }
        }
        for result in futures_util::future::join_all(acknowledgements).await {
            result.map_err(|error| BusError::new("acknowledging", error))?;
        }
        Ok(())
    }

    async fn park(&mut self, delivery: &Delivery, failure: &Failure) -> Result<(), BusError> {
        let mut headers = HeaderMap::new();
        headers.insert("error", failure.error.as_str());
        headers.insert("projection", failure.consumer);
        headers.insert("source-subject", delivery.channel.as_str());
        headers.insert("source-partition", delivery.partition.to_string());
        headers.insert("source-offset", delivery.offset.to_string());
        headers.insert("attempts", failure.attempts.to_string());
        if let Some(key) = &delivery.key {
            headers.insert(HEADER_KEY, String::from_utf8_lossy(key).into_owned());
        }
        // Parking the same message again (the acknowledgement was lost) stores it once.
        let id = format!("{}:{}:{}", failure.consumer, delivery.channel, delivery.offset);
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        let payload = delivery.payload.clone().unwrap_or_default();
        self.context
            .publish_with_headers(self.dead_letters.clone(), headers, payload.into())
            .await
            .map_err(|error| BusError::new("publishing a dead letter", error))?
            .await
            .map(|_| ())
            .map_err(|error| BusError::new("publishing a dead letter", error))
    }

    fn assignment(&self) -> Option<Vec<i32>> {
        let held = lock(&self.assignment);
        Some(held.keys().map(|p| i32::try_from(*p).unwrap_or(i32::MAX)).collect())
    }

    /// The messages the held partitions' consumers have yet to deliver, as the server last
    /// told (at the claim, then with every message).
    fn lag(&self) -> Option<i64> {
        let held = lock(&self.assignment);
        if held.is_empty() {
            return None;
        }
        let pending: u64 =
            held.values().map(|holding| holding.pending.load(Ordering::Relaxed)).sum();
        Some(i64::try_from(pending).unwrap_or(i64::MAX))
    }

    fn rejoin(&mut self) -> Result<(), BusError> {
        self.commands
            .send(Command::Rejoin)
            .map_err(|_| BusError::new("rejoining the group", "the group coordinator stopped"))
    }
}
