//! Which member of a group consumes which partition. NATS 2.9 has no pinned consumers, so
//! the members agree through two JetStream key-value buckets of the group:
//!
//! - `<group>_members`: each member puts its id every round; the bucket's `max_age` is the
//!   lease TTL, so a member that died without leaving drops out of it by itself.
//! - `<group>_leases`: key = partition, value = its holder. A member claims a free
//!   partition with `create` (which fails if someone holds it), renews each hold every
//!   round with `update` at the revision it last wrote (which fails if the lease expired
//!   and someone else took it: the member then stops consuming it at once), and releases
//!   it with a delete at that revision. The bucket's `max_age` is the lease TTL too.
//!
//! Each round (a third of the TTL, at most a second), a member counts the live members and
//! follows [`bus::partition::rebalance`]: releases what exceeds its share, claims free
//! partitions up to it. A partition is consumed by one member at a time as long as rounds
//! run more often than the TTL; a member cut off from the server stops its partitions when
//! it fails to renew them, and others take them once the leases expired.
//!
//! The coordinator runs as a task of its own, so that the consumer loop's `recv` (which
//! may be cancelled) never leaves a claim half made. It stops when the member is dropped,
//! releasing its partitions and leaving the members bucket so the others take over
//! without waiting for the TTL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv::{CreateErrorKind, Store};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::Context;
use bus::partition::rebalance;
use bus::{stream_name, BusError};
use futures_util::TryStreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::fetch::{Fetched, Fetcher};
use crate::topology::open_consumer;
use crate::NatsSettings;

/// The longest time between two rounds.
const MAX_ROUND: Duration = Duration::from_secs(1);

/// A partition this member holds, as the subscriber sees it.
#[derive(Clone, Debug)]
pub(crate) struct Holding {
    /// Tells this hold's messages from those of an earlier hold of the same partition.
    pub epoch: u64,
    pub pending: Arc<AtomicU64>,
}

/// The partitions this member holds, shared by the coordinator and the subscriber.
pub(crate) type Assignment = Arc<Mutex<BTreeMap<u32, Holding>>>;

pub(crate) fn lock(assignment: &Assignment) -> std::sync::MutexGuard<'_, BTreeMap<u32, Holding>> {
    // The map stays consistent whatever panicked while holding it.
    assignment.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) enum Command {
    /// Release every partition; the next rounds claim a share again.
    Rejoin,
}

struct Lease {
    revision: u64,
    fetcher: JoinHandle<()>,
}

pub(crate) struct Coordinator {
    pub context: Context,
    pub settings: NatsSettings,
    pub group: String,
    pub member: String,
    pub assignment: Assignment,
    pub deliveries: mpsc::Sender<Fetched>,
    members: Store,
    leases: Store,
    held: BTreeMap<u32, Lease>,
    epochs: u64,
}

impl Coordinator {
    /// Opens (creating them if missing) the group's buckets.
    pub(crate) async fn new(
        context: Context,
        settings: NatsSettings,
        group: String,
        assignment: Assignment,
        deliveries: mpsc::Sender<Fetched>,
    ) -> Result<Self, BusError> {
        let (members, leases) = buckets(&context, &settings, &group).await?;
        let member = uuid::Uuid::new_v4().simple().to_string();
        Ok(Self {
            context,
            settings,
            group,
            member,
            assignment,
            deliveries,
            members,
            leases,
            held: BTreeMap::new(),
            epochs: 0,
        })
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut rounds = tokio::time::interval((self.settings.lease_ttl / 3).min(MAX_ROUND));
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = rounds.tick() => self.round().await,
                command = commands.recv() => match command {
                    Some(Command::Rejoin) => self.release_all().await,
                    None => break,
                },
            }
        }
        self.release_all().await;
        if let Err(error) = self.members.delete(&self.member).await {
            tracing::debug!(group = %self.group, %error, "could not leave the members bucket");
        }
    }

    async fn round(&mut self) {
        if let Err(error) = self.heartbeat().await {
            tracing::warn!(group = %self.group, error = %error.chain(), "membership not renewed");
        }
        self.renew().await;
        let members = match self.live_members().await {
            Ok(members) => members,
            Err(error) => {
                tracing::warn!(group = %self.group, error = %error.chain(), "members unknown");
                return;
            }
        };
        let held: BTreeSet<u32> = self.held.keys().copied().collect();
        let plan = rebalance(self.settings.partitions, members, &held);
        for partition in plan.release {
            self.release(partition).await;
        }
        if plan.claim > 0 {
            self.claim(plan.claim).await;
        }
    }

    /// Puts this member in the members bucket, creating the buckets again if the server
    /// lost them.
    async fn heartbeat(&mut self) -> Result<(), BusError> {
        let value = self.member.clone().into();
        if self.members.put(&self.member, value).await.is_ok() {
            return Ok(());
        }
        (self.members, self.leases) = buckets(&self.context, &self.settings, &self.group).await?;
        let value = self.member.clone().into();
        self.members
            .put(&self.member, value)
            .await
            .map(|_| ())
            .map_err(|error| BusError::new("joining the members bucket", error))
    }

    async fn live_members(&self) -> Result<usize, BusError> {
        let failed = |error| BusError::new("listing the members", error);
        let keys = self.members.keys().await.map_err(failed)?;
        let members: BTreeSet<String> = keys
            .try_collect()
            .await
            .map_err(|error| BusError::new("listing the members", error))?;
        Ok(members.len().max(1) + usize::from(!members.contains(&self.member)))
    }

    /// Renews every lease; stops consuming at once a partition whose lease is lost.
    async fn renew(&mut self) {
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        for partition in partitions {
            let Some(revision) = self.held.get(&partition).map(|lease| lease.revision) else {
                continue;
            };
            let value = self.member.clone().into();
            match self.leases.update(partition.to_string(), value, revision).await {
                Ok(revision) => {
                    if let Some(lease) = self.held.get_mut(&partition) {
                        lease.revision = revision;
                    }
                }
                Err(error) => {
                    tracing::warn!(group = %self.group, partition, %error, "lease lost");
                    self.stop(partition);
                }
            }
        }
    }

    /// Claims up to `count` free partitions, starting from a place that differs from
    /// member to member so that members joining together do not all race for the same.
    async fn claim(&mut self, count: usize) {
        let partitions = self.settings.partitions;
        let start =
            u32::from(self.member.as_bytes().first().copied().unwrap_or(0)) % partitions.max(1);
        let mut claimed = 0;
        for partition in (0..partitions).map(|offset| (start + offset) % partitions) {
            if claimed == count {
                break;
            }
            if self.held.contains_key(&partition) {
                continue;
            }
            let value = self.member.clone().into();
            let revision = match self.leases.create(partition.to_string(), value).await {
                Ok(revision) => revision,
                Err(error) if error.kind() == CreateErrorKind::AlreadyExists => continue,
                Err(error) => {
                    tracing::warn!(group = %self.group, partition, %error, "cannot claim");
                    return;
                }
            };
            match self.start(partition, revision).await {
                Ok(()) => claimed += 1,
                Err(error) => {
                    tracing::warn!(group = %self.group, partition, error = %error.chain(),
                        "claimed but cannot consume; releasing");
                    self.delete_lease(partition, revision).await;
                }
            }
        }
    }

    async fn start(&mut self, partition: u32, revision: u64) -> Result<(), BusError> {
        let (consumer, pending) =
            open_consumer(&self.context, &self.settings, &self.group, partition, true).await?;
        self.epochs += 1;
        let holding = Holding { epoch: self.epochs, pending: Arc::new(AtomicU64::new(pending)) };
        let fetcher = Fetcher {
            context: self.context.clone(),
            settings: self.settings.clone(),
            group: self.group.clone(),
            partition,
            epoch: holding.epoch,
            pending: Arc::clone(&holding.pending),
            deliveries: self.deliveries.clone(),
        };
        let fetcher = tokio::spawn(fetcher.run(consumer));
        lock(&self.assignment).insert(partition, holding);
        self.held.insert(partition, Lease { revision, fetcher });
        tracing::info!(group = %self.group, partition, "partition claimed");
        Ok(())
    }

    /// Stops consuming `partition` (what was fetched and not committed is redelivered to
    /// the next holder); the lease is left to expire or be released.
    fn stop(&mut self, partition: u32) -> Option<u64> {
        lock(&self.assignment).remove(&partition);
        let lease = self.held.remove(&partition)?;
        lease.fetcher.abort();
        Some(lease.revision)
    }

    async fn release(&mut self, partition: u32) {
        if let Some(revision) = self.stop(partition) {
            self.delete_lease(partition, revision).await;
            tracing::info!(group = %self.group, partition, "partition released");
        }
    }

    async fn release_all(&mut self) {
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        for partition in partitions {
            self.release(partition).await;
        }
    }

    async fn delete_lease(&self, partition: u32, revision: u64) {
        let key = partition.to_string();
        if let Err(error) = self.leases.delete_expect_revision(key, Some(revision)).await {
            tracing::debug!(group = %self.group, partition, %error, "lease left to expire");
        }
    }
}

/// The group's members and leases buckets, created if missing.
async fn buckets(
    context: &Context,
    settings: &NatsSettings,
    group: &str,
) -> Result<(Store, Store), BusError> {
    let name = stream_name(group);
    let members = bucket(context, settings, format!("{name}_members")).await?;
    let leases = bucket(context, settings, format!("{name}_leases")).await?;
    Ok((members, leases))
}

/// A key-value bucket whose entries live `lease_ttl` after their last write. Its stream is
/// created directly, with the settings the client library would use: the library's own
/// `create_key_value` first asks for account information in a shape 2.9 servers do not
/// send.
async fn bucket(
    context: &Context,
    settings: &NatsSettings,
    name: String,
) -> Result<Store, BusError> {
    let failed = |error: async_nats::Error| BusError::new("creating the group's buckets", error);
    if let Ok(store) = context.get_key_value(&name).await {
        return Ok(store);
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age: settings.lease_ttl,
        storage: StorageType::File,
        num_replicas: settings.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    };
    context.get_or_create_stream(config).await.map_err(|error| failed(error.into()))?;
    context.get_key_value(&name).await.map_err(|error| failed(error.into()))
}
