//! Exact sliding-window rate limiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Admits at most `limit` events in any `window`; remembers at most `limit` timestamps.
#[derive(Debug, Clone, Default)]
pub struct SlidingWindow {
    events: VecDeque<Instant>,
}

impl SlidingWindow {
    /// Records an event at `now` if fewer than `limit` happened in the last `window`; otherwise
    /// returns how long until one more would be admitted.
    pub fn try_admit(
        &mut self,
        now: Instant,
        limit: u32,
        window: Duration,
    ) -> Result<(), Duration> {
        self.forget_before(now, window);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if self.events.len() < limit {
            self.events.push_back(now);
            return Ok(());
        }
        let oldest = self.events.front().copied().unwrap_or(now);
        Err((oldest + window).saturating_duration_since(now))
    }

    /// Events inside the window ending at `now`.
    pub fn count(&mut self, now: Instant, window: Duration) -> usize {
        self.forget_before(now, window);
        self.events.len()
    }

    /// Records an event without a limit (for counting only).
    pub fn record(&mut self, now: Instant, window: Duration) {
        self.forget_before(now, window);
        self.events.push_back(now);
    }

    /// Whether nothing happened inside the window ending at `now`.
    pub fn is_idle(&mut self, now: Instant, window: Duration) -> bool {
        self.count(now, window) == 0
    }

    fn forget_before(&mut self, now: Instant, window: Duration) {
        while let Some(&front) = self.events.front() {
            if now.saturating_duration_since(front) >= window {
                self.events.pop_front();
            } else {
                break;
            }
        }
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_then_reports_the_wait() {
        let start = Instant::now();
        let window = Duration::from_secs(10);
        let mut limiter = SlidingWindow::default();
        for i in 0..5 {
            limiter
                .try_admit(start + Duration::from_secs(i), 5, window)
                .unwrap();
        }
        let wait = limiter
            .try_admit(start + Duration::from_secs(5), 5, window)
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(5));
        // Once the first event leaves the window, one more is admitted.
        limiter
            .try_admit(start + Duration::from_secs(10), 5, window)
            .unwrap();
        assert!(
            limiter
                .try_admit(start + Duration::from_secs(10), 5, window)
                .is_err()
        );
    }

    #[test]
    fn zero_limit_never_admits() {
        let mut limiter = SlidingWindow::default();
        assert!(
            limiter
                .try_admit(Instant::now(), 0, Duration::from_secs(1))
                .is_err()
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(4001)), 5);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
