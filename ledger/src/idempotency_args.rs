//! How long idempotency keys are remembered, and how their records are pruned.

use std::time::Duration;

use clap::{value_parser, Args};
use commands::KeyExpirySettings;

#[derive(Args, Clone, Debug)]
pub struct IdempotencyArgs {
    /// How long an `Idempotency-Key` is remembered (e.g. `24h`, `7d`): a retry within it is
    /// answered with the first outcome; after it the key is unknown and the request is a
    /// fresh command.
    #[arg(long, env = "LEDGER_IDEMPOTENCY_RETENTION", default_value = "24h",
          value_parser = positive_duration)]
    pub idempotency_retention: Duration,
    /// How often expired idempotency records are deleted.
    #[arg(long, env = "LEDGER_IDEMPOTENCY_PRUNE_INTERVAL", default_value = "1m",
          value_parser = positive_duration)]
    pub idempotency_prune_interval: Duration,
    /// Expired records deleted per transaction.
    #[arg(long, env = "LEDGER_IDEMPOTENCY_PRUNE_BATCH", default_value_t = 1_000,
          value_parser = value_parser!(u32).range(1..=100_000))]
    pub idempotency_prune_batch: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct IdempotencySettings {
    pub retention: Duration,
    pub expiry: KeyExpirySettings,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            retention: eventstore::idempotency::DEFAULT_RETENTION,
            expiry: KeyExpirySettings::default(),
        }
    }
}

impl IdempotencyArgs {
    pub fn settings(&self) -> IdempotencySettings {
        IdempotencySettings {
            retention: self.idempotency_retention,
            expiry: KeyExpirySettings {
                interval: self.idempotency_prune_interval,
                batch: self.idempotency_prune_batch,
            },
        }
    }
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match bus::parse_duration(text)? {
        zero if zero.is_zero() => Err("must be longer than zero".to_owned()),
        duration => Ok(duration),
    }
}
