//! How the async queue behaves ([`AsyncConfig`]: retry delays, backoff, the length of an age
//! second, workers, leases, polling) and the arithmetic on those figures.

use std::time::Duration;

/// Lambda's limit on an asynchronous payload.
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;

/// How the queue behaves; Lambda's figures by default.
#[derive(Debug, Clone)]
pub struct AsyncConfig {
    /// Delays before the retries after a function error (Lambda: 1 min, then 2 min).
    pub retry_delays: Vec<Duration>,
    /// Backoff after a throttle or a platform error: from `backoff_min`, doubling, up to
    /// `backoff_max` (Lambda: 1 s to 5 min).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long one second of `MaximumEventAgeInSeconds` lasts (1 s; tests shorten it).
    pub age_unit: Duration,
    /// Events running at once.
    pub workers: u32,
    /// How long a worker's lease lasts: past it, another worker (of any node) may take the
    /// event. The node renews its leases every third of this while it runs them, so a lease
    /// outlives a long function (up to 15 min) and a dead node's events are taken over at
    /// most this long after its last renewal.
    pub lease: Duration,
    /// How often the dispatcher looks for due events when nothing woke it.
    pub poll: Duration,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        Self {
            retry_delays: vec![Duration::from_secs(60), Duration::from_secs(120)],
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            age_unit: Duration::from_secs(1),
            workers: 256,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
        }
    }
}

/// A duration in milliseconds, saturating.
pub(super) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl AsyncConfig {
    /// The delay before retry number `failures` (1-based) after a function error.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let i = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
        self.retry_delays
            .get(i)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// The backoff after a throttle, given the previous one (0 if none).
    pub fn next_backoff_ms(&self, previous_ms: i64) -> i64 {
        let min = ms(self.backoff_min).max(1);
        let max = ms(self.backoff_max).max(min);
        if previous_ms <= 0 {
            min
        } else {
            previous_ms.saturating_mul(2).clamp(min, max)
        }
    }

    /// How often a node renews the leases it holds: a third of the lease, so that two
    /// renewals may be late before a lease runs out.
    pub fn renew_every(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(10))
    }

    /// How long an event may wait, in milliseconds.
    pub fn max_age_ms(&self, seconds: u32) -> i64 {
        i64::from(seconds).saturating_mul(ms(self.age_unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_as_lambdas_and_backoff_doubles_to_its_cap() {
        let c = AsyncConfig::default();
        assert_eq!(c.retry_delay(1), Duration::from_secs(60));
        assert_eq!(c.retry_delay(2), Duration::from_secs(120));
        assert_eq!(c.next_backoff_ms(0), 1000);
        assert_eq!(c.next_backoff_ms(1000), 2000);
        assert_eq!(c.next_backoff_ms(200_000), 300_000);
        assert_eq!(c.max_age_ms(60), 60_000);
        assert_eq!(c.renew_every(), Duration::from_secs(10));
        let fast = AsyncConfig {
            age_unit: Duration::from_millis(10),
            ..AsyncConfig::default()
        };
        assert_eq!(fast.max_age_ms(60), 600);
    }
}
