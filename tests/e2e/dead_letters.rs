//! A message that can be neither applied nor parked holds its partition: while the
//! dead-letter topic cannot be written, the consumer group's offset stays before the
//! poison message and nothing after it is applied; once the topic can be written, the
//! message is parked (on the topic and in `dead_letters`) and nothing is lost.

use std::time::Duration;

use bus::Channels;
use bus_kafka::KafkaSettings;
use ledger::Role;
use ledger_tests::{expect_json, poll_until, TestApp, TestBroker};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

/// The offset the group `projection` committed on the orders topic's `partition`. Asked
/// off the runtime: the call blocks, and the in-process ledger shares this runtime.
async fn committed(app: &TestApp, projection: &str, partition: i32) -> anyhow::Result<Option<i64>> {
    let group = app.kafka.channels.group(projection);
    let consumer: BaseConsumer = app.kafka.client_config().set("group.id", &group).create()?;
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(&app.kafka.orders_topic(), partition);
    let offsets = tokio::task::spawn_blocking(move || {
        consumer.committed_offsets(wanted, Duration::from_secs(10))
    })
    .await??;
    Ok(offsets.elements().first().and_then(|element| match element.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }))
}

async fn worker_states(app: &TestApp) -> anyhow::Result<Vec<String>> {
    let status = expect_json(app.get("/v1/admin/projections").send().await?, 200).await?;
    Ok(status["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|worker| worker["state"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn a_poison_message_that_cannot_be_parked_holds_its_partition_until_it_can(
) -> anyhow::Result<()> {
    // A broker of this test's own that refuses whatever is produced to the dead-letter
    // topic, as it would a message its schema rejects.
    let channels = Channels::new(format!("test-{}.", uuid::Uuid::new_v4().simple()));
    let dead_letter_topic = KafkaSettings::new("", channels.clone()).dead_letter_topic();
    let mut broker = TestBroker::refusing(&dead_letter_topic).await?;
    let address = broker.address();
    let app = TestApp::spawn_with(move |settings| {
        settings.roles = Role::ALL.to_vec();
        settings.bus.kafka.brokers.clone_from(&address);
        settings.bus.kafka.channels = channels.clone();
    })
    .await?;
    let order_id = app.place_order("cus_unparkable").await?;
    app.payments(order_id, 1).await?;

    let producer: FutureProducer = app.kafka.producer_config().create()?;
    let key = order_id.to_string();
    let delivered = producer
        .send(
            FutureRecord::to(&app.kafka.orders_topic()).key(&key).payload("not an envelope"),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(error, _)| error)?;
    let (partition, poison) = (delivered.partition, delivered.offset);
    let captured = TestApp::version_of(app.capture(order_id, "pay_1", 1000).await?).await?;

    poll_until(DEADLINE, "both workers to wait to park", || async {
        let states = worker_states(&app).await?;
        Ok((states.len() == 2 && states.iter().all(|s| s == "waiting_to_park")).then_some(()))
    })
    .await?;
    for projection in ["payments", "notifications"] {
        let offset = committed(&app, projection, partition).await?;
        assert!(
            offset.is_none_or(|o| o <= poison),
            "{projection} committed {offset:?} past {poison}"
        );
    }
    let dead = expect_json(app.get("/v1/admin/dead-letters").send().await?, 200).await?;
    assert_eq!(dead["items"].as_array().map(Vec::len), Some(0), "not parked: {dead}");

    // The broker goes away and comes back accepting dead letters: the message is parked,
    // and the capture behind it is applied.
    broker.stop().await?;
    app.place_order("cus_during_outage").await?;
    poll_until(DEADLINE, "the relay to notice the broker is gone", || async {
        let status = app.relay_status().await?;
        Ok((status["process"]["broker"] == "unreachable").then_some(()))
    })
    .await?;
    broker.accept_everything()?;
    broker.resume().await?;
    let items = poll_until(DEADLINE, "the poison parked, once per projection", || async {
        let dead = expect_json(app.get("/v1/admin/dead-letters").send().await?, 200).await?;
        let items = dead["items"].as_array().cloned().unwrap_or_default();
        Ok((items.len() == 2).then_some(items))
    })
    .await?;
    let dead = Value::from(items.clone());
    assert!(items.iter().all(|item| item["offset"] == poison), "{dead}");
    let payments = app.payments(order_id, captured).await?;
    assert_eq!(payments["captured"], 1000, "the capture behind the poison: {payments}");

    // And the dead-letter topic holds the message, once per projection.
    let reader: StreamConsumer = app
        .kafka
        .client_config()
        .set("group.id", format!("test-dlq-{}", uuid::Uuid::new_v4()))
        .create()?;
    let mut all = TopicPartitionList::new();
    for partition in 0..app.kafka.partitions {
        all.add_partition_offset(&dead_letter_topic, partition, Offset::Beginning)?;
    }
    reader.assign(&all)?;
    let mut parked = Vec::new();
    while parked.len() < 2 {
        let message = tokio::time::timeout(DEADLINE, reader.recv()).await??;
        parked.push(message.payload().map(<[u8]>::to_vec));
    }
    assert!(parked.iter().all(|p| p.as_deref() == Some(b"not an envelope".as_slice())));
    Ok(())
}
