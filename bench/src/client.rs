//! The HTTP side of the bench: one `reqwest` client (a keep-alive pool sized for the
//! clients and the probes), the tokens, and one method per kind of call.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;

use super::scrape::Scrape;

/// A request that takes longer is counted as a transport failure (the ledger's own limit,
/// `LEDGER_REQUEST_TIMEOUT_MS`, is 15 s by default).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer, timed from sending the request to having read the whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The problem's `code` for an error.
    pub code: Option<String>,
    /// `idempotent-replayed: true`: the ledger replayed a stored answer.
    pub replayed: bool,
    pub retry_after: Option<Duration>,
    pub content_type: Option<String>,
    pub body: Value,
    pub latency: Duration,
    pub received: Instant,
}

impl Answer {
    /// How the report names this outcome: `201`, `201 replayed`, `409 rule_violated`, …
    pub fn outcome(&self) -> String {
        let status = self.status.as_u16();
        match (&self.code, self.replayed) {
            (_, true) => format!("{status} replayed"),
            (Some(code), false) => format!("{status} {code}"),
            (None, false) => status.to_string(),
        }
    }

    /// Worth retrying with the same idempotency key: throttled, or timed out or
    /// unavailable (the command may or may not have applied; the key makes it safe).
    pub fn retryable(&self) -> bool {
        matches!(self.status.as_u16(), 429 | 502 | 503)
    }
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    admin_token: Option<String>,
}

impl Api {
    pub fn new(
        base: &str,
        token: Option<String>,
        admin_token: Option<String>,
        connections: usize,
        timeout: Duration,
    ) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .timeout(timeout)
            .build()
            .context("building the HTTP client")?;
        Ok(Api { http, base: base.trim_end_matches('/').to_owned(), token, admin_token })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn has_admin(&self) -> bool {
        self.admin_token.is_some()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn with_token(
        request: reqwest::RequestBuilder,
        token: Option<&String>,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        Ok(match token {
            Some(token) => request.header(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .context("the token is not a valid header value")?,
            ),
            None => request,
        })
    }

    /// A command: `POST path` with `body`, and an `Idempotency-Key` (also the correlation
    /// id) when given.
    pub async fn command(
        &self,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert("idempotency-key", HeaderValue::from_str(key)?);
            headers.insert("x-correlation-id", HeaderValue::from_str(&format!("bench-{key}"))?);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let request = self.http.post(self.url(path)).headers(headers).body(body.to_string());
        send(Self::with_token(request, self.token.as_ref())?).await
    }

    /// A query with the write token (a write token may query).
    pub async fn get(&self, path_and_query: &str) -> anyhow::Result<Answer> {
        send(Self::with_token(self.http.get(self.url(path_and_query)), self.token.as_ref())?).await
    }

    /// An admin call with the admin token.
    pub async fn admin(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Answer> {
        let request = self.http.request(method, self.url(path));
        send(Self::with_token(request, self.admin_token.as_ref())?).await
    }

    /// `GET /metrics` (open; sent with the admin token when there is one).
    pub async fn metrics(&self) -> anyhow::Result<Scrape> {
        let request =
            Self::with_token(self.http.get(self.url("/metrics")), self.admin_token.as_ref())?;
        let response = request.send().await.context("GET /metrics")?;
        let at = Instant::now();
        if !response.status().is_success() {
            anyhow::bail!("GET /metrics answered {}", response.status());
        }
        Ok(Scrape::parse(at, &response.text().await?))
    }
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
    let sent = Instant::now();
    let response = request.send().await?;
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"));
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await?;
    let received = Instant::now();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let code = if status.is_success() {
        None
    } else {
        Some(body.get("code").and_then(Value::as_str).unwrap_or("no_code").to_owned())
    };
    Ok(Answer {
        status,
        code,
        replayed,
        retry_after,
        content_type,
        body,
        latency: received.duration_since(sent),
        received,
    })
}
