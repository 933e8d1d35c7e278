//! Idempotent requests, as Stripe keeps them: the first answer under an `Idempotency-Key`
//! is stored with a fingerprint of the request and replayed to every repeat.
//!
//! - A repeat with other parameters (or to another endpoint) is refused with `400
//!   idempotency_error`: the key names one request, not a slot to reuse.
//! - A repeat while the first is still being worked on gets `409 idempotency_error`.
//! - Keys are scoped by API key, so two accounts never see each other's answers.
//! - Only requests that started work are stored. A request refused before any work (bad
//!   parameters, no auth, an outage, a rate limit, a scripted `500`) releases its key, so
//!   its retry can still succeed — the case the adapter's "unknown, ask again" relies on.
//!
//! This is the table; `crate::reservation` holds a claim on it for one request.

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};

use crate::answer::{self, Answer};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Scope {
    api_key: String,
    key: String,
}

#[derive(Debug)]
enum Entry {
    InFlight { fingerprint: String },
    Done { fingerprint: String, answer: Answer },
}

/// What a claim on the table found.
pub(crate) enum Claim {
    /// The key is this request's now.
    Fresh(Scope),
    /// The request is already answered: a replay, or a refusal of the key.
    Answered(Response),
}

#[derive(Debug, Default)]
pub(crate) struct Idempotency {
    entries: HashMap<Scope, Entry>,
}

impl Idempotency {
    /// Claims `key` (of `api_key`) for a request with this fingerprint: the scope to settle
    /// later, or the answer the request gets instead (a replay, or a refusal of the key).
    pub fn claim(&mut self, api_key: &str, key: String, fingerprint: String) -> Claim {
        let scope = Scope { api_key: api_key.to_owned(), key };
        match self.entries.get(&scope) {
            None => {
                self.entries.insert(scope.clone(), Entry::InFlight { fingerprint });
                Claim::Fresh(scope)
            }
            Some(
                Entry::InFlight { fingerprint: first } | Entry::Done { fingerprint: first, .. },
            ) if *first != fingerprint => {
                Claim::Answered(answer::idempotency_mismatch(&scope.key).into_response())
            }
            Some(Entry::InFlight { .. }) => {
                Claim::Answered(answer::idempotency_in_flight().into_response())
            }
            Some(Entry::Done { answer, .. }) => Claim::Answered(answer.clone().replayed()),
        }
    }

    /// Stores the answer under the claimed key, for every repeat to get.
    pub fn complete(&mut self, scope: &Scope, answer: &Answer) {
        if let Some(entry) = self.entries.get_mut(scope) {
            if let Entry::InFlight { fingerprint } = entry {
                let fingerprint = std::mem::take(fingerprint);
                *entry = Entry::Done { fingerprint, answer: answer.clone() };
            }
        }
    }

    /// Gives up a claim that was never settled (the request stopped before any work).
    pub fn release(&mut self, scope: &Scope) {
        if matches!(self.entries.get(scope), Some(Entry::InFlight { .. })) {
            self.entries.remove(scope);
        }
    }
}
