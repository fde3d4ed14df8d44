//! A sans-I/O circuit breaker: closed → open after N consecutive failures → half-open after a
//! cool-down (one probe request goes through) → closed on the probe's success, open again on
//! its failure. Time is passed in as a monotonic [`Duration`] since any fixed origin.

use std::time::Duration;

/// When the breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures (unreachable, timed out, 5xx) that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before letting one probe through.
    pub cool_down: Duration,
    /// A probe that has not reported after this long is presumed lost (its caller was
    /// cancelled), and another probe may go.
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(15),
            probe_timeout: Duration::from_secs(30),
        }
    }
}

/// What the breaker currently does with requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through.
    Closed,
    /// Requests fail fast.
    Open,
    /// The cool-down is over: one probe may go through.
    HalfOpen,
}

/// Permission to send one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// The breaker is closed.
    Normal,
    /// The half-open probe: its outcome closes or re-opens the breaker.
    Probe,
}

/// Refused: the breaker is open (or its probe is in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// When a request may go through again (at the earliest).
    pub retry_in: Duration,
    /// Consecutive failures that opened the breaker.
    pub failures: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Duration,
        failures: u32,
    },
    HalfOpen {
        probe_since: Option<Duration>,
        failures: u32,
    },
}

/// The breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Inner,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Inner::Closed { failures: 0 },
        }
    }

    /// The state at `now` (an open breaker whose cool-down has passed reports half-open).
    pub fn state(&self, now: Duration) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until, .. } if now < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to send one request at `now`.
    pub fn try_acquire(&mut self, now: Duration) -> Result<Permit, Rejected> {
        match self.inner {
            Inner::Closed { .. } => Ok(Permit::Normal),
            Inner::Open { until, failures } if now < until => Err(Rejected {
                retry_in: until - now,
                failures,
            }),
            Inner::Open { failures, .. } => {
                self.inner = Inner::HalfOpen {
                    probe_since: Some(now),
                    failures,
                };
                Ok(Permit::Probe)
            }
            Inner::HalfOpen {
                probe_since: Some(since),
                failures,
            } if now.saturating_sub(since) < self.config.probe_timeout => Err(Rejected {
                retry_in: self.config.probe_timeout - now.saturating_sub(since),
                failures,
            }),
            Inner::HalfOpen { failures, .. } => {
                self.inner = Inner::HalfOpen {
                    probe_since: Some(now),
                    failures,
                };
                Ok(Permit::Probe)
            }
        }
    }

    /// The API answered (any answer that is not a 5xx): the breaker closes.
    pub fn on_success(&mut self) {
        self.inner = Inner::Closed { failures: 0 };
    }

    /// The API was unreachable, timed out or answered 5xx at `now`.
    pub fn on_failure(&mut self, now: Duration) {
        self.inner = match self.inner {
            Inner::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold.max(1) {
                    self.open(now, failures)
                } else {
                    Inner::Closed { failures }
                }
            }
            // A failed probe, or a late failure of a request sent before the breaker opened.
            Inner::HalfOpen { failures, .. } | Inner::Open { failures, .. } => {
                self.open(now, failures.saturating_add(1))
            }
        };
    }

    fn open(&self, now: Duration, failures: u32) -> Inner {
        Inner::Open {
            until: now.saturating_add(self.config.cool_down),
            failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL_DOWN: Duration = Duration::from_secs(10);

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            cool_down: COOL_DOWN,
            probe_timeout: Duration::from_secs(5),
        })
    }

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let mut b = breaker();
        b.on_failure(at(0));
        b.on_failure(at(0));
        b.on_success();
        b.on_failure(at(1));
        b.on_failure(at(1));
        assert_eq!(
            b.state(at(1)),
            BreakerState::Closed,
            "a success reset the count"
        );
        assert_eq!(b.try_acquire(at(1)), Ok(Permit::Normal));
        b.on_failure(at(2));
        assert_eq!(b.state(at(2)), BreakerState::Open);
        assert_eq!(
            b.try_acquire(at(5)),
            Err(Rejected {
                retry_in: at(7),
                failures: 3
            })
        );
    }

    #[test]
    fn half_opens_after_the_cool_down_with_a_single_probe() {
        let mut b = breaker();
        for _ in 0..3 {
            b.on_failure(at(0));
        }
        assert_eq!(b.state(at(9)), BreakerState::Open);
        assert_eq!(b.state(at(10)), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire(at(10)), Ok(Permit::Probe));
        let second = b.try_acquire(at(11));
        assert!(second.is_err(), "one probe at a time: {second:?}");
        b.on_success();
        assert_eq!(b.state(at(11)), BreakerState::Closed);
        assert_eq!(b.try_acquire(at(11)), Ok(Permit::Normal));
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cool_down() {
        let mut b = breaker();
        for _ in 0..3 {
            b.on_failure(at(0));
        }
        assert_eq!(b.try_acquire(at(12)), Ok(Permit::Probe));
        b.on_failure(at(13));
        assert_eq!(b.state(at(13)), BreakerState::Open);
        assert_eq!(
            b.try_acquire(at(20)),
            Err(Rejected {
                retry_in: at(3),
                failures: 4
            })
        );
        assert_eq!(b.try_acquire(at(23)), Ok(Permit::Probe));
    }

    #[test]
    fn a_lost_probe_does_not_wedge_the_breaker() {
        let mut b = breaker();
        for _ in 0..3 {
            b.on_failure(at(0));
        }
        assert_eq!(b.try_acquire(at(10)), Ok(Permit::Probe));
        // The probe's caller was cancelled and never reported.
        assert!(b.try_acquire(at(14)).is_err());
        assert_eq!(b.try_acquire(at(15)), Ok(Permit::Probe));
    }

    #[test]
    fn a_zero_threshold_still_needs_one_failure() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 0,
            ..BreakerConfig::default()
        });
        assert_eq!(b.try_acquire(at(0)), Ok(Permit::Normal));
        b.on_failure(at(0));
        assert_eq!(b.state(at(0)), BreakerState::Open);
    }
}
