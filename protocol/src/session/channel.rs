//! The record layer: ChaCha20-Poly1305 with per-direction keys and strict in-order counters.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key as AeadKey, Nonce};

use super::SessionError;
use super::keys::Key;
use crate::PROTOCOL_VERSION;
use crate::message::{Sealed, SecureMessage};

/// Which end of the session this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The installer (SPAKE2 side A).
    Installer,
    /// The device (SPAKE2 side B).
    Device,
}

/// Direction byte in the AAD: installer → device.
pub const DIRECTION_CLIENT_TO_DEVICE: u8 = 0x01;
/// Direction byte in the AAD: device → installer.
pub const DIRECTION_DEVICE_TO_CLIENT: u8 = 0x02;

/// The 12-byte nonce: 4 zero bytes, then the counter (u64, big-endian).
pub fn record_nonce(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// The 10-byte AAD: protocol version, direction byte, counter (u64, big-endian).
pub fn record_aad(direction: u8, counter: u64) -> [u8; 10] {
    let mut aad = [0u8; 10];
    aad[0] = PROTOCOL_VERSION;
    aad[1] = direction;
    aad[2..].copy_from_slice(&counter.to_be_bytes());
    aad
}

/// An established session: seals outgoing and opens incoming records.
pub struct SecureChannel {
    role: Role,
    send_key: Key,
    recv_key: Key,
    send_counter: u64,
    recv_counter: u64,
}

impl fmt::Debug for SecureChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureChannel")
            .field("role", &self.role)
            .field("keys", &crate::secret::REDACTED)
            .field("send_counter", &self.send_counter)
            .field("recv_counter", &self.recv_counter)
            .finish()
    }
}

impl SecureChannel {
    pub(crate) fn new(role: Role, client_to_device: Key, device_to_client: Key) -> Self {
        let (send_key, recv_key) = match role {
            Role::Installer => (client_to_device, device_to_client),
            Role::Device => (device_to_client, client_to_device),
        };
        Self {
            role,
            send_key,
            recv_key,
            send_counter: 0,
            recv_counter: 0,
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Counter of the next record sealed.
    pub fn send_counter(&self) -> u64 {
        self.send_counter
    }

    /// Counter the next opened record must carry.
    pub fn recv_counter(&self) -> u64 {
        self.recv_counter
    }

    fn directions(&self) -> (u8, u8) {
        match self.role {
            Role::Installer => (DIRECTION_CLIENT_TO_DEVICE, DIRECTION_DEVICE_TO_CLIENT),
            Role::Device => (DIRECTION_DEVICE_TO_CLIENT, DIRECTION_CLIENT_TO_DEVICE),
        }
    }

    /// Seals a message.
    pub fn seal(&mut self, message: &SecureMessage) -> Result<Sealed, SessionError> {
        self.seal_bytes(&message.encode())
    }

    /// Opens the next record and decodes its message.
    pub fn open(&mut self, sealed: &Sealed) -> Result<SecureMessage, SessionError> {
        let plaintext = self.open_bytes(sealed)?;
        SecureMessage::decode(&plaintext).map_err(|_| SessionError::Malformed {
            reason: "sealed message is not valid CBOR",
        })
    }

    /// Seals raw bytes (the record counter advances).
    pub fn seal_bytes(&mut self, plaintext: &[u8]) -> Result<Sealed, SessionError> {
        let counter = self.send_counter;
        let next = counter
            .checked_add(1)
            .ok_or(SessionError::CounterExhausted)?;
        let (direction, _) = self.directions();
        let cipher = ChaCha20Poly1305::new(AeadKey::from_slice(self.send_key.as_ref()));
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&record_nonce(counter)),
                Payload {
                    msg: plaintext,
                    aad: &record_aad(direction, counter),
                },
            )
            .map_err(|_| SessionError::Malformed {
                reason: "record too large to seal",
            })?;
        self.send_counter = next;
        Ok(Sealed {
            counter,
            ciphertext,
        })
    }

    /// Opens the next record to raw bytes. A rejected record changes nothing.
    pub fn open_bytes(&mut self, sealed: &Sealed) -> Result<Vec<u8>, SessionError> {
        let expected = self.recv_counter;
        let counter = sealed.counter;
        if counter < expected {
            return Err(SessionError::Replayed { counter, expected });
        }
        if counter > expected {
            return Err(SessionError::Reordered { counter, expected });
        }
        let next = expected
            .checked_add(1)
            .ok_or(SessionError::CounterExhausted)?;
        let (_, direction) = self.directions();
        let cipher = ChaCha20Poly1305::new(AeadKey::from_slice(self.recv_key.as_ref()));
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(&record_nonce(counter)),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &record_aad(direction, counter),
                },
            )
            .map_err(|_| SessionError::Tampered)?;
        self.recv_counter = next;
        Ok(plaintext)
    }
}
