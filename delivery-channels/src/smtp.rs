//! Email over SMTP (lettre's pooled async transport). Each message is a plain-text MIME
//! message whose `Message-ID` is `<{notification id}@{sender's domain}>`: a duplicate (a
//! retry after a lost answer, a claim taken over after a crash) carries the same id, which
//! mail systems and people recognise.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::settings::SmtpSettings;
use delivery::{Channel, Outgoing, SendError};

pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl SmtpChannel {
    /// The channel for validated settings; the error names what cannot work.
    pub fn new(settings: &SmtpSettings, connections: u32) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)
            .map_err(|error| format!("not a usable SMTP URL: {error}"))?
            .timeout(Some(settings.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(connections.max(1))
                    .idle_timeout(Duration::from_secs(60)),
            )
            .build();
        let domain = settings.from.email.domain().to_owned();
        Ok(Self { transport, from: settings.from.clone(), domain })
    }

    fn message(&self, outgoing: &Outgoing) -> Result<Message, SendError> {
        let to: Mailbox = outgoing.recipient.parse().map_err(|error| {
            SendError::Permanent(format!("the recipient is not an address: {error}"))
        })?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(outgoing.subject.as_str())
            .message_id(Some(format!("<{}@{}>", outgoing.id, self.domain)))
            .date_now()
            .header(ContentType::TEXT_PLAIN)
            .body(outgoing.body.clone())
            .map_err(|error| SendError::Permanent(format!("the message cannot be built: {error}")))
    }
}

impl Channel for SmtpChannel {
    fn name(&self) -> &str {
        "email"
    }

    fn send<'a>(&'a self, outgoing: &'a Outgoing) -> BoxFuture<'a, Result<(), SendError>> {
        async move {
            let message = self.message(outgoing)?;
            match self.transport.send(message).await {
                Ok(_) => Ok(()),
                Err(error) if error.is_permanent() => Err(SendError::Permanent(error.to_string())),
                Err(error) => Err(SendError::transient(error.to_string())),
            }
        }
        .boxed()
    }
}
