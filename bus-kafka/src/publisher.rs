//! The relay's producer (`KafkaSettings::producer_config`): a batch succeeds once every
//! delivery report came back, and several batches may travel at once.
//!
//! Delivery reports are counted per batch ([`Tally`]) rather than awaited one future per
//! message (rdkafka's `FutureProducer`): no channel allocated per message, and one
//! wake-up per batch instead of one per message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bus::envelope::Message;
use bus::{BusError, Pending, Publisher};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use tokio::sync::oneshot;

use crate::KafkaSettings;

type TallyProducer = ThreadedProducer<Tallies>;

pub struct KafkaPublisher {
    settings: KafkaSettings,
    client_id: String,
    producer: TallyProducer,
}

/// One batch's delivery reports: the batch is done when the last one arrives, failed if
/// any failed.
struct Tally {
    outstanding: AtomicUsize,
    failed: Mutex<Option<KafkaError>>,
    done: Mutex<Option<oneshot::Sender<Result<(), KafkaError>>>>,
}

impl Tally {
    fn report(&self, result: Result<(), KafkaError>) {
        if let Err(error) = result {
            self.failed.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(error);
        }
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner).take();
            let done = self.done.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(done) = done {
                // The relay may have given up on the batch already: nobody to tell then.
                let _ = done.send(failed.map_or(Ok(()), Err));
            }
        }
    }
}

/// Hands each delivery report to its batch's tally (on the producer's polling thread).
struct Tallies;

impl ClientContext for Tallies {}

impl ProducerContext for Tallies {
    type DeliveryOpaque = Arc<Tally>;

    fn delivery(&self, result: &DeliveryResult<'_>, tally: Arc<Tally>) {
        tally.report(result.as_ref().map(|_| ()).map_err(|(error, _)| error.clone()));
    }
}

impl KafkaPublisher {
    /// A producer for the relay called `name`.
    pub fn new(settings: KafkaSettings, name: &str) -> Result<Self, BusError> {
        let client_id = format!("ledger-relay-{name}");
        let producer = create(&settings, &client_id)?;
        Ok(Self { settings, client_id, producer })
    }
}

fn create(settings: &KafkaSettings, client_id: &str) -> Result<TallyProducer, BusError> {
    settings
        .producer_config()
        .set("client.id", client_id)
        .create_with_context(Tallies)
        .map_err(|error| BusError::new("creating the producer", error))
}

impl KafkaPublisher {
    /// Whether the broker knows both topics with their partitions (`false` when it cannot
    /// be asked: creating them says why).
    async fn topics_exist(&self) -> bool {
        let producer = self.producer.clone();
        let topics = [self.settings.orders_topic(), self.settings.dead_letter_topic()];
        // A broker that is there answers in milliseconds; one that is not should not hold
        // up creating the topics (which says why it failed) for long.
        let timeout = Duration::from_secs(2);
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
        let (done, reported) = oneshot::channel();
        let tally = Arc::new(Tally {
            outstanding: AtomicUsize::new(messages.len()),
            failed: Mutex::new(None),
            done: Mutex::new(Some(done)),
        });
        for message in &messages {
            let headers = message.headers.iter().fold(
                OwnedHeaders::new_with_capacity(message.headers.len()),
                |headers, (key, value)| headers.insert(Header { key, value: Some(value.as_str()) }),
            );
            let record = BaseRecord::with_opaque_to(&topic, tally.clone())
                .key(&message.key)
                .payload(&message.payload)
                .headers(headers);
            if let Err((error, _)) = self.producer.send(record) {
                return Err(BusError::new("queueing a message", error));
            }
        }
        if messages.is_empty() {
            return Ok(Box::pin(std::future::ready(Ok(()))));
        }
        Ok(Box::pin(async move {
            match reported.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(BusError::new("publishing", error)),
                Err(dropped) => Err(BusError::new("publishing", dropped)),
            }
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

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    fn tally(messages: usize) -> (Tally, oneshot::Receiver<Result<(), KafkaError>>) {
        let (done, reported) = oneshot::channel();
        let tally = Tally {
            outstanding: AtomicUsize::new(messages),
            failed: Mutex::new(None),
            done: Mutex::new(Some(done)),
        };
        (tally, reported)
    }

    fn timed_out() -> KafkaError {
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
    }

    #[test]
    fn a_batch_is_done_at_its_last_report_not_before() {
        let (tally, mut reported) = tally(3);
        tally.report(Ok(()));
        tally.report(Ok(()));
        assert!(reported.try_recv().is_err(), "done before its last report");
        tally.report(Ok(()));
        assert!(matches!(reported.try_recv(), Ok(Ok(()))));
    }

    #[test]
    fn one_failed_delivery_fails_the_batch_once_every_report_is_in() {
        let (tally, mut reported) = tally(3);
        tally.report(Ok(()));
        tally.report(Err(timed_out()));
        assert!(reported.try_recv().is_err(), "failed before its last report");
        tally.report(Ok(()));
        assert!(matches!(
            reported.try_recv(),
            Ok(Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)))
        ));
    }
}
