//! A consumer group's side: acknowledgements, members sharing the partitions, dead letters.

mod support;

use std::collections::BTreeSet;

use bus::{Failure, Publisher, Subscriber};
use bus_nats::{NatsPublisher, NatsSettings, NatsSubscriber};
use support::*;

async fn publish_over_every_partition(settings: &NatsSettings, rounds: usize) -> usize {
    let mut publisher = NatsPublisher::connect(settings.clone(), "spec").await.expect("connect");
    publisher.prepare().await.expect("streams");
    let keys = key_per_partition();
    let messages: Vec<_> = (0..rounds)
        .flat_map(|n| keys.iter().map(move |key| message(key, &format!("{n}"))))
        .collect();
    let count = messages.len();
    publisher.publish(messages).await.expect("published");
    count
}

fn places(deliveries: &[bus::Delivery]) -> BTreeSet<(i32, i64)> {
    deliveries.iter().map(|d| (d.partition, d.offset)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_messages_are_not_delivered_again_and_uncommitted_ones_go_to_the_next_member() {
    let settings = settings();
    let group = settings.channels.group("payments");
    let count = publish_over_every_partition(&settings, 10).await;
    let mut first = NatsSubscriber::join(&settings, &group).await.expect("join");
    let received = receive(&mut first, count).await;

    let (committed, uncommitted) = received.split_at(count / 2);
    first.commit(committed).await.expect("committed");
    drop(first);
    let mut next = NatsSubscriber::join(&settings, &group).await.expect("join");
    let redelivered = receive(&mut next, uncommitted.len()).await;

    assert_eq!(places(&redelivered), places(uncommitted));
    assert!(nothing_more(&mut next).await, "nothing committed comes again");
    drop(next);
    clean_up(&settings, &[&group]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_the_partitions_and_one_that_leaves_hands_its_partitions_to_the_other() {
    let settings = settings();
    let group = settings.channels.group("notifications");
    let mut staying = NatsSubscriber::join(&settings, &group).await.expect("join");
    eventually("the first member holds every partition", || held(&staying).len() == 4).await;

    let leaving = NatsSubscriber::join(&settings, &group).await.expect("join");
    eventually("both members hold a share", || {
        let (a, b) = (held(&staying), held(&leaving));
        !a.is_empty() && !b.is_empty() && a.len() + b.len() == 4
    })
    .await;
    assert!(held(&staying).is_disjoint(&held(&leaving)), "no partition held by both");

    drop(leaving);
    eventually("the remaining member holds every partition", || held(&staying).len() == 4).await;
    let count = publish_over_every_partition(&settings, 3).await;
    let received = receive(&mut staying, count).await;
    let partitions: BTreeSet<i32> = received.iter().map(|d| d.partition).collect();
    assert_eq!(partitions, (0..4).collect());
    drop(staying);
    clean_up(&settings, &[&group]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_message_lands_on_the_dead_letter_subject_with_its_headers() {
    let settings = settings();
    let group = settings.channels.group("projection");
    let mut publisher = NatsPublisher::connect(settings.clone(), "spec").await.expect("connect");
    publisher.prepare().await.expect("streams");
    publisher.publish(vec![message("order-7", "poison")]).await.expect("published");
    let mut member = NatsSubscriber::join(&settings, &group).await.expect("join");
    let delivery = receive(&mut member, 1).await.remove(0);

    let failure = Failure { consumer: "orders", error: "bad amount".to_owned(), attempts: 3 };
    member.park(&delivery, &failure).await.expect("parked");

    let context = context(&settings).await;
    let stream = context.get_stream(settings.channels.dead_letter_stream()).await.expect("dlq");
    let parked = stream
        .get_last_raw_message_by_subject(&settings.channels.dead_letters())
        .await
        .expect("a dead letter");
    let header = |name: &str| parked.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(parked.payload.as_ref(), b"poison");
    assert_eq!(header("error").as_deref(), Some("bad amount"));
    assert_eq!(header("projection").as_deref(), Some("orders"));
    assert_eq!(header("source-subject"), Some(delivery.channel.clone()));
    assert_eq!(header("source-partition"), Some(delivery.partition.to_string()));
    assert_eq!(header("source-offset"), Some(delivery.offset.to_string()));
    assert_eq!(header("attempts").as_deref(), Some("3"));
    assert_eq!(header("key").as_deref(), Some("order-7"));
    drop(member);
    clean_up(&settings, &[&group]).await;
}
