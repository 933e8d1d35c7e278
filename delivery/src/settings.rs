//! How the dispatcher works through its queue (the channels it sends through are
//! configured apart, in `delivery-channels`).

use std::time::Duration;

use crate::backoff::Backoff;

/// Which notifications a channel sends when it is enabled for the first time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStart {
    /// Only those created from now on: history is not sent (the default).
    Now,
    /// Every notification in the read model, history included.
    All,
}

#[derive(Clone, Debug)]
pub struct DeliverySettings {
    pub start: DeliveryStart,
    /// Attempts per message and channel before it is `failed`.
    pub max_attempts: i32,
    pub backoff: Backoff,
    /// How long a claim holds before another dispatcher may take the message over.
    pub lease: Duration,
    /// How long the dispatcher waits when nothing was due.
    pub poll_interval: Duration,
    /// Messages sent at once.
    pub concurrency: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            start: DeliveryStart::Now,
            max_attempts: 10,
            backoff: Backoff { base: Duration::from_millis(500), max: Duration::from_secs(300) },
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            concurrency: 16,
        }
    }
}
