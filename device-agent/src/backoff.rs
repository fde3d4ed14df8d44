//! Exponential backoff with full jitter, honouring a server's `Retry-After`.

use std::time::Duration;

use rand::Rng;

/// Retry delays: attempt `n` (0-based) waits a uniformly random time in
/// `0..=min(max, base * 2^n)` ("full jitter"). A server's `Retry-After` is a floor: the wait is
/// `retry_after + jitter`, so a throttled fleet does not come back in lock-step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The ceiling for attempt `n`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry number `attempt` (0-based).
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jitter_ms = rng.gen_range(0..=crate::clock::duration_ms(ceiling));
        let jitter = Duration::from_millis(jitter_ms);
        match retry_after {
            Some(floor) => floor.saturating_add(jitter.min(floor.max(self.base))),
            None => jitter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ceilings_grow_then_cap() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(3), Duration::from_millis(800));
        assert_eq!(backoff.ceiling(4), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(200), Duration::from_secs(1));
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let backoff = Backoff::default();
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<_> = (0..50).map(|_| backoff.delay(2, None, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(4)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 10, "full jitter spreads the delays");
    }

    #[test]
    fn retry_after_is_a_floor() {
        let backoff = Backoff::default();
        let mut rng = StdRng::seed_from_u64(1);
        for attempt in 0..10 {
            let delay = backoff.delay(attempt, Some(Duration::from_secs(3)), &mut rng);
            assert!(delay >= Duration::from_secs(3));
            assert!(delay <= Duration::from_secs(6));
        }
    }
}
