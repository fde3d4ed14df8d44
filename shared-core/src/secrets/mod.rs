//! Where the installer keeps its secrets (sign-in tokens, and anything else that must never be
//! written in plaintext): the [`SecretStore`] trait and its implementations.
//!
//! - [`KeyringStore`]: the operating system's store — Linux kernel keyutils or the Secret
//!   Service (GNOME Keyring, KWallet), the macOS/iOS Keychain, the Windows Credential Manager.
//!   When none is usable it fails with [`SecretError::KeyringUnavailable`]; it never falls back
//!   to a file.
//! - [`MemoryStore`]: process memory, for tests and for shells that must not persist anything.
//! - [`EncryptedFileStore`]: opt-in only, a file sealed with ChaCha20-Poly1305 under a key
//!   derived from a passphrase with Argon2id (headless machines without a keyring).
//! - A mobile shell supplies its own implementation (Android Keystore, iOS Keychain) through
//!   the bindings: the trait is object-safe, synchronous and `Send + Sync`, with plain string
//!   keys and byte values, so a uniffi foreign trait maps onto it one to one.
//!
//! Entries are addressed by `(service, account)`, the vocabulary every OS store uses.

mod encrypted_file;
mod memory;
mod os_keyring;

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use encrypted_file::EncryptedFileStore;
pub use memory::MemoryStore;
pub use os_keyring::{KeyringBackend, KeyringStore};

/// What a secret's `Debug` prints.
pub const REDACTED: &str = "<redacted>";

/// Secret bytes: `Debug` prints `"<redacted>"`, equality is constant-time, and the memory is
/// zeroed on drop.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps `bytes`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }

    /// Wraps a text secret.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self::new(text.into().into_bytes())
    }

    /// The secret bytes. Call this only where the value is actually used.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as UTF-8 text.
    pub fn expose_str(&self) -> Result<&str, SecretError> {
        std::str::from_utf8(&self.0).map_err(|_| SecretError::Platform {
            detail: "the stored secret is not UTF-8 text".to_owned(),
        })
    }

    /// Length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for Secret {}

/// Why a secret could not be read, written or deleted (public tier: stable codes, actionable
/// messages, never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No usable secure store on this machine (no session keyring, no Secret Service daemon,
    /// locked keychain, unsupported platform). Nothing was written anywhere.
    #[error("no usable keyring ({backend}): {reason}")]
    KeyringUnavailable {
        /// The store that was tried.
        backend: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// No entry for this service and account.
    #[error("no secret stored for {account:?} in {service:?}")]
    NotFound {
        /// Service name.
        service: String,
        /// Account name.
        account: String,
    },
    /// The store refused the value as too large.
    #[error("the secret is too large for this store (limit {limit} bytes)")]
    TooLarge {
        /// The store's limit.
        limit: u32,
    },
    /// The passphrase does not open the encrypted file store (or the file was tampered with).
    #[error("wrong passphrase, or the secrets file was modified")]
    WrongPassphrase,
    /// Any other failure of the underlying store.
    #[error("secret store failure: {detail}")]
    Platform {
        /// Secret-free description.
        detail: String,
    },
}

impl SecretError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyringUnavailable { .. } => "keyring_unavailable",
            Self::NotFound { .. } => "not_found",
            Self::TooLarge { .. } => "too_large",
            Self::WrongPassphrase => "wrong_passphrase",
            Self::Platform { .. } => "platform",
        }
    }

    pub(crate) fn not_found(service: &str, account: &str) -> Self {
        Self::NotFound {
            service: service.to_owned(),
            account: account.to_owned(),
        }
    }
}

/// A store of secrets addressed by `(service, account)`.
///
/// Implementations are synchronous (OS stores are blocking calls; async callers use
/// `spawn_blocking`), object-safe and shareable across threads.
pub trait SecretStore: Send + Sync {
    /// The secret stored under `(service, account)`, or [`SecretError::NotFound`].
    fn get(&self, service: &str, account: &str) -> Result<Secret, SecretError>;

    /// Stores `secret` under `(service, account)`, replacing any previous value.
    fn set(&self, service: &str, account: &str, secret: &Secret) -> Result<(), SecretError>;

    /// Deletes the entry; [`SecretError::NotFound`] when there was none.
    fn delete(&self, service: &str, account: &str) -> Result<(), SecretError>;

    /// Which store this is, for diagnostics ("linux keyutils", "memory", ...).
    fn describe(&self) -> String;
}

/// `store.get`, with "not found" as `None`.
pub fn get_optional(
    store: &dyn SecretStore,
    service: &str,
    account: &str,
) -> Result<Option<Secret>, SecretError> {
    match store.get(service, account) {
        Ok(secret) => Ok(Some(secret)),
        Err(SecretError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// `store.delete`, treating "not found" as done.
pub fn delete_if_present(
    store: &dyn SecretStore,
    service: &str,
    account: &str,
) -> Result<(), SecretError> {
    match store.delete(service, account) {
        Ok(()) | Err(SecretError::NotFound { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let secret = Secret::from_text("hunter2-refresh-token");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&secret)), "Some(<redacted>)");
        assert_eq!(secret.expose_str(), Ok("hunter2-refresh-token"));
        assert_eq!(secret.len(), 21);
    }

    #[test]
    fn equality_compares_contents() {
        assert_eq!(Secret::from_text("a"), Secret::new(b"a".to_vec()));
        assert_ne!(Secret::from_text("a"), Secret::from_text("b"));
        assert_ne!(Secret::from_text("a"), Secret::from_text("ab"));
    }

    #[test]
    fn non_utf8_is_a_platform_error() {
        let secret = Secret::new(vec![0xff, 0xfe]);
        assert_eq!(secret.expose_str().map_err(|e| e.code()), Err("platform"));
    }

    #[test]
    fn codes_are_stable() {
        let unavailable = SecretError::KeyringUnavailable {
            backend: "linux keyutils".into(),
            reason: "x".into(),
        };
        assert_eq!(unavailable.code(), "keyring_unavailable");
        assert_eq!(SecretError::not_found("s", "a").code(), "not_found");
        assert_eq!(SecretError::TooLarge { limit: 1 }.code(), "too_large");
        assert_eq!(SecretError::WrongPassphrase.code(), "wrong_passphrase");
        assert_eq!(
            SecretError::Platform { detail: "x".into() }.code(),
            "platform"
        );
    }

    #[test]
    fn optional_helpers() {
        let store = MemoryStore::new();
        assert_eq!(get_optional(&store, "s", "a"), Ok(None));
        assert_eq!(delete_if_present(&store, "s", "a"), Ok(()));
        store
            .set("s", "a", &Secret::from_text("v"))
            .expect("memory set");
        assert_eq!(
            get_optional(&store, "s", "a"),
            Ok(Some(Secret::from_text("v")))
        );
    }
}
