//! Secrets in process memory: tests, and shells that must not persist anything.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use super::{Secret, SecretError, SecretStore};

type Entries = HashMap<(String, String), Secret>;

/// A [`SecretStore`] in memory. Unlike the keyring crate's mock, every handle to one store sees
/// the same entries, so it behaves like a real store in tests.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
    failure: Mutex<Option<SecretError>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later call fail with `error` (tests of error paths); `None` heals it.
    pub fn fail_with(&self, error: Option<SecretError>) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self) -> Result<(), SecretError> {
        match self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

fn key(service: &str, account: &str) -> (String, String) {
    (service.to_owned(), account.to_owned())
}

impl SecretStore for MemoryStore {
    fn get(&self, service: &str, account: &str) -> Result<Secret, SecretError> {
        self.check()?;
        self.lock()
            .get(&key(service, account))
            .cloned()
            .ok_or_else(|| SecretError::not_found(service, account))
    }

    fn set(&self, service: &str, account: &str, secret: &Secret) -> Result<(), SecretError> {
        self.check()?;
        self.lock().insert(key(service, account), secret.clone());
        Ok(())
    }

    fn delete(&self, service: &str, account: &str) -> Result<(), SecretError> {
        self.check()?;
        self.lock()
            .remove(&key(service, account))
            .map(|_| ())
            .ok_or_else(|| SecretError::not_found(service, account))
    }

    fn describe(&self) -> String {
        "memory (not persisted)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_replace_delete() {
        let store = MemoryStore::new();
        let secret = Secret::from_text("token-1");
        store.set("svc", "acct", &secret).expect("set");
        assert_eq!(store.get("svc", "acct"), Ok(secret));
        store
            .set("svc", "acct", &Secret::from_text("token-2"))
            .expect("replace");
        assert_eq!(store.get("svc", "acct"), Ok(Secret::from_text("token-2")));
        assert_eq!(
            store.get("svc", "other").map_err(|e| e.code()),
            Err("not_found")
        );
        store.delete("svc", "acct").expect("delete");
        assert_eq!(
            store.delete("svc", "acct").map_err(|e| e.code()),
            Err("not_found")
        );
        assert!(store.is_empty());
    }

    #[test]
    fn injected_failure_and_debug() {
        let store = MemoryStore::new();
        store
            .set("svc", "acct", &Secret::from_text("do-not-print"))
            .expect("set");
        assert!(!format!("{store:?}").contains("do-not-print"));
        store.fail_with(Some(SecretError::KeyringUnavailable {
            backend: "test".into(),
            reason: "locked".into(),
        }));
        assert_eq!(
            store.get("svc", "acct").map_err(|e| e.code()),
            Err("keyring_unavailable")
        );
        store.fail_with(None);
        assert!(store.get("svc", "acct").is_ok());
    }
}
