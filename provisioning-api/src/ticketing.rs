//! Ticket signing keys and ticket issuance.
//!
//! Keys are Ed25519, persisted in storage as PKCS#8 PEM (so every replica signs with the same
//! key), each with a key id derived from its public key. One key is current (it signs); rotated
//! keys stay as previous, and `GET /v1/ticket-keys` serves all of them so devices can move
//! their trust anchors before a previous key is retired.

use std::sync::{Arc, RwLock};

use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use fieldlink_protocol::ticket::{SignedTicket, TicketClaims, TicketSigner};
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::{
    clock::Clock,
    model::Assignment,
    secret::SecretString,
    storage::{Storage, StorageError, StoredTicketKey, TicketKeyState},
};

/// How long a replica trusts its cached copy of the key set (rotation by another replica is
/// picked up within this time; the previous key stays trusted meanwhile).
const KEY_CACHE_MS: i64 = 30_000;

/// A public ticket key as served to devices and installers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicTicketKey {
    /// Key id carried in tickets.
    pub key_id: String,
    /// The 32-byte Ed25519 public key.
    pub public_key: [u8; 32],
    /// Current (signing) or previous (still trusted).
    pub state: TicketKeyState,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
}

/// The key id of a public key: `tk-` + the first 8 bytes of its SHA-256, hex.
pub fn key_id_of(public_key: &[u8; 32]) -> String {
    format!("tk-{}", hex::encode(&Sha256::digest(public_key)[..8]))
}

/// A fresh key, ready to store.
pub fn generate_key(now_ms: i64) -> Result<StoredTicketKey, StorageError> {
    let signing_key = SigningKey::generate(&mut OsRng);
    let pem = signing_key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| StorageError::Corrupt(format!("cannot encode a ticket key: {e}")))?;
    let public_key = signing_key.verifying_key().to_bytes();
    Ok(StoredTicketKey {
        key_id: key_id_of(&public_key),
        private_pkcs8_pem: SecretString::new(pem.as_str()),
        public_key,
        state: TicketKeyState::Current,
        created_at_ms: now_ms,
    })
}

struct Loaded {
    signer: Arc<TicketSigner>,
    public: Vec<PublicTicketKey>,
    loaded_at_ms: i64,
}

/// The ticket keys, cached from storage.
pub struct TicketKeyring {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    loaded: RwLock<Option<Arc<Loaded>>>,
}

impl std::fmt::Debug for TicketKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKeyring").finish_non_exhaustive()
    }
}

impl TicketKeyring {
    /// Loads the keys, creating the first one if storage has none.
    pub async fn open(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StorageError> {
        let keyring = Self {
            storage,
            clock,
            loaded: RwLock::new(None),
        };
        let has_current = keyring
            .storage
            .ticket_keys()
            .await?
            .iter()
            .any(|k| k.state == TicketKeyState::Current);
        if !has_current {
            let key = generate_key(keyring.clock.now_ms())?;
            // Racing replicas: at most one current key is stored; the others load it.
            keyring.storage.put_ticket_key(key, false).await?;
        }
        keyring.reload().await?;
        Ok(keyring)
    }

    async fn reload(&self) -> Result<Arc<Loaded>, StorageError> {
        let keys = self.storage.ticket_keys().await?;
        let current = keys
            .iter()
            .find(|k| k.state == TicketKeyState::Current)
            .ok_or_else(|| StorageError::Corrupt("no current ticket key".to_owned()))?;
        let signing_key = SigningKey::from_pkcs8_pem(current.private_pkcs8_pem.expose())
            .map_err(|e| StorageError::Corrupt(format!("ticket key {}: {e}", current.key_id)))?;
        if signing_key.verifying_key().to_bytes() != current.public_key {
            return Err(StorageError::Corrupt(format!(
                "ticket key {} does not match its public key",
                current.key_id
            )));
        }
        let loaded = Arc::new(Loaded {
            signer: Arc::new(TicketSigner::new(current.key_id.clone(), signing_key)),
            public: keys
                .iter()
                .map(|k| PublicTicketKey {
                    key_id: k.key_id.clone(),
                    public_key: k.public_key,
                    state: k.state,
                    created_at_ms: k.created_at_ms,
                })
                .collect(),
            loaded_at_ms: self.clock.now_ms(),
        });
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Some(loaded.clone());
        Ok(loaded)
    }

    async fn current(&self) -> Result<Arc<Loaded>, StorageError> {
        let cached = self
            .loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match cached {
            Some(loaded) if self.clock.now_ms() - loaded.loaded_at_ms < KEY_CACHE_MS => Ok(loaded),
            _ => self.reload().await,
        }
    }

    /// The signer of new tickets.
    pub async fn signer(&self) -> Result<Arc<TicketSigner>, StorageError> {
        Ok(self.current().await?.signer.clone())
    }

    /// Every trusted public key, newest first.
    pub async fn public_keys(&self) -> Result<Vec<PublicTicketKey>, StorageError> {
        Ok(self.current().await?.public.clone())
    }

    /// Makes a new key current; the old one becomes previous.
    pub async fn rotate(&self) -> Result<PublicTicketKey, StorageError> {
        let key = generate_key(self.clock.now_ms())?;
        let public = PublicTicketKey {
            key_id: key.key_id.clone(),
            public_key: key.public_key,
            state: TicketKeyState::Current,
            created_at_ms: key.created_at_ms,
        };
        self.storage.put_ticket_key(key, true).await?;
        self.reload().await?;
        Ok(public)
    }

    /// Deletes a previous key (devices must no longer need it).
    pub async fn retire(&self, key_id: &str) -> Result<bool, StorageError> {
        let retired = self.storage.retire_ticket_key(key_id).await?;
        self.reload().await?;
        Ok(retired)
    }
}

/// Ticket validity rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketPolicy {
    /// Seconds from issue to expiry.
    pub lifetime_s: i64,
    /// `not_before` is set this many seconds before issue (device clock skew).
    pub not_before_skew_s: i64,
}

impl Default for TicketPolicy {
    fn default() -> Self {
        Self {
            lifetime_s: 15 * 60,
            not_before_skew_s: 60,
        }
    }
}

/// Signs a ticket for `assignment` with a fresh random nonce.
pub fn issue_ticket(
    signer: &TicketSigner,
    assignment: &Assignment,
    policy: TicketPolicy,
    now_unix: i64,
) -> (SignedTicket, TicketClaims) {
    let claims = TicketClaims {
        key_id: signer.key_id().to_owned(),
        registration_id: assignment.registration_id.clone(),
        id_scope: assignment.id_scope.clone(),
        global_endpoint: assignment.global_endpoint.clone(),
        tenant: assignment.tenant.clone(),
        dps_instance: assignment.dps_instance.clone(),
        not_before: now_unix - policy.not_before_skew_s,
        expires_at: now_unix + policy.lifetime_s,
        nonce: TicketClaims::random_nonce(&mut OsRng),
    };
    (signer.sign(&claims), claims)
}

#[cfg(test)]
mod tests {
    use fieldlink_protocol::ticket::TrustAnchors;

    use super::*;
    use crate::{
        clock::ManualClock,
        model::AssignmentStatus,
        storage::{SecretsKey, SecretsKeyring, SqliteStorage},
    };

    fn assignment() -> Assignment {
        Assignment {
            tenant: "acme".to_owned(),
            registration_id: "dev-1".to_owned(),
            dps_instance: "dps-1".to_owned(),
            id_scope: "0ne0001".to_owned(),
            global_endpoint: "global.example".to_owned(),
            region: "weu".to_owned(),
            status: AssignmentStatus::Assigned,
            generation: 1,
            assigned_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[tokio::test]
    async fn keys_persist_rotate_and_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage: Arc<dyn Storage> = Arc::new(
            SqliteStorage::open_sealed(
                dir.path().join("keys.db"),
                SecretsKeyring::new(SecretsKey::generate()),
            )
            .await
            .expect("open"),
        );
        let clock = Arc::new(ManualClock::new(1_000_000));
        let keyring = TicketKeyring::open(storage.clone(), clock.clone())
            .await
            .expect("keyring");
        let first = keyring.signer().await.expect("signer");
        // A second replica loads the same key instead of creating one.
        let replica = TicketKeyring::open(storage.clone(), clock.clone())
            .await
            .expect("replica");
        assert_eq!(
            replica.signer().await.expect("signer").key_id(),
            first.key_id()
        );
        assert_eq!(first.key_id(), key_id_of(&first.verifying_key().to_bytes()));

        let now = 1_000;
        let (ticket, claims) = issue_ticket(&first, &assignment(), TicketPolicy::default(), now);
        assert_eq!(claims.expires_at - now, 900);
        let anchors = TrustAnchors::new().with_key(first.key_id(), first.verifying_key());
        let verified = anchors.verify(&ticket, now, "dev-1").expect("verifies");
        assert_eq!(verified.id_scope, "0ne0001");
        let (_, again) = issue_ticket(&first, &assignment(), TicketPolicy::default(), now);
        assert_ne!(again.nonce, claims.nonce);

        let rotated = keyring.rotate().await.expect("rotate");
        assert_ne!(rotated.key_id, first.key_id());
        let keys = keyring.public_keys().await.expect("keys");
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys.iter()
                .filter(|k| k.state == TicketKeyState::Current)
                .count(),
            1
        );
        // The other replica picks up the rotation once its cache expires.
        clock.advance_ms(KEY_CACHE_MS);
        assert_eq!(
            replica.signer().await.expect("signer").key_id(),
            rotated.key_id
        );
        assert!(
            !keyring
                .retire(&rotated.key_id)
                .await
                .expect("current is not retired")
        );
        assert!(
            keyring
                .retire(first.key_id())
                .await
                .expect("retire previous")
        );
        assert_eq!(keyring.public_keys().await.expect("keys").len(), 1);
    }
}
