//! The exchanges and queues, declared idempotently by whoever needs them first (the relay
//! for `settings.groups`, each member for its own group) and again after a failure, which
//! re-creates what a restarted broker lost.
//!
//! - orders: a durable direct exchange; a message's routing key is its partition,
//!   [`bus::partition::partition_of`] its key.
//! - per group and partition `p`: a durable queue [`bus::Channels::partition_queue`] bound
//!   with the key `p`, dead-lettering (a message over the delivery limit) to the
//!   dead-letter exchange, and single-active-consumer: should two members ever consume
//!   on it at once, the broker still delivers to one of them only.
//! - dead letters: a durable fanout exchange and a durable queue of the same name bound
//!   to it, so what is parked (by a consumer, or by the broker) is kept and readable.
//! - per group: a presence queue ([`members_queue`]) on which every member consumes and
//!   nothing is published: its consumer count is the number of live members.
//!
//! Declaring a queue that exists with other arguments (another queue type) fails with
//! PRECONDITION_FAILED: an operator's decision, reported rather than overridden.

use bus::BusError;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use crate::settings::{QueueType, RabbitSettings};

/// The presence queue of `group`.
pub fn members_queue(group: &str) -> String {
    format!("{group}.members")
}

/// Declares the orders and dead-letter exchanges, the dead-letter queue, and the
/// partition queues of every group of `groups`.
pub(crate) async fn declare(
    channel: &Channel,
    settings: &RabbitSettings,
    groups: &[String],
) -> Result<(), BusError> {
    let failed = |error| BusError::new("declaring the exchanges and queues", error);
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    let dead_letters = settings.channels.dead_letters();
    channel
        .exchange_declare(
            dead_letters.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(failed)?;
    channel
        .queue_declare(
            dead_letters.as_str().into(),
            QueueDeclareOptions::durable(),
            expiring(queue_type(settings.queue_type), settings),
        )
        .await
        .map_err(failed)?;
    channel
        .queue_bind(
            dead_letters.as_str().into(),
            dead_letters.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(failed)?;
    let orders = settings.channels.orders();
    channel
        .exchange_declare(
            orders.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(failed)?;
    for group in groups {
        for partition in 0..settings.partitions {
            let queue = settings.channels.partition_queue(group, partition);
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions::durable(),
                    partition_queue_arguments(settings),
                )
                .await
                .map_err(failed)?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    orders.as_str().into(),
                    partition.to_string().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(failed)?;
        }
    }
    Ok(())
}

/// Declares the presence queue of `group`: classic whatever the settings (it holds no
/// message, and a classic queue counts its consumers without a Raft round).
pub(crate) async fn declare_members(
    channel: &Channel,
    settings: &RabbitSettings,
    group: &str,
) -> Result<(), BusError> {
    channel
        .queue_declare(
            members_queue(group).as_str().into(),
            QueueDeclareOptions::durable(),
            expiring(queue_type(QueueType::Classic), settings),
        )
        .await
        .map(|_| ())
        .map_err(|error| BusError::new("declaring the group's presence queue", error))
}

fn queue_type(queue_type: QueueType) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), long_string(queue_type.as_str()));
    arguments
}

/// `arguments` with `x-expires` when the settings ask for queues that go away once unused.
fn expiring(mut arguments: FieldTable, settings: &RabbitSettings) -> FieldTable {
    if let Some(expires) = settings.queue_expires {
        let millis = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX);
        arguments.insert("x-expires".into(), AMQPValue::LongLongInt(millis));
    }
    arguments
}

fn partition_queue_arguments(settings: &RabbitSettings) -> FieldTable {
    let mut arguments = expiring(queue_type(settings.queue_type), settings);
    arguments
        .insert("x-dead-letter-exchange".into(), long_string(&settings.channels.dead_letters()));
    // Whatever the claims do, the broker delivers to one consumer at a time.
    arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    if settings.queue_type == QueueType::Quorum {
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(settings.delivery_limit)),
        );
    }
    arguments
}

pub(crate) fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}
