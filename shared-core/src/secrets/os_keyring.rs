//! The operating system's secret store, through the `keyring` crate, chosen explicitly (never the
//! crate's silent in-memory mock) and probed before use.

use keyring::Entry;

use super::{Secret, SecretError, SecretStore};

/// Which OS store a [`KeyringStore`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyringBackend {
    /// Linux kernel keyutils: the process's session keyring, linked into the user's persistent
    /// keyring. Needs a session keyring (a login session, or `keyctl session -`); survives the
    /// session (for the kernel's persistent-keyring expiry, days) but not a reboot.
    LinuxKeyutils,
    /// The freedesktop Secret Service over D-Bus (GNOME Keyring, KWallet): persistent, needs a
    /// running daemon on the session bus.
    SecretService,
    /// The platform's own store: macOS/iOS Keychain, Windows Credential Manager.
    PlatformNative,
}

impl KeyringBackend {
    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::LinuxKeyutils => "linux keyutils",
            Self::SecretService => "secret service",
            Self::PlatformNative => platform_native_name(),
        }
    }
}

fn platform_native_name() -> &'static str {
    if cfg!(target_os = "macos") || cfg!(target_os = "ios") {
        "keychain"
    } else if cfg!(target_os = "windows") {
        "windows credential manager"
    } else {
        "platform keyring"
    }
}

const KEYUTILS_ADVICE: &str = "this process has no session keyring (usual for CI jobs, cron, \
     containers and system services): run it under `keyctl session -` (package keyutils), log in \
     through PAM with pam_keyinit, or opt in to the passphrase-encrypted file store";

/// A [`SecretStore`] over the OS keyring.
#[derive(Debug, Clone)]
pub struct KeyringStore {
    backend: KeyringBackend,
}

impl KeyringStore {
    /// The best usable store on this machine: on Linux the Secret Service when a daemon
    /// answers, else keyutils when the process has a session keyring; elsewhere the platform
    /// store. Fails with [`SecretError::KeyringUnavailable`] (saying what to do) when none is
    /// usable; it never falls back to plaintext.
    pub fn open() -> Result<Self, SecretError> {
        let candidates: &[KeyringBackend] = if cfg!(target_os = "linux") {
            &[KeyringBackend::SecretService, KeyringBackend::LinuxKeyutils]
        } else if cfg!(any(target_os = "freebsd", target_os = "openbsd")) {
            &[KeyringBackend::SecretService]
        } else {
            &[KeyringBackend::PlatformNative]
        };
        let mut reasons = Vec::new();
        for &backend in candidates {
            if backend == KeyringBackend::SecretService
                && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none()
            {
                reasons.push("secret service: no D-Bus session bus".to_owned());
                continue;
            }
            match Self::with_backend(backend) {
                Ok(store) => return Ok(store),
                Err(error) => reasons.push(error.to_string()),
            }
        }
        Err(SecretError::KeyringUnavailable {
            backend: candidates
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(", "),
            reason: reasons.join("; "),
        })
    }

    /// Uses `backend`, after checking it works here (a probe entry is written, read back and
    /// deleted for keyutils; a missing entry is looked up for the others).
    pub fn with_backend(backend: KeyringBackend) -> Result<Self, SecretError> {
        let store = Self { backend };
        store.probe()?;
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> KeyringBackend {
        self.backend
    }

    fn unavailable(&self, reason: impl Into<String>) -> SecretError {
        SecretError::KeyringUnavailable {
            backend: self.backend.name().to_owned(),
            reason: reason.into(),
        }
    }

    fn probe(&self) -> Result<(), SecretError> {
        let account = format!(
            "probe-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        match self.backend {
            KeyringBackend::LinuxKeyutils => {
                let value = Secret::from_text("fieldlink keyring probe");
                self.set("fieldlink-probe", &account, &value)?;
                let read = self.get("fieldlink-probe", &account);
                let _ = self.delete("fieldlink-probe", &account);
                match read {
                    Ok(read) if read == value => Ok(()),
                    Ok(_) => Err(self.unavailable("the probe entry read back differently")),
                    Err(_) => Err(self.unavailable(KEYUTILS_ADVICE)),
                }
            }
            KeyringBackend::SecretService | KeyringBackend::PlatformNative => {
                match self.get("fieldlink-probe", &account) {
                    Ok(_) | Err(SecretError::NotFound { .. }) => Ok(()),
                    Err(SecretError::KeyringUnavailable { reason, .. }) => {
                        Err(self.unavailable(reason))
                    }
                    Err(error) => Err(self.unavailable(error.to_string())),
                }
            }
        }
    }

    fn entry(&self, service: &str, account: &str) -> Result<Entry, SecretError> {
        let built = match self.backend {
            KeyringBackend::LinuxKeyutils => linux_keyutils_entry(service, account),
            KeyringBackend::SecretService => secret_service_entry(service, account),
            KeyringBackend::PlatformNative => platform_native_entry(service, account),
        };
        match built {
            Some(result) => result.map_err(|e| self.map_error(e, service, account)),
            None => Err(self.unavailable(format!(
                "{} is not available on {}",
                self.backend.name(),
                std::env::consts::OS
            ))),
        }
    }

    fn map_error(&self, error: keyring::Error, service: &str, account: &str) -> SecretError {
        match error {
            keyring::Error::NoEntry => SecretError::not_found(service, account),
            keyring::Error::NoStorageAccess(e) => self.unavailable(format!(
                "the store refused access ({e}); unlock it or sign in to the desktop session"
            )),
            keyring::Error::TooLong(_, limit) => SecretError::TooLarge { limit },
            keyring::Error::PlatformFailure(e) => SecretError::Platform {
                detail: format!("{}: {e}", self.backend.name()),
            },
            keyring::Error::BadEncoding(_) => SecretError::Platform {
                detail: "the stored value is not valid text".to_owned(),
            },
            keyring::Error::Invalid(what, why) => SecretError::Platform {
                detail: format!("invalid {what}: {why}"),
            },
            keyring::Error::Ambiguous(found) => SecretError::Platform {
                detail: format!("{} entries match {service}/{account}", found.len()),
            },
            other => SecretError::Platform {
                detail: other.to_string(),
            },
        }
    }
}

type Built = Option<keyring::Result<Entry>>;

#[cfg(target_os = "linux")]
fn linux_keyutils_entry(service: &str, account: &str) -> Built {
    Some(
        keyring::keyutils::KeyutilsCredential::new_with_target(None, service, account)
            .map(|c| Entry::new_with_credential(Box::new(c))),
    )
}

#[cfg(not(target_os = "linux"))]
fn linux_keyutils_entry(_: &str, _: &str) -> Built {
    None
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
fn secret_service_entry(service: &str, account: &str) -> Built {
    Some(
        keyring::secret_service::SsCredential::new_with_target(None, service, account)
            .map(|c| Entry::new_with_credential(Box::new(c))),
    )
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")))]
fn secret_service_entry(_: &str, _: &str) -> Built {
    None
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "windows"))]
fn platform_native_entry(service: &str, account: &str) -> Built {
    Some(Entry::new(service, account))
}

#[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "windows")))]
fn platform_native_entry(_: &str, _: &str) -> Built {
    None
}

impl SecretStore for KeyringStore {
    fn get(&self, service: &str, account: &str) -> Result<Secret, SecretError> {
        self.entry(service, account)?
            .get_secret()
            .map(Secret::new)
            .map_err(|e| self.map_error(e, service, account))
    }

    fn set(&self, service: &str, account: &str, secret: &Secret) -> Result<(), SecretError> {
        if secret.is_empty() {
            return Err(SecretError::Platform {
                detail: "an empty secret cannot be stored".to_owned(),
            });
        }
        self.entry(service, account)?
            .set_secret(secret.expose())
            .map_err(|e| match (self.backend, e) {
                // keyutils answers "no entry" when the key cannot be linked because there is no
                // session keyring: that is an unusable keyring, not a missing secret.
                (KeyringBackend::LinuxKeyutils, keyring::Error::NoEntry) => {
                    self.unavailable(KEYUTILS_ADVICE)
                }
                (_, e) => self.map_error(e, service, account),
            })
    }

    fn delete(&self, service: &str, account: &str) -> Result<(), SecretError> {
        self.entry(service, account)?
            .delete_credential()
            .map_err(|e| self.map_error(e, service, account))
    }

    fn describe(&self) -> String {
        self.backend.name().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_backend_is_unavailable_not_silent() {
        let other = if cfg!(target_os = "linux") {
            KeyringBackend::PlatformNative
        } else {
            KeyringBackend::LinuxKeyutils
        };
        let error = KeyringStore::with_backend(other).expect_err("not on this OS");
        assert_eq!(error.code(), "keyring_unavailable");
        assert!(error.to_string().contains("not available on"), "{error}");
    }

    #[test]
    fn backend_names() {
        assert_eq!(KeyringBackend::LinuxKeyutils.name(), "linux keyutils");
        assert_eq!(KeyringBackend::SecretService.name(), "secret service");
    }
}
