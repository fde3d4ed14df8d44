//! The `SecretStore` foreign trait (Android Keystore, iOS Keychain) and its adapter onto the
//! core's [`fieldlink_core::secrets::SecretStore`]. The core keeps sign-in tokens there.

use std::sync::Arc;

use fieldlink_core::secrets::{self as core_secrets, Secret, SecretError};

use crate::error::SecretStoreError;

/// The app's secure store. Entries are addressed by `(service, account)`; values are opaque
/// bytes that must never be logged. Calls are synchronous and come from a Rust runtime thread
/// (never the UI thread), so a blocking Keychain/Keystore call is fine.
#[uniffi::export(with_foreign)]
pub trait SecretStore: Send + Sync {
    /// The value stored under `(service, account)`, or `None`.
    fn get(&self, service: String, account: String) -> Result<Option<Vec<u8>>, SecretStoreError>;

    /// Stores `value`, replacing any previous one.
    fn set(&self, service: String, account: String, value: Vec<u8>)
    -> Result<(), SecretStoreError>;

    /// Deletes the entry; returns whether there was one.
    fn delete(&self, service: String, account: String) -> Result<bool, SecretStoreError>;

    /// Which store this is, for diagnostics (`"android keystore"`, `"ios keychain"`).
    fn describe(&self) -> String;
}

/// The core's store over an app's [`SecretStore`].
pub(crate) struct ForeignSecretStore(pub(crate) Arc<dyn SecretStore>);

impl std::fmt::Debug for ForeignSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ForeignSecretStore")
            .field(&self.0.describe())
            .finish()
    }
}

impl ForeignSecretStore {
    fn failure(&self, error: SecretStoreError) -> SecretError {
        match error {
            SecretStoreError::Unavailable { detail } => SecretError::KeyringUnavailable {
                backend: self.0.describe(),
                reason: detail,
            },
            SecretStoreError::Platform { detail } => SecretError::Platform { detail },
        }
    }
}

impl core_secrets::SecretStore for ForeignSecretStore {
    fn get(&self, service: &str, account: &str) -> Result<Secret, SecretError> {
        match self.0.get(service.to_owned(), account.to_owned()) {
            Ok(Some(bytes)) => Ok(Secret::new(bytes)),
            Ok(None) => Err(SecretError::NotFound {
                service: service.to_owned(),
                account: account.to_owned(),
            }),
            Err(error) => Err(self.failure(error)),
        }
    }

    fn set(&self, service: &str, account: &str, secret: &Secret) -> Result<(), SecretError> {
        self.0
            .set(
                service.to_owned(),
                account.to_owned(),
                secret.expose().to_vec(),
            )
            .map_err(|error| self.failure(error))
    }

    fn delete(&self, service: &str, account: &str) -> Result<(), SecretError> {
        match self.0.delete(service.to_owned(), account.to_owned()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(SecretError::NotFound {
                service: service.to_owned(),
                account: account.to_owned(),
            }),
            Err(error) => Err(self.failure(error)),
        }
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Mutex};

    use core_secrets::SecretStore as _;

    use super::*;

    #[derive(Default)]
    struct MapStore(Mutex<HashMap<(String, String), Vec<u8>>>, Mutex<bool>);

    impl SecretStore for MapStore {
        fn get(
            &self,
            service: String,
            account: String,
        ) -> Result<Option<Vec<u8>>, SecretStoreError> {
            if *self.1.lock().unwrap() {
                return Err(SecretStoreError::Unavailable {
                    detail: "device locked".into(),
                });
            }
            Ok(self.0.lock().unwrap().get(&(service, account)).cloned())
        }

        fn set(
            &self,
            service: String,
            account: String,
            value: Vec<u8>,
        ) -> Result<(), SecretStoreError> {
            self.0.lock().unwrap().insert((service, account), value);
            Ok(())
        }

        fn delete(&self, service: String, account: String) -> Result<bool, SecretStoreError> {
            Ok(self.0.lock().unwrap().remove(&(service, account)).is_some())
        }

        fn describe(&self) -> String {
            "test map".into()
        }
    }

    #[test]
    fn round_trips_through_the_core_trait_with_core_semantics() {
        let app = Arc::new(MapStore::default());
        let store = ForeignSecretStore(app.clone());
        assert_eq!(
            store.get("fieldlink", "acme").map_err(|e| e.code()),
            Err("not_found")
        );
        store
            .set("fieldlink", "acme", &Secret::from_text("refresh"))
            .unwrap();
        assert_eq!(
            store.get("fieldlink", "acme").unwrap(),
            Secret::from_text("refresh")
        );
        assert_eq!(
            core_secrets::get_optional(&store, "fieldlink", "other"),
            Ok(None)
        );
        store.delete("fieldlink", "acme").unwrap();
        assert_eq!(
            store.delete("fieldlink", "acme").map_err(|e| e.code()),
            Err("not_found")
        );
        *app.1.lock().unwrap() = true;
        let locked = store.get("fieldlink", "acme").unwrap_err();
        assert_eq!(locked.code(), "keyring_unavailable");
        assert!(locked.to_string().contains("test map"));
        assert_eq!(format!("{store:?}"), "ForeignSecretStore(\"test map\")");
    }
}
