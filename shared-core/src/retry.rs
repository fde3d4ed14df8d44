//! Retry policy: exponential backoff with full jitter, honouring a server's `Retry-After`,
//! bounded by an attempt cap and an overall deadline.
//!
//! [`Backoff`] is sans-I/O: it computes delays; the caller sleeps. Seed it for deterministic
//! tests with [`RetryPolicy::backoff_with_rng`].

use std::{future::Future, time::Duration};

use rand::{Rng, SeedableRng, rngs::StdRng};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Base of the exponential: the first retry waits up to this long.
    pub initial_delay: Duration,
    /// Cap on any single computed delay (a server's `Retry-After` may exceed it).
    pub max_delay: Duration,
    /// Total attempts, including the first one. `1` disables retries.
    pub max_attempts: u32,
    /// Overall budget from the first attempt; no retry is scheduled past it.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_attempts: 5,
            deadline: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A backoff seeded from the operating system's entropy.
    pub fn backoff(&self) -> Backoff<StdRng> {
        self.backoff_with_rng(StdRng::from_entropy())
    }

    /// A backoff using the given random source (seed it in tests).
    pub fn backoff_with_rng<R: Rng>(&self, rng: R) -> Backoff<R> {
        Backoff {
            policy: *self,
            rng,
            attempts_made: 1,
            scheduled: Duration::ZERO,
        }
    }

    /// The upper bound of the jitter window before retry number `retry` (1-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

/// Delays between attempts. Each call to [`next_delay`](Backoff::next_delay) accounts for one
/// failed attempt and returns how long to wait before the next one, or `None` when the policy
/// is exhausted.
#[derive(Debug, Clone)]
pub struct Backoff<R> {
    policy: RetryPolicy,
    rng: R,
    attempts_made: u32,
    scheduled: Duration,
}

impl<R: Rng> Backoff<R> {
    /// Attempts made so far (the first attempt counts as 1).
    pub fn attempts_made(&self) -> u32 {
        self.attempts_made
    }

    /// The delay before the next attempt after a failure.
    ///
    /// `elapsed` is the time since the first attempt started (pass `None` to use the sum of the
    /// delays handed out so far); `retry_after` is the server's hint, which is honoured as a
    /// lower bound. Returns `None` when the attempt cap is reached or the next attempt would
    /// start past the deadline.
    pub fn next_delay(
        &mut self,
        elapsed: Option<Duration>,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if self.attempts_made >= self.policy.max_attempts {
            return None;
        }
        let ceiling = self.policy.ceiling(self.attempts_made);
        let jittered = if ceiling.is_zero() {
            Duration::ZERO
        } else {
            self.rng.gen_range(Duration::ZERO..=ceiling)
        };
        let delay = retry_after.map_or(jittered, |hint| hint.max(jittered));
        let elapsed = elapsed.unwrap_or(self.scheduled);
        if elapsed.saturating_add(delay) > self.policy.deadline {
            return None;
        }
        self.attempts_made += 1;
        self.scheduled = self.scheduled.saturating_add(delay);
        Some(delay)
    }
}

impl<R: Rng> Iterator for Backoff<R> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.next_delay(None, None)
    }
}

/// What to do with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Give up and return the error.
    Stop,
    /// Retry, waiting at least the given server hint if any.
    Retry {
        /// A server's `Retry-After`.
        retry_after: Option<Duration>,
    },
}

/// Runs `operation` until it succeeds, `decide` says stop, or the policy is exhausted; sleeps
/// with `tokio::time` between attempts. Returns the last error on failure.
pub async fn retry<T, E, Op, Fut>(
    policy: &RetryPolicy,
    mut decide: impl FnMut(&E) -> RetryDecision,
    mut operation: Op,
) -> Result<T, E>
where
    Op: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut backoff = policy.backoff();
    loop {
        let error = match operation(backoff.attempts_made()).await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let RetryDecision::Retry { retry_after } = decide(&error) else {
            return Err(error);
        };
        match backoff.next_delay(Some(started.elapsed()), retry_after) {
            Some(delay) => tokio::time::sleep(delay).await,
            None => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_attempts: 6,
            deadline: Duration::from_secs(60),
        }
    }

    #[test]
    fn delays_stay_within_the_exponential_ceiling() {
        let mut backoff = policy().backoff_with_rng(StdRng::seed_from_u64(7));
        for retry in 1..6 {
            let delay = backoff.next_delay(None, None).unwrap();
            assert!(delay <= policy().ceiling(retry), "retry {retry}: {delay:?}");
        }
        assert_eq!(policy().ceiling(1), Duration::from_millis(100));
        assert_eq!(policy().ceiling(3), Duration::from_millis(400));
        assert_eq!(policy().ceiling(10), Duration::from_secs(2));
        assert_eq!(policy().ceiling(200), Duration::from_secs(2));
    }

    #[test]
    fn attempt_cap_counts_the_first_attempt() {
        let delays: Vec<_> = policy()
            .backoff_with_rng(StdRng::seed_from_u64(1))
            .collect();
        assert_eq!(delays.len(), 5);
    }

    #[test]
    fn same_seed_same_delays() {
        let a: Vec<_> = policy()
            .backoff_with_rng(StdRng::seed_from_u64(42))
            .collect();
        let b: Vec<_> = policy()
            .backoff_with_rng(StdRng::seed_from_u64(42))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn jitter_is_full_not_equal() {
        // Full jitter draws from [0, ceiling]: over many draws some fall in the lower half.
        let p = RetryPolicy {
            max_attempts: 2,
            ..policy()
        };
        let mut rng = StdRng::seed_from_u64(3);
        let low = (0..200)
            .filter_map(|_| p.backoff_with_rng(&mut rng).next())
            .filter(|d| *d < Duration::from_millis(50))
            .count();
        assert!(low > 50, "{low}");
    }

    #[test]
    fn retry_after_is_a_lower_bound() {
        let mut backoff = policy().backoff_with_rng(StdRng::seed_from_u64(9));
        let delay = backoff
            .next_delay(None, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(delay, Duration::from_secs(5));
    }

    #[test]
    fn deadline_stops_retries() {
        let p = RetryPolicy {
            deadline: Duration::from_secs(3),
            ..policy()
        };
        let mut backoff = p.backoff_with_rng(StdRng::seed_from_u64(9));
        assert!(
            backoff
                .next_delay(Some(Duration::from_secs(1)), None)
                .is_some()
        );
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(1)), Some(Duration::from_secs(5))),
            None
        );
        assert_eq!(backoff.next_delay(Some(Duration::from_secs(4)), None), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_runs_until_success_and_honours_stop() {
        let mut calls = 0;
        let result: Result<u32, &str> = retry(
            &policy(),
            |_| RetryDecision::Retry { retry_after: None },
            |attempt| {
                calls += 1;
                async move {
                    if attempt < 3 {
                        Err("flaky")
                    } else {
                        Ok(attempt)
                    }
                }
            },
        )
        .await;
        assert_eq!(result, Ok(3));
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result: Result<(), &str> = retry(
            &policy(),
            |_| RetryDecision::Stop,
            |_| {
                calls += 1;
                async { Err("fatal") }
            },
        )
        .await;
        assert_eq!(result, Err("fatal"));
        assert_eq!(calls, 1);
    }
}
