//! The adapter against the real broker (RabbitMQ at 127.0.0.1:5672): what the relay and
//! the consumer loop rely on, one spec per promise.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bus::{Failure, Publisher, Subscriber};
use bus_rabbitmq::{RabbitPublisher, RabbitSubscriber};
use lapin::types::AMQPValue;
use support::{
    eventually, group, key_per_partition, message, parse, receive, receives_within, settings,
    Broker,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_receives_every_message_in_publish_order_per_key() {
    let settings = settings();
    let mut publisher = RabbitPublisher::new(settings.clone(), "spec");
    publisher.prepare().await.unwrap();
    let keys: Vec<String> = (0..12).map(|n| format!("order-{n}")).collect();
    let messages: Vec<_> =
        (0..600).map(|n| message(&keys[n % keys.len()], n / keys.len())).collect();
    for batch in messages.chunks(100) {
        publisher.send(batch.to_vec()).unwrap().await.unwrap();
    }

    let mut member = RabbitSubscriber::join(&settings, &group(&settings)).await.unwrap();
    let received = receive(&mut member, messages.len()).await;
    member.commit(&received).await.unwrap();

    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for delivery in &received {
        let (key, sequence) = parse(delivery);
        assert_eq!(delivery.key.as_deref(), Some(key.as_bytes()), "the key travels in a header");
        per_key.entry(key).or_default().push(sequence);
    }
    assert_eq!(per_key.len(), keys.len());
    for (key, sequences) in per_key {
        assert_eq!(sequences, (0..50).collect::<Vec<_>>(), "{key} in publish order");
    }
    drop(member);
    Broker::connect().await.delete_all(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_messages_are_not_delivered_again_and_uncommitted_ones_go_to_the_next_member() {
    let settings = settings();
    let mut publisher = RabbitPublisher::new(settings.clone(), "spec");
    publisher.prepare().await.unwrap();
    let batch: Vec<_> = (0..20).map(|n| message("order-1", n)).collect();
    publisher.publish(batch).await.unwrap();

    let mut first = RabbitSubscriber::join(&settings, &group(&settings)).await.unwrap();
    let received = receive(&mut first, 20).await;
    first.commit(&received[..8]).await.unwrap();
    drop(first); // leaves with 12 messages received and not committed

    let mut next = RabbitSubscriber::join(&settings, &group(&settings)).await.unwrap();
    let redelivered = receive(&mut next, 12).await;
    let sequences: Vec<usize> = redelivered.iter().map(|d| parse(d).1).collect();
    assert_eq!(sequences, (8..20).collect::<Vec<_>>(), "the uncommitted ones, in order");
    next.commit(&redelivered).await.unwrap();
    assert!(!receives_within(&mut next, Duration::from_millis(500)).await, "nothing more");
    drop(next);
    Broker::connect().await.delete_all(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_split_the_partitions_and_one_that_leaves_hands_its_share_to_the_others() {
    let settings = settings();
    let group = group(&settings);
    let everything: BTreeSet<i32> = (0..settings.partitions as i32).collect();
    let first = RabbitSubscriber::join(&settings, &group).await.unwrap();
    let second = RabbitSubscriber::join(&settings, &group).await.unwrap();

    eventually("both members hold a share, and every partition has one holder", || {
        let (a, b) = (first.assignment().unwrap(), second.assignment().unwrap());
        let union: BTreeSet<i32> = a.iter().chain(&b).copied().collect();
        let ok = !a.is_empty() && !b.is_empty() && a.len() + b.len() == everything.len();
        std::future::ready(ok && union == everything)
    })
    .await;

    let mut first = first;
    drop(second);
    eventually("the remaining member holds every partition", || {
        std::future::ready(first.assignment().unwrap().len() == everything.len())
    })
    .await;

    let keys = key_per_partition(settings.partitions);
    let mut publisher = RabbitPublisher::new(settings.clone(), "spec");
    publisher.prepare().await.unwrap();
    publisher.publish(keys.values().map(|key| message(key, 0)).collect()).await.unwrap();
    let received = receive(&mut first, keys.len()).await;
    let partitions: BTreeSet<i32> = received.iter().map(|d| d.partition).collect();
    assert_eq!(partitions, everything, "messages of every partition reach it");
    first.commit(&received).await.unwrap();
    drop(first);
    Broker::connect().await.delete_all(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_message_lands_on_the_dead_letter_queue_with_its_reason() {
    let settings = settings();
    let mut publisher = RabbitPublisher::new(settings.clone(), "spec");
    publisher.prepare().await.unwrap();
    publisher.publish(vec![message("order-7", 0)]).await.unwrap();
    let mut member = RabbitSubscriber::join(&settings, &group(&settings)).await.unwrap();
    let delivery = receive(&mut member, 1).await.remove(0);

    let failure = Failure { consumer: "orders", error: "no such sku".to_owned(), attempts: 3 };
    member.park(&delivery, &failure).await.unwrap();
    member.commit(std::slice::from_ref(&delivery)).await.unwrap();

    let broker = Broker::connect().await;
    let parked = broker.await_dead_letter(&settings).await;
    assert_eq!(parked.data, delivery.payload.unwrap());
    let headers = parked.properties.headers().clone().unwrap();
    let header = |name: &str| match headers.inner().get(name) {
        Some(AMQPValue::LongString(value)) => value.to_string(),
        other => panic!("header {name}: {other:?}"),
    };
    assert_eq!(header("error"), "no such sku");
    assert_eq!(header("projection"), "orders");
    assert_eq!(header("source-queue"), delivery.channel);
    assert_eq!(header("source-partition"), delivery.partition.to_string());
    assert_eq!(header("attempts"), "3");
    assert_eq!(header("key"), "order-7");
    drop(member);
    broker.delete_all(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_lost_its_exchanges_and_queues_gets_them_back_on_prepare() {
    let settings = settings();
    let mut publisher = RabbitPublisher::new(settings.clone(), "spec");
    publisher.prepare().await.unwrap();
    publisher.publish(vec![message("order-1", 0)]).await.unwrap();
    let broker = Broker::connect().await;
    broker.delete_all(&settings).await;

    assert!(
        publisher.publish(vec![message("order-1", 1)]).await.is_err(),
        "a batch for exchanges the broker lost fails"
    );
    publisher.reset().await.unwrap();
    publisher.prepare().await.unwrap();
    publisher.publish(vec![message("order-1", 2)]).await.unwrap();

    let mut member = RabbitSubscriber::join(&settings, &group(&settings)).await.unwrap();
    let received = receive(&mut member, 1).await;
    assert_eq!(parse(&received[0]), ("order-1".to_owned(), 2));
    member.commit(&received).await.unwrap();
    drop(member);
    broker.delete_all(&settings).await;
}
