//! The real `ledger` binary as a child process, for the failures an in-process server
//! cannot show: `kill -9` mid-request, a restart on the same port and database, a
//! database that goes away under a running process. Also the load generator the fault
//! tests share.
//!
//! The binary is the real `ledger`, built by `cargo test` beside the test executables
//! (the `ledger` package has integration tests of its own, so a workspace test run always
//! builds it); `LEDGER_BIN` names another. Its stderr (the logs) goes to a file that a
//! failing test quotes ([`LedgerProcess::explain`]) and that is removed when the test
//! passes.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::postgres::tail;
use crate::{kafka_brokers, poll_until};

/// Tokens the child accepts (`LEDGER_API_TOKENS`); the harness always presents the admin
/// one, which may do everything.
pub const API_TOKENS: &str = "write:fault-write,read:fault-read,admin:fault-admin";
pub const ADMIN_TOKEN: &str = "fault-admin";

/// How to run `ledger serve`.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    pub binary: PathBuf,
    pub database_url: String,
    pub roles: String,
    pub kafka_brokers: String,
    /// Unique per test, so tests share a broker without seeing each other's topics.
    pub topic_prefix: String,
    pub extra_args: Vec<String>,
}

/// The `ledger` binary: `LEDGER_BIN`, or the one cargo built beside this test executable
/// (`target/<profile>/ledger`, the parent of the `deps` folder the test runs from).
pub fn ledger_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("LEDGER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let test = std::env::current_exe().context("locating the test executable")?;
    let profile = test
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test executable is not in a cargo target folder")?;
    let binary = profile.join(format!("ledger{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        binary.exists(),
        "{} does not exist: build it with `cargo build -p ledger` (a workspace `cargo test` \
         does), or set LEDGER_BIN",
        binary.display()
    );
    Ok(binary)
}

impl LedgerConfig {
    /// The API alone against `database_url`; see [`roles`](Self::roles) and
    /// [`kafka`](Self::kafka) for more.
    pub fn new(database_url: impl Into<String>) -> anyhow::Result<Self> {
        Ok(Self {
            binary: ledger_binary()?,
            database_url: database_url.into(),
            roles: "api".to_owned(),
            kafka_brokers: kafka_brokers(),
            topic_prefix: format!("fault-{}.", Uuid::new_v4().simple()),
            extra_args: Vec::new(),
        })
    }

    pub fn roles(mut self, roles: &str) -> Self {
        roles.clone_into(&mut self.roles);
        self
    }

    pub fn kafka(mut self, brokers: &str) -> Self {
        brokers.clone_into(&mut self.kafka_brokers);
        self
    }

    /// Another `ledger serve` flag (not one the harness always sets: the database, address,
    /// roles, brokers, topic prefix, relay poll and message timeouts, pool size).
    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.extra_args.extend([flag.to_owned(), value.to_owned()]);
        self
    }

    /// The consumer group of a projection, as the worker names it.
    pub fn projection_group(&self, projection: &str) -> String {
        format!("{}ledger-projection-{projection}", self.topic_prefix)
    }
}

pub struct LedgerProcess {
    pub config: LedgerConfig,
    /// Chosen once, so a restarted process answers where clients already send requests.
    pub port: u16,
    /// Sends `Authorization: Bearer fault-admin` on every request.
    pub http: reqwest::Client,
    child: Option<Child>,
    log: PathBuf,
    keep_log: bool,
    pub starts: u32,
}

impl LedgerProcess {
    /// Starts the process and waits until `/readyz` answers 200.
    pub async fn start(config: LedgerConfig) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::env::temp_dir().join(format!("ledger-{port}-{}.log", Uuid::new_v4()));
        let mut process = Self {
            config,
            port,
            http: authorised_client()?,
            child: None,
            log,
            keep_log: false,
            starts: 0,
        };
        process.launch().await.map_err(|error| process.annotate(error))?;
        Ok(process)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let stdout = log.try_clone()?;
        let config = &self.config;
        let address = format!("127.0.0.1:{}", self.port);
        let mut command = Command::new(&config.binary);
        command
            .arg("serve")
            .args(["--database-url", &config.database_url])
            .args(["--http-addr", &address])
            .args(["--roles", &config.roles])
            .args(["--kafka-brokers", &config.kafka_brokers])
            .args(["--topic-prefix", &config.topic_prefix])
            .args(["--relay-poll-ms", "100"])
            .args(["--relay-message-timeout-ms", "3000"])
            .args(["--db-pool-size", "8"])
            .args(&config.extra_args)
            // Settings of the test runner's environment must not leak into the child.
            .env_remove("DATABASE_URL")
            .env_remove("LEDGER_INSECURE_NO_AUTH")
            .env_remove("LEDGER_ROLES")
            .env_remove("LEDGER_SKIP_MIGRATIONS")
            .env("LEDGER_API_TOKENS", API_TOKENS)
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "text")
            // Plain text in the log file, which failure messages quote.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.config.binary.display()))?;
        self.child = Some(child);
        self.starts += 1;
        self.wait_until_ready(Duration::from_secs(30)).await
    }

    /// Polls `/readyz` until 200; fails early if the process exits.
    pub async fn wait_until_ready(&mut self, deadline: Duration) -> anyhow::Result<()> {
        let (http, url) = (self.http.clone(), self.url("/readyz"));
        let child = &mut self.child;
        let ready = poll_until(deadline, "the ledger to be ready", || {
            let exited = match child.as_mut() {
                Some(child) => child.try_wait(),
                None => Ok(None),
            };
            let (http, url) = (http.clone(), url.clone());
            async move {
                if let Some(status) = exited? {
                    anyhow::bail!("the ledger exited before it was ready ({status})");
                }
                let ready = http
                    .get(url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 200);
                Ok(ready.then_some(()))
            }
        })
        .await;
        if child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_)))) {
            *child = None;
        }
        ready
    }

    /// Whether the process started last is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGKILL: no shutdown hook runs, in-flight requests get no answer.
    pub async fn kill_9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill().context("sending SIGKILL")?;
            child.wait().await.context("reaping the killed ledger")?;
        }
        Ok(())
    }

    /// Starts the process again on the same port, database and topics (killing it first
    /// if it still runs), and waits until it is ready.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill_9().await?;
        self.launch().await.map_err(|error| self.annotate(error))
    }

    /// Passes `outcome` through; on failure adds the end of the process's log to the error
    /// and keeps the whole log file for a closer look.
    pub fn explain<T>(&mut self, outcome: anyhow::Result<T>) -> anyhow::Result<T> {
        outcome.map_err(|error| self.annotate(error))
    }

    fn annotate(&mut self, error: anyhow::Error) -> anyhow::Error {
        self.keep_log = true;
        error.context(format!(
            "ledger log {} ends with:\n{}",
            self.log.display(),
            tail(&self.log, 40)
        ))
    }

    /// `GET` `path` as JSON, expecting 200.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        crate::expect_json(self.http.get(self.url(path)).send().await?, 200).await
    }
}

impl Drop for LedgerProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            // An assertion failed: its message says what; the log may say why.
            eprintln!("ledger log {} ends with:\n{}", self.log.display(), tail(&self.log, 40));
        } else if !self.keep_log {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A client that authenticates as the admin on every request and never waits forever.
pub fn authorised_client() -> anyhow::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {ADMIN_TOKEN}"))?);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// The amount every generated order is placed for (1 × 3000 EUR cents).
pub const LOAD_ORDER_TOTAL: i64 = 3000;

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Concurrent clients, each sending one command at a time.
    pub clients: usize,
    /// After placing an order, capture this much of it (a second event on the stream).
    pub capture_minor: Option<i64>,
    pub customer_id: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { clients: 8, capture_minor: None, customer_id: "cus_load".to_owned() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    Place,
    Capture,
}

#[derive(Clone, Debug)]
pub enum Answer {
    /// 201: what the command appended.
    Acknowledged { stream_version: u32, position: i64, event_ids: Vec<Uuid> },
    /// Any other status, with what a client would act on.
    Refused {
        status: u16,
        code: Option<String>,
        content_type: Option<String>,
        retry_after: Option<String>,
    },
    /// No HTTP answer at all: refused connection, reset, or the client's 10 s timeout.
    NoAnswer { error: String, timed_out: bool },
}

/// One command and what came of it.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub kind: CommandKind,
    pub order_id: Uuid,
    pub sent_at: Instant,
    pub answered_at: Instant,
    pub answer: Answer,
}

impl Outcome {
    pub fn latency(&self) -> Duration {
        self.answered_at - self.sent_at
    }

    pub fn is_acknowledged(&self) -> bool {
        matches!(self.answer, Answer::Acknowledged { .. })
    }

    /// `201`, `503 service_unavailable`, `no answer (connect)`, …: how errors are counted.
    pub fn label(&self) -> String {
        match &self.answer {
            Answer::Acknowledged { .. } => "201".to_owned(),
            Answer::Refused { status, code, .. } => {
                format!("{status} {}", code.as_deref().unwrap_or("(no code)"))
            }
            Answer::NoAnswer { timed_out: true, .. } => "no answer (timeout)".to_owned(),
            Answer::NoAnswer { .. } => "no answer".to_owned(),
        }
    }
}

#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    acknowledged: AtomicU64,
    failed: AtomicU64,
    /// Every outcome so far, for tests that look at a time window while the load runs.
    outcomes: Mutex<Vec<Outcome>>,
}

/// Clients placing orders against a ledger until stopped.
pub struct Load {
    stop: watch::Sender<bool>,
    clients: Vec<JoinHandle<()>>,
    progress: Arc<Progress>,
    started_at: Instant,
}

impl Load {
    /// Starts `options.clients` clients sending to `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn start(http: reqwest::Client, base_url: String, options: LoadOptions) -> Self {
        let (stop, stopping) = watch::channel(false);
        let progress = Arc::new(Progress::default());
        let clients = (0..options.clients)
            .map(|_| {
                let client = Client {
                    http: http.clone(),
                    base_url: base_url.clone(),
                    options: options.clone(),
                    progress: progress.clone(),
                };
                tokio::spawn(client.run(stopping.clone()))
            })
            .collect();
        Self { stop, clients, progress, started_at: Instant::now() }
    }

    pub fn sent(&self) -> u64 {
        self.progress.sent.load(Ordering::SeqCst)
    }

    pub fn acknowledged(&self) -> u64 {
        self.progress.acknowledged.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> u64 {
        self.progress.failed.load(Ordering::SeqCst)
    }

    /// The outcomes so far that `keep` selects.
    pub fn outcomes_where(&self, keep: impl Fn(&Outcome) -> bool) -> Vec<Outcome> {
        let outcomes = self.progress.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        outcomes.iter().filter(|o| keep(o)).cloned().collect()
    }

    /// Waits until `more` further commands have been acknowledged.
    pub async fn wait_for_acknowledged(&self, more: u64, deadline: Duration) -> anyhow::Result<()> {
        let target = self.acknowledged() + more;
        poll_until(deadline, &format!("{target} acknowledged commands"), || async {
            Ok((self.acknowledged() >= target).then_some(()))
        })
        .await
    }

    /// Lets each client finish the command in hand, then reports.
    pub async fn stop(self) -> anyhow::Result<LoadReport> {
        self.stop.send(true)?;
        for client in self.clients {
            client.await.context("a load client panicked")?;
        }
        let outcomes =
            std::mem::take(&mut *self.progress.outcomes.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(LoadReport { outcomes, duration: self.started_at.elapsed() })
    }
}

struct Client {
    http: reqwest::Client,
    base_url: String,
    options: LoadOptions,
    progress: Arc<Progress>,
}

impl Client {
    async fn run(self, mut stopping: watch::Receiver<bool>) {
        while !*stopping.borrow() {
            let order_id = Uuid::now_v7();
            let body = json!({
                "order_id": order_id,
                "customer_id": self.options.customer_id,
                "customer_email": format!("{}@example.com", self.options.customer_id),
                "currency": "EUR",
                "items": [{ "sku": "LOAD-1", "quantity": 1, "unit_price_minor": LOAD_ORDER_TOTAL }]
            });
            let placed =
                self.send(CommandKind::Place, order_id, "/v1/orders".to_owned(), body).await;
            let mut ok = placed;
            if let (true, Some(amount)) = (placed, self.options.capture_minor) {
                let body =
                    json!({ "payment_id": "pay_load", "amount_minor": amount, "method": "card" });
                let path = format!("/v1/orders/{order_id}/payments");
                ok = self.send(CommandKind::Capture, order_id, path, body).await;
            }
            if !ok {
                // Pacing, not synchronisation: a client facing a dead server should not
                // spin through thousands of refused connections.
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = stopping.changed() => {}
                }
            }
        }
    }

    /// Sends one command and records its outcome; true if it was acknowledged.
    async fn send(&self, kind: CommandKind, order_id: Uuid, path: String, body: Value) -> bool {
        self.progress.sent.fetch_add(1, Ordering::SeqCst);
        let sent_at = Instant::now();
        let response = self.http.post(format!("{}{path}", self.base_url)).json(&body).send().await;
        let answer = match response {
            Ok(response) => answer_of(response).await,
            Err(error) => {
                Answer::NoAnswer { timed_out: error.is_timeout(), error: format!("{error:#}") }
            }
        };
        let acknowledged = matches!(answer, Answer::Acknowledged { .. });
        let counter =
            if acknowledged { &self.progress.acknowledged } else { &self.progress.failed };
        let outcome = Outcome { kind, order_id, sent_at, answered_at: Instant::now(), answer };
        self.progress.outcomes.lock().unwrap_or_else(|e| e.into_inner()).push(outcome);
        counter.fetch_add(1, Ordering::SeqCst);
        acknowledged
    }
}

async fn answer_of(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let header =
        |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = header("content-type");
    let retry_after = header("retry-after");
    let body: Value = match response.bytes().await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(error) => {
            return Answer::NoAnswer { timed_out: error.is_timeout(), error: format!("{error:#}") }
        }
    };
    if status == 201 {
        let stream_version = body["stream_version"].as_u64().and_then(|v| u32::try_from(v).ok());
        let position = body["position"].as_i64();
        if let (Some(stream_version), Some(position)) = (stream_version, position) {
            let event_ids = crate::pluck(&body, "events", "event_id");
            return Answer::Acknowledged { stream_version, position, event_ids };
        }
    }
    let code = body["code"].as_str().map(str::to_owned);
    Answer::Refused { status, code, content_type, retry_after }
}

/// Everything a load run did.
pub struct LoadReport {
    pub outcomes: Vec<Outcome>,
    pub duration: Duration,
}

impl LoadReport {
    pub fn sent(&self) -> usize {
        self.outcomes.len()
    }

    pub fn acknowledged(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.is_acknowledged())
    }

    /// Orders whose placement was acknowledged.
    pub fn placed_orders(&self) -> Vec<Uuid> {
        self.acknowledged().filter(|o| o.kind == CommandKind::Place).map(|o| o.order_id).collect()
    }

    /// Failures counted by [`Outcome::label`].
    pub fn errors(&self) -> BTreeMap<String, usize> {
        let mut errors = BTreeMap::new();
        for outcome in self.outcomes.iter().filter(|o| !o.is_acknowledged()) {
            *errors.entry(outcome.label()).or_insert(0) += 1;
        }
        errors
    }

    /// The `p`-th percentile (0–100) of acknowledged commands' latencies.
    pub fn latency_percentile(&self, p: f64) -> Duration {
        let mut latencies: Vec<Duration> = self.acknowledged().map(Outcome::latency).collect();
        latencies.sort_unstable();
        let Some(last) = latencies.len().checked_sub(1) else {
            return Duration::ZERO;
        };
        let rank = ((p / 100.0) * last as f64).round() as usize;
        latencies[rank.min(last)]
    }

    /// One line: sent, acknowledged, errors by status, latencies.
    pub fn summary(&self) -> String {
        format!(
            "sent={} acknowledged={} errors={:?} latency_p50={:?} p99={:?} max={:?} over {:.1?}",
            self.sent(),
            self.acknowledged().count(),
            self.errors(),
            self.latency_percentile(50.0),
            self.latency_percentile(99.0),
            self.latency_percentile(100.0),
            self.duration
        )
    }
}
