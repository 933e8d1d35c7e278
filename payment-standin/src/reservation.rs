//! One request's claim on its idempotency key: settled with the answer to store, or
//! released when dropped unsettled, so a request abandoned half-way never leaves its key
//! stuck in flight.

use axum::response::Response;

use crate::answer::Answer;
use crate::idempotency::{Claim, Scope};
use crate::state::Shared;

/// What a request may do about its key.
pub(crate) enum Claimed {
    /// Go ahead, and settle the reservation with the answer.
    Fresh(Reservation),
    /// The request is already answered: a replay, or a refusal of the key.
    Answered(Response),
}

/// Claims `key` for a request with this fingerprint; without a key there is nothing to
/// claim and the request always goes ahead.
pub(crate) fn claim(shared: &Shared, key: Option<String>, fingerprint: String) -> Claimed {
    let Some(key) = key else {
        return Claimed::Fresh(Reservation { shared: shared.clone(), scope: None });
    };
    let claimed = shared.lock().idempotency.claim(shared.api_key(), key, fingerprint);
    match claimed {
        Claim::Fresh(scope) => {
            Claimed::Fresh(Reservation { shared: shared.clone(), scope: Some(scope) })
        }
        Claim::Answered(answer) => Claimed::Answered(answer),
    }
}

/// A claimed key: settled with the answer to store, or released when dropped.
pub(crate) struct Reservation {
    shared: Shared,
    scope: Option<Scope>,
}

impl Reservation {
    /// Stores the answer under the key, for every repeat to get.
    pub fn complete(mut self, answer: &Answer) {
        if let Some(scope) = self.scope.take() {
            self.shared.lock().idempotency.complete(&scope, answer);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            self.shared.lock().idempotency.release(&scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::StatusCode;

    use super::*;

    fn shared() -> Shared {
        Shared::new("sk_test_standin".into(), Duration::ZERO)
    }

    fn status(claimed: &Claimed) -> Option<StatusCode> {
        match claimed {
            Claimed::Fresh(_) => None,
            Claimed::Answered(response) => Some(response.status()),
        }
    }

    fn key() -> Option<String> {
        Some("key-1".into())
    }

    #[test]
    fn a_completed_answer_is_replayed_to_the_same_request_and_refused_to_another() {
        let shared = shared();
        let Claimed::Fresh(reservation) = claim(&shared, key(), "a".into()) else {
            panic!("the first claim goes ahead");
        };
        reservation.complete(&Answer::ok(serde_json::json!({"id": "pi_1"})));
        let Claimed::Answered(replay) = claim(&shared, key(), "a".into()) else {
            panic!("the repeat is answered");
        };
        assert_eq!(replay.status(), StatusCode::OK);
        assert_eq!(
            replay.headers().get("Idempotent-Replayed").and_then(|value| value.to_str().ok()),
            Some("true")
        );
        assert_eq!(status(&claim(&shared, key(), "b".into())), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn a_repeat_while_the_first_is_in_flight_is_a_conflict() {
        let shared = shared();
        let first = claim(&shared, key(), "a".into());
        assert_eq!(status(&first), None);
        assert_eq!(status(&claim(&shared, key(), "a".into())), Some(StatusCode::CONFLICT));
    }

    #[test]
    fn a_request_dropped_before_completing_releases_its_key() {
        let shared = shared();
        drop(claim(&shared, key(), "a".into()));
        assert_eq!(status(&claim(&shared, key(), "b".into())), None);
    }

    #[test]
    fn requests_without_a_key_always_go_ahead() {
        let shared = shared();
        assert_eq!(status(&claim(&shared, None, "a".into())), None);
        assert_eq!(status(&claim(&shared, None, "a".into())), None);
    }
}
