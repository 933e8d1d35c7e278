//! How the members of a consumer group share the partition queues, order per key kept:
//! each partition queue is consumed by one member at a time.
//!
//! Every member consumes on the group's presence queue, on which nothing is published:
//! its consumer count, which the broker maintains (a dead member's connection takes its
//! consumer with it), is the number of live members. A member holds a partition by
//! declaring the partition's *holder* queue `<group>.<p>.holder` as an exclusive queue:
//! the broker refuses (`RESOURCE_LOCKED`) the same exclusive queue to any other
//! connection, and deletes it when the holder's connection dies; no coordinator, no lease
//! to renew. (An exclusive *consumer* would be the obvious lock, but RabbitMQ 3.10's
//! quorum queues do not refuse a second exclusive consumer that races with the first:
//! the specs saw two members hold the same queues.) The partition queues are also
//! single-active-consumer, so even a holder that has not yet noticed it lost its lock
//! would not be delivered messages next to the new one.
//! Each held queue has its own channel (its prefetch, its delivery tags, an ack with
//! `multiple` that covers only that queue, and a refused claim that closes only it).
//!
//! Each round (every `rebalance_interval`, in a task of its own) a member counts the
//! members, looks at which queues have no consumer, and follows
//! [`bus::partition::rebalance`]: claims free queues up to its fair share, or marks the
//! ones beyond it as releasing. A releasing queue hands out nothing more; once what it
//! handed out was committed, its channel is closed and what the broker had sent ahead
//! goes back to the queue, for the next holder, in order. A queue is never claimed while
//! deliveries of an earlier holding of it are still uncommitted by this member, so a
//! commit always acknowledges on the channel that delivered.
//!
//! Failure modes: a round that fails (the broker went away, a queue was deleted) drops
//! the connection and every holding, reports the error through `recv`, and the next
//! round connects again and re-declares the topology. A member whose handler is stuck
//! keeps its partitions (their messages wait, in order) until its connection dies.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bus::envelope::{HEADER_KEY, HEADER_TRACEPARENT};
use bus::partition::rebalance;
use bus::BusError;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, Consumer, Queue};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::topology::{declare, declare_members, members_queue};
use crate::RabbitSettings;

/// What a member's subscriber and its membership task share.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) held: BTreeMap<u32, Holding>,
    /// Per partition, the last delivery `recv` handed out and no commit covered yet.
    pub(crate) unsettled: BTreeMap<u32, Handed>,
    /// Ready messages in the held queues, as of the last round.
    pub(crate) lag: Option<i64>,
    /// The subscriber asked to leave and join again.
    pub(crate) rejoin: bool,
}

pub(crate) struct Holding {
    /// Tells this holding's deliveries from those of an earlier holding of the queue.
    pub(crate) id: u64,
    pub(crate) channel: Channel,
    /// Beyond this member's share: hands out nothing more, closed once settled.
    pub(crate) releasing: bool,
    forwarding: JoinHandle<()>,
}

#[derive(Clone, Copy)]
pub(crate) struct Handed {
    pub(crate) holding: u64,
    pub(crate) tag: u64,
}

/// One message as a held queue delivered it.
pub(crate) struct Received {
    pub(crate) partition: u32,
    pub(crate) holding: u64,
    pub(crate) tag: u64,
    /// The [`HEADER_KEY`] header.
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Vec<u8>,
    /// The [`HEADER_TRACEPARENT`] header.
    pub(crate) traceparent: Option<String>,
}

/// What the membership task tells `recv`.
pub(crate) enum Event {
    Received(Received),
    Failed(BusError),
}

pub(crate) fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // The state stays consistent between statements: a panic elsewhere leaves it usable.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The task that keeps one member's connection and holdings; see the module docs.
pub(crate) struct Membership {
    settings: RabbitSettings,
    group: String,
    shared: Arc<Mutex<Shared>>,
    events: mpsc::UnboundedSender<Event>,
    wake: Arc<Notify>,
    link: Option<Link>,
    holdings: u64,
    /// Random per member: where in the free queues its claims start.
    claim_order: usize,
}

struct Link {
    connection: Connection,
    /// Declarations and the passive looks of each round; also carries the presence.
    control: Channel,
    _presence: Consumer,
}

impl Link {
    fn is_open(&self) -> bool {
        self.connection.status().connected() && self.control.status().connected()
    }
}

impl Membership {
    pub(crate) fn new(
        settings: RabbitSettings,
        group: String,
        shared: Arc<Mutex<Shared>>,
        events: mpsc::UnboundedSender<Event>,
        wake: Arc<Notify>,
    ) -> Self {
        let claim_order = RandomState::new().build_hasher().finish() as usize;
        Self { settings, group, shared, events, wake, link: None, holdings: 0, claim_order }
    }

    /// Connects, declares the group's queues and joins the presence queue.
    pub(crate) async fn connect(&mut self) -> Result<(), BusError> {
        let failed = |error| BusError::new("joining the consumer group", error);
        let connection = self.settings.connect(&format!("ledger-{}", self.group)).await?;
        let control = connection.create_channel().await.map_err(failed)?;
        declare(&control, &self.settings, std::slice::from_ref(&self.group)).await?;
        declare_members(&control, &self.settings, &self.group).await?;
        let presence = control
            .basic_consume(
                members_queue(&self.group).as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(failed)?;
        self.link = Some(Link { connection, control, _presence: presence });
        Ok(())
    }

    /// Rounds until `leave` fires or its sender is dropped, then closes the connection.
    pub(crate) async fn run(mut self, mut leave: oneshot::Receiver<()>) {
        let mut interval = tokio::time::interval(self.settings.rebalance_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = self.wake.notified() => {}
                _ = &mut leave => break,
            }
            let outcome = tokio::time::timeout(self.settings.publish_timeout, self.round()).await;
            let error = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(elapsed) => BusError::new("looking at the consumer group", elapsed),
            };
            tracing::warn!(group = %self.group, error = %error.chain(), "consumer group round failed");
            self.disconnect().await;
            lock(&self.shared).lag = None;
            if self.events.send(Event::Failed(error)).is_err() {
                break;
            }
        }
        self.disconnect().await;
    }

    async fn round(&mut self) -> Result<(), BusError> {
        if std::mem::take(&mut lock(&self.shared).rejoin) {
            self.disconnect().await;
        }
        if !self.link.as_ref().is_some_and(Link::is_open) {
            self.disconnect().await;
            self.connect().await?;
        }
        let Some(link) = &self.link else { return Ok(()) };
        for partition in forget_dead(&self.shared) {
            unlock(&link.control, &self.settings.channels.partition_queue(&self.group, partition))
                .await;
        }
        let members = passive(&link.control, &members_queue(&self.group)).await?.consumer_count();
        let mut free = Vec::new();
        let mut lag = 0;
        for partition in 0..self.settings.partitions {
            let queue = self.settings.channels.partition_queue(&self.group, partition);
            let queue = passive(&link.control, &queue).await?;
            if lock(&self.shared).held.contains_key(&partition) {
                lag += i64::from(queue.message_count());
            } else if queue.consumer_count() == 0 {
                free.push(partition);
            }
        }
        let claim = {
            let mut shared = lock(&self.shared);
            shared.lag = Some(lag);
            let active: BTreeSet<u32> =
                shared.held.iter().filter(|(_, h)| !h.releasing).map(|(p, _)| *p).collect();
            let plan = rebalance(self.settings.partitions, members as usize, &active);
            for partition in plan.release {
                if let Some(holding) = shared.held.get_mut(&partition) {
                    holding.releasing = true;
                }
            }
            plan.claim
        };
        self.release_settled().await;
        let mut claimed = 0;
        // Members that look at the same free queues try them in different orders.
        let start = self.claim_order % free.len().max(1);
        free.rotate_left(start);
        for partition in free {
            if claimed == claim {
                break;
            }
            if lock(&self.shared).unsettled.contains_key(&partition) {
                continue;
            }
            if self.claim(partition).await? {
                claimed += 1;
            }
        }
        Ok(())
    }

    /// Takes `partition`'s queue (its holder queue, then a consumer); false if another member
    /// holds it.
    async fn claim(&mut self, partition: u32) -> Result<bool, BusError> {
        let Some(link) = &self.link else { return Ok(false) };
        let failed = |error| BusError::new("claiming a partition", error);
        let channel = link.connection.create_channel().await.map_err(failed)?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await
            .map_err(failed)?;
        let queue = self.settings.channels.partition_queue(&self.group, partition);
        let exclusive = QueueDeclareOptions { exclusive: true, ..QueueDeclareOptions::default() };
        match channel
            .queue_declare(holder_queue(&queue).as_str().into(), exclusive, FieldTable::default())
            .await
        {
            Ok(_) => {}
            // RESOURCE_LOCKED closes only this channel: another member holds the partition.
            Err(error) if link.connection.status().connected() => {
                tracing::debug!(%queue, %error, "partition held by another member");
                return Ok(false);
            }
            Err(error) => return Err(failed(error)),
        }
        let consumer = match channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
        {
            Ok(consumer) => consumer,
            Err(error) => {
                unlock(&link.control, &queue).await;
                return Err(failed(error));
            }
        };
        self.holdings += 1;
        let id = self.holdings;
        let forwarding = tokio::spawn(forward(consumer, partition, id, self.events.clone()));
        tracing::info!(group = %self.group, partition, "holding a partition");
        lock(&self.shared)
            .held
            .insert(partition, Holding { id, channel, releasing: false, forwarding });
        Ok(true)
    }

    /// Closes the releasing holdings none of whose deliveries awaits a commit.
    async fn release_settled(&self) {
        let released: Vec<(u32, Holding)> = {
            let mut shared = lock(&self.shared);
            let settled: Vec<u32> = shared
                .held
                .iter()
                .filter(|(p, h)| h.releasing && !shared.unsettled.contains_key(p))
                .map(|(p, _)| *p)
                .collect();
            settled.into_iter().filter_map(|p| shared.held.remove(&p).map(|h| (p, h))).collect()
        };
        for (partition, holding) in released {
            // Closing the channel returns what it was sent ahead to the queue; only then
            // may another member take the partition.
            if let Err(error) = holding.channel.close(200, "released".into()).await {
                tracing::debug!(partition, %error, "closing a released partition's channel");
            }
            holding.forwarding.abort();
            if let Some(link) = &self.link {
                unlock(
                    &link.control,
                    &self.settings.channels.partition_queue(&self.group, partition),
                )
                .await;
            }
            tracing::info!(group = %self.group, partition, "released a partition");
        }
    }

    /// Drops every holding and the connection: the broker frees the queues and returns
    /// what was sent ahead.
    async fn disconnect(&mut self) {
        let holdings = std::mem::take(&mut lock(&self.shared).held);
        for holding in holdings.into_values() {
            holding.forwarding.abort();
        }
        if let Some(link) = self.link.take() {
            if link.connection.status().connected() {
                let closing = link.connection.close(200, "leaving".into());
                tokio::time::timeout(self.settings.publish_timeout, closing).await.ok();
            }
        }
    }
}

/// Forgets the holdings whose channel died (the broker returned what they were sent);
/// returns their partitions, whose holder queues are to be deleted.
fn forget_dead(shared: &Mutex<Shared>) -> Vec<u32> {
    let mut dead = Vec::new();
    lock(shared).held.retain(|partition, holding| {
        let alive = holding.channel.status().connected();
        if !alive {
            tracing::info!(partition, "lost a partition: its channel closed");
            holding.forwarding.abort();
            dead.push(*partition);
        }
        alive
    });
    dead
}

/// The exclusive queue whose owner holds partition queue `queue`.
fn holder_queue(queue: &str) -> String {
    format!("{queue}.holder")
}

/// Gives up the partition of `queue`: deletes its holder queue (this connection's).
async fn unlock(control: &Channel, queue: &str) {
    let holder = holder_queue(queue);
    if let Err(error) = control.queue_delete(holder.as_str().into(), Default::default()).await {
        tracing::debug!(%holder, %error, "deleting a holder queue");
    }
}

async fn passive(channel: &Channel, queue: &str) -> Result<Queue, BusError> {
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .map_err(|error| BusError::new("looking at a queue", error))
}

/// Feeds one holding's deliveries to `recv`, tagged with the holding.
async fn forward(
    mut consumer: Consumer,
    partition: u32,
    holding: u64,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Some(delivery) = consumer.next().await {
        match delivery {
            Ok(delivery) => {
                let header =
                    |name: &str| match delivery.properties.headers().as_ref()?.inner().get(name) {
                        Some(AMQPValue::LongString(value)) => Some(value.as_bytes().to_vec()),
                        _ => None,
                    };
                let key = header(HEADER_KEY);
                let traceparent =
                    header(HEADER_TRACEPARENT).and_then(|value| String::from_utf8(value).ok());
                let tag = delivery.delivery_tag;
                let payload = delivery.data;
                let received = Received { partition, holding, tag, key, payload, traceparent };
                if events.send(Event::Received(received)).is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(partition, %error, "a partition's consumer stopped");
                return;
            }
        }
    }
}
