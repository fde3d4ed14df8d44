//! The device's persistent state and where it is kept.
//!
//! One document ([`PersistedState`]) holds everything that must survive a power cut: identity,
//! trust anchors, the staged ticket with its fail-safe deadline, the committed DPS assignment, the
//! PoP attempt counter and lockout, the burnt ticket nonces and the network configs. It is always
//! written whole, so a reader sees either the previous or the next version, never a mix.
//! [`FileStore`] does this on disk (temp file, fsync, rename, fsync dir); [`MemoryStore`] keeps it
//! in memory for the virtual fleet.

mod file;
mod memory;

use serde::{Deserialize, Serialize};

pub use file::FileStore;
pub use memory::MemoryStore;

use crate::secret::{SecretBytes, SecretString};

/// How many burnt ticket nonces are kept at most; expired ones are dropped first.
pub const MAX_SEEN_NONCES: usize = 256;

/// Everything the device must remember across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// Who the device is (factory data).
    pub identity: DeviceIdentity,
    /// Keys that may sign commissioning tickets (factory data).
    pub trust_anchors: Vec<TrustAnchorRecord>,
    /// A verified ticket waiting for DPS, with its fail-safe deadline.
    pub staged: Option<StagedCommissioning>,
    /// The committed DPS assignment, if the device was registered.
    pub assignment: Option<CommittedAssignment>,
    /// Proof-of-possession attempts and lockout.
    pub pop_attempts: PopAttempts,
    /// Nonces of committed tickets (replay protection), bounded by [`MAX_SEEN_NONCES`].
    pub seen_nonces: Vec<SeenNonce>,
    /// The proven network configs.
    pub network: NetworkState,
}

impl PersistedState {
    /// A factory-fresh state: identity and anchors, nothing else.
    pub fn new(identity: DeviceIdentity, trust_anchors: Vec<TrustAnchorRecord>) -> Self {
        Self {
            identity,
            trust_anchors,
            staged: None,
            assignment: None,
            pop_attempts: PopAttempts::default(),
            seen_nonces: Vec::new(),
            network: NetworkState::default(),
        }
    }

    /// Whether `nonce` belongs to a ticket that was already committed.
    pub fn nonce_seen(&self, nonce: &[u8; 16]) -> bool {
        let wanted = hex::encode(nonce);
        self.seen_nonces.iter().any(|seen| seen.nonce == wanted)
    }

    /// Burns a nonce: drops expired entries, then the oldest ones beyond [`MAX_SEEN_NONCES`].
    pub fn burn_nonce(&mut self, nonce: &[u8; 16], expires_at: i64, now_unix: i64) {
        let nonce = hex::encode(nonce);
        self.seen_nonces
            .retain(|seen| seen.expires_at >= now_unix && seen.nonce != nonce);
        self.seen_nonces.push(SeenNonce { nonce, expires_at });
        let excess = self.seen_nonces.len().saturating_sub(MAX_SEEN_NONCES);
        self.seen_nonces.drain(..excess);
    }
}

/// Factory identity of the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIdentity {
    /// DPS registration ID (also on the QR label).
    pub registration_id: String,
    /// Proof-of-possession secret (11 bytes, on the QR label).
    pub pop: SecretBytes,
    /// 12-bit BLE discriminator.
    pub discriminator: u16,
    /// Product code.
    pub product_code: u16,
    /// How the device authenticates to DPS.
    pub dps_credential: DpsCredential,
}

/// The device's DPS symmetric-key credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DpsCredential {
    /// An individual enrollment key, or a key already derived from a group key (base64).
    SymmetricKey {
        /// The device key, base64.
        key: SecretString,
    },
    /// An enrollment-group key (base64); the device key is derived from it and the registration
    /// ID at registration time.
    GroupKey {
        /// The group's primary key, base64.
        group_key: SecretString,
    },
}

/// One trusted ticket-signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustAnchorRecord {
    /// The key id tickets name.
    pub key_id: String,
    /// The Ed25519 public key, 32 bytes as hex.
    pub public_key: String,
}

impl TrustAnchorRecord {
    /// A record for an Ed25519 public key.
    pub fn new(key_id: impl Into<String>, key: &ed25519_dalek::VerifyingKey) -> Self {
        Self {
            key_id: key_id.into(),
            public_key: hex::encode(key.to_bytes()),
        }
    }
}

/// A verified ticket staged for registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedCommissioning {
    /// The signed ticket as received (base64url), kept for audit and re-verification.
    pub ticket: String,
    /// The ticket nonce (hex).
    pub nonce: String,
    /// DPS ID scope from the ticket.
    pub id_scope: String,
    /// DPS global endpoint (host or URL) from the ticket.
    pub global_endpoint: String,
    /// Tenant from the ticket.
    pub tenant: String,
    /// DPS instance from the ticket.
    pub dps_instance: String,
    /// Ticket expiry (Unix seconds).
    pub expires_at: i64,
    /// A candidate network config, applied but not yet proven by a DPS assignment.
    pub network: Option<StoredNetwork>,
    /// When the ticket was staged (Unix ms).
    pub staged_at_ms: u64,
    /// When the fail-safe rolls the staging back if DPS has not assigned the device (Unix ms).
    pub fail_safe_deadline_ms: u64,
    /// The DPS operation in progress, so a restart can resume polling.
    pub operation_id: Option<String>,
}

/// The committed result of a successful DPS registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedAssignment {
    /// DPS ID scope used.
    pub id_scope: String,
    /// DPS global endpoint used.
    pub global_endpoint: String,
    /// The IoT hub DPS assigned.
    pub assigned_hub: String,
    /// The device ID in that hub.
    pub device_id: String,
    /// DPS substatus at assignment.
    pub substatus: Option<String>,
    /// When it was committed (Unix ms).
    pub committed_at_ms: u64,
    /// Nonce (hex) of the ticket it came from, so an installer can recognise its own ticket.
    #[serde(default)]
    pub ticket_nonce: String,
}

impl CommittedAssignment {
    /// Whether the record is usable without asking DPS again.
    pub fn is_valid(&self) -> bool {
        [
            &self.id_scope,
            &self.global_endpoint,
            &self.assigned_hub,
            &self.device_id,
        ]
        .iter()
        .all(|field| !field.trim().is_empty())
    }
}

/// PoP attempt counter and lockout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopAttempts {
    /// Attempts counted since the last confirmed session (counted before the device answers).
    pub failures: u8,
    /// Consecutive lockouts; each one lasts longer.
    pub lockouts: u32,
    /// Until when the device refuses handshakes (Unix ms).
    pub locked_until_ms: Option<u64>,
}

/// A burnt ticket nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenNonce {
    /// The nonce, hex.
    pub nonce: String,
    /// Expiry of the ticket it came with (Unix seconds); afterwards the ticket is refused anyway.
    pub expires_at: i64,
}

/// Proven network configs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    /// The config in use and proven.
    pub current: Option<StoredNetwork>,
    /// The one before it.
    pub previous: Option<StoredNetwork>,
}

/// A network config as stored on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoredNetwork {
    /// Wi-Fi station config.
    Wifi {
        /// SSID.
        ssid: String,
        /// Passphrase (empty for open networks).
        passphrase: SecretString,
        /// Whether the SSID is hidden (join without a scan match).
        hidden: bool,
        /// Optional BSSID pin, `aa:bb:cc:dd:ee:ff`.
        bssid: Option<String>,
    },
    /// Cellular config.
    Cellular {
        /// Access point name.
        apn: String,
    },
}

/// Errors of a state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("config store I/O failed at {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The committed state file exists but cannot be trusted.
    #[error("config store file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where the persisted state lives. Saving replaces the whole state atomically.
pub trait StateStore: Send + Sync {
    /// The committed state, or `None` for a store never written.
    fn load(&self) -> Result<Option<PersistedState>, StoreError>;
    /// Replaces the committed state; when this returns `Ok`, the new state is durable.
    fn save(&self, state: &PersistedState) -> Result<(), StoreError>;
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn sample_state() -> PersistedState {
        PersistedState::new(
            DeviceIdentity {
                registration_id: "sensor-0001".into(),
                pop: SecretBytes::new(vec![7; 11]),
                discriminator: 0x5a3,
                product_code: 42,
                dps_credential: DpsCredential::SymmetricKey {
                    key: SecretString::new("a2V5LWJ5dGVzLWtleS1ieXRlcy1rZXktYnl0ZXM="),
                },
            },
            vec![TrustAnchorRecord {
                key_id: "api-2025".into(),
                public_key: "00".repeat(32),
            }],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_set_is_bounded_and_drops_expired_first() {
        let mut state = fixtures::sample_state();
        state.burn_nonce(&[1; 16], 100, 50);
        assert!(state.nonce_seen(&[1; 16]));
        // Expired by now: dropped on the next burn.
        state.burn_nonce(&[2; 16], 1_000, 200);
        assert!(!state.nonce_seen(&[1; 16]));
        for i in 0..(MAX_SEEN_NONCES as u32 + 10) {
            let mut nonce = [0u8; 16];
            nonce[..4].copy_from_slice(&i.to_be_bytes());
            nonce[15] = 9;
            state.burn_nonce(&nonce, 10_000, 300);
        }
        assert_eq!(state.seen_nonces.len(), MAX_SEEN_NONCES);
        assert!(!state.nonce_seen(&[2; 16]), "the oldest goes first");
    }

    #[test]
    fn assignment_validity_needs_every_field() {
        let mut assignment = CommittedAssignment {
            id_scope: "0ne0001".into(),
            global_endpoint: "global.example".into(),
            assigned_hub: "hub-1.example".into(),
            device_id: "sensor-0001".into(),
            substatus: None,
            committed_at_ms: 1,
            ticket_nonce: String::new(),
        };
        assert!(assignment.is_valid());
        assignment.assigned_hub = " ".into();
        assert!(!assignment.is_valid());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let mut state = fixtures::sample_state();
        state.network.current = Some(StoredNetwork::Wifi {
            ssid: "site-wifi".into(),
            passphrase: SecretString::new("hunter2-passphrase"),
            hidden: false,
            bssid: None,
        });
        let shown = format!("{state:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("a2V5"));
        assert!(!shown.contains("0707"));
    }
}
