//! One member of a consumer group on the orders exchange: receives from the partition
//! queues it holds (see [`crate::membership`] for how members share them), acknowledges
//! when the consumer loop says a batch is done, and parks dead letters on the
//! dead-letter exchange with publisher confirms.
//!
//! A [`Delivery`]'s `partition` is the partition number and its `offset` the delivery
//! tag on that partition's channel: a place to acknowledge and a record, not a position
//! in the queue (tags start again with each holding).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bus::envelope::HEADER_KEY;
use bus::{BusError, Delivery, Failure, Subscriber};
use lapin::options::BasicAckOptions;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::confirm::{confirmed, properties, ConfirmChannel, Refused};
use crate::membership::{lock, Event, Handed, Membership, Received, Shared};
use crate::topology::declare;
use crate::RabbitSettings;

pub struct RabbitSubscriber {
    settings: RabbitSettings,
    group: String,
    shared: Arc<Mutex<Shared>>,
    events: mpsc::UnboundedReceiver<Event>,
    wake: Arc<Notify>,
    /// Dropped with the subscriber: the membership task then closes the connection and
    /// the broker frees the partitions at once.
    _leave: oneshot::Sender<()>,
    dead_letters: Option<ConfirmChannel>,
}

impl RabbitSubscriber {
    /// Declares the group's queues (the subscriber may start before the relay) and joins
    /// `group`; its partitions come with the first rounds.
    pub async fn join(settings: &RabbitSettings, group: &str) -> Result<Self, BusError> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let wake = Arc::new(Notify::new());
        let (sender, events) = mpsc::unbounded_channel();
        let mut membership = Membership::new(
            settings.clone(),
            group.to_owned(),
            Arc::clone(&shared),
            sender,
            Arc::clone(&wake),
        );
        membership.connect().await?;
        let (leave, left) = oneshot::channel();
        tokio::spawn(membership.run(left));
        Ok(Self {
            settings: settings.clone(),
            group: group.to_owned(),
            shared,
            events,
            wake,
            _leave: leave,
            dead_letters: None,
        })
    }

    /// The dead-letter channel, opened (and the topology declared) if it is not.
    async fn dead_letter_channel(&mut self) -> Result<&ConfirmChannel, BusError> {
        if !self.dead_letters.as_ref().is_some_and(ConfirmChannel::is_open) {
            if let Some(stale) = self.dead_letters.take() {
                stale.close().await;
            }
            let name = format!("ledger-{}-dead-letters", self.group);
            let channel = ConfirmChannel::open(self.settings.connect(&name).await?).await?;
            declare(&channel.channel, &self.settings, std::slice::from_ref(&self.group)).await?;
            self.dead_letters = Some(channel);
        }
        self.dead_letters
            .as_ref()
            .ok_or_else(|| BusError::new("parking a dead letter", Refused::NotConfirmed))
    }
}

impl Subscriber for RabbitSubscriber {
    async fn recv(&mut self) -> Result<Delivery, BusError> {
        loop {
            let event = self.events.recv().await.ok_or_else(|| {
                BusError::new("receiving", std::io::Error::other("the membership task stopped"))
            })?;
            let received = match event {
                Event::Failed(error) => return Err(error),
                Event::Received(received) => received,
            };
            let Received { partition, holding, tag, key, payload, traceparent } = received;
            {
                let mut shared = lock(&self.shared);
                let current = shared
                    .held
                    .get(&partition)
                    .is_some_and(|held| held.id == holding && !held.releasing);
                if !current {
                    // Unacknowledged on a channel given up: it returns to the queue.
                    continue;
                }
                shared.unsettled.insert(partition, Handed { holding, tag });
            }
            return Ok(Delivery {
                channel: self.settings.channels.partition_queue(&self.group, partition),
                partition: i32::try_from(partition).unwrap_or(i32::MAX),
                offset: i64::try_from(tag).unwrap_or(i64::MAX),
                key,
                payload: Some(payload),
                traceparent,
            });
        }
    }

    /// Acknowledges, per partition, up to the batch's last delivery (`multiple`) on the
    /// channel that delivered it; deliveries of a holding lost since are skipped (the
    /// broker gave them back to the queue already).
    async fn commit(&mut self, batch: &[Delivery]) -> Result<(), BusError> {
        let mut last: BTreeMap<u32, u64> = BTreeMap::new();
        for delivery in batch {
            let (Ok(partition), Ok(tag)) =
                (u32::try_from(delivery.partition), u64::try_from(delivery.offset))
            else {
                continue;
            };
            let entry = last.entry(partition).or_insert(tag);
            *entry = (*entry).max(tag);
        }
        let mut first_error = None;
        for (partition, tag) in last {
            let channel = {
                let shared = lock(&self.shared);
                match (shared.unsettled.get(&partition), shared.held.get(&partition)) {
                    (Some(handed), Some(held)) if handed.holding == held.id => {
                        Some(held.channel.clone())
                    }
                    _ => None,
                }
            };
            if let Some(channel) = channel {
                let multiple = BasicAckOptions { multiple: true };
                if let Err(error) = channel.basic_ack(tag, multiple).await {
                    first_error.get_or_insert_with(|| BusError::new("acknowledging", error));
                }
            }
            let mut shared = lock(&self.shared);
            if shared.unsettled.get(&partition).is_some_and(|handed| handed.tag <= tag) {
                shared.unsettled.remove(&partition);
            }
        }
        if lock(&self.shared).held.values().any(|held| held.releasing) {
            self.wake.notify_one();
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn park(&mut self, delivery: &Delivery, failure: &Failure) -> Result<(), BusError> {
        let exchange = self.settings.channels.dead_letters();
        let timeout = self.settings.publish_timeout;
        let partition = delivery.partition.to_string();
        let attempts = failure.attempts.to_string();
        let key = delivery.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
        let headers = [
            ("error", failure.error.as_str()),
            ("projection", failure.consumer),
            ("source-queue", delivery.channel.as_str()),
            ("source-partition", partition.as_str()),
            ("attempts", attempts.as_str()),
            (HEADER_KEY, key.as_ref()),
        ];
        let payload = delivery.payload.as_deref().unwrap_or_default();
        let channel = self.dead_letter_channel().await?;
        let parked = async {
            let confirm =
                channel.publish(&exchange, "", false, payload, properties(None, headers)).await?;
            confirmed(confirm).await
        };
        let result = match tokio::time::timeout(timeout, parked).await {
            Ok(result) => result,
            Err(_) => Err(BusError::new("parking a dead letter", Refused::TimedOut)),
        };
        if result.is_err() {
            // Start the next attempt on a fresh channel.
            if let Some(stale) = self.dead_letters.take() {
                stale.close().await;
            }
        }
        result
    }

    fn assignment(&self) -> Option<Vec<i32>> {
        let shared = lock(&self.shared);
        Some(shared.held.keys().filter_map(|p| i32::try_from(*p).ok()).collect())
    }

    fn lag(&self) -> Option<i64> {
        lock(&self.shared).lag
    }

    fn rejoin(&mut self) -> Result<(), BusError> {
        lock(&self.shared).rejoin = true;
        self.wake.notify_one();
        Ok(())
    }

    /// Delivery tags start again with each holding.
    fn offsets_name_messages(&self) -> bool {
        false
    }
}
