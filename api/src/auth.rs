//! Bearer-token authentication and role checks, and the per-token concurrency limit.
//!
//! Tokens come from configuration (`LEDGER_API_TOKENS="write:…,read:…,admin:…"`). Only
//! their SHA-256 digests are kept, and a presented token is compared against every one of
//! them in constant time, so neither timing nor a memory dump gives a token away. Tokens
//! are never logged: a request's log lines name its principal (`write#1`), not its token.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// What a token may do. Each role includes the ones before it: `write` may also read (a
/// client that submits commands must be able to read the version it writes against), and
/// `admin` may do everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// Who a request comes from, once its token checked out.
#[derive(Clone, Debug)]
pub struct Principal {
    /// `role#n`: the n-th token of that role in the configuration. Safe to log.
    pub label: String,
    pub access: Access,
    slot: usize,
}

#[derive(Clone)]
struct Token {
    digest: [u8; 32],
    label: String,
    access: Access,
}

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Tokens(Vec<Token>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|t| &t.label)).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("entry {0} is not `role:token` (roles: read, write, admin)")]
    Shape(usize),
    #[error("entry {0} has an unknown role `{1}` (roles: read, write, admin)")]
    Role(usize, String),
    #[error("entry {0} has a token shorter than 8 characters")]
    TooShort(usize),
    #[error("entry {0} repeats a token already configured")]
    Repeated(usize),
}

impl FromStr for Tokens {
    type Err = TokensError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut tokens: Vec<Token> = Vec::new();
        for (index, entry) in text.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let entry_number = index + 1;
            let (role, secret) = entry.split_once(':').ok_or(TokensError::Shape(entry_number))?;
            let access = match role.trim() {
                "read" => Access::Read,
                "write" => Access::Write,
                "admin" => Access::Admin,
                other => return Err(TokensError::Role(entry_number, other.to_owned())),
            };
            let secret = secret.trim();
            if secret.len() < 8 {
                return Err(TokensError::TooShort(entry_number));
            }
            let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
            if tokens.iter().any(|t| t.digest == digest) {
                return Err(TokensError::Repeated(entry_number));
            }
            let ordinal = tokens.iter().filter(|t| t.access == access).count() + 1;
            tokens.push(Token { digest, label: format!("{}#{ordinal}", access.as_str()), access });
        }
        Ok(Self(tokens))
    }
}

impl Tokens {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The token's principal, if it is one of ours. Every configured digest is compared,
    /// whatever matches, so the time taken does not depend on which one (or none) did.
    fn identify(&self, presented: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (slot, token) in self.0.iter().enumerate() {
            if bool::from(token.digest.ct_eq(&digest)) {
                found = Some(Principal { label: token.label.clone(), access: token.access, slot });
            }
        }
        found
    }
}

/// How requests are authenticated, and how many each principal may have in flight.
#[derive(Clone)]
pub struct Gate {
    tokens: Option<Arc<Tokens>>,
    /// One semaphore per token (index = slot); a single one when auth is off.
    in_flight: Arc<Vec<Arc<Semaphore>>>,
}

impl Gate {
    /// `tokens: None` turns authentication off (`--insecure-no-auth`): every request is
    /// one anonymous admin, sharing one concurrency limit.
    pub fn new(tokens: Option<Tokens>, max_in_flight_per_principal: usize) -> Self {
        let slots = tokens.as_ref().map_or(1, |t| t.0.len().max(1));
        let permits = max_in_flight_per_principal.max(1);
        Self {
            tokens: tokens.map(Arc::new),
            in_flight: Arc::new((0..slots).map(|_| Arc::new(Semaphore::new(permits))).collect()),
        }
    }

    fn authenticate(&self, request: &Request) -> Result<Principal, ApiError> {
        let Some(tokens) = &self.tokens else {
            return Ok(Principal { label: "anonymous".to_owned(), access: Access::Admin, slot: 0 });
        };
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("send Authorization: Bearer <token>"))?
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Unauthorized("the Authorization header must be `Bearer <token>`"))?;
        tokens.identify(presented).ok_or(ApiError::Unauthorized("the token is not recognised"))
    }
}

/// Middleware: admits a request only with a token of at least `needed` access, and only
/// while its principal has fewer than the limit of requests in flight (429 otherwise).
pub async fn require(
    State((gate, needed)): State<(Gate, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal = match gate.authenticate(&request) {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    tracing::Span::current().record("principal", principal.label.as_str());
    if principal.access < needed {
        return ApiError::Forbidden { needed: needed.as_str(), has: principal.access.as_str() }
            .into_response();
    }
    let semaphore = gate.in_flight.get(principal.slot).or_else(|| gate.in_flight.first());
    let Some(Ok(_permit)) = semaphore.map(|s| Arc::clone(s).try_acquire_owned()) else {
        metrics::counter!("ledger_http_throttled_total", "principal" => principal.label.clone())
            .increment(1);
        return ApiError::TooManyRequests.into_response();
    };
    request.extensions_mut().insert(principal);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_roles_and_labels_each_token_by_role_and_ordinal() -> Result<(), TokensError> {
        let tokens: Tokens =
            "write:w-secret-1, read:r-secret-1,write:w-secret-2,admin:a-secret-1".parse()?;
        let labels: Vec<_> = tokens.0.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["write#1", "read#1", "write#2", "admin#1"]);
        assert_eq!(tokens.identify("w-secret-2").map(|p| p.access), Some(Access::Write));
        assert_eq!(tokens.identify("a-secret-1").map(|p| p.label), Some("admin#1".to_owned()));
        assert!(tokens.identify("w-secret-3").is_none());
        assert!(tokens.identify("").is_none());
        Ok(())
    }

    #[test]
    fn refuses_malformed_configuration() {
        assert!(matches!("write".parse::<Tokens>(), Err(TokensError::Shape(1))));
        assert!(matches!("root:abcdefgh".parse::<Tokens>(), Err(TokensError::Role(1, _))));
        assert!(matches!("read:short".parse::<Tokens>(), Err(TokensError::TooShort(1))));
        assert!(matches!(
            "read:abcdefgh,admin:abcdefgh".parse::<Tokens>(),
            Err(TokensError::Repeated(2))
        ));
        assert!("".parse::<Tokens>().is_ok_and(|t| t.is_empty()));
    }

    #[test]
    fn roles_include_the_weaker_ones() {
        assert!(Access::Admin > Access::Write && Access::Write > Access::Read);
    }
}
