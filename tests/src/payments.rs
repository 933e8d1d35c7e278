//! The payment service under test: a ledger whose `payments` role charges through a
//! payment-provider stand-in (`payment-standin`, Stripe's subset over real HTTP) of the
//! test's own, with retry pauses short enough for a test.

use std::time::Duration;

use ledger::payment_args::PaymentSettings;
use ledger::Role;
use payment_provider::stripe::StripeSettings;
use payment_service::{RetryPolicy, ServiceSettings};
use payment_standin::StandIn;
use serde_json::Value;
use uuid::Uuid;

use crate::process::LedgerConfig;
use crate::{expect_json, expect_status, TestApp};

/// The pause after a soft decline in tests (it doubles per attempt).
pub const RETRY_AFTER: Duration = Duration::from_millis(100);
/// How long the ledger waits for the provider in tests before the outcome is unknown.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_millis(1000);

/// The payment settings of a test ledger charging through `standin`.
pub fn settings(standin: &StandIn) -> anyhow::Result<PaymentSettings> {
    Ok(PaymentSettings {
        provider: StripeSettings {
            base_url: url::Url::parse(&standin.url())?,
            api_key: standin.api_key().to_owned(),
            timeout: PROVIDER_TIMEOUT,
        },
        service: ServiceSettings {
            policy: RetryPolicy {
                max_attempts: 3,
                soft_decline_retry_after: RETRY_AFTER,
                unknown_retry_max: Duration::from_millis(500),
            },
            concurrency: 16,
            lease: PROVIDER_TIMEOUT * 3,
            poll: Duration::from_millis(100),
            catch_up_grace: Duration::from_secs(1),
        },
    })
}

/// Every role (API, relay, projector, payments) on the shared broker, charging through
/// `standin`.
pub async fn spawn_charging(standin: &StandIn) -> anyhow::Result<TestApp> {
    spawn_charging_with(standin, |_| {}).await
}

/// [`spawn_charging`], with more changes to the settings.
pub async fn spawn_charging_with(
    standin: &StandIn,
    configure: impl Fn(&mut ledger::Settings) + Send + Sync + 'static,
) -> anyhow::Result<TestApp> {
    let payments = settings(standin)?;
    let brokers = crate::kafka_brokers();
    TestApp::spawn_with(move |settings| {
        settings.roles = Role::ALL.into_iter().chain([Role::Payments]).collect();
        settings.bus.kafka.brokers.clone_from(&brokers);
        settings.payments = Some(payments.clone());
        configure(settings);
    })
    .await
}

/// `ledger serve` flags for a separate process charging through `standin`.
pub fn process_config(config: LedgerConfig, standin: &StandIn) -> LedgerConfig {
    let ms = |d: Duration| d.as_millis().to_string();
    config
        .arg("--payment-provider-url", &standin.url())
        .arg("--payment-provider-key", standin.api_key())
        .arg("--payment-provider-timeout-ms", &ms(PROVIDER_TIMEOUT))
        .arg("--payment-retry-after-ms", &ms(RETRY_AFTER))
        .arg("--payment-unknown-retry-max-ms", "500")
        .arg("--payment-lease-ms", &ms(PROVIDER_TIMEOUT * 3))
        .arg("--payment-poll-ms", "100")
        .arg("--payment-catch-up-grace-ms", "1000")
}

/// The standard order ([`crate::ORDER_TOTAL_MINOR`]), to be charged to `payment_method`.
pub fn charged_order_body(order_id: Uuid, customer_id: &str, payment_method: &str) -> Value {
    let mut body = TestApp::order_body(order_id, customer_id);
    body["payment"] = serde_json::json!({ "payment_method": payment_method });
    body
}

/// Places the standard order through `http` at `base` to be charged to `payment_method`.
pub async fn place_charged(
    http: &reqwest::Client,
    url: &str,
    customer_id: &str,
    payment_method: &str,
) -> anyhow::Result<Uuid> {
    let order_id = Uuid::now_v7();
    let body = charged_order_body(order_id, customer_id, payment_method);
    expect_status(http.post(url).json(&body).send().await?, 201).await?;
    Ok(order_id)
}

/// `GET /v1/orders/{id}/payment-process`, `None` while there is none.
pub async fn process(
    http: &reqwest::Client,
    base: &str,
    order_id: Uuid,
) -> anyhow::Result<Option<Value>> {
    let response = http.get(format!("{base}/v1/orders/{order_id}/payment-process")).send().await?;
    if response.status() == 404 {
        return Ok(None);
    }
    Ok(Some(expect_json(response, 200).await?))
}
