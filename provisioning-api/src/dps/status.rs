//! Registration status through the DPS service API, within DPS's limits: answers are cached
//! briefly; concurrent look-ups of one device share one DPS call; 429 and 5xx are retried with
//! full-jitter backoff that honours `Retry-After`, within a deadline; and once DPS throttles an
//! instance, callers get `dps_throttled` with the remaining wait instead of adding load until
//! the `Retry-After` has passed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use super::{DpsServiceClient, DpsServiceError, DpsServiceTarget, RegistrationLookup};
use crate::{backoff::Backoff, clock::Clock};

/// Look-up behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationStatusConfig {
    /// How long an answer is served from cache.
    pub cache_ttl: Duration,
    /// Total time budget of one look-up, retries included.
    pub deadline: Duration,
    /// DPS calls per look-up at most.
    pub max_attempts: u32,
    /// Retry backoff.
    pub backoff: Backoff,
    /// Cache entries kept at most (expired entries are swept when full).
    pub max_cache_entries: usize,
}

impl Default for RegistrationStatusConfig {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(3),
            deadline: Duration::from_secs(5),
            max_attempts: 3,
            backoff: Backoff {
                base: Duration::from_millis(200),
                cap: Duration::from_secs(2),
            },
            max_cache_entries: 100_000,
        }
    }
}

/// A look-up answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusAnswer {
    /// What DPS said.
    pub lookup: RegistrationLookup,
    /// When DPS said it, unix ms.
    pub fetched_at_ms: i64,
    /// Served from cache.
    pub cached: bool,
}

/// Why no answer could be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// DPS is throttling this instance.
    #[error("DPS is throttling look-ups on this instance")]
    Throttled {
        /// How long until DPS accepts look-ups again.
        retry_after: Duration,
    },
    /// DPS did not answer in time.
    #[error("DPS is unavailable: {message}")]
    Unavailable {
        /// Suggested wait.
        retry_after: Duration,
        /// Last failure.
        message: String,
    },
    /// DPS refused our service credentials.
    #[error("DPS refused the API's service credentials")]
    CredentialsRejected,
    /// DPS answered something we do not understand.
    #[error("unexpected DPS answer: {0}")]
    Unexpected(String),
}

type Key = (String, String);

struct Cached {
    answer: StatusAnswer,
    until: Instant,
}

/// The cached, throttle-aware look-up service.
pub struct RegistrationStatus {
    client: Arc<dyn DpsServiceClient>,
    clock: Arc<dyn Clock>,
    config: RegistrationStatusConfig,
    cache: Mutex<HashMap<Key, Cached>>,
    throttled_until: Mutex<HashMap<String, Instant>>,
    in_flight: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for RegistrationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationStatus")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl RegistrationStatus {
    /// A look-up service over `client`.
    pub fn new(
        client: Arc<dyn DpsServiceClient>,
        clock: Arc<dyn Clock>,
        config: RegistrationStatusConfig,
    ) -> Self {
        Self {
            client,
            clock,
            config,
            cache: Mutex::new(HashMap::new()),
            throttled_until: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &Key, now: Instant) -> Option<StatusAnswer> {
        lock(&self.cache)
            .get(key)
            .filter(|c| c.until > now)
            .map(|c| StatusAnswer {
                cached: true,
                ..c.answer.clone()
            })
    }

    fn remember(&self, key: Key, answer: &StatusAnswer) {
        let now = Instant::now();
        let mut cache = lock(&self.cache);
        if cache.len() >= self.config.max_cache_entries {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= self.config.max_cache_entries {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                answer: answer.clone(),
                until: now + self.config.cache_ttl,
            },
        );
    }

    fn throttle_remaining(&self, instance: &str, now: Instant) -> Option<Duration> {
        lock(&self.throttled_until)
            .get(instance)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    fn note_throttle(&self, instance: &str, wait: Duration) {
        let until = Instant::now() + wait;
        let mut map = lock(&self.throttled_until);
        let entry = map.entry(instance.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// The registration state of `registration_id` on `target`.
    pub async fn lookup(
        &self,
        target: &DpsServiceTarget,
        registration_id: &str,
    ) -> Result<StatusAnswer, StatusError> {
        let key = (target.instance.clone(), registration_id.to_owned());
        if let Some(answer) = self.cached(&key, Instant::now()) {
            return Ok(answer);
        }
        let gate = lock(&self.in_flight)
            .entry(key.clone())
            .or_default()
            .clone();
        let result = {
            let _turn = gate.lock().await;
            match self.cached(&key, Instant::now()) {
                Some(answer) => Ok(answer),
                None => self.fetch(target, registration_id, key.clone()).await,
            }
        };
        let mut in_flight = lock(&self.in_flight);
        if Arc::strong_count(&gate) <= 2 {
            in_flight.remove(&key);
        }
        result
    }

    async fn fetch(
        &self,
        target: &DpsServiceTarget,
        registration_id: &str,
        key: Key,
    ) -> Result<StatusAnswer, StatusError> {
        let started = Instant::now();
        let deadline = started + self.config.deadline;
        let mut last_message = String::new();
        let mut last_wait = self.config.backoff.base;
        for attempt in 0..self.config.max_attempts.max(1) {
            if let Some(wait) = self.throttle_remaining(&target.instance, Instant::now()) {
                if Instant::now() + wait > deadline {
                    return Err(StatusError::Throttled { retry_after: wait });
                }
                tokio::time::sleep(wait).await;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let call =
                self.client
                    .registration_state(target, registration_id, self.clock.now_unix());
            let (server_wait, throttled) = match tokio::time::timeout(remaining, call).await {
                Ok(Ok(lookup)) => {
                    let answer = StatusAnswer {
                        lookup,
                        fetched_at_ms: self.clock.now_ms(),
                        cached: false,
                    };
                    self.remember(key, &answer);
                    return Ok(answer);
                }
                Ok(Err(DpsServiceError::Throttled { retry_after })) => {
                    let wait = retry_after.unwrap_or(self.config.backoff.base);
                    self.note_throttle(&target.instance, wait);
                    last_message = "DPS answered 429".to_owned();
                    (Some(wait), true)
                }
                Ok(Err(DpsServiceError::Unavailable {
                    retry_after,
                    message,
                })) => {
                    last_message = message;
                    (retry_after, false)
                }
                Ok(Err(DpsServiceError::CredentialsRejected { .. })) => {
                    return Err(StatusError::CredentialsRejected);
                }
                Ok(Err(DpsServiceError::Unexpected { message })) => {
                    return Err(StatusError::Unexpected(message));
                }
                Err(_) => {
                    last_message = "DPS did not answer before the deadline".to_owned();
                    (None, false)
                }
            };
            let wait = self
                .config
                .backoff
                .wait(attempt, server_wait, &mut rand::thread_rng());
            last_wait = wait;
            let last_attempt = attempt + 1 >= self.config.max_attempts.max(1);
            if last_attempt || Instant::now() + wait >= deadline {
                return Err(if throttled {
                    StatusError::Throttled { retry_after: wait }
                } else {
                    StatusError::Unavailable {
                        retry_after: wait,
                        message: last_message,
                    }
                });
            }
            tokio::time::sleep(wait).await;
        }
        Err(StatusError::Unavailable {
            retry_after: last_wait,
            message: last_message,
        })
    }
}

#[cfg(test)]
mod tests;
