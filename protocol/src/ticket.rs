//! Commissioning tickets: what the provisioning API signs and the installer pushes to the device.
//!
//! A ticket is a CBOR map of [`TicketClaims`] signed with Ed25519 over
//! `"fieldlink ticket v1" || claims`. The device checks it against the [`TrustAnchors`] it holds
//! ([`TrustAnchors::verify`]); replay is detected by the device with its persisted nonce set.

use std::collections::BTreeMap;
use std::fmt;

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use minicbor::{Decode, Encode};
use rand_core::CryptoRngCore;

/// Domain-separation prefix of every ticket signature.
pub const TICKET_SIGNATURE_CONTEXT: &[u8] = b"fieldlink ticket v1";

/// Upper bound on a ticket's encoded size, so it always fits one protocol message.
pub const MAX_TICKET_LEN: usize = 2048;

/// What a ticket grants: DPS coordinates for one device, for a limited time.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct TicketClaims {
    /// Which signing key signed this ticket (looked up in [`TrustAnchors`]).
    #[n(0)]
    pub key_id: String,
    /// The DPS registration ID of the only device that may accept the ticket.
    #[n(1)]
    pub registration_id: String,
    /// The DPS ID scope (for example `0ne00ABC123`).
    #[n(2)]
    pub id_scope: String,
    /// The DPS global endpoint host (for example `global.azure-devices-provisioning.net`).
    #[n(3)]
    pub global_endpoint: String,
    /// The tenant that owns the device.
    #[n(4)]
    pub tenant: String,
    /// The DPS instance the API load-balanced this device to.
    #[n(5)]
    pub dps_instance: String,
    /// Valid from (unix seconds, inclusive).
    #[n(6)]
    pub not_before: i64,
    /// Valid until (unix seconds, exclusive).
    #[n(7)]
    pub expires_at: i64,
    /// Random single-use value; the device refuses a nonce it has already accepted.
    #[n(8)]
    #[cbor(with = "minicbor::bytes")]
    pub nonce: [u8; 16],
}

impl TicketClaims {
    /// A fresh random nonce.
    pub fn random_nonce<R: CryptoRngCore + ?Sized>(rng: &mut R) -> [u8; 16] {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        nonce
    }

    /// The nonce as lower-case hex (for nonce stores and logs).
    pub fn nonce_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.nonce)
    }
}

/// A signed ticket: the CBOR-encoded claims and an Ed25519 signature.
///
/// CBOR: `{0: bstr claims, 1: bstr(64) signature}`; text form: base64url (no padding) of that.
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct SignedTicket {
    /// CBOR encoding of [`TicketClaims`], exactly as signed.
    #[n(0)]
    #[cbor(with = "minicbor::bytes")]
    pub claims: Vec<u8>,
    /// Ed25519 signature over [`TICKET_SIGNATURE_CONTEXT`] followed by `claims`.
    #[n(1)]
    #[cbor(with = "minicbor::bytes")]
    pub signature: [u8; 64],
}

impl fmt::Debug for SignedTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedTicket")
            .field("claims_len", &self.claims.len())
            .field("claims", &self.claims_unverified().ok())
            .finish_non_exhaustive()
    }
}

impl SignedTicket {
    /// CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    /// Decodes the CBOR encoding.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, TicketError> {
        if bytes.len() > MAX_TICKET_LEN {
            return Err(TicketError::malformed(format!(
                "ticket is {} bytes; the limit is {MAX_TICKET_LEN}",
                bytes.len()
            )));
        }
        decode_exact(bytes).map_err(|e| TicketError::malformed(format!("bad ticket CBOR: {e}")))
    }

    /// Text form: base64url without padding of the CBOR encoding.
    pub fn to_base64url(&self) -> String {
        BASE64URL_NOPAD.encode(&self.to_cbor())
    }

    /// Parses the text form (surrounding whitespace is ignored).
    pub fn from_base64url(text: &str) -> Result<Self, TicketError> {
        let bytes = BASE64URL_NOPAD
            .decode(text.trim().as_bytes())
            .map_err(|e| TicketError::malformed(format!("ticket is not base64url: {e}")))?;
        Self::from_cbor(&bytes)
    }

    /// Decodes the claims **without** checking the signature (for display and routing only).
    pub fn claims_unverified(&self) -> Result<TicketClaims, TicketError> {
        decode_exact(&self.claims)
            .map_err(|e| TicketError::malformed(format!("bad claims CBOR: {e}")))
    }
}

fn decode_exact<T: for<'b> Decode<'b, ()>>(bytes: &[u8]) -> Result<T, minicbor::decode::Error> {
    let mut decoder = minicbor::Decoder::new(bytes);
    let value = decoder.decode()?;
    if decoder.position() != bytes.len() {
        return Err(minicbor::decode::Error::message("trailing bytes"));
    }
    Ok(value)
}

fn signed_message(claims: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(TICKET_SIGNATURE_CONTEXT.len() + claims.len());
    message.extend_from_slice(TICKET_SIGNATURE_CONTEXT);
    message.extend_from_slice(claims);
    message
}

/// Why a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not a well-formed ticket.
    #[error("ticket is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// Signed with a key the device does not trust.
    #[error("ticket is signed with key {key_id:?}, which this device does not trust")]
    UnknownKey {
        /// The key id named in the ticket.
        key_id: String,
    },
    /// The signature does not verify: the ticket was altered or forged.
    #[error("ticket signature is invalid: the ticket was altered or not issued by the API")]
    BadSignature,
    /// The ticket has expired.
    #[error("ticket expired at {expires_at} (device time {now}); request a new ticket")]
    Expired {
        /// Expiry (unix seconds).
        expires_at: i64,
        /// Device time (unix seconds).
        now: i64,
    },
    /// The ticket is not valid yet (or the device clock is behind).
    #[error("ticket is valid only from {not_before} (device time {now}); check the device clock")]
    NotYetValid {
        /// Start of validity (unix seconds).
        not_before: i64,
        /// Device time (unix seconds).
        now: i64,
    },
    /// The ticket was issued for another device.
    #[error("ticket is for {ticket_for:?}, not this device ({device:?})")]
    WrongDevice {
        /// Registration ID in the ticket.
        ticket_for: String,
        /// The device's own registration ID.
        device: String,
    },
}

impl TicketError {
    fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed {
            reason: reason.into(),
        }
    }

    /// Stable snake_case code (matches [`crate::message::ErrorCode::as_str`]).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "ticket_malformed",
            Self::UnknownKey { .. } => "ticket_unknown_key",
            Self::BadSignature => "ticket_bad_signature",
            Self::Expired { .. } => "ticket_expired",
            Self::NotYetValid { .. } => "ticket_not_yet_valid",
            Self::WrongDevice { .. } => "ticket_wrong_device",
        }
    }
}

/// Signs tickets with one Ed25519 key.
pub struct TicketSigner {
    key_id: String,
    key: SigningKey,
}

impl fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketSigner")
            .field("key_id", &self.key_id)
            .field("key", &crate::secret::REDACTED)
            .finish()
    }
}

impl TicketSigner {
    /// A signer whose tickets name `key_id`.
    pub fn new(key_id: impl Into<String>, key: SigningKey) -> Self {
        Self {
            key_id: key_id.into(),
            key,
        }
    }

    /// The key id written into every ticket.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half, for [`TrustAnchors`].
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `claims`; the ticket's `key_id` is always this signer's.
    pub fn sign(&self, claims: &TicketClaims) -> SignedTicket {
        let mut claims = claims.clone();
        claims.key_id.clone_from(&self.key_id);
        let claims = minicbor::to_vec(&claims).expect("encoding into a Vec cannot fail");
        let signature = self.key.sign(&signed_message(&claims)).to_bytes();
        SignedTicket { claims, signature }
    }
}

/// The ticket-signing keys a device trusts, by key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    keys: BTreeMap<String, VerifyingKey>,
}

impl TrustAnchors {
    /// No trusted keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a key, builder style.
    pub fn with_key(mut self, key_id: impl Into<String>, key: VerifyingKey) -> Self {
        self.insert(key_id, key);
        self
    }

    /// Adds (or replaces) a key.
    pub fn insert(&mut self, key_id: impl Into<String>, key: VerifyingKey) {
        self.keys.insert(key_id.into(), key);
    }

    /// Removes a key (rotation).
    pub fn remove(&mut self, key_id: &str) -> Option<VerifyingKey> {
        self.keys.remove(key_id)
    }

    /// The key with this id.
    pub fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys.get(key_id)
    }

    /// Iterates over `(key_id, key)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &VerifyingKey)> {
        self.keys.iter().map(|(id, key)| (id.as_str(), key))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `ticket` for the device `own_registration_id` at `now_unix`.
    ///
    /// Checks, in order: structure, known key, signature, registration ID, validity window
    /// (`not_before <= now < expires_at`). Replay is the caller's check (nonce store).
    pub fn verify(
        &self,
        ticket: &SignedTicket,
        now_unix: i64,
        own_registration_id: &str,
    ) -> Result<TicketClaims, TicketError> {
        let claims = ticket.claims_unverified()?;
        let key = self
            .keys
            .get(&claims.key_id)
            .ok_or_else(|| TicketError::UnknownKey {
                key_id: claims.key_id.clone(),
            })?;
        let signature = Signature::from_bytes(&ticket.signature);
        key.verify_strict(&signed_message(&ticket.claims), &signature)
            .map_err(|_| TicketError::BadSignature)?;
        if claims.not_before >= claims.expires_at {
            return Err(TicketError::malformed(
                "not_before is not before expires_at",
            ));
        }
        if claims.registration_id != own_registration_id {
            return Err(TicketError::WrongDevice {
                ticket_for: claims.registration_id,
                device: own_registration_id.to_owned(),
            });
        }
        if now_unix < claims.not_before {
            return Err(TicketError::NotYetValid {
                not_before: claims.not_before,
                now: now_unix,
            });
        }
        if now_unix >= claims.expires_at {
            return Err(TicketError::Expired {
                expires_at: claims.expires_at,
                now: now_unix,
            });
        }
        Ok(claims)
    }
}

/// Text form of a verifying key for config files: base64url (no padding) of its 32 bytes.
pub fn encode_verifying_key(key: &VerifyingKey) -> String {
    BASE64URL_NOPAD.encode(key.as_bytes())
}

/// Parses [`encode_verifying_key`]'s text form.
pub fn decode_verifying_key(text: &str) -> Result<VerifyingKey, TicketError> {
    let bytes = BASE64URL_NOPAD
        .decode(text.trim().as_bytes())
        .map_err(|e| TicketError::malformed(format!("verifying key is not base64url: {e}")))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| TicketError::malformed("verifying key must be 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| TicketError::malformed("verifying key is not a valid Ed25519 point"))
}

#[cfg(test)]
mod tests;
