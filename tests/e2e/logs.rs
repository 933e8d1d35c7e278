//! Logs as an operator reads them: with `LOG_FORMAT=json` every line is one JSON object,
//! every line logged while a request runs carries its correlation id, and no line carries
//! a token.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use ledger_tests::{poll_until, TestDatabase};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

const TOKEN: &str = "log-test-write-token";

#[tokio::test]
async fn json_logs_carry_the_correlation_id_on_every_line_of_a_request() -> anyhow::Result<()> {
    let database = TestDatabase::create().await?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = Command::new(ledger_tests::process::ledger_binary()?)
        .args(["serve", "--roles", "api", "--database-url", &database.url])
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .env("LEDGER_API_TOKENS", format!("write:{TOKEN}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug,tokio_postgres=info,hyper=info,reqwest=info")
        .env_remove("LEDGER_INSECURE_NO_AUTH")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    poll_until(Duration::from_secs(30), "the ledger to be ready", || async {
        Ok(http.get(format!("{base}/readyz")).send().await.ok().filter(|r| r.status() == 200))
    })
    .await?;

    // A refused command: validation, logging on its way out.
    let refused = http
        .post(format!("{base}/v1/orders"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", "corr-log-spec-1")
        .json(&serde_json::json!({ "customer_id": "" }))
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 422);
    assert_eq!(refused.headers()["x-correlation-id"], "corr-log-spec-1");

    child.start_kill()?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).await?;
    }
    let _ = child.wait().await;

    let lines: Vec<Value> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{e}: {line}")))
        .collect::<anyhow::Result<_>>()?;
    assert!(!lines.is_empty(), "the process logged");
    // Lines logged inside the request's span: the request span itself is named "request".
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|line| line.to_string().contains("/v1/orders"))
        .filter(|line| line["span"]["name"] == "request" || line["spans"].is_array())
        .collect();
    assert!(of_request.len() >= 2, "request start and end at least: {stderr}");
    for line in &of_request {
        let spans = line["spans"].as_array().cloned().unwrap_or_default();
        let request = spans.iter().find(|span| span["name"] == "request");
        assert_eq!(
            request.map(|span| span["correlation_id"].clone()),
            Some(Value::from("corr-log-spec-1")),
            "{line}"
        );
    }
    assert!(!stderr.contains(TOKEN), "a token was logged");
    Ok(())
}
