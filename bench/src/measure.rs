//! Helpers every bench shares.

use std::time::Duration;

/// The `q`-quantile (0 to 1) of sorted latencies, nearest rank; zero for none.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    match sorted.len().checked_sub(1) {
        Some(last) => sorted[((last as f64 * q).round() as usize).min(last)],
        None => Duration::ZERO,
    }
}

/// A setting from the environment (`BENCH_…`), or `default` when unset or unparseable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
