//! The secure session: SPAKE2 handshake keyed by the PoP (or manual passcode), then
//! ChaCha20-Poly1305 records.
//!
//! ```text
//! installer                                   device
//! ClientHello{A, client_nonce}          ──►   count the attempt (persistently)
//!                                       ◄──   DeviceHello{B, device_nonce, device_confirm,
//!                                                         attempts_left, sealed DeviceInfo}
//! check device_confirm (wrong ⇒ WrongSecret)
//! ClientFinish{client_confirm, sealed Request}──►  check client_confirm, open the request
//!                                       ◄──   sealed Response, then sealed Events
//! ```
//!
//! SPAKE2 (Ed25519 group, spake2 0.4): side A = installer with identity
//! `"fieldlink installer"`, side B = device with identity `"fieldlink device"`, password
//! `0x00 || pop (11 bytes)` or `0x01 || passcode (u32 big-endian)`. Key schedule: see [`keys`]
//! constants; record layer: see [`SecureChannel`].

mod channel;
mod client;
mod device;
pub mod keys;

use std::fmt;

use spake2::{Identity, Password};
use zeroize::Zeroizing;

pub use channel::{
    DIRECTION_CLIENT_TO_DEVICE, DIRECTION_DEVICE_TO_CLIENT, Role, SecureChannel, record_aad,
    record_nonce,
};
pub use client::{ClientConfirm, ClientHandshake};
pub use device::{DeviceHandshake, PendingDeviceSession};

use crate::message::{ErrorCode, SecretKind};
use crate::payload::PopSecret;

/// SPAKE2 identity of side A (the installer).
pub const INSTALLER_IDENTITY: &[u8] = b"fieldlink installer";
/// SPAKE2 identity of side B (the device).
pub const DEVICE_IDENTITY: &[u8] = b"fieldlink device";

fn identities() -> (Identity, Identity) {
    (
        Identity::new(INSTALLER_IDENTITY),
        Identity::new(DEVICE_IDENTITY),
    )
}

/// The secret the installer knows: the PoP from the QR label, or the passcode from the manual
/// code. `Debug` is redacted.
#[derive(Clone)]
pub enum SessionSecret {
    /// The PoP from the QR label.
    Pop(PopSecret),
    /// The 27-bit passcode from the manual code.
    ManualPasscode(u32),
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pop(_) => f.write_str("Pop(<redacted>)"),
            Self::ManualPasscode(_) => f.write_str("ManualPasscode(<redacted>)"),
        }
    }
}

impl SessionSecret {
    /// What the `ClientHello` announces.
    pub fn kind(&self) -> SecretKind {
        match self {
            Self::Pop(_) => SecretKind::Pop,
            Self::ManualPasscode(_) => SecretKind::ManualPasscode,
        }
    }

    fn password(&self) -> Password {
        let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(match self {
            Self::Pop(pop) => [&[0x00][..], pop.expose_bytes()].concat(),
            Self::ManualPasscode(code) => [&[0x01][..], &code.to_be_bytes()].concat(),
        });
        Password::new(bytes.as_slice())
    }
}

/// A handshake or record failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The key confirmation did not match: the PoP or passcode is wrong.
    #[error("wrong proof-of-possession ({attempts_left} attempts left before lockout)")]
    WrongSecret {
        /// Attempts left, as the device reported.
        attempts_left: u8,
    },
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {got}; this side speaks {supported}")]
    UnsupportedVersion {
        /// The peer's version.
        got: u8,
        /// Ours.
        supported: u8,
    },
    /// A handshake message or record payload that cannot be used.
    #[error("malformed session message: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// A record that was already received.
    #[error("replayed record {counter} (expected {expected})")]
    Replayed {
        /// Its counter.
        counter: u64,
        /// The counter expected.
        expected: u64,
    },
    /// A record ahead of the next expected one (reordered or one is missing).
    #[error("out-of-order record {counter} (expected {expected})")]
    Reordered {
        /// Its counter.
        counter: u64,
        /// The counter expected.
        expected: u64,
    },
    /// A record whose authentication tag does not verify.
    #[error("record failed authentication (tampered or corrupted)")]
    Tampered,
    /// The record counter cannot advance; start a new session.
    #[error("record counter exhausted; start a new session")]
    CounterExhausted,
}

impl SessionError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongSecret { .. } => "wrong_pop",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::Malformed { .. } => "malformed_message",
            Self::Replayed { .. } => "replayed",
            Self::Reordered { .. } => "reordered",
            Self::Tampered => "tampered",
            Self::CounterExhausted => "counter_exhausted",
        }
    }

    /// The protocol error code to report to the peer.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::WrongSecret { .. } => ErrorCode::WrongPop,
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::CounterExhausted => ErrorCode::Internal,
            _ => ErrorCode::MalformedMessage,
        }
    }
}

#[cfg(test)]
mod tests;
