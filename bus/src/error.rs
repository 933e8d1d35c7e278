//! What a broker adapter reports. Broker failures are transient from the ledger's point of
//! view: the relay retries from its checkpoint and a consumer retries its batch, so the
//! error only needs to say what was being done and why it failed.

use std::error::Error;

#[derive(Debug, thiserror::Error)]
#[error("{doing}")]
pub struct BusError {
    doing: &'static str,
    #[source]
    source: Box<dyn Error + Send + Sync>,
}

impl BusError {
    /// `doing` says what failed, in a few words (`"publishing"`, `"creating the topics"`).
    pub fn new(doing: &'static str, source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self { doing, source: source.into() }
    }

    /// The error and its causes on one line, for logs and status reports.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// `error` and its causes on one line, `: `-separated.
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
