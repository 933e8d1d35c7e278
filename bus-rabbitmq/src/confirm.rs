//! A channel in publisher-confirm mode and what a confirm means: the publisher's batches
//! and the subscribers' dead letters both count a message as published only once the
//! broker confirmed it, and as lost if it was nacked, returned or not confirmed in time.

use std::collections::BTreeMap;

use bus::BusError;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};

use crate::topology::long_string;

/// A message the broker did not take.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Mandatory and bound for no queue: the topology is missing (a broker that lost it).
    #[error("unroutable ({0}): no queue is bound for it")]
    Unroutable(String),
    #[error("nacked by the broker")]
    Nacked,
    #[error("not confirmed in time")]
    TimedOut,
    #[error("the channel is not in confirm mode")]
    NotConfirmed,
}

/// A connection and its one channel in confirm mode.
pub(crate) struct ConfirmChannel {
    pub(crate) connection: Connection,
    pub(crate) channel: Channel,
}

impl ConfirmChannel {
    pub(crate) async fn open(connection: Connection) -> Result<Self, BusError> {
        let failed = |error| BusError::new("opening a publishing channel", error);
        let channel = connection.create_channel().await.map_err(failed)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(failed)?;
        Ok(Self { connection, channel })
    }

    pub(crate) fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Queues one message; the returned confirm resolves once the broker answered.
    pub(crate) async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<PublisherConfirm, BusError> {
        self.channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions { mandatory, ..BasicPublishOptions::default() },
                payload,
                properties,
            )
            .await
            .map_err(|error| BusError::new("publishing", error))
    }

    /// Closes the connection, letting the broker take what was already sent.
    pub(crate) async fn close(&self) {
        if let Err(error) = self.connection.close(200, "closing".into()).await {
            tracing::debug!(%error, "closing a connection that was already failing");
        }
    }
}

/// What the broker answered to one message.
pub(crate) async fn confirmed(confirm: PublisherConfirm) -> Result<(), BusError> {
    let refused = |refusal| Err(BusError::new("publishing", refusal));
    match confirm.await {
        Ok(Confirmation::Ack(None)) => Ok(()),
        Ok(Confirmation::Ack(Some(returned))) => {
            refused(Refused::Unroutable(returned.reply_text.to_string()))
        }
        Ok(Confirmation::Nack(_)) => refused(Refused::Nacked),
        Ok(Confirmation::NotRequested) => refused(Refused::NotConfirmed),
        Err(error) => Err(BusError::new("waiting for the broker's confirm", error)),
    }
}

/// Persistent JSON with `headers` and a message id.
pub(crate) fn properties<'a>(
    message_id: Option<String>,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BasicProperties {
    let table: BTreeMap<ShortString, AMQPValue> =
        headers.into_iter().map(|(name, value)| (name.into(), long_string(value))).collect();
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(bus::envelope::CONTENT_TYPE_JSON.into())
        .with_headers(FieldTable::from(table));
    match message_id {
        Some(id) => properties.with_message_id(id.into()),
        None => properties,
    }
}

/// AMQP's `delivery_mode` of a message written to disk.
const PERSISTENT: u8 = 2;
