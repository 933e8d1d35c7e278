//! The application under test, started exactly as `ledger serve` starts it.

use std::net::SocketAddr;

use bus::Channels;
use bus_kafka::KafkaSettings;
use ledger::bus_choice::{BusKind, BusSettings};
use ledger::{Application, Role, Settings};
use reqwest::{RequestBuilder, Response};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

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

/// Changes a test makes to the settings [`TestApp`] starts with.
pub type Configure = Box<dyn Fn(&mut Settings) + Send + Sync>;

pub struct TestApp {
    pub database: TestDatabase,
    pub http: reqwest::Client,
    /// The topics of this test (a unique prefix on the broker the app publishes to).
    pub kafka: KafkaSettings,
    /// The bus the app speaks, with this test's channels on each (Kafka's are `kafka`).
    pub bus: BusSettings,
    running: Option<Running>,
    configure: Configure,
}

impl TestApp {
    /// The API alone, on a random port, against a fresh database (no broker needed).
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with(|_| {}).await
    }

    /// The API and the relay, publishing to `brokers` under a topic prefix of its own.
    pub async fn spawn_with_relay(brokers: &str) -> anyhow::Result<Self> {
        Self::spawn_with_roles(&[Role::Api, Role::Relay], brokers).await
    }

    /// Every role: API, relay and projection consumers, on a topic prefix of its own.
    pub async fn spawn_all(brokers: &str) -> anyhow::Result<Self> {
        Self::spawn_with_roles(&Role::ALL, brokers).await
    }

    /// The given roles on `bus` (the shared broker of each), under a prefix of its own.
    pub async fn spawn_on(bus: BusKind, roles: &[Role]) -> anyhow::Result<Self> {
        let roles = roles.to_vec();
        Self::spawn_with(move |settings| {
            settings.roles.clone_from(&roles);
            settings.bus.kind = bus;
        })
        .await
    }

    /// The given roles, on `brokers` under a topic prefix of its own.
    pub async fn spawn_with_roles(roles: &[Role], brokers: &str) -> anyhow::Result<Self> {
        let (roles, brokers) = (roles.to_vec(), brokers.to_owned());
        Self::spawn_with(move |settings| {
            settings.roles.clone_from(&roles);
            settings.bus.kafka.brokers.clone_from(&brokers);
        })
        .await
    }

    /// The API alone (unless `configure` says otherwise), with the settings `configure`
    /// changes: the database, the address, the tokens and the topics are the harness's.
    pub async fn spawn_with(
        configure: impl Fn(&mut Settings) + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let database = TestDatabase::create().await?;
        let mut kafka = KafkaSettings::new(
            crate::kafka_brokers(),
            Channels::new(format!("test-{}.", Uuid::new_v4().simple())),
        );
        kafka.message_timeout = std::time::Duration::from_secs(3);
        let bus = crate::buses::test_bus(BusKind::Kafka, &kafka);
        let mut app = Self {
            database,
            http: client_with_token(Some(ADMIN_TOKEN))?,
            kafka,
            bus,
            running: None,
            configure: Box::new(configure),
        };
        app.bus = app.settings()?.bus;
        app.kafka = app.bus.kafka.clone();
        app.start().await?;
        Ok(app)
    }

    /// The settings the application starts with.
    fn settings(&self) -> anyhow::Result<Settings> {
        let tokens =
            format!("read:{READ_TOKEN},write:{WRITE_TOKEN},admin:{ADMIN_TOKEN}").parse()?;
        let mut settings = Settings::new(self.database.url.clone(), Some(tokens));
        settings.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.database.max_size = 8;
        settings.roles = vec![Role::Api];
        settings.bus = crate::buses::test_bus(self.bus.kind, &self.kafka);
        settings.relay.poll_interval = std::time::Duration::from_millis(100);
        (self.configure)(&mut settings);
        Ok(settings)
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        let application = Application::build(self.settings()?).await?;
        let address = application.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(application.run(async move {
            let _ = stopped.await;
        }));
        self.running = Some(Running { address, stop, server });
        Ok(())
    }

    /// Replaces the settings the next [`restart`](Self::restart) starts with (the harness's
    /// own still apply first).
    pub fn reconfigure(
        &mut self,
        configure: impl Fn(&mut Settings) + Send + Sync + 'static,
    ) -> anyhow::Result<()> {
        self.configure = Box::new(configure);
        self.bus = self.settings()?.bus;
        self.kafka = self.bus.kafka.clone();
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

    /// Waits until the bus feeds every projection's consumer (each `running`, i.e.
    /// holding partitions). Until then an event reaches the read models only through the
    /// catch-up from the store, after its grace: a measurement or a spec about the bus's
    /// path must start after this.
    pub async fn consumers_fed(&self) -> anyhow::Result<()> {
        crate::poll_until(
            std::time::Duration::from_secs(30),
            "every consumer fed by the bus",
            || async {
                let status =
                    expect_json(self.get("/v1/admin/projections").send().await?, 200).await?;
                let workers = status["workers"].as_array().cloned().unwrap_or_default();
                let fed = !workers.is_empty() && workers.iter().all(|w| w["state"] == "running");
                Ok(fed.then_some(()))
            },
        )
        .await
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
