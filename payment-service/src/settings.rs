//! How the payment service runs.

use std::time::Duration;

use crate::policy::RetryPolicy;

#[derive(Clone, Debug)]
pub struct ServiceSettings {
    pub policy: RetryPolicy,
    /// Processes advanced at once (each mostly waits on the provider).
    pub concurrency: usize,
    /// How long a worker's claim holds: longer than its steps take (provider calls are
    /// bounded by the provider's timeout), so a live worker keeps what it claimed, and a
    /// dead one's claim lapses this long after it died.
    pub lease: Duration,
    /// The longest the worker sleeps without looking for due processes (another process's
    /// consumer may have made one due).
    pub poll: Duration,
    /// How old an event must be before the catch-up from the store handles it (the bus's
    /// usual delay, with room to spare).
    pub catch_up_grace: Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            policy: RetryPolicy::default(),
            concurrency: 16,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            catch_up_grace: Duration::from_secs(2),
        }
    }
}
