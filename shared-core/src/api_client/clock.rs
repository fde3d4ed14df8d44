//! The client's sense of time: a monotonic "now" for deadlines and the breaker, and the sleep
//! between retries. Injected so tests can skip a server's `Retry-After` without waiting.

use std::time::Duration;

use futures::{FutureExt, future::BoxFuture};

/// Monotonic time and sleeping.
pub trait ClientClock: Send + Sync {
    /// Time since a fixed origin (never goes backwards).
    fn now(&self) -> Duration;

    /// Waits for `delay`.
    fn sleep(&self, delay: Duration) -> BoxFuture<'static, ()>;
}

/// `tokio::time` (honours a paused test runtime).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientClock for TokioClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, delay: Duration) -> BoxFuture<'static, ()> {
        tokio::time::sleep(delay).boxed()
    }
}
