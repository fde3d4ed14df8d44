//! Plaintext handshake messages and the sealed record.

use minicbor::{Decode, Encode};

use super::ErrorCode;

/// Length of a SPAKE2 (Ed25519 group) message: a side byte and a 32-byte point.
pub const SPAKE_MSG_LEN: usize = 33;
/// Length of each handshake nonce.
pub const NONCE_LEN: usize = 16;
/// Length of a key confirmation (HMAC-SHA256).
pub const CONFIRM_LEN: usize = 32;

/// Which secret keys the PAKE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
pub enum SecretKind {
    /// The 88-bit proof-of-possession from the QR label.
    #[n(0)]
    Pop,
    /// The 27-bit manual passcode (typed from the manual code).
    #[n(1)]
    ManualPasscode,
}

/// RT1, installer → device.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct ClientHello {
    /// Protocol version ([`crate::PROTOCOL_VERSION`]).
    #[n(0)]
    pub version: u8,
    /// Which secret the installer used.
    #[n(1)]
    pub secret_kind: SecretKind,
    /// SPAKE2 message A (33 bytes).
    #[n(2)]
    #[cbor(with = "minicbor::bytes")]
    pub spake_msg: Vec<u8>,
    /// Installer nonce.
    #[n(3)]
    #[cbor(with = "minicbor::bytes")]
    pub client_nonce: [u8; NONCE_LEN],
}

/// RT1 answer, device → installer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct DeviceHello {
    /// Protocol version.
    #[n(0)]
    pub version: u8,
    /// SPAKE2 message B (33 bytes).
    #[n(1)]
    #[cbor(with = "minicbor::bytes")]
    pub spake_msg: Vec<u8>,
    /// Device nonce.
    #[n(2)]
    #[cbor(with = "minicbor::bytes")]
    pub device_nonce: [u8; NONCE_LEN],
    /// HMAC proving the device derived the same keys.
    #[n(3)]
    #[cbor(with = "minicbor::bytes")]
    pub device_confirm: [u8; CONFIRM_LEN],
    /// Attempts left before lockout, this one already counted.
    #[n(4)]
    pub attempts_left: u8,
    /// `DeviceInfo`, sealed device → installer with counter 0.
    #[n(5)]
    pub device_info: Sealed,
}

/// RT1 refusal, device → installer (instead of a `DeviceHello`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct HandshakeRefused {
    /// `device_locked`, `busy`, `unsupported_version` or `malformed_message`.
    #[n(0)]
    pub code: ErrorCode,
    /// Seconds before a new attempt can succeed.
    #[n(1)]
    pub retry_after_s: Option<u32>,
    /// The protocol version the device speaks (with `unsupported_version`).
    #[n(2)]
    pub supported_version: Option<u8>,
}

/// RT2, installer → device: key confirmation with the first request riding along.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct ClientFinish {
    /// HMAC proving the installer derived the same keys.
    #[n(0)]
    #[cbor(with = "minicbor::bytes")]
    pub client_confirm: [u8; CONFIRM_LEN],
    /// The first `SecureMessage`, sealed installer → device with counter 0.
    #[n(1)]
    pub request: Sealed,
}

/// An AEAD record (ChaCha20-Poly1305); see `session` for nonce and AAD.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Sealed {
    /// Record counter in this direction (0, 1, 2, …).
    #[n(0)]
    pub counter: u64,
    /// Ciphertext followed by the 16-byte tag.
    #[n(1)]
    #[cbor(with = "minicbor::bytes")]
    pub ciphertext: Vec<u8>,
}
