//! Kafka-protocol brokers for tests: the shared one at `KAFKA_BROKERS` (started by
//! `scripts/test`), or a private Tansu process a test can stop and restart.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::poll_until;

/// The shared broker.
pub fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A Tansu broker owned by one test (in-memory storage: a restart forgets its topics and
/// messages, which the relay must cope with).
pub struct TestBroker {
    pub port: u16,
    child: Option<Child>,
    /// Tansu's schema registry (a directory of `<topic>.json` JSON schemas), if any.
    schemas: Option<tempfile::TempDir>,
}

impl TestBroker {
    pub async fn start() -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut broker = Self { port, child: None, schemas: None };
        broker.resume().await?;
        Ok(broker)
    }

    /// A broker that refuses every message produced to `topic` (`INVALID_RECORD`, as for a
    /// message its schema rejects) until it is restarted with [`Self::accept_everything`].
    pub async fn refusing(topic: &str) -> anyhow::Result<Self> {
        let schemas = tempfile::tempdir()?;
        let never = r#"{"type": "object", "required": ["value"],
                         "properties": {"value": {"type": "object", "required": ["never"]}}}"#;
        std::fs::write(schemas.path().join(format!("{topic}.json")), never)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut broker = Self { port, child: None, schemas: Some(schemas) };
        broker.resume().await?;
        Ok(broker)
    }

    /// Forgets the schemas: from the next [`Self::resume`] on, every message is accepted.
    pub fn accept_everything(&mut self) {
        self.schemas = None;
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker process (like a crash: no goodbye to clients).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts it again on the same port.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let mut command = Command::new(tansu_binary());
        command
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
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
        let address = self.address();
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
