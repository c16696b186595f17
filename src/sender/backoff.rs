//! "How long do we wait?": exponential backoff with full jitter. Knows no HTTP.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// The longest `Retry-After` we honour; a server asking for more gets this.
    pub retry_after_cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)))
            .min(self.cap);
        let jitter = Duration::from_secs_f64(rand::rng().random_range(0.0..=exp.as_secs_f64()));
        match retry_after {
            Some(asked) => asked.min(self.retry_after_cap).max(jitter),
            None => jitter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_exponential_envelope() {
        let b = Backoff::default();
        for attempt in 1..10 {
            let ceiling = b.base.saturating_mul(1 << (attempt - 1)).min(b.cap);
            for _ in 0..50 {
                assert!(b.delay(attempt, None) <= ceiling);
            }
        }
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        let b = Backoff::default();
        assert!(b.delay(1, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(120)
        );
    }
}
