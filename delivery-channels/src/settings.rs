//! Where the channels send, checked when parsed: a URL that cannot work, a sender that is
//! not a mailbox or a secret that is not a `whsec_` key stops the process at start-up.

use std::time::Duration;

use lettre::message::Mailbox;

use crate::signature::WebhookSecret;

#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub url: String,
    pub from: Mailbox,
    pub timeout: Duration,
}

impl SmtpSettings {
    /// `url` as lettre reads it (`smtp://host:port`, `smtp://…?tls=required` for STARTTLS,
    /// `smtps://…`, with `user:password@`), and the sender's mailbox.
    pub fn parse(url: &str, from: &str) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|error| format!("not a URL: {error}"))?;
        if !matches!(parsed.scheme(), "smtp" | "smtps") {
            return Err(format!("the scheme must be smtp or smtps, not {}", parsed.scheme()));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("names no host".to_owned());
        }
        // What lettre itself refuses (an unknown `tls=` mode, a TLS scheme it cannot serve).
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|error| format!("not a usable SMTP URL: {error}"))?;
        let from: Mailbox = from.parse().map_err(|error| format!("not a mailbox: {error}"))?;
        Ok(Self { url: url.to_owned(), from, timeout: Duration::from_secs(10) })
    }
}

#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub url: String,
}

impl WebhookSettings {
    pub fn parse(url: &str) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|error| format!("not a URL: {error}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("the scheme must be http or https, not {}", parsed.scheme()));
        }
        Ok(Self { url: url.to_owned() })
    }
}

/// Every channel's settings.
#[derive(Clone, Debug)]
pub struct ChannelSettings {
    pub smtp: Option<SmtpSettings>,
    pub webhooks: Vec<WebhookSettings>,
    pub webhook_secret: Option<WebhookSecret>,
    /// How long one webhook request may take.
    pub send_timeout: Duration,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            smtp: None,
            webhooks: Vec::new(),
            webhook_secret: None,
            send_timeout: Duration::from_secs(10),
        }
    }
}

impl ChannelSettings {
    /// Whether any channel is configured.
    pub fn any(&self) -> bool {
        self.smtp.is_some() || !self.webhooks.is_empty()
    }
}
