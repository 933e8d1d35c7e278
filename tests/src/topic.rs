//! Reading back what the relay published.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use bus::envelope::Envelope;
use bus_kafka::KafkaSettings;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    pub key: String,
    pub partition: i32,
    pub headers: HashMap<String, String>,
    pub envelope: Envelope<serde_json::Value>,
}

/// Consumes every partition of the orders topic from the beginning, without a group.
pub struct TopicReader {
    consumer: StreamConsumer,
    pub messages: Vec<ReceivedMessage>,
}

impl TopicReader {
    pub async fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        settings.ensure_topics().await.context("creating the topics")?;
        let consumer: StreamConsumer = settings
            .client_config()
            .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..settings.partitions {
            assignment.add_partition_offset(
                &settings.orders_topic(),
                partition,
                Offset::Beginning,
            )?;
        }
        consumer.assign(&assignment)?;
        Ok(Self { consumer, messages: Vec::new() })
    }

    /// Reads until `done(messages)` holds, or fails after `deadline`.
    pub async fn read_until(
        &mut self,
        deadline: Duration,
        what: &str,
        done: impl Fn(&[ReceivedMessage]) -> bool,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        while !done(&self.messages) {
            anyhow::ensure!(
                started.elapsed() < deadline,
                "gave up after {deadline:?} waiting for {what} ({} messages read)",
                self.messages.len()
            );
            let Ok(received) =
                tokio::time::timeout(Duration::from_millis(200), self.consumer.recv()).await
            else {
                continue;
            };
            let message = match received {
                Ok(message) => message,
                // Transient while a broker restarts; the deadline bounds it.
                Err(_) => continue,
            };
            let key =
                message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
            let headers = message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| {
                            let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                            (h.key.to_owned(), value.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let envelope = serde_json::from_slice(message.payload().unwrap_or_default())?;
            self.messages.push(ReceivedMessage {
                key,
                partition: message.partition(),
                headers,
                envelope,
            });
        }
        Ok(())
    }

    /// Distinct event ids read so far.
    pub fn event_ids(&self) -> std::collections::HashSet<uuid::Uuid> {
        self.messages.iter().map(|m| m.envelope.event_id).collect()
    }
}
