//! Exponential backoff with full jitter: the wait before retry `attempt` (0-based) is uniform in
//! `[0, min(cap, base · 2^attempt)]`; a server's `Retry-After` is a floor, never shortened.

use std::time::Duration;

use rand::Rng;

/// Backoff bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling for `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A full-jitter wait for `attempt`, at least `retry_after` when the server sent one.
    pub fn wait<R: Rng + ?Sized>(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jitter = Duration::from_secs_f64(rng.gen_range(0.0..=ceiling.as_secs_f64()));
        match retry_after {
            Some(floor) => floor.max(jitter),
            None => jitter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{SeedableRng, rngs::StdRng};

    const POLICY: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
    };

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        assert_eq!(POLICY.ceiling(0), Duration::from_millis(100));
        assert_eq!(POLICY.ceiling(3), Duration::from_millis(800));
        assert_eq!(POLICY.ceiling(5), Duration::from_secs(2));
        assert_eq!(POLICY.ceiling(200), Duration::from_secs(2));
    }

    proptest! {
        #[test]
        fn waits_stay_in_bounds(attempt in 0u32..64, seed in any::<u64>(), floor_ms in 0u64..5_000) {
            let mut rng = StdRng::seed_from_u64(seed);
            let wait = POLICY.wait(attempt, None, &mut rng);
            prop_assert!(wait <= POLICY.ceiling(attempt));
            let floor = Duration::from_millis(floor_ms);
            prop_assert!(POLICY.wait(attempt, Some(floor), &mut rng) >= floor);
        }
    }

    #[test]
    fn jitter_spreads() {
        let mut rng = StdRng::seed_from_u64(7);
        let waits: Vec<Duration> = (0..100).map(|_| POLICY.wait(4, None, &mut rng)).collect();
        let min = waits.iter().min().copied().unwrap_or_default();
        let max = waits.iter().max().copied().unwrap_or_default();
        assert!(min < Duration::from_millis(200) && max > Duration::from_millis(1_200));
    }
}
