//! The streams and consumers the adapter relies on, created when missing.
//!
//! - The orders stream [`Channels::stream`] holds the subjects [`Channels::partition`]
//!   `0..partitions`, listed one by one rather than as a wildcard so that the dead-letter
//!   subject `<orders>.dlq` stays out of it. File storage, limits retention by age, and a
//!   duplicate window over which the server drops a message id it has already stored
//!   (the relay republishes after a failure).
//! - The dead-letter stream [`Channels::dead_letter_stream`] holds
//!   [`Channels::dead_letters`], kept until an operator deals with it.
//! - Per consumer group and partition, a durable pull consumer acknowledged cumulatively
//!   (`AckPolicy::All`: the last message of a batch acknowledges the batch).
//!
//! Existing streams are left as they are, never reconfigured behind an operator's back;
//! what a broker lost is created again by the next [`ensure_streams`].
//!
//! A partition changing hands may leave messages delivered to the previous holder and never
//! acknowledged (it died, or lost its lease mid-batch). The server would redeliver those
//! only after `ack_wait`, behind newer ones: order per key would break. So a member taking
//! a partition over whose consumer has such messages replaces the consumer by one starting
//! just after its acknowledgement floor ([`open_consumer`]): the new holder gets them
//! first, in order.
//!
//! [`Channels::stream`]: bus::Channels::stream
//! [`Channels::partition`]: bus::Channels::partition
//! [`Channels::dead_letter_stream`]: bus::Channels::dead_letter_stream
//! [`Channels::dead_letters`]: bus::Channels::dead_letters

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use bus::BusError;

use crate::NatsSettings;

/// Ample for a consumer loop's batches; the bound only guards a stuck member's memory.
const MAX_ACK_PENDING: i64 = 100_000;

/// Creates the orders and dead-letter streams if they are missing.
pub async fn ensure_streams(context: &Context, settings: &NatsSettings) -> Result<(), BusError> {
    let failed = |error| BusError::new("creating the streams", error);
    context.get_or_create_stream(orders_stream(settings)).await.map_err(failed)?;
    context.get_or_create_stream(dead_letter_stream(settings)).await.map_err(failed)?;
    Ok(())
}

fn orders_stream(settings: &NatsSettings) -> stream::Config {
    let channels = &settings.channels;
    stream::Config {
        name: channels.stream(),
        subjects: (0..settings.partitions).map(|p| channels.partition(p)).collect(),
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        max_age: settings.max_age,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        ..Default::default()
    }
}

fn dead_letter_stream(settings: &NatsSettings) -> stream::Config {
    let channels = &settings.channels;
    stream::Config {
        name: channels.dead_letter_stream(),
        subjects: vec![channels.dead_letters()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        ..Default::default()
    }
}

fn consumer_config(
    settings: &NatsSettings,
    group: &str,
    partition: u32,
    deliver_policy: DeliverPolicy,
) -> pull::Config {
    pull::Config {
        durable_name: Some(settings.channels.partition_consumer(group, partition)),
        filter_subject: settings.channels.partition(partition),
        deliver_policy,
        ack_policy: AckPolicy::All,
        ack_wait: settings.ack_wait,
        max_ack_pending: MAX_ACK_PENDING,
        num_replicas: settings.replicas,
        ..Default::default()
    }
}

/// The consumer of `group` on `partition`, created if missing (the streams too). With
/// `takeover` (a member that has just claimed the partition), replaced by one starting
/// after its acknowledgement floor if the previous holder left messages delivered and
/// unacknowledged (see the module documentation). Returns it with the number of messages
/// it has yet to deliver.
pub(crate) async fn open_consumer(
    context: &Context,
    settings: &NatsSettings,
    group: &str,
    partition: u32,
    takeover: bool,
) -> Result<(PullConsumer, u64), BusError> {
    let stream = orders(context, settings).await?;
    let name = settings.channels.partition_consumer(group, partition);
    let deliver_policy = match stream.consumer_info(&name).await {
        Ok(info) if info.num_ack_pending == 0 || !takeover => {
            let consumer = stream.get_consumer(&name).await.map_err(failed)?;
            return Ok((consumer, info.num_pending));
        }
        Ok(info) => {
            tracing::debug!(
                consumer = %name,
                unacknowledged = info.num_ack_pending,
                "replacing a consumer left with unacknowledged messages"
            );
            stream.delete_consumer(&name).await.map_err(failed)?;
            DeliverPolicy::ByStartSequence { start_sequence: info.ack_floor.stream_sequence + 1 }
        }
        Err(error) if error.kind() == ConsumerInfoErrorKind::NotFound => DeliverPolicy::All,
        Err(error) => return Err(failed(error)),
    };
    let consumer = stream
        .create_consumer(consumer_config(settings, group, partition, deliver_policy))
        .await
        .map_err(failed)?;
    let pending = consumer.cached_info().num_pending;
    Ok((consumer, pending))
}

fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BusError {
    BusError::new("opening a partition consumer", error)
}

/// The orders stream, created again (with the dead-letter stream) if the server lost it.
async fn orders(
    context: &Context,
    settings: &NatsSettings,
) -> Result<jetstream::stream::Stream, BusError> {
    match context.get_stream(settings.channels.stream()).await {
        Ok(stream) => Ok(stream),
        Err(_) => {
            ensure_streams(context, settings).await?;
            context
                .get_stream(settings.channels.stream())
                .await
                .map_err(|error| BusError::new("looking up the orders stream", error))
        }
    }
}
