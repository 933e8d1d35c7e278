//! Webhooks as the Standard Webhooks specification defines them: `POST` of a JSON body
//! with `webhook-id` (the notification id: the same on every retry, so a receiver can
//! drop duplicates), `webhook-timestamp` (seconds) and `webhook-signature`.
//!
//! 2xx is delivered; 408, 429 and 5xx (and no answer at all) are worth retrying, after the
//! `Retry-After` the receiver asked for; any other status fails at once: the receiver
//! refuses this message and would again.

use std::time::Duration;

use chrono::Utc;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;

use crate::signature::WebhookSecret;
use delivery::{Channel, Outgoing, SendError};

pub struct WebhookChannel {
    name: String,
    url: String,
    secret: WebhookSecret,
    http: reqwest::Client,
}

/// What the receiver gets: the event type and the notification with its order.
#[derive(Serialize)]
struct Body<'a> {
    r#type: String,
    timestamp: String,
    data: &'a Outgoing,
}

impl WebhookChannel {
    pub fn new(name: String, url: String, secret: WebhookSecret, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { name, url, secret, http }
    }
}

fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let seconds: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, outgoing: &'a Outgoing) -> BoxFuture<'a, Result<(), SendError>> {
        async move {
            let now = Utc::now();
            let body = Body {
                r#type: format!("notification.{}", outgoing.template),
                timestamp: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                data: outgoing,
            };
            let body = serde_json::to_vec(&body)
                .map_err(|error| SendError::Permanent(format!("cannot encode: {error}")))?;
            let id = outgoing.id.to_string();
            let timestamp = now.timestamp();
            let signature = self.secret.sign(&id, timestamp, &body);
            let answer = self
                .http
                .post(&self.url)
                .header(CONTENT_TYPE, "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await
                .map_err(|error| SendError::transient(format!("no answer: {error}")))?;
            let status = answer.status();
            if status.is_success() {
                return Ok(());
            }
            let reason = format!("the receiver answered {status}");
            match status.as_u16() {
                408 | 429 | 500..=599 => Err(SendError::Transient {
                    reason,
                    retry_after: retry_after(answer.headers().get(RETRY_AFTER)),
                }),
                _ => Err(SendError::Permanent(reason)),
            }
        }
        .boxed()
    }
}
