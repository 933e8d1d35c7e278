//! What every spec of the adapter needs: settings with a prefix of its own on the server
//! at 127.0.0.1:4222, messages, receiving with a deadline, and cleaning up.

#![allow(dead_code)] // each spec file uses its own part

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::Context;
use bus::envelope::Message;
use bus::partition::partition_of;
use bus::{stream_name, Channels, Delivery, Subscriber};
use bus_nats::NatsSettings;
use tokio::time::Instant;

pub const PARTITIONS: u32 = 4;
/// How long any spec waits for something that should happen within a few rounds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Settings with a unique prefix, few partitions and short leases, so hand-overs take
/// seconds.
pub fn settings() -> NatsSettings {
    let prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
    let mut settings = NatsSettings::new(bus_nats::DEFAULT_URL, Channels::new(prefix));
    settings.partitions = PARTITIONS;
    settings.lease_ttl = Duration::from_secs(3);
    settings.publish_timeout = Duration::from_secs(5);
    settings
}

pub fn message(key: &str, payload: &str) -> Message {
    Message {
        id: uuid::Uuid::new_v4(),
        key: key.to_owned(),
        payload: payload.as_bytes().to_vec(),
        headers: vec![("event-type", "OrderPlaced".to_owned())],
    }
}

/// A key landing on each partition.
pub fn key_per_partition() -> Vec<String> {
    let mut keys: Vec<Option<String>> = vec![None; PARTITIONS as usize];
    let mut n = 0;
    while keys.iter().any(Option::is_none) {
        let key = format!("order-{n}");
        let slot = &mut keys[partition_of(&key, PARTITIONS) as usize];
        slot.get_or_insert(key);
        n += 1;
    }
    keys.into_iter().flatten().collect()
}

/// Receives until `count` messages arrived, failing the spec past [`PATIENCE`].
pub async fn receive(subscriber: &mut impl Subscriber, count: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + PATIENCE;
    let mut received = Vec::with_capacity(count);
    while received.len() < count {
        match tokio::time::timeout_at(deadline, subscriber.recv()).await {
            Ok(Ok(delivery)) => received.push(delivery),
            Ok(Err(error)) => panic!("receiving failed: {}", error.chain()),
            Err(_) => panic!("received {} of {count} messages in time", received.len()),
        }
    }
    received
}

/// Whether nothing more arrives within a short while.
pub async fn nothing_more(subscriber: &mut impl Subscriber) -> bool {
    tokio::time::timeout(Duration::from_millis(500), subscriber.recv()).await.is_err()
}

/// Polls `condition` until it holds, failing the spec past [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn held(subscriber: &impl Subscriber) -> BTreeSet<i32> {
    subscriber.assignment().unwrap_or_default().into_iter().collect()
}

pub fn text(delivery: &Delivery) -> String {
    String::from_utf8_lossy(delivery.payload.as_deref().unwrap_or_default()).into_owned()
}

pub fn key(delivery: &Delivery) -> String {
    String::from_utf8_lossy(delivery.key.as_deref().unwrap_or_default()).into_owned()
}

/// Deletes the spec's streams and the buckets of `groups`.
pub async fn clean_up(settings: &NatsSettings, groups: &[&str]) {
    let Ok(context) = settings.connect("clean-up").await else { return };
    let _ = context.delete_stream(settings.channels.stream()).await;
    let _ = context.delete_stream(settings.channels.dead_letter_stream()).await;
    for group in groups {
        for suffix in ["members", "leases"] {
            let _ = context.delete_key_value(format!("{}_{suffix}", stream_name(group))).await;
        }
    }
}

pub async fn context(settings: &NatsSettings) -> Context {
    settings.connect("spec").await.expect("the NATS server at 127.0.0.1:4222")
}
