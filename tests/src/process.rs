//! The real `ledger` binary as a child process, for the failures an in-process server
//! cannot show: `kill -9` mid-request, a restart on the same port and database, a
//! database that goes away under a running process; and a load to run against it.
//!
//! The binary is the real `ledger`, built by `cargo test` beside the test executables
//! (the `ledger` package has integration tests of its own, so a workspace test run always
//! builds it); `LEDGER_BIN` names another. Its stderr (the logs) goes to a file that a
//! failing test quotes ([`LedgerProcess::explain`]) and that is removed when the test
//! passes.

use std::collections::HashMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bench::client::Api;
use bench::engine::{Load, LoadOptions, Stop, Unobserved};
use bench::workloads::PlaceThenCapture;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::Value;
use tokio::process::{Child, Command};
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
    /// Environment variables set last (over the harness's `RUST_LOG`, for one).
    pub extra_env: Vec<(String, String)>,
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
            extra_env: Vec::new(),
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

    /// An environment variable of the process (set after the harness's own).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.extra_env.push((name.to_owned(), value.to_owned()));
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
            .envs(config.extra_env.iter().map(|(name, value)| (name, value)))
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

    /// What the process has logged so far (stderr, and stdout, interleaved).
    pub fn log_text(&self) -> anyhow::Result<String> {
        std::fs::read_to_string(&self.log)
            .with_context(|| format!("reading {}", self.log.display()))
    }

    /// SIGTERM, as an orchestrator stops it: waits (up to `deadline`) until the process has
    /// shut down gracefully, and fails if it had to be killed.
    pub async fn terminate(
        &mut self,
        deadline: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            anyhow::bail!("the ledger is not running");
        };
        let pid = child.id().context("the ledger has exited already")?;
        let sent = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        anyhow::ensure!(sent.success(), "kill -TERM {pid} failed ({sent})");
        match tokio::time::timeout(deadline, child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                child.start_kill()?;
                anyhow::bail!("the ledger did not stop within {deadline:?} of SIGTERM")
            }
        }
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

    /// The partitions each projection's worker in this process holds, by projection.
    pub async fn partitions(&self) -> anyhow::Result<HashMap<String, Vec<i64>>> {
        let status = self.get_json("/v1/admin/projections").await?;
        let mut held = HashMap::new();
        for worker in status["workers"].as_array().into_iter().flatten() {
            let partitions =
                worker["partitions"].as_array().into_iter().flatten().filter_map(Value::as_i64);
            let projection = worker["projection"].as_str().unwrap_or_default().to_owned();
            held.insert(projection, partitions.collect());
        }
        Ok(held)
    }

    /// The role of this process's relay (`starting`, `standby`, `active`, `stopped`) and
    /// the events it published since it started.
    pub async fn relay_role(&self) -> anyhow::Result<(String, u64)> {
        let status = self.get_json("/v1/admin/relay").await?;
        let process = &status["process"];
        let role = process["role"].as_str().context("no relay runs in this process")?;
        Ok((role.to_owned(), process["published_events"].as_u64().unwrap_or(0)))
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

/// Clients placing orders (and, with `capture_minor`, capturing part of each) against the
/// ledger until stopped, each command sent once, without a key, and every outcome kept
/// for the audit: the load generator of `ledger bench` with the fault specs' workload.
pub fn start_load(
    ledger: &LedgerProcess,
    customer_id: &str,
    clients: u32,
    capture_minor: Option<i64>,
) -> anyhow::Result<Load> {
    start_load_at(&ledger.url(""), customer_id, clients, capture_minor)
}

/// [`start_load`] against the API at `base_url` (a balancer in front of several processes).
pub fn start_load_at(
    base_url: &str,
    customer_id: &str,
    clients: u32,
    capture_minor: Option<i64>,
) -> anyhow::Result<Load> {
    let api = Api::new(
        base_url,
        Some(ADMIN_TOKEN.to_owned()),
        None,
        clients as usize,
        Duration::from_secs(10),
    )?;
    let options = LoadOptions {
        rate: None,
        clients,
        stop: Stop::Manual,
        idempotency_keys: false,
        keep_outcomes: true,
        seed: fastrand::u64(..),
    };
    let customer_id = customer_id.to_owned();
    Ok(Load::start(
        api,
        options,
        move |_| PlaceThenCapture::new(&customer_id, capture_minor),
        Arc::new(Unobserved),
    ))
}

/// Held by the specs that run several `ledger` processes under load and time what they
/// see (a broker outage, kill -9 mid-charge): one at a time, so on two cores one does not
/// starve another past its deadlines. Other specs run beside them as usual.
pub async fn one_heavy_spec_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}
