//! A real HTTP server receiving Standard Webhooks (<https://www.standardwebhooks.com>) for
//! tests of webhook delivery: it records every POST, checks its signature, and answers
//! with the statuses the test programs, to make the sender retry or give up.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::poll_until;

/// A fresh Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let key: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..)).take(32).collect();
    format!("whsec_{}", STANDARD.encode(key))
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct ReceivedHook {
    pub path: String,
    /// The `webhook-id` header: the same for every attempt at one message.
    pub id: String,
    /// The `webhook-timestamp` header (0 if missing or not a number).
    pub timestamp: i64,
    /// The `webhook-signature` header, as sent.
    pub signature: String,
    /// The body as JSON, or as a JSON string if it is not JSON.
    pub body: serde_json::Value,
    /// Whether one of the signatures is right; the timestamp's freshness is not checked,
    /// so that a test can tell a stale timestamp from a bad signature.
    pub verified: bool,
    /// The status the receiver answered with.
    pub answered: u16,
}

impl ReceivedHook {
    fn read(key: &[u8], path: &str, headers: &HeaderMap, body: &[u8], answered: u16) -> Self {
        let header =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let (id, timestamp, signature) =
            (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
        Self {
            path: path.to_owned(),
            id: id.to_owned(),
            timestamp: timestamp.parse().unwrap_or_default(),
            signature: signature.to_owned(),
            body: serde_json::from_slice(body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
            }),
            // The header's own text is what was signed, not the number read from it.
            verified: verify(key, id, timestamp, body, signature),
            answered,
        }
    }

    fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

/// An HTTP server owned by one test, at [`TestReceiver::url`]; it stops when dropped.
pub struct TestReceiver {
    pub port: u16,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

struct Shared {
    key: Vec<u8>,
    received: Mutex<Vec<ReceivedHook>>,
    answers: Mutex<Answers>,
}

#[derive(Default)]
struct Answers {
    next: VecDeque<u16>,
    always: Option<u16>,
}

impl TestReceiver {
    /// A receiver checking signatures against `secret` (`whsec_<base64 key>`).
    pub async fn start(secret: &str) -> anyhow::Result<Self> {
        let key = decode_secret(secret)?;
        // Kept bound from here on, so that no other test can take the port meanwhile.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the webhook receiver")?;
        let port = listener.local_addr()?.port();
        let shared =
            Arc::new(Shared { key, received: Mutex::default(), answers: Mutex::default() });
        let app = Router::new().fallback(receive).with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // The test sees a dead receiver by its sender failing; this says why.
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the webhook receiver stopped: {error}");
            }
        });
        Ok(Self { port, shared, server })
    }

    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("http://127.0.0.1:{}{slash}{path}", self.port)
    }

    /// Answers the next requests with `statuses`, one each, before any sticky status.
    pub fn answer_next(&self, statuses: &[u16]) {
        statuses.iter().copied().for_each(assert_sendable);
        self.answers().next.extend(statuses);
    }

    /// Answers every request with `status` (`None`: 200) once the queued ones are used.
    pub fn answer_always(&self, status: Option<u16>) {
        status.into_iter().for_each(assert_sendable);
        self.answers().always = status;
    }

    /// Every request so far, whatever it was answered, in the order received.
    pub fn received(&self) -> Vec<ReceivedHook> {
        self.shared.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until at least `count` requests were answered with a 2xx, and returns those.
    pub async fn wait_for(
        &self,
        count: usize,
        deadline: Duration,
    ) -> anyhow::Result<Vec<ReceivedHook>> {
        poll_until(deadline, &format!("{count} webhooks answered with a 2xx"), || {
            let accepted: Vec<_> =
                self.received().into_iter().filter(ReceivedHook::accepted).collect();
            async move { Ok((accepted.len() >= count).then_some(accepted)) }
        })
        .await
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.shared.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    fn next_answer(&self) -> u16 {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.next.pop_front().or(answers.always).unwrap_or(200)
    }
}

/// A status programmed by the test must be one HTTP can carry: better to fail in the test
/// than to answer something else than asked.
fn assert_sendable(status: u16) {
    assert!(StatusCode::from_u16(status).is_ok(), "{status} is not an HTTP status code");
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED;
    }
    let answered = shared.next_answer();
    let hook = ReceivedHook::read(&shared.key, uri.path(), &headers, &body, answered);
    // Recorded before answering, so that a sender that saw its answer finds its request.
    shared.received.lock().unwrap_or_else(PoisonError::into_inner).push(hook);
    StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn decode_secret(secret: &str) -> anyhow::Result<Vec<u8>> {
    // Standard Webhooks libraries take the key with or without its prefix.
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).context("a webhook secret is `whsec_` and a base64 key")
}

/// Whether one of the `v1,<base64>` entries of `signatures` is the HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` under `key`, compared in constant time.
fn verify(key: &[u8], id: &str, timestamp: &str, body: &[u8], signatures: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        mac.update(part);
    }
    signatures
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|signature| STANDARD.decode(signature).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector of the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: &str = "1614265330";
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn verifies(body: &str, signatures: &str) -> anyhow::Result<bool> {
        Ok(verify(&decode_secret(SECRET)?, ID, TIMESTAMP, body.as_bytes(), signatures))
    }

    #[test]
    fn verifies_the_specification_test_vector() -> anyhow::Result<()> {
        assert!(verifies(BODY, SIGNATURE)?);
        // Any one good entry of several is enough (as during a key rotation).
        assert!(verifies(BODY, &format!("v1,c2lnbmF0dXJl {SIGNATURE} v1a,xyz"))?);
        Ok(())
    }

    #[test]
    fn refuses_a_tampered_message() -> anyhow::Result<()> {
        assert!(!verifies(r#"{"test": 2432232315}"#, SIGNATURE)?);
        assert!(!verifies(BODY, "v1,c2lnbmF0dXJl")?);
        assert!(!verifies(BODY, &SIGNATURE.replacen("v1,", "v2,", 1))?);
        assert!(!verifies(BODY, "")?);
        Ok(())
    }

    #[test]
    fn generates_usable_secrets() -> anyhow::Result<()> {
        let secret = generate_secret();
        assert_eq!(decode_secret(&secret)?.len(), 32);
        assert_ne!(secret, generate_secret());
        Ok(())
    }

    #[tokio::test]
    async fn records_and_answers_as_programmed() -> anyhow::Result<()> {
        let receiver = TestReceiver::start(SECRET).await?;
        receiver.answer_next(&[503, 500]);
        let client = reqwest::Client::new();
        let post = |signature: &'static str| {
            client
                .post(receiver.url("hooks/orders"))
                .header("webhook-id", ID)
                .header("webhook-timestamp", TIMESTAMP)
                .header("webhook-signature", signature)
                .header("content-type", "application/json")
                .body(BODY)
                .send()
        };
        let statuses = [post(SIGNATURE).await?, post(SIGNATURE).await?, post("v1,bad").await?]
            .map(|response| response.status().as_u16());
        assert_eq!(statuses, [503, 500, 200]);

        let accepted = receiver.wait_for(1, Duration::from_secs(5)).await?;
        assert_eq!(accepted.len(), 1);
        assert!(!accepted[0].verified);
        let received = receiver.received();
        assert_eq!(received.iter().map(|hook| hook.answered).collect::<Vec<_>>(), [503, 500, 200]);
        let first = &received[0];
        assert!(first.verified);
        assert_eq!((first.id.as_str(), first.timestamp), (ID, 1_614_265_330));
        assert_eq!(first.path, "/hooks/orders");
        assert_eq!(first.body, serde_json::json!({"test": 2_432_232_314_i64}));

        receiver.answer_always(Some(410));
        assert_eq!(post(SIGNATURE).await?.status().as_u16(), 410);
        Ok(())
    }
}
