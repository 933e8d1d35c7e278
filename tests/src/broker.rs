//! Kafka-protocol brokers for tests: the shared one at `KAFKA_BROKERS` (started by
//! `scripts/test`), or a private Tansu process a test can take away and bring back.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::{poll_until, TcpCut};

/// The shared broker.
pub fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A Tansu broker owned by one test, reached through a [`TcpCut`] it advertises as its
/// address, so that an outage ([`Self::stop`]) keeps the topics and messages as a broker
/// with disks does. A restart that loses everything is [`Self::forget_everything`].
pub struct TestBroker {
    hop: TcpCut,
    /// The port Tansu itself listens on, behind the hop.
    port: u16,
    child: Option<Child>,
    /// Tansu's schema registry (a directory of `<topic>.json` JSON schemas), if any.
    schemas: Option<tempfile::TempDir>,
}

impl TestBroker {
    pub async fn start() -> anyhow::Result<Self> {
        Self::launch(None).await
    }

    /// A broker that refuses every message produced to `topic` (`INVALID_RECORD`, as for a
    /// message its schema rejects) until [`Self::accept_everything`].
    pub async fn refusing(topic: &str) -> anyhow::Result<Self> {
        let schemas = tempfile::tempdir()?;
        let never = r#"{"type": "object", "required": ["value"],
                         "properties": {"value": {"type": "object", "required": ["never"]}}}"#;
        std::fs::write(schemas.path().join(format!("{topic}.json")), never)?;
        Self::launch(Some(schemas)).await
    }

    async fn launch(schemas: Option<tempfile::TempDir>) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let hop = TcpCut::to(&format!("127.0.0.1:{port}")).await?;
        let mut broker = Self { hop, port, child: None, schemas };
        broker.spawn().await?;
        Ok(broker)
    }

    /// Drops the schemas: every message is accepted from now on (Tansu reads its registry
    /// for each produce request, so no restart is needed).
    pub fn accept_everything(&mut self) -> anyhow::Result<()> {
        if let Some(schemas) = self.schemas.take() {
            schemas.close()?;
        }
        Ok(())
    }

    /// `host:port` to give the ledger: the hop's, which is also what the broker advertises.
    pub fn address(&self) -> String {
        self.hop.address()
    }

    /// An outage as clients see it: every connection drops and new ones are refused. The
    /// broker keeps its topics, messages and committed offsets.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.hop.cut();
        Ok(())
    }

    /// Ends the outage.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        self.hop.mend();
        Ok(())
    }

    /// Kills the broker and starts an empty one in its place (in-memory storage: topics,
    /// messages and committed offsets are gone). Only for tests in which nothing consumes
    /// while it happens: librdkafka 2.12.1 crashes (a null topic name in its metadata cache
    /// lookup) when a fetch is answered for a topic the broker no longer knows, which is
    /// what Tansu answers to a consumer of a forgotten topic.
    pub async fn forget_everything(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        self.spawn().await
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://{}", self.hop.address());
        let mut command = Command::new(tansu_binary());
        command
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &advertised])
            .args(["--storage-engine", "memory://tansu/"]);
        if let Some(schemas) = &self.schemas {
            // Tansu resolves a `file://` registry against its working directory.
            command.current_dir(schemas.path()).args(["--schema-registry", "file://."]);
        }
        let child = command
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting tansu (install it with scripts/test, or set TANSU_BIN)")?;
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        poll_until(Duration::from_secs(20), "the test broker to listen", || {
            let address = address.clone();
            async move { Ok(tokio::net::TcpStream::connect(&address).await.ok().map(|_| ())) }
        })
        .await
    }
}

fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return PathBuf::from(path);
    }
    let installed = std::env::var("HOME")
        .map(|home| PathBuf::from(home).join(".cargo/bin/tansu"))
        .unwrap_or_default();
    if installed.exists() {
        installed
    } else {
        PathBuf::from("tansu")
    }
}
