//! Secrets at rest: envelope encryption of the secret columns (`ticket_keys.private_pkcs8_pem`,
//! `dps_instances.service_key`) under an operator-supplied key-encryption key (KEK).
//!
//! A sealed value is the text `sealed:v1:<kek-id>:<base64(nonce || ciphertext)>`:
//! ChaCha20-Poly1305 under the KEK with a random 96-bit nonce per value, and the row's identity
//! (column, row key, KEK id) as associated data, so a sealed value copied into another row, or
//! another column, does not open. `<kek-id>` names the KEK (a hash of it, not the key) so the
//! store can tell "sealed with another key" (`secrets_key_mismatch`) from "tampered"
//! (`sealed_secret_invalid`).
//!
//! Both backends call the same code: they seal before writing, open after reading, and run
//! [`SecretsKeyring::migrate`] over every secret at start-up (plaintext legacy values are
//! sealed; values sealed with a previous KEK are re-sealed with the current one).

use std::sync::OnceLock;

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    ChaCha20Poly1305, Key, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use rand::{RngCore, rngs::OsRng};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::StorageError;
use crate::secret::SecretString;

const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 12;
/// Length of a KEK in bytes.
pub const SECRETS_KEY_LEN: usize = 32;

/// A key-encryption key (32 bytes); `Debug` shows only its id; zeroed on drop.
#[derive(Clone)]
pub struct SecretsKey {
    bytes: Zeroizing<[u8; SECRETS_KEY_LEN]>,
    id: String,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey")
            .field("id", &self.id)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// Why a KEK could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum SecretsKeyError {
    /// Not base64, or not 32 bytes once decoded.
    #[error("a secrets key must be {SECRETS_KEY_LEN} random bytes in base64 (44 characters)")]
    Malformed,
}

impl SecretsKey {
    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; SECRETS_KEY_LEN]) -> Self {
        Self::from_secret(Zeroizing::new(bytes))
    }

    fn from_secret(bytes: Zeroizing<[u8; SECRETS_KEY_LEN]>) -> Self {
        let digest = Sha256::new_with_prefix(b"fieldlink secrets key id v1\0")
            .chain_update(bytes.as_ref())
            .finalize();
        Self {
            bytes,
            id: hex::encode(&digest[..8]),
        }
    }

    /// A fresh random key (OS RNG).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; SECRETS_KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut());
        Self::from_secret(bytes)
    }

    /// Decodes the base64 text form (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SecretsKeyError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| SecretsKeyError::Malformed)?,
        );
        if decoded.len() != SECRETS_KEY_LEN {
            return Err(SecretsKeyError::Malformed);
        }
        let mut bytes = Zeroizing::new([0u8; SECRETS_KEY_LEN]);
        bytes.copy_from_slice(&decoded);
        Ok(Self::from_secret(bytes))
    }

    /// The base64 text form (what a key file or `FIELDLINK_API_SECRETS_KEY` holds).
    pub fn to_base64(&self) -> SecretString {
        SecretString::new(STANDARD.encode(self.bytes.as_ref()))
    }

    /// The key's id: the first 8 bytes of a domain-separated SHA-256 of it, hex. It appears
    /// in every sealed value and in errors; it does not reveal the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.bytes.as_ref()))
    }
}

/// The secret columns, with the name that goes into the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealedColumn {
    /// `ticket_keys.private_pkcs8_pem`, keyed by `key_id`.
    TicketPrivateKey,
    /// `dps_instances.service_key`, keyed by `name`.
    DpsServiceKey,
}

impl SealedColumn {
    fn name(self) -> &'static str {
        match self {
            Self::TicketPrivateKey => "ticket_keys.private_pkcs8_pem",
            Self::DpsServiceKey => "dps_instances.service_key",
        }
    }
}

fn associated_data(column: SealedColumn, row: &str, key_id: &str) -> Vec<u8> {
    format!("fieldlink sealed v1\0{}\0{row}\0{key_id}", column.name()).into_bytes()
}

/// The current KEK (seals) and previous ones (still open, for rotation).
#[derive(Debug, Clone)]
pub struct SecretsKeyring {
    current: SecretsKey,
    previous: Vec<SecretsKey>,
    ephemeral: bool,
}

static EPHEMERAL: OnceLock<SecretsKey> = OnceLock::new();

impl SecretsKeyring {
    /// Seals with `current`.
    pub fn new(current: SecretsKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
            ephemeral: false,
        }
    }

    /// Also opens values sealed with `previous` (they are re-sealed with the current key at
    /// start-up).
    pub fn with_previous(mut self, previous: SecretsKey) -> Self {
        if previous.id != self.current.id {
            self.previous.push(previous);
        }
        self
    }

    /// A random key that lives as long as this process (the same one for every store opened
    /// in it). For temporary databases only (tests, sandboxes): whatever it seals is
    /// unreadable after the process exits, and a database holding plaintext legacy secrets
    /// is refused (`secrets_key_required`) instead of being sealed with it.
    pub fn ephemeral() -> Self {
        Self {
            current: EPHEMERAL.get_or_init(SecretsKey::generate).clone(),
            previous: Vec::new(),
            ephemeral: true,
        }
    }

    /// The id of the sealing key.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for `row` of `column`.
    pub(crate) fn seal(
        &self,
        column: SealedColumn,
        row: &str,
        plaintext: &str,
    ) -> Result<String, StorageError> {
        let key = &self.current;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(column, row, &key.id);
        let ciphertext = key
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| StorageError::Corrupt(format!("cannot seal {}", column.name())))?;
        let mut body = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ciphertext);
        Ok(format!("{PREFIX}{}:{}", key.id, STANDARD.encode(body)))
    }

    /// Opens a stored value of `row` of `column` (sealed with the current or a previous key).
    pub(crate) fn open(
        &self,
        column: SealedColumn,
        row: &str,
        stored: &str,
    ) -> Result<SecretString, StorageError> {
        let Some((key_id, body)) = parse(stored) else {
            return Err(StorageError::SecretNotSealed {
                location: location(column, row),
            });
        };
        let key = self.key(key_id).ok_or_else(|| self.mismatch(key_id))?;
        let invalid = || StorageError::SealedSecretInvalid {
            location: location(column, row),
        };
        let body = Zeroizing::new(STANDARD.decode(body).map_err(|_| invalid())?);
        if body.len() < NONCE_LEN {
            return Err(invalid());
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let aad = associated_data(column, row, key_id);
        let plaintext = Zeroizing::new(
            key.cipher()
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| invalid())?,
        );
        let text = std::str::from_utf8(&plaintext).map_err(|_| invalid())?;
        Ok(SecretString::new(text))
    }

    /// The start-up check of one stored value: `Ok(None)` when it is sealed with the current
    /// key and opens; `Ok(Some(new))` when it must be rewritten (plaintext legacy value, or
    /// sealed with a previous key); an error when it is sealed with an unknown key
    /// (`secrets_key_mismatch`), does not open (`sealed_secret_invalid`), or is plaintext
    /// while the keyring is ephemeral (`secrets_key_required`).
    pub(crate) fn migrate(
        &self,
        column: SealedColumn,
        row: &str,
        stored: &str,
    ) -> Result<Option<String>, StorageError> {
        match parse(stored) {
            None if self.ephemeral => Err(StorageError::SecretsKeyRequired {
                location: location(column, row),
            }),
            None => self.seal(column, row, stored).map(Some),
            Some((key_id, _)) => {
                let plaintext = self.open(column, row, stored)?;
                if key_id == self.current.id {
                    Ok(None)
                } else {
                    self.seal(column, row, plaintext.expose()).map(Some)
                }
            }
        }
    }

    fn key(&self, id: &str) -> Option<&SecretsKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }

    fn mismatch(&self, found: &str) -> StorageError {
        StorageError::SecretsKeyMismatch {
            found: found.to_owned(),
            configured: std::iter::once(&self.current)
                .chain(&self.previous)
                .map(|k| k.id.clone())
                .collect(),
        }
    }
}

fn location(column: SealedColumn, row: &str) -> String {
    format!("{} of {row:?}", column.name())
}

/// `(kek-id, base64 body)` of a sealed value; `None` for anything else (plaintext).
fn parse(stored: &str) -> Option<(&str, &str)> {
    stored.strip_prefix(PREFIX)?.split_once(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";

    #[test]
    fn seals_opens_and_binds_the_row() {
        let keyring = SecretsKeyring::new(SecretsKey::generate());
        let col = SealedColumn::TicketPrivateKey;
        let sealed = keyring.seal(col, "tk-1", PEM).expect("seal");
        assert!(sealed.starts_with(&format!("sealed:v1:{}:", keyring.current_id())));
        assert!(!sealed.contains("PRIVATE KEY"));
        assert_ne!(
            sealed,
            keyring.seal(col, "tk-1", PEM).expect("seal"),
            "fresh nonce"
        );
        assert_eq!(
            keyring.open(col, "tk-1", &sealed).expect("open").expose(),
            PEM
        );
        assert!(matches!(
            keyring.open(col, "tk-2", &sealed),
            Err(StorageError::SealedSecretInvalid { .. })
        ));
        assert!(matches!(
            keyring.open(SealedColumn::DpsServiceKey, "tk-1", &sealed),
            Err(StorageError::SealedSecretInvalid { .. })
        ));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(keyring.open(col, "tk-1", &tampered).is_err());
        assert!(matches!(
            keyring.open(col, "tk-1", PEM),
            Err(StorageError::SecretNotSealed { .. })
        ));
    }

    #[test]
    fn wrong_key_is_a_mismatch_and_previous_keys_reseal() {
        let old = SecretsKey::generate();
        let new = SecretsKey::generate();
        let col = SealedColumn::DpsServiceKey;
        let sealed = SecretsKeyring::new(old.clone())
            .seal(col, "dps-1", "c2VjcmV0")
            .expect("seal");
        let error = SecretsKeyring::new(new.clone())
            .open(col, "dps-1", &sealed)
            .expect_err("other key");
        assert_eq!(error.code(), "secrets_key_mismatch");
        assert!(error.to_string().contains(old.id()), "{error}");
        let rotating = SecretsKeyring::new(new.clone()).with_previous(old);
        let resealed = rotating
            .migrate(col, "dps-1", &sealed)
            .expect("migrate")
            .expect("rewritten");
        assert!(resealed.contains(new.id()));
        assert_eq!(rotating.migrate(col, "dps-1", &resealed).expect("ok"), None);
        let plain = rotating
            .migrate(col, "dps-1", "c2VjcmV0")
            .expect("legacy")
            .expect("sealed");
        assert_eq!(
            rotating.open(col, "dps-1", &plain).expect("open").expose(),
            "c2VjcmV0"
        );
        assert_eq!(
            SecretsKeyring::ephemeral()
                .migrate(col, "dps-1", "c2VjcmV0")
                .expect_err("ephemeral refuses legacy")
                .code(),
            "secrets_key_required"
        );
    }

    #[test]
    fn key_text_round_trips_and_debug_is_redacted() {
        let key = SecretsKey::generate();
        let again =
            SecretsKey::from_base64(&format!("{}\n", key.to_base64().expose())).expect("decodes");
        assert_eq!(again.id(), key.id());
        assert!(SecretsKey::from_base64("c2hvcnQ=").is_err());
        assert!(SecretsKey::from_base64("not base64!").is_err());
        let debug = format!("{key:?}");
        assert!(!debug.contains(key.to_base64().expose()), "{debug}");
    }
}
