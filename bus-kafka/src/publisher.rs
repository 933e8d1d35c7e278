//! The relay's producer: idempotent, `acks=all`, lz4; a batch succeeds once every
//! delivery report came back.

use std::time::Duration;

use bus::envelope::Message;
use bus::{BusError, Publisher};
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

impl Publisher for KafkaPublisher {
    async fn prepare(&mut self) -> Result<(), BusError> {
        self.settings.ensure_topics().await
    }

    async fn publish(&mut self, messages: Vec<Message>) -> Result<(), BusError> {
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
        match first_error {
            None => Ok(()),
            Some(error) => {
                // Nothing is left queued from this batch before it is retried from the
                // checkpoint. `flush` blocks for up to its timeout: not on a runtime thread.
                let producer = self.producer.clone();
                let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(1)))
                    .await;
                Err(error)
            }
        }
    }

    /// A restarted broker will not know this producer's id: a fresh producer's
    /// idempotence sequence begins anew.
    async fn reset(&mut self) -> Result<(), BusError> {
        let retired =
            std::mem::replace(&mut self.producer, create(&self.settings, &self.client_id)?);
        // Dropping a producer waits for its queue and threads: not on a runtime thread,
        // which serves HTTP in the same process.
        tokio::task::spawn_blocking(move || drop(retired));
        Ok(())
    }
}
