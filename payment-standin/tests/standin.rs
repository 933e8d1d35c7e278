//! The stand-in over HTTP, as Stripe's documentation describes the same exchanges.

use std::time::{Duration, Instant};

use payment_standin::{IntentStatus, Options, Scripted, StandIn};
use reqwest::StatusCode;
use serde_json::Value;

struct Exchange {
    status: StatusCode,
    replayed: bool,
    body: Value,
}

/// A client speaking to a started stand-in, one helper per endpoint.
struct Client {
    standin: StandIn,
    http: reqwest::Client,
}

impl Client {
    async fn start() -> Self {
        let standin = StandIn::start(Options::default()).await.expect("the stand-in starts");
        Self { standin, http: reqwest::Client::new() }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Exchange {
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let replayed = response.headers().get("Idempotent-Replayed").is_some();
        let body = response.json().await.unwrap_or(Value::Null);
        Exchange { status, replayed, body }
    }

    fn post(
        &self,
        path: &str,
        key: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(format!("{}{path}", self.standin.url()))
            .bearer_auth(self.standin.api_key())
            .form(form);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request
    }

    async fn charge(&self, key: Option<&str>, payment_method: &str, amount: &str) -> Exchange {
        let form = [
            ("amount", amount),
            ("currency", "eur"),
            ("payment_method", payment_method),
            ("payment_method_types[]", "card"),
            ("confirm", "true"),
            ("metadata[order_id]", "order-1"),
        ];
        self.send(self.post("/v1/payment_intents", key, &form)).await
    }

    async fn retrieve(&self, id: &str) -> Exchange {
        let url = format!("{}/v1/payment_intents/{id}", self.standin.url());
        self.send(self.http.get(url).bearer_auth(self.standin.api_key())).await
    }

    async fn refund(&self, key: Option<&str>, intent: &str, amount: &str) -> Exchange {
        let form = [("payment_intent", intent), ("amount", amount)];
        self.send(self.post("/v1/refunds", key, &form)).await
    }
}

fn text<'a>(body: &'a Value, pointer: &str) -> &'a str {
    body.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

#[tokio::test]
async fn a_test_card_charge_answers_a_succeeded_intent_and_is_recorded() {
    let client = Client::start().await;
    let answer = client.charge(Some("key-1"), "pm_card_visa", "1250").await;
    assert_eq!(answer.status, StatusCode::OK);
    let intent = &answer.body;
    assert!(text(intent, "/id").starts_with("pi_"));
    assert_eq!(text(intent, "/object"), "payment_intent");
    assert_eq!(text(intent, "/status"), "succeeded");
    assert!(text(intent, "/latest_charge").starts_with("ch_"));
    assert_eq!(text(intent, "/metadata/order_id"), "order-1");
    assert_eq!(text(intent, "/payment_method"), "pm_card_visa");
    assert_eq!(intent["amount"], 1250);
    assert_eq!(intent["amount_received"], 1250);
    assert_eq!(intent["livemode"], false);
    assert!(intent["created"].as_u64().is_some());

    let charges = client.standin.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].intent_id, text(intent, "/id"));
    assert_eq!(charges[0].charge_id, text(intent, "/latest_charge"));
    assert_eq!(charges[0].order_id.as_deref(), Some("order-1"));
    assert_eq!((charges[0].amount, charges[0].currency.as_str()), (1250, "eur"));
    assert_eq!(charges[0].idempotency_key.as_deref(), Some("key-1"));
}

#[tokio::test]
async fn a_request_without_the_api_key_is_refused_and_counted() {
    let client = Client::start().await;
    let url = format!("{}/v1/payment_intents/pi_1", client.standin.url());
    let missing = client.send(client.http.get(&url)).await;
    let wrong = client.send(client.http.get(&url).bearer_auth("sk_test_wrong")).await;
    for answer in [missing, wrong] {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(text(&answer.body, "/error/type"), "invalid_request_error");
    }
    assert_eq!(client.standin.requests(), 2);
}

#[tokio::test]
async fn a_repeated_key_replays_the_first_answer_and_charges_once() {
    let client = Client::start().await;
    let first = client.charge(Some("key-1"), "pm_card_visa", "500").await;
    let again = client.charge(Some("key-1"), "pm_card_visa", "500").await;
    assert!(!first.replayed);
    assert!(again.replayed);
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert_eq!(client.standin.charges().len(), 1);
}

#[tokio::test]
async fn a_key_reused_with_other_parameters_is_an_idempotency_error() {
    let client = Client::start().await;
    client.charge(Some("key-1"), "pm_card_visa", "500").await;
    let other = client.charge(Some("key-1"), "pm_card_visa", "501").await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert_eq!(text(&other.body, "/error/type"), "idempotency_error");
    assert_eq!(client.standin.charges().len(), 1);
}

#[tokio::test]
async fn a_repeat_while_the_first_request_is_in_flight_is_a_conflict() {
    let client = Client::start().await;
    // Long enough that both requests arrive while the first is being worked on.
    client.standin.set_latency(Duration::from_millis(1000));
    let (one, two) = tokio::join!(
        client.charge(Some("key-1"), "pm_card_visa", "500"),
        client.charge(Some("key-1"), "pm_card_visa", "500"),
    );
    let mut statuses = [one.status, two.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let conflict = if one.status == StatusCode::CONFLICT { one } else { two };
    assert_eq!(text(&conflict.body, "/error/type"), "idempotency_error");
    assert_eq!(client.standin.charges().len(), 1);
}

#[tokio::test]
async fn invalid_parameters_are_refused_naming_the_parameter_and_not_stored() {
    let client = Client::start().await;
    let zero = client.charge(Some("key-1"), "pm_card_visa", "0").await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
    assert_eq!(text(&zero.body, "/error/type"), "invalid_request_error");
    assert_eq!(text(&zero.body, "/error/param"), "amount");
    let unconfirmed = [("amount", "5"), ("currency", "eur"), ("payment_method", "pm_card_visa")];
    let answer = client.send(client.post("/v1/payment_intents", None, &unconfirmed)).await;
    assert_eq!(text(&answer.body, "/error/param"), "confirm");

    let retried = client.charge(Some("key-1"), "pm_card_visa", "500").await;
    assert_eq!((retried.status, retried.replayed), (StatusCode::OK, false));
}

#[tokio::test]
async fn a_declined_test_card_answers_402_embedding_the_intent_left_at_requires_payment_method() {
    let client = Client::start().await;
    let cases = [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
        ("pm_card_chargeDeclinedFraudulent", "card_declined", "fraudulent"),
        ("pm_card_chargeDeclinedProcessingError", "processing_error", "processing_error"),
    ];
    for (payment_method, code, decline_code) in cases {
        let answer = client.charge(None, payment_method, "500").await;
        assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED, "{payment_method}");
        let error = &answer.body["error"];
        assert_eq!(text(error, "/type"), "card_error");
        assert_eq!((text(error, "/code"), text(error, "/decline_code")), (code, decline_code));
        assert!(text(error, "/charge").starts_with("ch_"));
        assert_eq!(text(error, "/payment_intent/status"), "requires_payment_method");
        assert_eq!(text(error, "/payment_intent/last_payment_error/code"), code);
    }
    assert!(client.standin.charges().is_empty());
    let intents = client.standin.intents();
    assert_eq!(intents.len(), cases.len());
    assert!(intents.iter().all(|intent| intent.status == IntentStatus::RequiresPaymentMethod));
}

#[tokio::test]
async fn a_card_needing_authentication_answers_requires_action_without_charging() {
    let client = Client::start().await;
    let answer = client.charge(None, "pm_card_authenticationRequired", "500").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(text(&answer.body, "/status"), "requires_action");
    assert!(client.standin.charges().is_empty());
}

#[tokio::test]
async fn an_unknown_payment_method_is_a_missing_resource_unless_scripted() {
    let client = Client::start().await;
    let answer = client.charge(None, "pm_card_made_up", "500").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(text(&answer.body, "/error/code"), "resource_missing");
    assert_eq!(text(&answer.body, "/error/param"), "payment_method");

    client.standin.script("pm_card_made_up", vec![Scripted::Succeed]);
    assert_eq!(client.charge(None, "pm_card_made_up", "500").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_processing_intent_succeeds_after_the_scripted_retrieves() {
    let client = Client::start().await;
    client.standin.script("pm_card_visa", vec![Scripted::Processing { retrieves: 1 }]);
    let created = client.charge(None, "pm_card_visa", "500").await;
    assert_eq!(text(&created.body, "/status"), "processing");
    let id = text(&created.body, "/id");
    assert_eq!(text(&client.retrieve(id).await.body, "/status"), "processing");
    assert!(client.standin.charges().is_empty());
    assert_eq!(text(&client.retrieve(id).await.body, "/status"), "succeeded");
    assert_eq!(text(&client.retrieve(id).await.body, "/status"), "succeeded");
    assert_eq!(client.standin.charges().len(), 1);
}

#[tokio::test]
async fn retrieving_an_unknown_intent_is_404_resource_missing() {
    let client = Client::start().await;
    let answer = client.retrieve("pi_nope").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(text(&answer.body, "/error/code"), "resource_missing");
}

#[tokio::test]
async fn refunds_give_back_no_more_than_was_charged() {
    let client = Client::start().await;
    let charged = client.charge(None, "pm_card_visa", "1000").await;
    let id = text(&charged.body, "/id").to_owned();

    let part = client.refund(Some("refund-1"), &id, "400").await;
    assert_eq!(part.status, StatusCode::OK);
    assert!(text(&part.body, "/id").starts_with("re_"));
    assert_eq!((text(&part.body, "/object"), text(&part.body, "/status")), ("refund", "succeeded"));
    assert_eq!(text(&part.body, "/payment_intent"), id);
    assert!(client.refund(Some("refund-1"), &id, "400").await.replayed);

    let too_much = client.refund(Some("refund-2"), &id, "601").await;
    assert_eq!(too_much.status, StatusCode::BAD_REQUEST);
    assert_eq!(text(&too_much.body, "/error/code"), "amount_too_large");
    assert_eq!(client.refund(Some("refund-3"), &id, "600").await.status, StatusCode::OK);
    let again = client.refund(Some("refund-4"), &id, "1").await;
    assert_eq!(text(&again.body, "/error/code"), "charge_already_refunded");

    let refunds = client.standin.refunds();
    assert_eq!(refunds.iter().map(|refund| refund.amount).collect::<Vec<_>>(), [400, 600]);
    assert_eq!(refunds[0].idempotency_key.as_deref(), Some("refund-1"));
}

#[tokio::test]
async fn an_intent_that_took_no_money_cannot_be_refunded() {
    let client = Client::start().await;
    let declined = client.charge(None, "pm_card_chargeDeclined", "1000").await;
    let id = text(&declined.body, "/error/payment_intent/id").to_owned();
    let answer = client.refund(None, &id, "100").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(text(&answer.body, "/error/code"), "payment_intent_unexpected_state");
    let unknown = client.refund(None, "pi_nope", "100").await;
    assert_eq!(text(&unknown.body, "/error/code"), "resource_missing");
    assert_eq!(text(&unknown.body, "/error/param"), "payment_intent");
}

#[tokio::test]
async fn an_outage_answers_503_doing_nothing_and_the_same_key_charges_after_it() {
    let client = Client::start().await;
    client.standin.set_outage(true);
    let down = client.charge(Some("key-1"), "pm_card_visa", "500").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(&down.body, "/error/type"), "api_error");
    assert!(client.standin.intents().is_empty());
    client.standin.set_outage(false);
    let up = client.charge(Some("key-1"), "pm_card_visa", "500").await;
    assert_eq!((up.status, up.replayed), (StatusCode::OK, false));
}

#[tokio::test]
async fn scripted_server_errors_and_rate_limits_are_not_stored_under_the_key() {
    let client = Client::start().await;
    client.standin.script("pm_card_visa", vec![Scripted::ServerError, Scripted::RateLimited]);
    let failed = client.charge(Some("key-1"), "pm_card_visa", "500").await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    let limited = client.charge(Some("key-1"), "pm_card_visa", "500").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(text(&limited.body, "/error/code"), "rate_limit");
    let charged = client.charge(Some("key-1"), "pm_card_visa", "500").await;
    assert_eq!((charged.status, charged.replayed), (StatusCode::OK, false));
    assert_eq!(client.standin.charges().len(), 1);
}

#[tokio::test]
async fn a_charge_that_stalls_is_stored_before_it_answers() {
    let client = Client::start().await;
    client.standin.script("pm_card_visa", vec![Scripted::ChargeThenStall(Duration::from_secs(5))]);
    let impatient = client
        .post(
            "/v1/payment_intents",
            Some("key-1"),
            &[
                ("amount", "500"),
                ("currency", "eur"),
                ("payment_method", "pm_card_visa"),
                ("confirm", "true"),
            ],
        )
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(impatient.is_err_and(|error| error.is_timeout()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.standin.charges().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let retried = client
        .send(client.post(
            "/v1/payment_intents",
            Some("key-1"),
            &[
                ("amount", "500"),
                ("currency", "eur"),
                ("payment_method", "pm_card_visa"),
                ("confirm", "true"),
            ],
        ))
        .await;
    assert_eq!((retried.status, retried.replayed), (StatusCode::OK, true));
    assert_eq!(client.standin.charges().len(), 1);
}

#[tokio::test]
async fn the_control_endpoints_steer_and_report_over_http() {
    let client = Client::start().await;
    let control = |path: &str| format!("{}/_standin/{path}", client.standin.url());
    let script = serde_json::json!({"payment_method": "pm_card_visa", "outcomes": [
        {"decline": {"code": "card_declined", "decline_code": "insufficient_funds"}}
    ]});
    let scripted = client.http.post(control("script")).json(&script).send().await;
    assert_eq!(scripted.map(|answer| answer.status()).ok(), Some(StatusCode::NO_CONTENT));
    assert_eq!(
        client.charge(None, "pm_card_visa", "500").await.status,
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(client.charge(None, "pm_card_visa", "500").await.status, StatusCode::OK);

    let charges = client.send(client.http.get(control("charges"))).await;
    assert_eq!(charges.body.as_array().map(Vec::len), Some(1));
    let intents = client.send(client.http.get(control("intents"))).await;
    assert_eq!(intents.body.as_array().map(Vec::len), Some(2));
    assert_eq!(text(&intents.body, "/0/status"), "requires_payment_method");

    let outage = serde_json::json!({"down": true});
    client.http.post(control("outage")).json(&outage).send().await.expect("an answer");
    let down = client.charge(None, "pm_card_visa", "500").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);

    let latency = serde_json::json!({"ms": 0});
    let set = client.http.post(control("latency")).json(&latency).send().await;
    assert_eq!(set.map(|answer| answer.status()).ok(), Some(StatusCode::NO_CONTENT));
    let requests = client.send(client.http.get(control("requests"))).await;
    assert_eq!(requests.body["requests"], 3);
}

#[tokio::test]
async fn a_stopped_stand_in_no_longer_answers() {
    let client = Client::start().await;
    let url = client.standin.url();
    client.standin.stop().await;
    let answer = client.http.get(format!("{url}/v1/payment_intents/pi_1")).send().await;
    assert!(answer.is_err());
}
