//! Opt-in secrets file for machines without a usable keyring: every entry lives in one JSON
//! document sealed with ChaCha20-Poly1305 under a key derived from a passphrase with Argon2id.
//! The file holds no plaintext; the KDF parameters and salt are bound to the ciphertext as
//! associated data. One process at a time (the last writer wins).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use argon2::{Algorithm, Argon2, Params, Version};
use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    ChaCha20Poly1305, Key, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Secret, SecretError, SecretStore};

const FORMAT: &str = "fieldlink-secrets/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KdfParams {
    alg: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    format: String,
    kdf: KdfParams,
    nonce: String,
    ciphertext: String,
}

type Entries = BTreeMap<String, String>;

/// A passphrase-encrypted secrets file (see the module docs). Opening it with the wrong
/// passphrase fails with [`SecretError::WrongPassphrase`].
pub struct EncryptedFileStore {
    path: PathBuf,
    kdf: KdfParams,
    key: Zeroizing<[u8; 32]>,
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for EncryptedFileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedFileStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path, error: std::io::Error) -> SecretError {
    SecretError::Platform {
        detail: format!("{}: {error}", path.display()),
    }
}

fn corrupt(path: &Path, what: &str) -> SecretError {
    SecretError::Platform {
        detail: format!("{}: not a fieldlink secrets file ({what})", path.display()),
    }
}

fn derive_key(passphrase: &Secret, kdf: &KdfParams) -> Result<Zeroizing<[u8; 32]>, SecretError> {
    let params =
        Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32)).map_err(|e| SecretError::Platform {
            detail: format!("invalid KDF parameters: {e}"),
        })?;
    let salt = STANDARD
        .decode(&kdf.salt)
        .map_err(|_| SecretError::Platform {
            detail: "invalid KDF salt".to_owned(),
        })?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.expose(), &salt, key.as_mut())
        .map_err(|e| SecretError::Platform {
            detail: format!("key derivation failed: {e}"),
        })?;
    Ok(key)
}

fn aad(kdf: &KdfParams) -> Vec<u8> {
    format!(
        "{FORMAT}|{}|{}|{}|{}|{}",
        kdf.alg, kdf.m_kib, kdf.t, kdf.p, kdf.salt
    )
    .into_bytes()
}

fn entry_key(service: &str, account: &str) -> String {
    format!("{service}\u{0}{account}")
}

impl EncryptedFileStore {
    /// Opens (or prepares to create) the file at `path` with `passphrase`. An existing file is
    /// decrypted now, so a wrong passphrase fails here.
    pub fn open(path: impl Into<PathBuf>, passphrase: &Secret) -> Result<Self, SecretError> {
        let path = path.into();
        if passphrase.len() < 8 {
            return Err(SecretError::Platform {
                detail: "the passphrase must be at least 8 characters".to_owned(),
            });
        }
        match std::fs::read(&path) {
            Ok(bytes) => {
                let envelope: Envelope =
                    serde_json::from_slice(&bytes).map_err(|_| corrupt(&path, "not JSON"))?;
                if envelope.format != FORMAT || envelope.kdf.alg != "argon2id" {
                    return Err(corrupt(&path, "unknown format"));
                }
                let key = derive_key(passphrase, &envelope.kdf)?;
                let nonce = STANDARD
                    .decode(&envelope.nonce)
                    .ok()
                    .filter(|n| n.len() == 12)
                    .ok_or_else(|| corrupt(&path, "bad nonce"))?;
                let ciphertext = STANDARD
                    .decode(&envelope.ciphertext)
                    .map_err(|_| corrupt(&path, "bad ciphertext"))?;
                let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
                let plaintext = Zeroizing::new(
                    cipher
                        .decrypt(
                            Nonce::from_slice(&nonce),
                            Payload {
                                msg: &ciphertext,
                                aad: &aad(&envelope.kdf),
                            },
                        )
                        .map_err(|_| SecretError::WrongPassphrase)?,
                );
                let entries: Entries = serde_json::from_slice(&plaintext)
                    .map_err(|_| corrupt(&path, "bad contents"))?;
                Ok(Self {
                    path,
                    kdf: envelope.kdf,
                    key,
                    entries: Mutex::new(entries),
                })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut salt = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut salt);
                let kdf = KdfParams {
                    alg: "argon2id".to_owned(),
                    m_kib: Params::DEFAULT_M_COST,
                    t: Params::DEFAULT_T_COST,
                    p: Params::DEFAULT_P_COST,
                    salt: STANDARD.encode(salt),
                };
                let key = derive_key(passphrase, &kdf)?;
                Ok(Self {
                    path,
                    kdf,
                    key,
                    entries: Mutex::new(Entries::new()),
                })
            }
            Err(error) => Err(io_error(&path, error)),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, entries: &Entries) -> Result<(), SecretError> {
        let plaintext =
            Zeroizing::new(
                serde_json::to_vec(entries).map_err(|e| SecretError::Platform {
                    detail: format!("cannot encode entries: {e}"),
                })?,
            );
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.key.as_ref()));
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad(&self.kdf),
                },
            )
            .map_err(|_| SecretError::Platform {
                detail: "encryption failed".to_owned(),
            })?;
        let envelope = Envelope {
            format: FORMAT.to_owned(),
            kdf: self.kdf.clone(),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        };
        let body = serde_json::to_vec_pretty(&envelope).map_err(|e| SecretError::Platform {
            detail: format!("cannot encode the file: {e}"),
        })?;
        let tmp = self.path.with_extension("tmp");
        write_private(&tmp, &body).map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io_error(&self.path, e))
    }

    fn update<T>(
        &self,
        change: impl FnOnce(&mut Entries) -> Result<T, SecretError>,
    ) -> Result<T, SecretError> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = entries.clone();
        let result = change(&mut next)?;
        self.write(&next)?;
        *entries = next;
        Ok(result)
    }
}

fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(body)?;
    file.sync_all()
}

impl SecretStore for EncryptedFileStore {
    fn get(&self, service: &str, account: &str) -> Result<Secret, SecretError> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let encoded = entries
            .get(&entry_key(service, account))
            .ok_or_else(|| SecretError::not_found(service, account))?;
        STANDARD
            .decode(encoded)
            .map(Secret::new)
            .map_err(|_| corrupt(&self.path, "bad entry"))
    }

    fn set(&self, service: &str, account: &str, secret: &Secret) -> Result<(), SecretError> {
        let encoded = STANDARD.encode(secret.expose());
        self.update(|entries| {
            entries.insert(entry_key(service, account), encoded);
            Ok(())
        })
    }

    fn delete(&self, service: &str, account: &str) -> Result<(), SecretError> {
        self.update(|entries| {
            entries
                .remove(&entry_key(service, account))
                .map(|_| ())
                .ok_or_else(|| SecretError::not_found(service, account))
        })
    }

    fn describe(&self) -> String {
        format!("encrypted file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_reopen_wrong_passphrase_and_no_plaintext() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets.json");
        let pass = Secret::from_text("correct horse battery");
        let store = EncryptedFileStore::open(&path, &pass).expect("new file");
        store
            .set("fieldlink", "acme", &Secret::from_text("refresh-token-xyz"))
            .expect("set");
        let on_disk = std::fs::read_to_string(&path).expect("written");
        assert!(!on_disk.contains("refresh-token-xyz"));
        assert!(!on_disk.contains("acme"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "group/other have no access");
        }

        let reopened = EncryptedFileStore::open(&path, &pass).expect("reopen");
        assert_eq!(
            reopened.get("fieldlink", "acme"),
            Ok(Secret::from_text("refresh-token-xyz"))
        );
        reopened.delete("fieldlink", "acme").expect("delete");
        assert_eq!(
            reopened.get("fieldlink", "acme").map_err(|e| e.code()),
            Err("not_found")
        );

        let wrong = EncryptedFileStore::open(&path, &Secret::from_text("wrong passphrase"));
        assert_eq!(wrong.map(|_| ()), Err(SecretError::WrongPassphrase));
    }

    #[test]
    fn tampering_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets.json");
        let pass = Secret::from_text("correct horse battery");
        let store = EncryptedFileStore::open(&path, &pass).expect("new");
        store.set("s", "a", &Secret::from_text("v")).expect("set");
        let mut envelope: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        envelope["kdf"]["t"] = serde_json::json!(3);
        std::fs::write(&path, envelope.to_string()).expect("write");
        assert_eq!(
            EncryptedFileStore::open(&path, &pass).map(|_| ()),
            Err(SecretError::WrongPassphrase)
        );
        assert!(EncryptedFileStore::open(&path, &Secret::from_text("short")).is_err());
    }
}
