//! Long-running commands (scan, commission, batch, sign-in) by id, so the UI can cancel them.
//!
//! The UI chooses the id before it invokes the command, so it can cancel even before the
//! command has answered. An id is registered for exactly as long as its [`OperationGuard`] lives.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio_util::sync::CancellationToken;

use crate::error::ShellError;

/// The running operations.
#[derive(Debug, Clone, Default)]
pub struct Operations {
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

/// Keeps an operation registered; unregisters it when dropped.
#[derive(Debug)]
pub struct OperationGuard {
    id: String,
    token: CancellationToken,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl OperationGuard {
    /// The token that the operation's work watches.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

impl Drop for OperationGuard {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Operations {
    /// Registers `id`; fails if an operation with that id is running.
    pub fn start(&self, id: &str) -> Result<OperationGuard, ShellError> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.contains_key(id) {
            return Err(ShellError::OperationRunning(id.to_owned()));
        }
        let token = CancellationToken::new();
        running.insert(id.to_owned(), token.clone());
        Ok(OperationGuard {
            id: id.to_owned(),
            token,
            running: Arc::clone(&self.running),
        })
    }

    /// Cancels `id`.
    pub fn cancel(&self, id: &str) -> Result<(), ShellError> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let token = running
            .get(id)
            .ok_or_else(|| ShellError::UnknownOperation(id.to_owned()))?;
        token.cancel();
        Ok(())
    }

    /// Cancels everything (the window is closing).
    pub fn cancel_all(&self) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        for token in running.values() {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_while_running_and_freed_on_drop() {
        let operations = Operations::default();
        let guard = operations.start("a").unwrap();
        assert_eq!(
            operations.start("a").unwrap_err().to_string(),
            "operation a is already running"
        );
        operations.cancel("a").unwrap();
        assert!(guard.token().is_cancelled());
        drop(guard);
        assert!(matches!(
            operations.cancel("a"),
            Err(ShellError::UnknownOperation(_))
        ));
        assert!(operations.start("a").is_ok());
    }
}
