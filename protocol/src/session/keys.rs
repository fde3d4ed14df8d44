//! Transcript hash and key schedule.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::message::{CONFIRM_LEN, NONCE_LEN, SecretKind};

/// Prefix of the transcript hash input.
pub const TRANSCRIPT_LABEL: &[u8] = b"fieldlink handshake v1";
/// HKDF info for the device's confirmation key.
pub const DEVICE_CONFIRM_INFO: &[u8] = b"fieldlink v1 device confirm";
/// HKDF info for the installer's confirmation key.
pub const CLIENT_CONFIRM_INFO: &[u8] = b"fieldlink v1 client confirm";
/// HKDF info for the installer → device record key.
pub const CLIENT_TO_DEVICE_INFO: &[u8] = b"fieldlink v1 installer to device";
/// HKDF info for the device → installer record key.
pub const DEVICE_TO_CLIENT_INFO: &[u8] = b"fieldlink v1 device to installer";

/// A 32-byte key that is zeroed on drop.
pub(crate) type Key = Zeroizing<[u8; 32]>;

/// The public handshake values both sides hash.
pub(crate) struct Transcript<'a> {
    pub version: u8,
    pub secret_kind: SecretKind,
    pub client_spake: &'a [u8],
    pub client_nonce: &'a [u8; NONCE_LEN],
    pub device_spake: &'a [u8],
    pub device_nonce: &'a [u8; NONCE_LEN],
    pub attempts_left: u8,
}

impl Transcript<'_> {
    /// SHA-256 over the label and the fields, in order (spake messages are 33 bytes each).
    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(TRANSCRIPT_LABEL);
        hasher.update([self.version, self.secret_kind as u8]);
        hasher.update(self.client_spake);
        hasher.update(self.client_nonce);
        hasher.update(self.device_spake);
        hasher.update(self.device_nonce);
        hasher.update([self.attempts_left]);
        hasher.finalize().into()
    }
}

/// Everything derived from the SPAKE2 key and the transcript.
pub(crate) struct SessionKeys {
    pub device_confirm: [u8; CONFIRM_LEN],
    pub client_confirm: [u8; CONFIRM_LEN],
    pub client_to_device: Key,
    pub device_to_client: Key,
}

impl SessionKeys {
    /// HKDF-SHA256(salt = transcript hash, ikm = SPAKE2 key), then the four expansions.
    pub fn derive(spake_key: &[u8], transcript_hash: &[u8; 32]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(transcript_hash), spake_key);
        let expand = |info: &[u8]| {
            let mut key = Zeroizing::new([0u8; 32]);
            hkdf.expand(info, key.as_mut())
                .expect("32 bytes is a valid HKDF-SHA256 length");
            key
        };
        let confirm = |key: &Key| {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(key.as_ref()).expect("HMAC takes any key length");
            mac.update(transcript_hash);
            <[u8; CONFIRM_LEN]>::from(mac.finalize().into_bytes())
        };
        Self {
            device_confirm: confirm(&expand(DEVICE_CONFIRM_INFO)),
            client_confirm: confirm(&expand(CLIENT_CONFIRM_INFO)),
            client_to_device: expand(CLIENT_TO_DEVICE_INFO),
            device_to_client: expand(DEVICE_TO_CLIENT_INFO),
        }
    }
}
