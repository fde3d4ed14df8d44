//! Wrong-PoP attempt counting and lockout, over the persisted [`PopAttempts`].
//!
//! Every `ClientHello` is counted as a failed attempt *before* the device answers (and the count
//! is persisted first); a valid `ClientFinish` proves the PoP and resets the count. So a client
//! that learns the PoP was wrong and walks away has spent one attempt, and killing the device's
//! power mid-handshake does not give the attempt back.
//!
//! - Attempt `k` (after `k - 1` unconfirmed ones) is answered only after a growing delay:
//!   `min(max_delay, base_delay * 2^(k-2))` for `k >= 2`, none for the first.
//! - The `max_attempts`-th unconfirmed attempt arms a lockout: new handshakes are refused with
//!   `device_locked` and `retry_after` until it expires. Each consecutive lockout lasts twice as
//!   long as the one before (up to `max_lockout`). The counter starts again after a lockout.

use std::time::Duration;

use crate::clock::duration_ms;
use crate::store::PopAttempts;

/// Lockout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Unconfirmed attempts before a lockout.
    pub max_attempts: u8,
    /// Delay before answering the second consecutive attempt; doubles each time after.
    pub base_delay: Duration,
    /// Largest answer delay.
    pub max_delay: Duration,
    /// First lockout length; doubles for each consecutive lockout.
    pub lockout: Duration,
    /// Longest lockout.
    pub max_lockout: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(16),
            lockout: Duration::from_secs(300),
            max_lockout: Duration::from_secs(24 * 3600),
        }
    }
}

/// The answer to a new handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Answer it, after `answer_at_ms`; `attempts_left` more attempts remain if this one is wrong.
    Admitted {
        /// Attempts left after this one if it fails (for `DeviceHello.attempts_left`).
        attempts_left: u8,
        /// When the answer may be sent (Unix ms).
        answer_at_ms: u64,
        /// Which attempt this is (1-based) within the current round.
        attempt: u8,
    },
    /// Refuse it: locked for `retry_after`.
    Locked {
        /// Time left in the lockout.
        retry_after: Duration,
    },
}

impl LockoutPolicy {
    /// Whether handshakes are refused at `now_ms`, and for how long.
    pub fn locked_for(&self, attempts: &PopAttempts, now_ms: u64) -> Option<Duration> {
        attempts
            .locked_until_ms
            .filter(|until| *until > now_ms)
            .map(|until| Duration::from_millis(until - now_ms))
    }

    /// Counts a new handshake attempt (mutating `attempts`, which the caller must persist before
    /// answering) and says how to answer it.
    pub fn admit(&self, attempts: &mut PopAttempts, now_ms: u64) -> Admission {
        if let Some(retry_after) = self.locked_for(attempts, now_ms) {
            return Admission::Locked { retry_after };
        }
        let max = self.max_attempts.max(1);
        if attempts.locked_until_ms.take().is_some() || attempts.failures >= max {
            // A lockout has run out: a new round of attempts.
            attempts.failures = 0;
        }
        let previous = attempts.failures;
        attempts.failures = previous.saturating_add(1);
        if attempts.failures >= max {
            attempts.lockouts = attempts.lockouts.saturating_add(1);
            let length = self.lockout_length(attempts.lockouts);
            attempts.locked_until_ms = Some(now_ms.saturating_add(duration_ms(length)));
        }
        Admission::Admitted {
            attempts_left: max - attempts.failures,
            answer_at_ms: now_ms.saturating_add(duration_ms(self.answer_delay(previous))),
            attempt: attempts.failures,
        }
    }

    /// A confirmed session: the PoP was right.
    pub fn confirmed(&self, attempts: &mut PopAttempts) {
        *attempts = PopAttempts::default();
    }

    /// The delay before answering after `previous` unconfirmed attempts.
    pub fn answer_delay(&self, previous: u8) -> Duration {
        if previous == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << u32::from(previous - 1).min(20);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    fn lockout_length(&self, lockouts: u32) -> Duration {
        let factor = 1u32 << lockouts.saturating_sub(1).min(20);
        self.lockout.saturating_mul(factor).min(self.max_lockout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(admission: Admission) -> (u8, u64, u8) {
        match admission {
            Admission::Admitted {
                attempts_left,
                answer_at_ms,
                attempt,
            } => (attempts_left, answer_at_ms, attempt),
            Admission::Locked { .. } => panic!("unexpectedly locked"),
        }
    }

    #[test]
    fn counts_down_with_growing_delays_then_locks() {
        let policy = LockoutPolicy::default();
        let mut attempts = PopAttempts::default();
        let now = 1_000_000;
        let expected_delays = [0, 1_000, 2_000, 4_000, 8_000];
        for (i, delay) in expected_delays.iter().enumerate() {
            let (left, at, attempt) = admitted(policy.admit(&mut attempts, now));
            assert_eq!(attempt as usize, i + 1);
            assert_eq!(left as usize, 4 - i);
            assert_eq!(at - now, *delay);
        }
        assert_eq!(
            policy.admit(&mut attempts, now + 1),
            Admission::Locked {
                retry_after: Duration::from_millis(300_000 - 1)
            }
        );
        // After the lockout: a new round, and the next lockout is twice as long.
        let later = now + 300_000;
        let (left, _, attempt) = admitted(policy.admit(&mut attempts, later));
        assert_eq!((left, attempt), (4, 1));
        for _ in 0..4 {
            admitted(policy.admit(&mut attempts, later));
        }
        assert_eq!(
            policy.locked_for(&attempts, later),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn a_confirmed_session_resets_everything() {
        let policy = LockoutPolicy::default();
        let mut attempts = PopAttempts::default();
        for _ in 0..3 {
            policy.admit(&mut attempts, 0);
        }
        policy.confirmed(&mut attempts);
        assert_eq!(attempts, PopAttempts::default());
        let (left, at, _) = admitted(policy.admit(&mut attempts, 5));
        assert_eq!((left, at), (4, 5));
    }

    #[test]
    fn the_last_attempt_may_still_succeed() {
        let policy = LockoutPolicy {
            max_attempts: 2,
            ..LockoutPolicy::default()
        };
        let mut attempts = PopAttempts::default();
        admitted(policy.admit(&mut attempts, 0));
        let (left, _, _) = admitted(policy.admit(&mut attempts, 0));
        assert_eq!(left, 0);
        assert!(policy.locked_for(&attempts, 0).is_some());
        // Its ClientFinish proves the PoP: unlocked.
        policy.confirmed(&mut attempts);
        assert!(policy.locked_for(&attempts, 0).is_none());
    }

    #[test]
    fn delays_and_lockouts_are_capped() {
        let policy = LockoutPolicy::default();
        assert_eq!(policy.answer_delay(250), Duration::from_secs(16));
        assert_eq!(policy.lockout_length(40), Duration::from_secs(24 * 3600));
    }
}
