//! The payment service's flags and environment variables, checked at start-up: a provider
//! URL that does not parse, a URL without a key, a lease shorter than a provider call stop
//! the process with a message naming the setting.

use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{value_parser, Args};
use payment_provider::stripe::StripeSettings;
use payment_service::{RetryPolicy, ServiceSettings};

/// The provider and how the service works with it; `None` when no provider is configured
/// (the `payments` role cannot run).
#[derive(Clone, Debug)]
pub struct PaymentSettings {
    pub provider: StripeSettings,
    pub service: ServiceSettings,
}

#[derive(Args, Clone, Debug)]
pub struct PaymentArgs {
    /// The payment provider's API base URL (Stripe's API, or a stand-in speaking the same
    /// subset: see docs/payment-provider.md), e.g. `https://api.stripe.com`.
    #[arg(long, env = "LEDGER_PAYMENT_PROVIDER_URL")]
    pub payment_provider_url: Option<String>,
    /// The provider's secret API key, sent as `Authorization: Bearer …`.
    #[arg(long, env = "LEDGER_PAYMENT_PROVIDER_KEY", hide_env_values = true)]
    pub payment_provider_key: Option<String>,
    /// Longest a provider call may take; past it the outcome is unknown and the same
    /// request is repeated later with the same idempotency key.
    #[arg(long, env = "LEDGER_PAYMENT_PROVIDER_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = value_parser!(u64).range(1..))]
    pub payment_provider_timeout_ms: u64,
    /// Charge attempts per order; after the last soft decline (or any hard decline) the
    /// order is cancelled with reason `payment_failed`.
    #[arg(long, env = "LEDGER_PAYMENT_MAX_ATTEMPTS", default_value_t = 3,
          value_parser = value_parser!(u32).range(1..=100))]
    pub payment_max_attempts: u32,
    /// Pause after the first soft decline; it doubles after each later one.
    #[arg(long, env = "LEDGER_PAYMENT_RETRY_AFTER_MS", default_value_t = 3_600_000,
          value_parser = value_parser!(u64).range(1..))]
    pub payment_retry_after_ms: u64,
    /// Longest pause between two asks about an unknown outcome.
    #[arg(long, env = "LEDGER_PAYMENT_UNKNOWN_RETRY_MAX_MS", default_value_t = 60_000,
          value_parser = value_parser!(u64).range(1..))]
    pub payment_unknown_retry_max_ms: u64,
    /// Orders advanced at once.
    #[arg(long, env = "LEDGER_PAYMENT_CONCURRENCY", default_value_t = 16,
          value_parser = value_parser!(u32).range(1..=1024).map(|n| n as usize))]
    pub payment_concurrency: usize,
    /// How long a worker's claim on an order holds (a dead worker's orders are taken over
    /// after it); longer than a provider call.
    #[arg(long, env = "LEDGER_PAYMENT_LEASE_MS", default_value_t = 60_000,
          value_parser = value_parser!(u64).range(100..))]
    pub payment_lease_ms: u64,
    /// Longest the worker sleeps without looking for due orders.
    #[arg(long, env = "LEDGER_PAYMENT_POLL_MS", default_value_t = 1_000,
          value_parser = value_parser!(u64).range(1..))]
    pub payment_poll_ms: u64,
    /// How old an event must be before the service takes it from the store because the
    /// bus has not delivered it.
    #[arg(long, env = "LEDGER_PAYMENT_CATCH_UP_GRACE_MS", default_value_t = 2_000)]
    pub payment_catch_up_grace_ms: u64,
}

impl PaymentArgs {
    pub fn settings(&self) -> anyhow::Result<Option<PaymentSettings>> {
        let url = match self.payment_provider_url.as_deref().map(str::trim) {
            None | Some("") => return Ok(None),
            Some(url) => url,
        };
        let base_url = url::Url::parse(url).map_err(|error| {
            anyhow::anyhow!("LEDGER_PAYMENT_PROVIDER_URL (--payment-provider-url) {url:?}: {error}")
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            anyhow::bail!(
                "LEDGER_PAYMENT_PROVIDER_URL (--payment-provider-url) {url:?}: must be an http(s) \
                 base URL such as https://api.stripe.com"
            );
        }
        let api_key = match self.payment_provider_key.as_deref().map(str::trim) {
            Some(key) if !key.is_empty() => key.to_owned(),
            _ => anyhow::bail!(
                "LEDGER_PAYMENT_PROVIDER_KEY (--payment-provider-key) is required with \
                 LEDGER_PAYMENT_PROVIDER_URL: the provider's secret API key"
            ),
        };
        let timeout = Duration::from_millis(self.payment_provider_timeout_ms);
        let lease = Duration::from_millis(self.payment_lease_ms);
        // A claim must outlive the calls made under it, or two workers could work one order
        // at once (still safe, by the keys, but wasteful and noisy).
        if lease < timeout * 2 {
            anyhow::bail!(
                "LEDGER_PAYMENT_LEASE_MS (--payment-lease-ms) {} must be at least twice \
                 LEDGER_PAYMENT_PROVIDER_TIMEOUT_MS ({})",
                self.payment_lease_ms,
                self.payment_provider_timeout_ms
            );
        }
        Ok(Some(PaymentSettings {
            provider: StripeSettings { base_url, api_key, timeout },
            service: ServiceSettings {
                policy: RetryPolicy {
                    max_attempts: self.payment_max_attempts,
                    soft_decline_retry_after: Duration::from_millis(self.payment_retry_after_ms),
                    unknown_retry_max: Duration::from_millis(self.payment_unknown_retry_max_ms),
                },
                concurrency: self.payment_concurrency,
                lease,
                poll: Duration::from_millis(self.payment_poll_ms),
                catch_up_grace: Duration::from_millis(self.payment_catch_up_grace_ms),
            },
        }))
    }
}
