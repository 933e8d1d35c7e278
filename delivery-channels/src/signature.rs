//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): the signed content
//! is `{webhook-id}.{webhook-timestamp}.{body}`, signed with HMAC-SHA256 under the key a
//! `whsec_` secret encodes in base64, sent as `v1,{base64 signature}` in `webhook-signature`.
//! Any Standard Webhooks library verifies what this signs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// The specification recommends keys of 24 to 64 bytes.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// A webhook signing secret, as `whsec_` and the key in base64.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`; the error says what is wrong, never the secret.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("must start with `{PREFIX}` (a Standard Webhooks secret)"))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| format!("the part after `{PREFIX}` must be base64"))?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(format!(
                "the key must be {} to {} bytes (it is {})",
                KEY_BYTES.start(),
                KEY_BYTES.end(),
                key.len()
            ));
        }
        Ok(Self { key })
    }

    /// The `webhook-signature` header value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; the length was checked when parsing anyway.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example.
    #[test]
    fn signs_as_the_specification_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let signature =
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn refuses_what_is_not_a_secret() {
        for (text, complaint) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with"),
            ("whsec_not base64!", "base64"),
            ("whsec_c2hvcnQ=", "24 to 64 bytes"),
        ] {
            let error = WebhookSecret::parse(text).expect_err(text);
            assert!(error.contains(complaint), "{text}: {error}");
            assert!(!error.contains(text), "the error repeats the secret: {error}");
        }
    }
}
