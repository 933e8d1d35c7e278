//! A message as the test SMTP server received it, with its headers and body decoded as
//! a mail client would (folded headers, encoded words, quoted-printable, base64).

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// One message as the SMTP sink accepted it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`), which need not match the `To` header.
    #[serde(rename = "rcpt_tos")]
    pub to: Vec<String>,
    /// The message as sent, header and body, with its CRLF line ends.
    #[serde(rename = "data")]
    pub raw: String,
}

impl ReceivedMail {
    /// The first header `name` (in any case), unfolded and trimmed but not decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Every header in order, unfolded and trimmed.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in self.split().0.lines() {
            if line.starts_with([' ', '\t']) {
                // Unfolding drops the line break only (RFC 5322 2.2.3).
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.to_owned()));
            }
        }
        headers.into_iter().map(|(name, value)| (name, value.trim().to_owned())).collect()
    }

    /// The subject, with its RFC 2047 encoded words (how mailers send non-ASCII) decoded.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject").map(|subject| decode_encoded_words(&subject))
    }

    /// The `Message-ID` header, angle brackets included.
    pub fn message_id(&self) -> Option<String> {
        self.header("Message-ID")
    }

    /// The text after the header, decoded from base64 or quoted-printable as its
    /// `Content-Transfer-Encoding` says and read as UTF-8; the parts of a multipart
    /// message are not taken apart.
    pub fn body(&self) -> anyhow::Result<String> {
        let body = self.split().1;
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default();
        let bytes = match encoding.to_ascii_lowercase().as_str() {
            "base64" => {
                let compact: String = body.split_whitespace().collect();
                STANDARD.decode(compact).context("decoding the base64 body")?
            }
            "quoted-printable" => decode_quoted_printable(body),
            _ => return Ok(body.to_owned()),
        };
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The header and the body: the header ends at the first empty line.
    fn split(&self) -> (&str, &str) {
        let mut offset = 0;
        for line in self.raw.split_inclusive('\n') {
            if line.trim_end_matches(['\r', '\n']).is_empty() {
                return (&self.raw[..offset], &self.raw[offset + line.len()..]);
            }
            offset += line.len();
        }
        (&self.raw, "")
    }
}

/// Quoted-printable (RFC 2045 6.7); a malformed `=` is kept as is, as the RFC advises.
fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        let rest = &bytes[at + 1..];
        if byte != b'=' {
            decoded.push(byte);
            at += 1;
        } else if rest.starts_with(b"\r\n") {
            at += 3;
        } else if rest.starts_with(b"\n") {
            at += 2;
        } else if let Some(value) = rest.get(..2).and_then(hex_byte) {
            decoded.push(value);
            at += 3;
        } else {
            decoded.push(byte);
            at += 1;
        }
    }
    decoded
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digits = std::str::from_utf8(pair).ok()?;
    // `from_str_radix` alone would take a sign, as in `=+1`.
    digits.bytes().all(|digit| digit.is_ascii_hexdigit()).then_some(())?;
    u8::from_str_radix(digits, 16).ok()
}

/// Decodes the RFC 2047 encoded words of a header value; the blank between two encoded
/// words is dropped, as the RFC says, since mailers split long text into several words.
fn decode_encoded_words(value: &str) -> String {
    let mut decoded = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        if let Some((word, length)) = decode_word(candidate) {
            if !(after_word && before.trim().is_empty()) {
                decoded.push_str(before);
            }
            decoded.push_str(&word);
            rest = &candidate[length..];
            after_word = true;
        } else {
            decoded.push_str(before);
            decoded.push_str("=?");
            rest = &candidate[2..];
            after_word = false;
        }
    }
    decoded.push_str(rest);
    decoded
}

/// The encoded word `=?charset?B|Q?text?=` at the start of `text`: what it says, and its
/// length. Every charset is read as UTF-8 (lossily): the ledger's mails are UTF-8.
fn decode_word(text: &str) -> Option<(String, usize)> {
    let mut parts = text.strip_prefix("=?")?.splitn(3, '?');
    let (charset, encoding, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let payload = &rest[..rest.find("?=")?];
    let bytes = match encoding {
        "B" | "b" => STANDARD.decode(payload).ok()?,
        "Q" | "q" => decode_quoted_printable(&payload.replace('_', " ")),
        _ => return None,
    };
    let length = "=?".len() + charset.len() + 1 + encoding.len() + 1 + payload.len() + "?=".len();
    Some((String::from_utf8_lossy(&bytes).into_owned(), length))
}
