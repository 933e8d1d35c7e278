//! The channels notifications go out through: email over SMTP (lettre) and Standard
//! Webhooks (reqwest, HMAC-SHA256 signatures), each a [`delivery::Channel`].

mod settings;
pub mod signature;
mod smtp;
mod webhook;

pub use settings::{ChannelSettings, SmtpSettings, WebhookSettings};
pub use signature::WebhookSecret;
pub use smtp::SmtpChannel;
pub use webhook::WebhookChannel;
