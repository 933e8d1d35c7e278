//! Notification delivery: the `dispatcher` role.
//!
//! The notifications projection renders messages; this crate sends them. It reads the
//! read model, never the events, so a rebuild or a replay of the projection (which writes
//! the same notification ids) never sends again. Per channel (`email`, `webhook`, …):
//!
//! - **Enqueue** ([`queue::enqueue`]): every notification past the channel's cursor gets a
//!   row in `deliveries`; the cursor only moves up to the projection's watermark, so a
//!   notification applied late (partitions are applied out of position order) is never
//!   skipped. Notifications at or below the channel's *cut-over* (its cursor when the
//!   channel was first enabled) are history and never sent.
//! - **Claim** ([`queue::claim`]): due rows, oldest first, with `FOR UPDATE SKIP LOCKED`
//!   and a lease, so several dispatchers share the work without sending one twice; a row
//!   whose lease lapsed (its dispatcher died) is claimed again. A row waits while an
//!   earlier notification of its order on that channel is undelivered: per order, messages
//!   go out in the order of their events.
//! - **Send** through a [`Channel`]; a transient failure is retried with capped
//!   exponential backoff and jitter ([`backoff`]) up to a number of attempts, a permanent
//!   one fails at once. Each message carries its notification id (the email's
//!   `Message-ID`, the webhook's `webhook-id`), so the duplicate a crash can cause is
//!   recognisable.

//!
//! The channels themselves (SMTP, webhooks) live in `delivery-channels`, so that the HTTP
//! API, which reads the queue, carries no mail or HTTP client.

pub mod backoff;
mod channel;
mod dispatcher;
mod error;
pub mod queue;
mod settings;

pub use channel::{Channel, Outgoing, SendError};
pub use dispatcher::{Dispatcher, DispatcherStatus};
pub use error::DeliveryError;
pub use settings::{DeliverySettings, DeliveryStart};
