//! A PostgreSQL 15 cluster owned by one test, so the test can stop and restart the database
//! under a running ledger without disturbing the shared server every other test uses.
//!
//! The cluster lives in a temporary directory, listens on a free port on 127.0.0.1 with
//! trust authentication, and runs as the `postgres` OS user: the tests run as root and
//! `initdb`/`postgres` refuse to. It is stopped (immediately) and removed when dropped.
//! `fsync` is off: a restart of the server is what the tests exercise, not a power cut,
//! and the page cache survives the former.
//!
//! [`ClusterBuilder::tls_only`] makes it a server that speaks TLS only, with certificates
//! the test made ([`crate::certificates`]): plain TCP is rejected, so whatever connects
//! and works was encrypted. The test's own [`PrivateCluster::client`] goes through the
//! Unix socket, which TCP's rules do not govern.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use tokio::process::Command;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::certificates::Issued;

/// Where Debian's PostgreSQL 15 server binaries live (override with `PG_BIN_DIR`).
fn pg_bin(tool: &str) -> PathBuf {
    let dir = std::env::var("PG_BIN_DIR").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    Path::new(&dir).join(tool)
}

/// The OS user the server runs as (override with `PG_OS_USER`).
fn os_user() -> String {
    std::env::var("PG_OS_USER").unwrap_or_else(|_| "postgres".to_owned())
}

/// How `pg_ctl stop` ends the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Terminates sessions (clients see `admin_shutdown`), checkpoints, exits.
    Fast,
    /// Kills the server without a checkpoint, as a crash would; it recovers from the WAL
    /// on the next start.
    Immediate,
}

impl StopMode {
    fn as_arg(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

pub struct PrivateCluster {
    pub port: u16,
    dir: PathBuf,
    running: bool,
}

/// TLS for a cluster: the server's certificate, and the authority whose certificates it
/// asks clients for (none: it asks for none).
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub server: Issued,
    pub client_authority: Option<PathBuf>,
}

/// How a [`PrivateCluster`] is set up before it first starts.
#[derive(Clone, Debug, Default)]
pub struct ClusterBuilder {
    tls: Option<ServerTls>,
}

impl ClusterBuilder {
    /// TLS only: `ssl = on` with `tls`'s certificate, `hostssl` for TCP and plain TCP
    /// rejected (`hostnossl … reject`). With a client authority, every TCP login needs a
    /// certificate it signed, for the user it logs in as (`cert`).
    pub fn tls_only(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Initialises a cluster in a fresh temporary directory, starts it and creates the
    /// `ledger` database (the ledger migrates it at start-up).
    pub async fn start(self) -> anyhow::Result<PrivateCluster> {
        let dir = std::env::temp_dir().join(format!("ledger-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // Constructed before anything can fail, so Drop cleans up a half-made cluster.
        let mut cluster = PrivateCluster { port, dir, running: false };
        run(Command::new("chown").arg(os_user()).arg(&cluster.dir), "chown the cluster directory")
            .await?;
        run(
            as_postgres(&pg_bin("initdb"))
                .arg("--pgdata")
                .arg(cluster.data_dir())
                .args(["--auth", "trust", "--username", "postgres", "--encoding", "UTF8"])
                .args(["--no-sync", "--no-instructions"]),
            "initdb",
        )
        .await?;
        if let Some(tls) = &self.tls {
            serve_tls_only(&cluster.data_dir(), tls).await?;
        }
        cluster.resume().await?;
        let client = cluster.client("postgres").await?;
        client.batch_execute("CREATE DATABASE ledger").await.context("creating ledger")?;
        Ok(cluster)
    }
}

/// Puts the server's certificate (and the client authority's) in the data directory, owned
/// by the server's user and the key private to it, as PostgreSQL insists; turns TLS on and
/// lets TCP in over TLS only.
async fn serve_tls_only(data: &Path, tls: &ServerTls) -> anyhow::Result<()> {
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, data.join(to)).with_context(|| format!("copying {}", from.display()))
    };
    copy(&tls.server.certificate, "server.crt")?;
    copy(&tls.server.key, "server.key")?;
    std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600))?;
    let mut settings =
        "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n".to_owned();
    let mut owned = vec!["server.crt", "server.key"];
    let login = match &tls.client_authority {
        Some(authority) => {
            copy(authority, "client-ca.crt")?;
            settings.push_str("ssl_ca_file = 'client-ca.crt'\n");
            owned.push("client-ca.crt");
            "cert"
        }
        None => "trust",
    };
    std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut file| file.write_all(settings.as_bytes()))
        .context("turning TLS on in postgresql.conf")?;
    let rules = format!(
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 {login}\n\
         hostnossl all all 127.0.0.1/32 reject\n"
    );
    std::fs::write(data.join("pg_hba.conf"), rules).context("writing pg_hba.conf")?;
    run(Command::new("chown").arg(os_user()).args(owned).current_dir(data), "chown the TLS files")
        .await
}

impl PrivateCluster {
    /// A cluster with every default: see [`ClusterBuilder::start`].
    pub async fn start() -> anyhow::Result<Self> {
        Self::builder().start().await
    }

    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// A connection URL for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A plain connection for assertions, through the cluster's Unix socket (trusted
    /// whatever TCP requires).
    pub async fn client(&self, database: &str) -> anyhow::Result<tokio_postgres::Client> {
        let mut config = tokio_postgres::Config::new();
        config.host_path(&self.dir).port(self.port).user("postgres").dbname(database);
        let (client, connection) = config.connect(NoTls).await.with_context(|| {
            format!("connecting to {database} through the socket in {}", self.dir.display())
        })?;
        tokio::spawn(async move {
            // A restart of this very cluster ends the connection; nothing to report.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.display()
        );
        run(
            as_postgres(&pg_bin("pg_ctl"))
                .arg("--pgdata")
                .arg(self.data_dir())
                .arg("--log")
                .arg(self.dir.join("server.log"))
                .args(["--wait", "--timeout", "30", "-o", &options, "start"]),
            "pg_ctl start",
        )
        .await
        .with_context(|| format!("server log: {}", self.log_tail(20)))?;
        self.running = true;
        Ok(())
    }

    /// Stops the server and waits until it is gone.
    pub async fn stop(&mut self, mode: StopMode) -> anyhow::Result<()> {
        run(
            as_postgres(&pg_bin("pg_ctl")).arg("--pgdata").arg(self.data_dir()).args([
                "--wait",
                "--timeout",
                "30",
                "--mode",
                mode.as_arg(),
                "stop",
            ]),
            "pg_ctl stop",
        )
        .await?;
        self.running = false;
        Ok(())
    }

    pub async fn restart(&mut self, mode: StopMode) -> anyhow::Result<()> {
        self.stop(mode).await?;
        self.resume().await
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.join("server.log"), lines)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.running {
            // Blocking is fine here: pg_ctl returns within a fraction of a second.
            let stopped = std::process::Command::new("runuser")
                .args(["-u", &os_user(), "--"])
                .arg(pg_bin("pg_ctl"))
                .arg("--pgdata")
                .arg(self.data_dir())
                .args(["--wait", "--mode", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !matches!(stopped, Ok(status) if status.success()) {
                eprintln!("could not stop the private cluster in {}", self.dir.display());
            }
        }
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("could not remove {}: {error}", self.dir.display());
        }
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", &os_user(), "--"]).arg(program);
    command
}

/// Runs a command to completion; its output becomes the error if it fails.
async fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("{what}: could not run {command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The last `lines` lines of a text file (empty if it cannot be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned());
    let text = text.unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
