//! The relay's producer (`KafkaSettings::producer_config`): a batch succeeds once every
//! delivery report came back, and several batches may travel at once.

use std::time::Duration;

use bus::envelope::Message;
use bus::{BusError, Pending, Publisher};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::KafkaSettings;

pub struct KafkaPublisher {
    settings: KafkaSettings,
    client_id: String,
    producer: FutureProducer,
}

impl KafkaPublisher {
    /// A producer for the relay called `name`.
    pub fn new(settings: KafkaSettings, name: &str) -> Result<Self, BusError> {
        let client_id = format!("ledger-relay-{name}");
        let producer = create(&settings, &client_id)?;
        Ok(Self { settings, client_id, producer })
    }
}

fn create(settings: &KafkaSettings, client_id: &str) -> Result<FutureProducer, BusError> {
    settings
        .producer_config()
        .set("client.id", client_id)
        .create()
        .map_err(|error| BusError::new("creating the producer", error))
}

impl KafkaPublisher {
    /// Whether the broker knows both topics with their partitions (`false` when it cannot
    /// be asked: creating them says why).
    async fn topics_exist(&self) -> bool {
        let producer = self.producer.clone();
        let topics = [self.settings.orders_topic(), self.settings.dead_letter_topic()];
        let timeout = Duration::from_secs(5);
        // librdkafka's metadata call blocks: not on a runtime thread.
        let known = tokio::task::spawn_blocking(move || {
            topics.iter().all(|topic| {
                producer.client().fetch_metadata(Some(topic), timeout).is_ok_and(|metadata| {
                    metadata.topics().iter().any(|found| {
                        found.name() == topic
                            && found.error().is_none()
                            && !found.partitions().is_empty()
                    })
                })
            })
        });
        known.await.unwrap_or(false)
    }
}

impl Publisher for KafkaPublisher {
    /// Most starts find the topics there: asking for their metadata on the producer's own
    /// connection takes a round trip, where creating them takes an admin client of its
    /// own, its connection and a controller lookup (about 100 ms on Tansu). The producer
    /// does not create topics as a side effect of asking (`allow.auto.create.topics`).
    async fn prepare(&mut self) -> Result<(), BusError> {
        if self.topics_exist().await {
            return Ok(());
        }
        self.settings.ensure_topics().await
    }

    fn send(&mut self, messages: Vec<Message>) -> Result<Pending, BusError> {
        let topic = self.settings.orders_topic();
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in &messages {
            let headers = message.headers.iter().fold(
                OwnedHeaders::new_with_capacity(message.headers.len()),
                |headers, (key, value)| headers.insert(Header { key, value: Some(value.as_str()) }),
            );
            let record = FutureRecord::to(&topic)
                .key(&message.key)
                .payload(&message.payload)
                .headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => return Err(BusError::new("queueing a message", error)),
            }
        }
        Ok(Box::pin(async move {
            let mut first_error = None;
            for delivery in deliveries {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((error, _))) => {
                        first_error.get_or_insert_with(|| BusError::new("publishing", error));
                    }
                    Err(canceled) => {
                        first_error.get_or_insert_with(|| BusError::new("publishing", canceled));
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        }))
    }

    /// Waits (a second at most) for what is still queued to be delivered or fail, then
    /// starts a fresh producer with fresh connections and metadata.
    async fn reset(&mut self) -> Result<(), BusError> {
        // `flush` blocks for up to its timeout: not on a runtime thread.
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(1))).await;
        let retired =
            std::mem::replace(&mut self.producer, create(&self.settings, &self.client_id)?);
        // Dropping a producer waits for its queue and threads: not on a runtime thread,
        // which serves HTTP in the same process.
        tokio::task::spawn_blocking(move || drop(retired));
        Ok(())
    }
}
