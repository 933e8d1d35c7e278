//! [`Stripe`]: the [`PaymentProvider`] over Stripe's HTTP API — `POST /v1/payment_intents`
//! (create and confirm in one call), `GET /v1/payment_intents/{id}` and `POST /v1/refunds`,
//! form-encoded, pinned to API version `2024-06-20`. `docs/payment-provider.md` lists every
//! parameter and field used, and how each answer is classified.
//!
//! Every call that changes something carries the caller's `Idempotency-Key`, so the only
//! safe reaction to any doubt — a timeout, a reset connection, a `5xx` — is to ask again
//! with the same key, and the adapter reports all of them as [`ProviderError::Unknown`].
//! It never retries by itself: when and how often to ask again is the process manager's
//! decision, and it owns the key.
//!
//! The API key lives in a default header marked sensitive, so neither the client's nor
//! this type's `Debug` output, nor any log line, ever shows it.

mod answer;
mod decline;
mod wire;

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use url::Url;

use crate::{
    ChargeOutcome, ChargeRequest, PaymentProvider, ProviderError, RefundOutcome, RefundRequest,
};
use answer::Answer;

/// The API version the field names and statuses in `wire.rs` were written against.
/// Pinned, so that an account upgraded in the dashboard does not change what we read.
const STRIPE_VERSION: &str = "2024-06-20";

#[derive(Clone)]
pub struct StripeSettings {
    /// `https://api.stripe.com`, or a stand-in; may carry a path prefix.
    pub base_url: Url,
    pub api_key: String,
    /// For a whole exchange, connecting included. Past it the outcome is unknown.
    pub timeout: Duration,
}

impl fmt::Debug for StripeSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("StripeSettings")
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a [`Stripe`] could not be built: each is a configuration mistake, found at startup.
#[derive(Debug, thiserror::Error)]
pub enum StripeSetupError {
    #[error("the payment provider URL {0} cannot have a path joined to it")]
    BaseUrl(String),
    #[error("the payment provider API key is not a valid HTTP header value")]
    ApiKey,
    #[error("cannot build the HTTP client for the payment provider")]
    Client(#[source] reqwest::Error),
}

#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    base_url: Url,
}

impl fmt::Debug for Stripe {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Stripe").field("base_url", &self.base_url.as_str()).finish()
    }
}

impl Stripe {
    pub fn new(settings: StripeSettings) -> Result<Self, StripeSetupError> {
        let StripeSettings { base_url, api_key, timeout } = settings;
        let joinable =
            matches!(base_url.scheme(), "http" | "https") && !base_url.cannot_be_a_base();
        if !joinable {
            return Err(StripeSetupError::BaseUrl(base_url.to_string()));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {api_key}"))
            .map_err(|_| StripeSetupError::ApiKey)?;
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert("Stripe-Version", HeaderValue::from_static(STRIPE_VERSION));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout)
            // Stripe never redirects; following one would turn a POST into a GET
            // somewhere else, and send the key along.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(StripeSetupError::Client)?;
        Ok(Self { http, base_url })
    }

    /// `{base}/v1/{segments…}`, keeping the base's path prefix and percent-encoding each
    /// segment, so an id can never reach another path.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    /// Sends and reads the whole answer; anything that stops either is an unknown outcome.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Answer, ProviderError> {
        let request = request.build().map_err(|error| ProviderError::Refused {
            status: 0,
            code: "request_not_sent".to_owned(),
            message: format!("the request could not be built: {error}"),
        })?;
        let response = self.http.execute(request).await.map_err(no_answer)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(no_answer)?.to_vec();
        Ok(Answer { status, retry_after, body })
    }
}

/// A request that got no (complete) answer. The request may have been processed.
fn no_answer(error: reqwest::Error) -> ProviderError {
    let what = if error.is_timeout() {
        "no answer in time"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "the exchange broke off"
    };
    let reason = format!("{what}: {}", bus::chain(&error));
    ProviderError::unknown(reason)
}

impl PaymentProvider for Stripe {
    #[tracing::instrument(skip_all, fields(order_id = %request.order_id))]
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ProviderError> {
        let form = [
            ("amount", request.amount_minor.to_string()),
            ("currency", request.currency.to_ascii_lowercase()),
            ("payment_method", request.payment_method.clone()),
            ("payment_method_types[]", "card".to_owned()),
            ("confirm", "true".to_owned()),
            ("metadata[order_id]", request.order_id.clone()),
        ];
        let call = self
            .http
            .post(self.endpoint(&["payment_intents"]))
            .header("Idempotency-Key", &request.idempotency_key)
            .form(&form);
        answer::payment_intent(&self.exchange(call).await?)
    }

    #[tracing::instrument(skip(self))]
    async fn retrieve(&self, intent_id: &str) -> Result<ChargeOutcome, ProviderError> {
        let call = self.http.get(self.endpoint(&["payment_intents", intent_id]));
        answer::payment_intent(&self.exchange(call).await?)
    }

    #[tracing::instrument(skip_all, fields(intent_id = %request.intent_id))]
    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        let form = [
            ("payment_intent", request.intent_id.clone()),
            ("amount", request.amount_minor.to_string()),
        ];
        let call = self
            .http
            .post(self.endpoint(&["refunds"]))
            .header("Idempotency-Key", &request.idempotency_key)
            .form(&form);
        answer::refund(&self.exchange(call).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe(base: &str) -> Stripe {
        let settings = StripeSettings {
            base_url: Url::parse(base).expect("a valid URL"),
            api_key: "sk_test_secret".into(),
            timeout: Duration::from_secs(1),
        };
        Stripe::new(settings).expect("valid settings")
    }

    #[test]
    fn endpoints_keep_the_base_urls_path_prefix_with_or_without_a_trailing_slash() {
        assert_eq!(
            stripe("https://api.stripe.com").endpoint(&["payment_intents"]).as_str(),
            "https://api.stripe.com/v1/payment_intents"
        );
        assert_eq!(
            stripe("http://127.0.0.1:9/stripe").endpoint(&["refunds"]).as_str(),
            "http://127.0.0.1:9/stripe/v1/refunds"
        );
        assert_eq!(
            stripe("http://127.0.0.1:9/stripe/?x=1").endpoint(&["refunds"]).as_str(),
            "http://127.0.0.1:9/stripe/v1/refunds"
        );
    }

    #[test]
    fn an_id_cannot_escape_its_path_segment() {
        let url = stripe("https://api.stripe.com").endpoint(&["payment_intents", "../refunds?x"]);
        assert_eq!(url.as_str(), "https://api.stripe.com/v1/payment_intents/..%2Frefunds%3Fx");
    }

    #[test]
    fn neither_the_settings_nor_the_adapter_show_the_key_when_printed() {
        let settings = StripeSettings {
            base_url: Url::parse("https://api.stripe.com").expect("a valid URL"),
            api_key: "sk_test_secret".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{settings:?}").contains("sk_test_secret"));
        let adapter = Stripe::new(settings).expect("valid settings");
        assert!(!format!("{adapter:?}").contains("sk_test_secret"));
    }

    #[test]
    fn a_base_url_that_takes_no_path_or_a_key_that_is_no_header_is_refused_at_startup() {
        let settings = |base: &str, key: &str| StripeSettings {
            base_url: Url::parse(base).expect("a valid URL"),
            api_key: key.into(),
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            Stripe::new(settings("mailto:payments@example.com", "sk")),
            Err(StripeSetupError::BaseUrl(_))
        ));
        assert!(matches!(
            Stripe::new(settings("https://api.stripe.com", "sk\nInjected: yes")),
            Err(StripeSetupError::ApiKey)
        ));
    }
}
