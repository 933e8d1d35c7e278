//! The application under test, started exactly as `ledger serve` starts it.

use std::net::SocketAddr;

use clap::Parser;
use reqwest::{RequestBuilder, Response};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use api::config::ServeArgs;
use api::Application;
use eventstore::KafkaSettings;

use crate::TestDatabase;

/// What [`TestApp::place_order`] orders: 2 × 1250 + 1 × 500.
pub const ORDER_TOTAL_MINOR: i64 = 3000;

/// The tokens every test application accepts; [`TestApp::http`] sends the admin one.
pub const READ_TOKEN: &str = "test-read-token";
pub const WRITE_TOKEN: &str = "test-write-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";

struct Running {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
}

pub struct TestApp {
    pub database: TestDatabase,
    pub http: reqwest::Client,
    /// The topics of this test (a unique prefix on the broker the app publishes to).
    pub kafka: KafkaSettings,
    running: Option<Running>,
    extra_args: Vec<String>,
}

impl TestApp {
    /// The API alone, on a random port, against a fresh database (no broker needed).
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with(&["--roles", "api"]).await
    }

    /// The API and the relay, publishing to `brokers` under a topic prefix of its own.
    pub async fn spawn_with_relay(brokers: &str) -> anyhow::Result<Self> {
        Self::spawn_with_roles("api,relay", brokers).await
    }

    /// Every role: API, relay and projection workers, on a topic prefix of its own.
    pub async fn spawn_all(brokers: &str) -> anyhow::Result<Self> {
        Self::spawn_with_roles("api,relay,projector", brokers).await
    }

    /// The given roles, on `brokers` under a topic prefix of its own.
    pub async fn spawn_with_roles(roles: &str, brokers: &str) -> anyhow::Result<Self> {
        let prefix = format!("test-{}.", Uuid::new_v4().simple());
        Self::spawn_with(&[
            "--roles",
            roles,
            "--kafka-brokers",
            brokers,
            "--topic-prefix",
            &prefix,
            "--relay-poll-ms",
            "100",
            "--relay-message-timeout-ms",
            "3000",
        ])
        .await
    }

    /// Like [`spawn`](Self::spawn), with extra `ledger serve` flags.
    pub async fn spawn_with(extra_args: &[&str]) -> anyhow::Result<Self> {
        let database = TestDatabase::create().await?;
        let extra_args: Vec<String> = extra_args.iter().map(|s| (*s).to_owned()).collect();
        let settings = ServeArgs::try_parse_from(
            ["serve"].into_iter().map(str::to_owned).chain(extra_args.iter().cloned()),
        )?;
        let mut app = Self {
            database,
            http: client_with_token(Some(ADMIN_TOKEN))?,
            kafka: settings.kafka.settings(),
            running: None,
            extra_args,
        };
        app.start().await?;
        Ok(app)
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        let mut args = vec![
            "serve".to_owned(),
            "--database-url".to_owned(),
            self.database.url.clone(),
            "--http-addr".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        // Defaults a test may override (clap refuses a flag given twice).
        let defaults = [
            ("--db-pool-size", "8".to_owned()),
            ("--api-tokens", format!("read:{READ_TOKEN},write:{WRITE_TOKEN},admin:{ADMIN_TOKEN}")),
        ];
        for (flag, value) in defaults {
            if !self.extra_args.iter().any(|arg| arg == flag) {
                args.extend([flag.to_owned(), value]);
            }
        }
        args.extend(self.extra_args.iter().cloned());
        let settings = ServeArgs::try_parse_from(args)?;
        let application = Application::build(&settings).await?;
        let address = application.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(application.run(async move {
            let _ = stopped.await;
        }));
        self.running = Some(Running { address, stop, server });
        Ok(())
    }

    /// Stops the server gracefully and starts a new one on the same database, as a
    /// process restart would.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            running.server.await??;
        }
        self.start().await
    }

    pub fn address(&self) -> SocketAddr {
        self.running.as_ref().map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)), |r| r.address)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address())
    }

    /// `GET /v1/payments/{order_id}` once the projection has applied `min_version`.
    pub async fn payments(&self, order_id: Uuid, min_version: u32) -> anyhow::Result<Value> {
        let path = format!("/v1/payments/{order_id}?min_version={min_version}&wait_ms=5000");
        expect_json(self.get(&path).send().await?, 200).await
    }

    /// `GET /v1/notifications?…` with the given query string.
    pub async fn notifications(&self, query: &str) -> anyhow::Result<Value> {
        expect_json(self.get(&format!("/v1/notifications?{query}")).send().await?, 200).await
    }

    /// The stream version a command response reports.
    pub async fn version_of(response: Response) -> anyhow::Result<u32> {
        let body = expect_json(response, 201).await?;
        body["stream_version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| anyhow::anyhow!("no stream_version in {body}"))
    }

    /// `GET /v1/admin/relay`.
    pub async fn relay_status(&self) -> anyhow::Result<Value> {
        expect_json(self.get("/v1/admin/relay").send().await?, 200).await
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path))
    }

    /// A valid place-order body for a new order id.
    pub fn order_body(order_id: Uuid, customer_id: &str) -> Value {
        json!({
            "order_id": order_id,
            "customer_id": customer_id,
            "customer_email": format!("{customer_id}@example.com"),
            "currency": "EUR",
            "items": [
                { "sku": "BOOK-1", "quantity": 2, "unit_price_minor": 1250 },
                { "sku": "PEN-7", "quantity": 1, "unit_price_minor": 500 }
            ]
        })
    }

    /// Places an order (total [`ORDER_TOTAL_MINOR`]) and returns its id.
    pub async fn place_order(&self, customer_id: &str) -> anyhow::Result<Uuid> {
        let order_id = Uuid::now_v7();
        let response =
            self.post("/v1/orders").json(&Self::order_body(order_id, customer_id)).send().await?;
        expect_status(response, 201).await?;
        Ok(order_id)
    }

    pub async fn capture(
        &self,
        order_id: Uuid,
        payment_id: &str,
        amount_minor: i64,
    ) -> anyhow::Result<Response> {
        Ok(self
            .post(&format!("/v1/orders/{order_id}/payments"))
            .json(&json!({ "payment_id": payment_id, "amount_minor": amount_minor, "method": "card" }))
            .send()
            .await?)
    }

    pub async fn fail_payment(
        &self,
        order_id: Uuid,
        payment_id: &str,
        amount_minor: i64,
    ) -> anyhow::Result<Response> {
        Ok(self
            .post(&format!("/v1/orders/{order_id}/payment-failures"))
            .json(&json!({ "payment_id": payment_id, "amount_minor": amount_minor, "reason": "card declined" }))
            .send()
            .await?)
    }

    pub async fn refund(
        &self,
        order_id: Uuid,
        refund_id: &str,
        payment_id: &str,
        amount_minor: i64,
    ) -> anyhow::Result<Response> {
        Ok(self
            .post(&format!("/v1/orders/{order_id}/refunds"))
            .json(&json!({
                "refund_id": refund_id, "payment_id": payment_id,
                "amount_minor": amount_minor, "reason": "damaged in transit"
            }))
            .send()
            .await?)
    }

    pub async fn cancel(&self, order_id: Uuid) -> anyhow::Result<Response> {
        Ok(self
            .post(&format!("/v1/orders/{order_id}/cancellation"))
            .json(&json!({ "reason": "customer changed their mind" }))
            .send()
            .await?)
    }

    pub async fn ship(&self, order_id: Uuid) -> anyhow::Result<Response> {
        Ok(self
            .post(&format!("/v1/orders/{order_id}/shipment"))
            .json(&json!({ "carrier": "DHL", "tracking_number": "JD0140000001" }))
            .send()
            .await?)
    }

    pub async fn order(&self, order_id: Uuid) -> anyhow::Result<Value> {
        expect_json(self.get(&format!("/v1/orders/{order_id}")).send().await?, 200).await
    }

    pub async fn history(&self, order_id: Uuid) -> anyhow::Result<Value> {
        expect_json(self.get(&format!("/v1/orders/{order_id}/events")).send().await?, 200).await
    }

    /// Rows in the events table: the ground truth for "nothing was written".
    pub async fn event_count(&self) -> anyhow::Result<i64> {
        let client = self.database.client().await?;
        Ok(client.query_one("SELECT count(*) FROM events", &[]).await?.get(0))
    }

    /// Idempotency records: written only with events.
    pub async fn idempotency_record_count(&self) -> anyhow::Result<i64> {
        let client = self.database.client().await?;
        Ok(client.query_one("SELECT count(*) FROM idempotency_keys", &[]).await?.get(0))
    }
}

/// An HTTP client that sends `Authorization: Bearer <token>` on every request (none for
/// `None`).
pub fn client_with_token(token: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    Ok(reqwest::Client::builder().default_headers(headers).build()?)
}

/// Asserts the status, returning the body for more checks.
pub async fn expect_status(response: Response, status: u16) -> anyhow::Result<String> {
    let actual = response.status().as_u16();
    let body = response.text().await?;
    anyhow::ensure!(actual == status, "expected {status}, got {actual}: {body}");
    Ok(body)
}

pub async fn expect_json(response: Response, status: u16) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&expect_status(response, status).await?)?)
}
