//! When the payment service tries again: after a soft decline (a new attempt, later), and
//! while an outcome is unknown (the same attempt, soon).

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Charge attempts per order, the first included; after the last soft decline the
    /// order is cancelled.
    pub max_attempts: u32,
    /// The pause before the second attempt; it doubles for each one after.
    pub soft_decline_retry_after: Duration,
    /// The longest pause between two asks about an unknown outcome.
    pub unknown_retry_max: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts over about three hours: card issuers often approve a soft decline
    /// (insufficient funds) within hours, and a customer waits no longer than that.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            soft_decline_retry_after: Duration::from_secs(3600),
            unknown_retry_max: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The pause after the soft decline of attempt `attempt` (1-based).
    pub fn soft_decline_retry_after(&self, attempt: u32) -> Duration {
        self.soft_decline_retry_after.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
    }

    /// The pause before asking again about an outcome unknown for `unknown_for`: short at
    /// first (most unknowns are a lost answer), growing with the time it has been unknown.
    pub fn unknown_retry_after(&self, unknown_for: Duration) -> Duration {
        unknown_for.clamp(
            Duration::from_millis(200),
            self.unknown_retry_max.max(Duration::from_millis(200)),
        )
    }

    /// The whole period the attempts are spread over (for the documentation and status).
    pub fn period(&self) -> Duration {
        (1..self.max_attempts).map(|n| self.soft_decline_retry_after(n)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_declines_back_off_doubling() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.soft_decline_retry_after(1), Duration::from_secs(3600));
        assert_eq!(policy.soft_decline_retry_after(2), Duration::from_secs(7200));
        assert_eq!(policy.period(), Duration::from_secs(3 * 3600));
    }

    #[test]
    fn unknown_outcomes_are_asked_about_soon_then_less_often() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.unknown_retry_after(Duration::ZERO), Duration::from_millis(200));
        assert_eq!(policy.unknown_retry_after(Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(policy.unknown_retry_after(Duration::from_secs(600)), Duration::from_secs(60));
    }
}
