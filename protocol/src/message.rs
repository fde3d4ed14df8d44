//! Typed, versioned, CBOR-encoded messages.
//!
//! Every frame-level message is a [`WireMessage`]. Until the handshake completes they are plain
//! (`ClientHello`, `DeviceHello`, `HandshakeRefused`, `ClientFinish`); afterwards every message
//! is a [`Sealed`] record whose plaintext is a [`SecureMessage`].
//!
//! Encoding (minicbor derive): structs are CBOR maps with small integer keys (absent `Option`s
//! are omitted, unknown keys ignored); a field-less enum is its variant number; any other enum
//! is `[variant, {fields}]`, where a wrapped struct is field 0. See `docs/protocol.md`.

mod error_code;
mod handshake;
mod network;
mod registration;
mod secure;

use minicbor::{Decode, Encode};

pub use crate::PROTOCOL_VERSION;
pub use crate::gatt::AdvertisedState as DeviceState;
pub use error_code::ErrorCode;
pub use handshake::{
    CONFIRM_LEN, ClientFinish, ClientHello, DeviceHello, HandshakeRefused, NONCE_LEN,
    SPAKE_MSG_LEN, Sealed, SecretKind,
};
pub use network::{
    JoinFailureKind, JoinStage, NetworkCapabilities, NetworkConfig, NetworkProgress, NetworkResult,
    WifiNetwork, WifiSecurity,
};
pub use registration::{DpsResult, DpsStatus, RegistrationProgress, RegistrationStage};
pub use secure::{
    Assignment, DeviceInfo, DeviceStatus, Event, ProtocolError, Request, Response, SecureMessage,
};

use crate::framing::MAX_MESSAGE_LEN;

/// A message that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Longer than [`MAX_MESSAGE_LEN`].
    #[error("message of {len} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Not valid CBOR for the expected type.
    #[error("malformed message: {reason}")]
    Malformed {
        /// What the decoder said.
        reason: String,
    },
}

impl MessageError {
    /// The error code to report to the peer.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::MalformedMessage
    }
}

/// Encodes any protocol type to CBOR.
pub fn to_cbor<T: Encode<()>>(value: &T) -> Vec<u8> {
    minicbor::to_vec(value).expect("encoding into a Vec cannot fail")
}

/// Decodes a protocol type from exactly `bytes` (trailing bytes are an error).
pub fn from_cbor<T: for<'b> Decode<'b, ()>>(bytes: &[u8]) -> Result<T, MessageError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(MessageError::TooLarge { len: bytes.len() });
    }
    let mut decoder = minicbor::Decoder::new(bytes);
    let value = decoder.decode().map_err(|e| MessageError::Malformed {
        reason: e.to_string(),
    })?;
    if decoder.position() != bytes.len() {
        return Err(MessageError::Malformed {
            reason: format!("{} trailing bytes", bytes.len() - decoder.position()),
        });
    }
    Ok(value)
}

/// A frame-level message.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub enum WireMessage {
    /// RT1, installer → device.
    #[n(0)]
    ClientHello(#[n(0)] ClientHello),
    /// RT1 answer.
    #[n(1)]
    DeviceHello(#[n(0)] DeviceHello),
    /// RT1 refusal.
    #[n(2)]
    HandshakeRefused(#[n(0)] HandshakeRefused),
    /// RT2, installer → device.
    #[n(3)]
    ClientFinish(#[n(0)] ClientFinish),
    /// Any later message, either direction.
    #[n(4)]
    Sealed(#[n(0)] Sealed),
}

impl WireMessage {
    /// CBOR encoding (what gets segmented into frames).
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }

    /// Decodes one reassembled message.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        from_cbor(bytes)
    }

    /// Stable snake_case name of the variant (for logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ClientHello(_) => "client_hello",
            Self::DeviceHello(_) => "device_hello",
            Self::HandshakeRefused(_) => "handshake_refused",
            Self::ClientFinish(_) => "client_finish",
            Self::Sealed(_) => "sealed",
        }
    }
}

impl SecureMessage {
    /// CBOR encoding (the plaintext of a sealed record).
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }

    /// Decodes an opened record.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        from_cbor(bytes)
    }
}

#[cfg(test)]
mod tests;
