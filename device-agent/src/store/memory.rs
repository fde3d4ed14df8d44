//! In-memory state store for the virtual fleet and for tests.

use std::sync::{Arc, Mutex};

use super::{PersistedState, StateStore, StoreError};

/// A [`StateStore`] held in memory. Clones share the same state, so a test can "restart" a
/// device by building a new agent over a clone of its store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<Option<PersistedState>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `state`.
    pub fn with_state(state: PersistedState) -> Self {
        Self {
            state: Arc::new(Mutex::new(Some(state))),
        }
    }

    /// A copy of the current state (for assertions).
    pub fn snapshot(&self) -> Option<PersistedState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl StateStore for MemoryStore {
    fn load(&self) -> Result<Option<PersistedState>, StoreError> {
        Ok(self.snapshot())
    }

    fn save(&self, state: &PersistedState) -> Result<(), StoreError> {
        *self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(state.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::sample_state;

    #[test]
    fn clones_share_state() {
        let store = MemoryStore::new();
        let other = store.clone();
        assert!(other.load().unwrap().is_none());
        store.save(&sample_state()).unwrap();
        assert_eq!(other.load().unwrap(), Some(sample_state()));
    }
}
