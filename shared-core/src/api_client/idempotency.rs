//! `Idempotency-Key`s for `POST /v1/assignments`.
//!
//! A key is derived from a commissioning attempt's id and the device's registration ID, so the
//! same attempt always sends the same key, across retries and even across restarts when the
//! attempt id is persisted (the journal's attempt id, for example). [`AttemptKeys`] keeps the
//! current attempt per device for callers that only know the registration ID (the
//! [`AssignmentSource`](crate::assignment::AssignmentSource) trait): the key is reused until an
//! assignment is handed out, the API refuses the request for good, or the attempt grows stale.

use std::{collections::HashMap, fmt, sync::Mutex, time::Duration};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The value of an `Idempotency-Key` header (not a secret).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of commissioning attempt `attempt_id` for `registration_id`:
    /// `fl1-` + the first 32 hex digits of SHA-256 over both (domain-separated).
    pub fn for_attempt(attempt_id: &str, registration_id: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"fieldlink assignment attempt v1\0");
        hasher.update((attempt_id.len() as u64).to_be_bytes());
        hasher.update(attempt_id.as_bytes());
        hasher.update(registration_id.as_bytes());
        let digest = hasher.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("fl1-{hex}"))
    }

    /// A key for a fresh, random attempt id.
    pub fn new_attempt(registration_id: &str) -> Self {
        Self::for_attempt(&new_attempt_id(), registration_id)
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 128 random bits, hex.
fn new_attempt_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Most unfinished attempts remembered (the oldest is forgotten beyond it).
const MAX_ATTEMPTS: usize = 10_000;

/// The unfinished assignment attempt of each device.
#[derive(Debug)]
pub(crate) struct AttemptKeys {
    ttl: Duration,
    attempts: Mutex<HashMap<String, (IdempotencyKey, Duration)>>,
}

impl AttemptKeys {
    /// Attempts go stale `ttl` after they started.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// The key of `registration_id`'s unfinished attempt, or of a new one, at `now`.
    pub(crate) fn current(&self, registration_id: &str, now: Duration) -> IdempotencyKey {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((key, started)) = attempts.get(registration_id)
            && now.saturating_sub(*started) < self.ttl
        {
            return key.clone();
        }
        let ttl = self.ttl;
        attempts.retain(|_, (_, started)| now.saturating_sub(*started) < ttl);
        if attempts.len() >= MAX_ATTEMPTS
            && let Some(oldest) = attempts
                .iter()
                .min_by_key(|(_, (_, started))| *started)
                .map(|(id, _)| id.clone())
        {
            attempts.remove(&oldest);
        }
        let key = IdempotencyKey::new_attempt(registration_id);
        attempts.insert(registration_id.to_owned(), (key.clone(), now));
        key
    }

    /// The attempt that used `key` is over (success, or a definitive refusal): the next call
    /// starts a new one.
    pub(crate) fn finish(&self, registration_id: &str, key: &IdempotencyKey) {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if attempts
            .get(registration_id)
            .is_some_and(|(current, _)| current == key)
        {
            attempts.remove(registration_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn derived_keys_are_stable_distinct_and_valid_header_values() {
        let a = IdempotencyKey::for_attempt("attempt-1", "sensor-1");
        assert_eq!(a, IdempotencyKey::for_attempt("attempt-1", "sensor-1"));
        assert_ne!(a, IdempotencyKey::for_attempt("attempt-2", "sensor-1"));
        assert_ne!(a, IdempotencyKey::for_attempt("attempt-1", "sensor-2"));
        // Length-prefixed: moving characters between the two inputs changes the key.
        assert_ne!(
            IdempotencyKey::for_attempt("ab", "c"),
            IdempotencyKey::for_attempt("a", "bc")
        );
        assert_eq!(a.as_str().len(), 36);
        assert!(a.as_str().chars().all(|c| c.is_ascii_graphic()));
        assert_ne!(
            IdempotencyKey::new_attempt("sensor-1"),
            IdempotencyKey::new_attempt("sensor-1")
        );
    }

    #[test]
    fn an_attempt_key_is_reused_until_finished_or_stale() {
        let keys = AttemptKeys::new(at(600));
        let first = keys.current("sensor-1", at(0));
        assert_eq!(keys.current("sensor-1", at(30)), first, "a retry reuses it");
        assert_ne!(keys.current("sensor-2", at(30)), first, "per device");
        keys.finish("sensor-1", &first);
        let second = keys.current("sensor-1", at(31));
        assert_ne!(second, first, "a new attempt after success");
        assert_ne!(keys.current("sensor-1", at(631)), second, "stale");
    }

    #[test]
    fn finishing_an_old_key_leaves_the_newer_attempt_alone() {
        let keys = AttemptKeys::new(at(600));
        let old = keys.current("sensor-1", at(0));
        keys.finish("sensor-1", &old);
        let new = keys.current("sensor-1", at(1));
        keys.finish("sensor-1", &old);
        assert_eq!(keys.current("sensor-1", at(2)), new);
    }
}
