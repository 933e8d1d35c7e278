//! A way to reach a customer: the dispatcher hands each claimed message to its channel and
//! records what came back.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use uuid::Uuid;

/// One notification on its way out through one channel.
#[derive(Clone, Debug, Serialize)]
pub struct Outgoing {
    /// The notification's id (derived from its event): the message's identity on every
    /// channel, so a duplicate is recognisable.
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: String,
    pub template: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// When the event the notification tells of was recorded.
    pub created_at: DateTime<Utc>,
    /// The event's position in the store.
    pub position: i64,
    /// This attempt's number, from 1.
    #[serde(skip)]
    pub attempt: i32,
}

/// Why a message was not delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again (refused connection, timeout, SMTP 4xx, HTTP 5xx/408/429), after
    /// at least `retry_after` when the receiver said so.
    #[error("{reason}")]
    Transient { reason: String, retry_after: Option<Duration> },
    /// Trying again would fail the same way (SMTP 5xx, HTTP 4xx).
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient { reason: reason.into(), retry_after: None }
    }
}

pub trait Channel: Send + Sync + 'static {
    /// The channel's name in `deliveries` and the API (`email`, `webhook`, …).
    fn name(&self) -> &str;

    fn send<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<(), SendError>>;
}
