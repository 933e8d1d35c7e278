//! A poison message is parked once per consumer, even when the bus delivers it again
//! (its acknowledgement had not reached the broker before a rebalance or a restart).
//! Against an in-memory subscriber, on tokio's paused clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bus::{
    BusError, Consumer, ConsumerSettings, ConsumerStatus, Delivery, Failure, Handler, HandlerError,
    Subscriber,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the bus and the dead-letter table saw.
#[derive(Default)]
struct Seen {
    /// Places (partition, offset) published to the dead-letter channel.
    on_bus: Vec<(i32, i64)>,
    /// Places recorded by the handler.
    recorded: Vec<(i32, i64)>,
}

type Shared = Arc<Mutex<Seen>>;

fn lock(seen: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Delivers its queue, then nothing.
struct Redelivering {
    queue: VecDeque<Delivery>,
    seen: Shared,
    offsets_name_messages: bool,
}

impl Subscriber for Redelivering {
    async fn recv(&mut self) -> Result<Delivery, BusError> {
        match self.queue.pop_front() {
            Some(delivery) => Ok(delivery),
            None => std::future::pending().await,
        }
    }

    async fn commit(&mut self, _: &[Delivery]) -> Result<(), BusError> {
        Ok(())
    }

    async fn park(&mut self, delivery: &Delivery, _: &Failure) -> Result<(), BusError> {
        lock(&self.seen).on_bus.push((delivery.partition, delivery.offset));
        Ok(())
    }

    fn offsets_name_messages(&self) -> bool {
        self.offsets_name_messages
    }
}

/// Can apply nothing; remembers what it parked, as the `dead_letters` table does.
struct Poisoned(Shared);

impl Handler for Poisoned {
    fn name(&self) -> &'static str {
        "poisoned"
    }

    async fn handle(&self, _: &[Delivery]) -> Result<(), HandlerError> {
        Err(HandlerError::Permanent("not an envelope".into()))
    }

    async fn parked(&self, delivery: &Delivery, _: &Failure) -> Result<(), HandlerError> {
        lock(&self.0).recorded.push((delivery.partition, delivery.offset));
        Ok(())
    }

    async fn already_parked(&self, delivery: &Delivery) -> Result<bool, HandlerError> {
        Ok(lock(&self.0).recorded.contains(&(delivery.partition, delivery.offset)))
    }
}

fn at(partition: i32, offset: i64) -> Delivery {
    Delivery {
        channel: "orders".into(),
        partition,
        offset,
        key: Some(b"order".to_vec()),
        payload: Some(b"not an envelope".to_vec()),
        traceparent: None,
    }
}

/// Runs the loop over `deliveries` until it has gone quiet; what was parked where.
async fn consume(deliveries: Vec<Delivery>, offsets_name_messages: bool) -> Seen {
    let seen = Shared::default();
    let settings = ConsumerSettings {
        batch_max: 1,
        retry_base: Duration::from_millis(10),
        ..ConsumerSettings::default()
    };
    let consumer = Consumer::new(
        Poisoned(Arc::clone(&seen)),
        settings,
        watch::Sender::new(ConsumerStatus::default()),
    );
    let shutdown = CancellationToken::new();
    let handed = Arc::new(Mutex::new(Some(deliveries)));
    let bus_seen = Arc::clone(&seen);
    let running = tokio::spawn(consumer.run(
        move || {
            let queue = handed.lock().unwrap_or_else(PoisonError::into_inner).take();
            let seen = Arc::clone(&bus_seen);
            async move {
                let queue = queue.unwrap_or_default().into();
                Ok(Redelivering { queue, seen, offsets_name_messages })
            }
        },
        shutdown.clone(),
    ));
    // Paused clock: this runs every retry of every message, and then some.
    tokio::time::sleep(Duration::from_secs(60)).await;
    shutdown.cancel();
    running.await.expect("the consumer loop does not panic");
    let seen = std::mem::take(&mut *lock(&seen));
    seen
}

#[tokio::test(start_paused = true)]
async fn a_poison_message_delivered_again_is_parked_once() {
    let seen = consume(vec![at(3, 17), at(3, 17)], true).await;
    assert_eq!(seen.on_bus, vec![(3, 17)], "one dead letter on the bus");
    assert_eq!(seen.recorded, vec![(3, 17)], "one dead letter for the operator");
}

#[tokio::test(start_paused = true)]
async fn poison_messages_at_other_places_are_each_parked() {
    let seen = consume(vec![at(3, 17), at(3, 18), at(4, 17)], true).await;
    assert_eq!(seen.on_bus, vec![(3, 17), (3, 18), (4, 17)]);
    assert_eq!(seen.recorded, seen.on_bus);
}

#[tokio::test(start_paused = true)]
async fn where_offsets_are_only_delivery_tags_a_place_seen_before_proves_nothing() {
    // RabbitMQ's tags start again with each holding: the same tag is another message.
    let seen = consume(vec![at(3, 1), at(3, 1)], false).await;
    assert_eq!(seen.on_bus, vec![(3, 1), (3, 1)]);
    assert_eq!(seen.recorded, vec![(3, 1), (3, 1)]);
}
