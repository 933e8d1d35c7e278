//! The relay's side: what a published batch becomes on the server.

mod support;

use bus::Publisher;
use bus_nats::{NatsPublisher, NatsSubscriber};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_receives_every_message_in_publish_order_per_key() {
    let settings = settings();
    let group = settings.channels.group("orders");
    let mut publisher = NatsPublisher::connect(settings.clone(), "spec").await.expect("connect");
    publisher.prepare().await.expect("streams");
    let keys: Vec<String> = (0..12).map(|n| format!("order-{n}")).collect();
    let mut published: Vec<(String, String)> = Vec::new();
    let mut batches = Vec::new();
    for batch in 0..5 {
        let mut messages = Vec::new();
        for n in 0..40 {
            let key = &keys[n % keys.len()];
            let payload = format!("{batch}-{n}");
            published.push((key.clone(), payload.clone()));
            messages.push(message(key, &payload));
        }
        // Queued while the previous batches travel.
        batches.push(publisher.send(messages).expect("queued"));
    }
    for pending in batches {
        pending.await.expect("acknowledged");
    }

    let mut member = NatsSubscriber::join(&settings, &group).await.expect("join");
    let received = receive(&mut member, 200).await;

    for key in &keys {
        let payloads: Vec<String> =
            received.iter().filter(|d| support::key(d) == *key).map(text).collect();
        let expected: Vec<String> =
            published.iter().filter(|(k, _)| k == key).map(|(_, p)| p.clone()).collect();
        assert_eq!(payloads, expected, "{key}: every message, in publish order");
    }
    assert!(nothing_more(&mut member).await);
    drop(member);
    clean_up(&settings, &[&group]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_twice_is_stored_once() {
    let settings = settings();
    let mut publisher = NatsPublisher::connect(settings.clone(), "spec").await.expect("connect");
    publisher.prepare().await.expect("streams");
    let once = message("order-1", "placed");

    publisher.publish(vec![once.clone()]).await.expect("first");
    publisher.publish(vec![once.clone(), message("order-1", "paid")]).await.expect("again");

    let context = context(&settings).await;
    let mut stream = context.get_stream(settings.channels.stream()).await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 2);
    clean_up(&settings, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_recreates_a_stream_the_broker_lost() {
    let settings = settings();
    let mut publisher = NatsPublisher::connect(settings.clone(), "spec").await.expect("connect");
    publisher.prepare().await.expect("streams");
    publisher.publish(vec![message("order-1", "placed")]).await.expect("published");
    let context = context(&settings).await;
    context.delete_stream(settings.channels.stream()).await.expect("the broker loses it");

    assert!(publisher.publish(vec![message("order-1", "paid")]).await.is_err());
    publisher.reset().await.expect("reset");
    publisher.prepare().await.expect("streams again");
    publisher.publish(vec![message("order-1", "shipped")]).await.expect("published again");

    let mut stream = context.get_stream(settings.channels.stream()).await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 1);
    assert_eq!(info.config.subjects.len(), PARTITIONS as usize);
    clean_up(&settings, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_subject_is_not_part_of_the_orders_stream() {
    let settings = settings();
    let mut publisher = NatsPublisher::connect(settings.clone(), "spec").await.expect("connect");
    publisher.prepare().await.expect("streams");
    let context = context(&settings).await;
    let mut orders = context.get_stream(settings.channels.stream()).await.expect("stream");
    let subjects = orders.info().await.expect("info").config.subjects.clone();
    assert!(!subjects.contains(&settings.channels.dead_letters()));
    let member = NatsSubscriber::join(&settings, "unused").await.expect("join is idempotent");
    drop(member);
    clean_up(&settings, &["unused"]).await;
}
