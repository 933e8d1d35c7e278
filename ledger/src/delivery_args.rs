//! The dispatcher's flags and environment variables, checked at start-up: a URL that does
//! not parse, a sender that is not a mailbox, a webhook without a valid `whsec_` secret
//! stop the process with a message naming the setting, never a silent no-op.

use std::sync::Arc;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{value_parser, Args, ValueEnum};
use delivery::backoff::Backoff;
use delivery::{Channel, DeliverySettings, DeliveryStart};
use delivery_channels::{
    ChannelSettings, SmtpChannel, SmtpSettings, WebhookChannel, WebhookSecret, WebhookSettings,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StartArg {
    /// Only notifications created after a channel was first enabled.
    Now,
    /// Every notification in the read model, history included.
    All,
}

#[derive(Args, Clone, Debug)]
pub struct DeliveryArgs {
    /// SMTP server for email: `smtp://host:port` (plain), `smtp://host:587?tls=required`
    /// (STARTTLS), `smtps://host:465`; `user:password@` before the host to log in.
    #[arg(long, env = "LEDGER_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of every email, e.g. `Orders <orders@shop.example>`.
    #[arg(long, env = "LEDGER_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Where webhooks are posted (several: comma-separated).
    #[arg(long, env = "LEDGER_WEBHOOK_URL", value_delimiter = ',')]
    pub webhook_url: Vec<String>,
    /// The Standard Webhooks signing secret, `whsec_` and a base64 key of 24 to 64 bytes.
    #[arg(long, env = "LEDGER_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Which notifications a channel sends when it is first enabled.
    #[arg(long, env = "LEDGER_DELIVERY_START", value_enum, default_value = "now")]
    pub delivery_start: StartArg,
    /// Attempts per message and channel before it is `failed`.
    #[arg(long, env = "LEDGER_DELIVERY_MAX_ATTEMPTS", default_value_t = 10,
          value_parser = value_parser!(i32).range(1..=1000))]
    pub delivery_max_attempts: i32,
    /// First retry delay; it doubles per attempt (with jitter) up to the maximum.
    #[arg(long, env = "LEDGER_DELIVERY_BACKOFF_MS", default_value_t = 500,
          value_parser = value_parser!(u64).range(1..))]
    pub delivery_backoff_ms: u64,
    #[arg(long, env = "LEDGER_DELIVERY_BACKOFF_MAX_MS", default_value_t = 300_000,
          value_parser = value_parser!(u64).range(1..))]
    pub delivery_backoff_max_ms: u64,
    /// How long a claim holds; a dispatcher that dies leaves its messages to others after
    /// it (longer than the slowest send).
    #[arg(long, env = "LEDGER_DELIVERY_LEASE_MS", default_value_t = 30_000,
          value_parser = value_parser!(u64).range(100..))]
    pub delivery_lease_ms: u64,
    /// Messages sent at once (and SMTP connections kept open).
    #[arg(long, env = "LEDGER_DELIVERY_CONCURRENCY", default_value_t = 16,
          value_parser = value_parser!(u32).range(1..=1024).map(|n| n as usize))]
    pub delivery_concurrency: usize,
    /// How long the dispatcher waits when nothing was due.
    #[arg(long, env = "LEDGER_DELIVERY_POLL_MS", default_value_t = 100,
          value_parser = value_parser!(u64).range(1..))]
    pub delivery_poll_ms: u64,
}

impl DeliveryArgs {
    /// The channels' settings, or the first one that cannot work, named.
    pub fn channels(&self) -> anyhow::Result<ChannelSettings> {
        let smtp = match (&self.smtp_url, &self.mail_from) {
            (None, _) => None,
            (Some(_), None) => anyhow::bail!(
                "LEDGER_MAIL_FROM (--mail-from) is required with LEDGER_SMTP_URL: the sender of every email"
            ),
            (Some(url), Some(from)) => {
                let smtp = SmtpSettings::parse(url, from).map_err(|error| {
                    let setting = if error.starts_with("not a mailbox") {
                        "LEDGER_MAIL_FROM (--mail-from)"
                    } else {
                        "LEDGER_SMTP_URL (--smtp-url)"
                    };
                    anyhow::anyhow!("{setting}: {error}")
                })?;
                Some(smtp)
            }
        };
        let webhooks = self
            .webhook_url
            .iter()
            .filter(|url| !url.trim().is_empty())
            .map(|url| {
                WebhookSettings::parse(url.trim()).map_err(|error| {
                    anyhow::anyhow!("LEDGER_WEBHOOK_URL (--webhook-url) {url}: {error}")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let webhook_secret = match (&self.webhook_secret, webhooks.is_empty()) {
            (None, false) => anyhow::bail!(
                "LEDGER_WEBHOOK_SECRET (--webhook-secret) is required with LEDGER_WEBHOOK_URL: \
                 webhooks are signed (`whsec_` and a base64 key)"
            ),
            (None, true) => None,
            (Some(secret), _) => Some(WebhookSecret::parse(secret).map_err(|error| {
                anyhow::anyhow!("LEDGER_WEBHOOK_SECRET (--webhook-secret): {error}")
            })?),
        };
        Ok(ChannelSettings { smtp, webhooks, webhook_secret, ..ChannelSettings::default() })
    }

    /// How the dispatcher works through its queue.
    pub fn settings(&self) -> DeliverySettings {
        DeliverySettings {
            start: match self.delivery_start {
                StartArg::Now => DeliveryStart::Now,
                StartArg::All => DeliveryStart::All,
            },
            max_attempts: self.delivery_max_attempts,
            backoff: Backoff {
                base: Duration::from_millis(self.delivery_backoff_ms),
                max: Duration::from_millis(
                    self.delivery_backoff_max_ms.max(self.delivery_backoff_ms),
                ),
            },
            lease: Duration::from_millis(self.delivery_lease_ms),
            poll_interval: Duration::from_millis(self.delivery_poll_ms),
            concurrency: self.delivery_concurrency,
        }
    }
}

/// The channels `settings` configure: `email`, then `webhook`, `webhook-2`, ….
pub fn channels(
    settings: &ChannelSettings,
    delivery: &DeliverySettings,
) -> anyhow::Result<Vec<Arc<dyn Channel>>> {
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    if let Some(smtp) = &settings.smtp {
        let connections = u32::try_from(delivery.concurrency).unwrap_or(u32::MAX);
        let channel = SmtpChannel::new(smtp, connections)
            .map_err(|error| anyhow::anyhow!("LEDGER_SMTP_URL (--smtp-url): {error}"))?;
        channels.push(Arc::new(channel));
    }
    if let Some(secret) = &settings.webhook_secret {
        for (n, webhook) in settings.webhooks.iter().enumerate() {
            let name = if n == 0 { "webhook".to_owned() } else { format!("webhook-{}", n + 1) };
            let channel = WebhookChannel::new(
                name,
                webhook.url.clone(),
                secret.clone(),
                settings.send_timeout,
            );
            channels.push(Arc::new(channel));
        }
    }
    Ok(channels)
}
