//! TLS to PostgreSQL: the ledger reaches its database as libpq would, with `sslmode` and
//! `sslrootcert` (and `sslcert`/`sslkey`) in `DATABASE_URL`, or the `--db-ssl-*` flags.
//!
//! Each spec runs a private cluster that speaks TLS only (plain TCP is rejected, so a
//! ledger that works there was encrypted), with a certificate authority and a server
//! certificate the spec makes. A verifying mode that cannot trust the server stops the
//! ledger at start-up, saying which mode refused what, before it serves anything.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use ledger_tests::certificates::{CertificateAuthority, Issued, Purpose};
use ledger_tests::postgres::ServerTls;
use ledger_tests::process::{ledger_binary, API_TOKENS};
use ledger_tests::{
    expect_json, expect_status, poll_until, LedgerConfig, LedgerProcess, PrivateCluster,
};
use serde_json::json;
use tempfile::TempDir;
use uuid::Uuid;

/// The names a certificate for this machine's server is issued for.
const THIS_HOST: &[&str] = &["localhost", "127.0.0.1"];
/// A certificate for some other server.
const ANOTHER_HOST: &[&str] = &["db.elsewhere.example"];
/// Longest a refused ledger may take to give up.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(30);

/// A TLS-only cluster and the authority that signed its certificate.
struct TlsCluster {
    cluster: PrivateCluster,
    authority: CertificateAuthority,
    /// Where the certificates are (dropped last: the ledger and the server read them).
    files: TempDir,
}

impl TlsCluster {
    /// A cluster whose certificate is issued for `names`; with `client_certificates`, it
    /// also asks each client for a certificate its authority signed.
    async fn start(names: &[&str], client_certificates: bool) -> anyhow::Result<Self> {
        let files = tempfile::tempdir()?;
        let authority = CertificateAuthority::new(files.path(), "ledger-test-ca")?;
        let server = authority.issue("server", Purpose::Server, names)?;
        let client_authority = client_certificates.then(|| authority.path().to_owned());
        let cluster = PrivateCluster::builder()
            .tls_only(ServerTls { server, client_authority })
            .start()
            .await?;
        Ok(Self { cluster, authority, files })
    }

    /// The URL of the `ledger` database with these query parameters.
    fn url(&self, parameters: &str) -> String {
        format!("{}?{parameters}", self.cluster.url("ledger"))
    }

    /// `sslrootcert=<this cluster's authority>`.
    fn root_cert(&self) -> String {
        format!("sslrootcert={}", self.authority.path().display())
    }

    /// An authority that signed nothing the server has.
    fn stranger(&self) -> anyhow::Result<CertificateAuthority> {
        CertificateAuthority::new(self.files.path(), "stranger-ca")
    }

    /// A client certificate for the user `postgres`.
    fn client_certificate(&self) -> anyhow::Result<Issued> {
        self.authority.issue("postgres", Purpose::Client, &[])
    }
}

#[tokio::test]
async fn over_verify_full_the_ledger_serves_and_every_connection_of_its_is_encrypted(
) -> anyhow::Result<()> {
    let tls = TlsCluster::start(THIS_HOST, false).await?;
    let url = tls.url(&format!("sslmode=verify-full&{}", tls.root_cert()));
    // Every role, so that every kind of connection is open: the pool's, the relay
    // leader's and the listener for other processes' applied batches.
    let config = LedgerConfig::new(&url)?.roles("api,relay,projector");
    let mut ledger = LedgerProcess::start(config).await?;

    let outcome = async {
        serves_a_command_and_a_query(&ledger).await?;
        poll_until(Duration::from_secs(30), "the relay to publish over TLS", || async {
            let (role, published) = ledger.relay_role().await?;
            Ok((role == "active" && published > 0).then_some(()))
        })
        .await?;
        poll_until(Duration::from_secs(30), "the listener for applied batches", || async {
            Ok(listeners(&tls.cluster).await?.then_some(()))
        })
        .await
    }
    .await;
    ledger.explain(outcome)?;
    // Asked through the same connector the ledger uses, the server says: encrypted.
    let (client, connection) = eventstore::Connector::new(&url)?.connect().await?;
    tokio::spawn(connection);
    let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]);
    assert!(row.await?.try_get::<_, bool>("ssl")?, "this connection is not encrypted");
    let (encrypted, plain) = ledger_connections(&tls.cluster).await?;
    assert!(encrypted > 0 && plain == 0, "ledger connections: {encrypted} TLS, {plain} plain");
    Ok(())
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_host_or_from_another_authority_at_start_up(
) -> anyhow::Result<()> {
    let tls = TlsCluster::start(ANOTHER_HOST, false).await?;
    let wrong_host =
        refusal(&tls.url(&format!("sslmode=verify-full&{}", tls.root_cert())), &[]).await?;
    assert!(wrong_host.contains("sslmode=verify-full"), "{wrong_host}");
    // OpenSSL's words: `(IP address mismatch)` for an address, `(hostname mismatch)` else.
    assert!(wrong_host.to_lowercase().contains("address mismatch"), "{wrong_host}");

    let stranger = tls.stranger()?;
    let unknown_signer = format!("sslmode=verify-full&sslrootcert={}", stranger.path().display());
    let unknown_signer = refusal(&tls.url(&unknown_signer), &[]).await?;
    assert!(unknown_signer.contains("sslmode=verify-full"), "{unknown_signer}");
    assert!(unknown_signer.contains("certificate verify failed"), "{unknown_signer}");
    Ok(())
}

#[tokio::test]
async fn verify_ca_checks_who_signed_the_certificate_but_not_the_host_it_names(
) -> anyhow::Result<()> {
    let tls = TlsCluster::start(ANOTHER_HOST, false).await?;
    // Given as flags this time, over a URL that says nothing about TLS.
    let root_cert = tls.authority.path().display().to_string();
    let config = LedgerConfig::new(tls.cluster.url("ledger"))?
        .arg("--db-ssl-mode", "verify-ca")
        .arg("--db-ssl-root-cert", &root_cert);
    let mut ledger = LedgerProcess::start(config).await?;
    let outcome = serves_a_command_and_a_query(&ledger).await;
    ledger.explain(outcome)?;

    let stranger = tls.stranger()?.path().display().to_string();
    let flags = ["--db-ssl-mode", "verify-ca", "--db-ssl-root-cert", &stranger];
    let unknown_signer = refusal(&tls.cluster.url("ledger"), &flags).await?;
    assert!(unknown_signer.contains("sslmode=verify-ca"), "{unknown_signer}");
    assert!(unknown_signer.contains("certificate verify failed"), "{unknown_signer}");
    Ok(())
}

#[tokio::test]
async fn require_encrypts_without_a_root_certificate_and_trusts_any_certificate(
) -> anyhow::Result<()> {
    // libpq's require: TLS or nothing, but no certificate check (this one names another
    // host, and the ledger has no authority to check it against).
    let tls = TlsCluster::start(ANOTHER_HOST, false).await?;
    let mut ledger = LedgerProcess::start(LedgerConfig::new(tls.url("sslmode=require"))?).await?;
    let outcome = serves_a_command_and_a_query(&ledger).await;
    ledger.explain(outcome)?;
    let (encrypted, plain) = ledger_connections(&tls.cluster).await?;
    assert!(encrypted > 0 && plain == 0, "ledger connections: {encrypted} TLS, {plain} plain");
    Ok(())
}

#[tokio::test]
async fn without_tls_a_server_that_insists_on_it_refuses_the_ledger_at_start_up(
) -> anyhow::Result<()> {
    let tls = TlsCluster::start(THIS_HOST, false).await?;
    let refused = refusal(&tls.url("sslmode=disable"), &[]).await?;
    assert!(refused.contains("pg_hba.conf rejects connection"), "{refused}");
    assert!(refused.contains("no encryption"), "{refused}");
    Ok(())
}

#[tokio::test]
async fn a_server_that_asks_for_a_client_certificate_gets_the_configured_one() -> anyhow::Result<()>
{
    let tls = TlsCluster::start(THIS_HOST, true).await?;
    let url = tls.url(&format!("sslmode=verify-full&{}", tls.root_cert()));
    let without = refusal(&url, &[]).await?;
    assert!(without.contains("requires a valid client certificate"), "{without}");

    let client = tls.client_certificate()?;
    let (certificate, key) =
        (client.certificate.display().to_string(), client.key.display().to_string());
    let config =
        LedgerConfig::new(&url)?.arg("--db-ssl-cert", &certificate).arg("--db-ssl-key", &key);
    let mut ledger = LedgerProcess::start(config).await?;
    let outcome = serves_a_command_and_a_query(&ledger).await;
    ledger.explain(outcome)
}

#[tokio::test]
async fn tls_settings_that_cannot_work_stop_the_ledger_naming_the_setting() -> anyhow::Result<()> {
    // No server needed: each is refused before the first connection.
    let server = "postgres://postgres@127.0.0.1:9/ledger";
    let unknown_mode = refusal(&format!("{server}?sslmode=verify_full"), &[]).await?;
    assert!(unknown_mode.contains("sslmode: unknown mode `verify_full`"), "{unknown_mode}");
    let nothing_to_verify = refusal(&format!("{server}?sslmode=verify-full"), &[]).await?;
    assert!(nothing_to_verify.contains("no sslrootcert"), "{nothing_to_verify}");
    let missing = format!("{server}?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
    let missing = refusal(&missing, &[]).await?;
    assert!(missing.contains("sslrootcert: cannot read /nonexistent/ca.pem"), "{missing}");
    let flag = refusal(server, &["--db-ssl-mode", "strict"]).await?;
    assert!(flag.contains("--db-ssl-mode") && flag.contains("strict"), "{flag}");
    for refused in [unknown_mode, nothing_to_verify, missing, flag] {
        assert!(!refused.contains("panicked"), "{refused}");
    }
    Ok(())
}

/// Places an order and reads it back.
async fn serves_a_command_and_a_query(ledger: &LedgerProcess) -> anyhow::Result<()> {
    let order_id = Uuid::now_v7();
    let order = json!({
        "order_id": order_id,
        "customer_id": "cus_tls",
        "customer_email": "tls@example.com",
        "currency": "EUR",
        "items": [{ "sku": "BOOK-1", "quantity": 1, "unit_price_minor": 1250 }]
    });
    let placed = ledger.http.post(ledger.url("/v1/orders")).json(&order).send().await?;
    expect_status(placed, 201).await.context("placing an order")?;
    let path = format!("/v1/orders/{order_id}");
    let read = expect_json(ledger.http.get(ledger.url(&path)).send().await?, 200).await?;
    anyhow::ensure!(read["order_id"] == json!(order_id), "read back: {read}");
    Ok(())
}

/// How many of the ledger's pooled connections are encrypted, and how many are not.
/// Whether a session of the ledger listens for applied batches.
async fn listeners(cluster: &PrivateCluster) -> anyhow::Result<bool> {
    let client = cluster.client("ledger").await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = 'ledger' AND application_name = 'ledger'
                AND query LIKE 'LISTEN ledger_projection_applied%'",
            &[],
        )
        .await?;
    Ok(row.try_get::<_, i64>(0)? > 0)
}

async fn ledger_connections(cluster: &PrivateCluster) -> anyhow::Result<(i64, i64)> {
    let client = cluster.client("ledger").await?;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
               FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.datname = 'ledger' AND a.backend_type = 'client backend'
                AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// What `ledger serve` says on its way out when started against `database_url` (with
/// `flags`); an error if it starts serving instead.
async fn refusal(database_url: &str, flags: &[&str]) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::new(ledger_binary()?);
    command
        .args(["serve", "--roles", "api", "--http-addr", "127.0.0.1:0"])
        .args(["--database-url", database_url])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The runner's own settings must not decide the outcome.
    for (name, _) in std::env::vars() {
        if name.starts_with("LEDGER_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command.env("LEDGER_API_TOKENS", API_TOKENS).env("NO_COLOR", "1");
    let output = tokio::time::timeout(REFUSAL_DEADLINE, command.output())
        .await
        .with_context(|| format!("the ledger started serving on {database_url} {flags:?}"))??;
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    anyhow::ensure!(!output.status.success(), "the ledger exited successfully: {said}");
    Ok(said)
}
