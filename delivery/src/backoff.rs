//! When to try a failed delivery again: capped exponential backoff with full jitter (a
//! random delay up to the exponential bound), so dispatchers that failed together do not
//! retry together; a `Retry-After` the receiver gave is respected as a floor.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay after the `attempts`-th failed attempt (1 for the first), with `unit` a
    /// random number in `[0, 1)` for the jitter.
    pub fn delay(&self, attempts: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let bound = self.base.saturating_mul(1 << exponent).min(self.max);
        // Half fixed, half jitter: never a busy retry, still spread out.
        let jittered = bound.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
        jittered.max(retry_after.unwrap_or_default().min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff =
        Backoff { base: Duration::from_millis(500), max: Duration::from_secs(60) };

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let delays: Vec<_> = (1..=10).map(|n| BACKOFF.delay(n, None, 1.0)).collect();
        assert_eq!(delays[0], Duration::from_millis(500));
        assert_eq!(delays[1], Duration::from_secs(1));
        assert_eq!(delays[2], Duration::from_secs(2));
        assert_eq!(delays[9], Duration::from_secs(60));
        assert!(delays.windows(2).all(|pair| pair[0] <= pair[1]), "{delays:?}");
    }

    #[test]
    fn jitter_stays_between_half_and_the_bound() {
        assert_eq!(BACKOFF.delay(3, None, 0.0), Duration::from_secs(1));
        assert_eq!(BACKOFF.delay(3, None, 0.999_999).as_millis(), 1999);
    }

    #[test]
    fn retry_after_is_a_floor_within_the_cap() {
        let asked = Some(Duration::from_secs(7));
        assert_eq!(BACKOFF.delay(1, asked, 0.0), Duration::from_secs(7));
        assert_eq!(BACKOFF.delay(1, Some(Duration::from_secs(3600)), 0.0), Duration::from_secs(60));
    }

    #[test]
    fn a_huge_attempt_count_does_not_overflow() {
        assert_eq!(BACKOFF.delay(u32::MAX, None, 1.0), Duration::from_secs(60));
    }
}
