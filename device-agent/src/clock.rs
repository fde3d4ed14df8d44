//! Time, injectable. The state machine takes `now_ms` as an input; the async driver, the DPS
//! client and the fail-safe timer read and wait on a [`Clock`], so tests can move time by hand
//! ([`ManualClock`]) or run under tokio's paused time ([`TokioClock`]) without real sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A boxed sleep future.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Wall-clock time in Unix milliseconds, and a way to wait for a moment of it.
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// A future that completes once `now_ms() >= deadline_ms`.
    fn sleep_until(&self, deadline_ms: u64) -> Sleep;

    /// A future that completes after `duration` of this clock's time.
    fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.now_ms().saturating_add(duration_ms(duration));
        self.sleep_until(deadline)
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Converts a duration to whole milliseconds, saturating.
pub fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The system's wall clock, advanced by tokio's monotonic time: the Unix time is read once at
/// creation and then follows `tokio::time::Instant`. Under `tokio::time::pause()` it therefore
/// jumps with tokio's auto-advance, which keeps long fail-safe windows instant in tests.
#[derive(Debug, Clone)]
pub struct TokioClock {
    base_unix_ms: u64,
    base_instant: tokio::time::Instant,
}

impl TokioClock {
    /// Anchors a clock at the current system time. Must be called inside a tokio runtime only if
    /// the caller wants paused time to apply; it works outside one too.
    pub fn new() -> Self {
        let base_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(duration_ms)
            .unwrap_or(0);
        Self::starting_at(base_unix_ms)
    }

    /// Anchors a clock at a chosen Unix time (for reproducible tests).
    pub fn starting_at(base_unix_ms: u64) -> Self {
        Self {
            base_unix_ms,
            base_instant: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.base_unix_ms
            .saturating_add(duration_ms(self.base_instant.elapsed()))
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep {
        let offset = Duration::from_millis(deadline_ms.saturating_sub(self.base_unix_ms));
        let at = self.base_instant.checked_add(offset);
        Box::pin(async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        })
    }
}

/// A clock that moves only when told to. Sleepers wake when [`ManualClock::advance`] or
/// [`ManualClock::set_ms`] passes their deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<u64>>,
}

impl ManualClock {
    /// A clock standing at `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        let (now, _) = watch::channel(start_ms);
        Self { now: Arc::new(now) }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        let by = duration_ms(by);
        self.now.send_modify(|now| *now = now.saturating_add(by));
    }

    /// Sets the time (never backwards).
    pub fn set_ms(&self, to_ms: u64) {
        self.now.send_modify(|now| *now = (*now).max(to_ms));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; if it is gone, nobody can move
            // time any more and the sleeper waits forever, like a real sleep that never ends.
            if rx.wait_for(|now| *now >= deadline_ms).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_on_advance() {
        let clock = ManualClock::new(1_000);
        let sleeper = tokio::spawn(clock.sleep(Duration::from_secs(120)));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(119));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        sleeper.await.unwrap();
        assert_eq!(clock.now_ms(), 121_000);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock::starting_at(5_000);
        clock.sleep(Duration::from_secs(3600)).await;
        assert!(clock.now_ms() >= 5_000 + 3_600_000);
    }
}
