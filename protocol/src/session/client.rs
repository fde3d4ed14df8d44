//! The installer's side of the handshake.

use std::fmt;

use rand_core::CryptoRngCore;
use spake2::{Ed25519Group, Spake2};
use subtle::ConstantTimeEq;

use super::channel::{Role, SecureChannel};
use super::keys::{SessionKeys, Transcript};
use super::{SessionError, SessionSecret, identities};
use crate::PROTOCOL_VERSION;
use crate::message::{
    CONFIRM_LEN, ClientFinish, ClientHello, DeviceHello, DeviceInfo, NONCE_LEN, SPAKE_MSG_LEN,
    SecureMessage, from_cbor,
};

/// The installer's handshake in progress (after sending `ClientHello`).
pub struct ClientHandshake {
    spake: Spake2<Ed25519Group>,
    hello: ClientHello,
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// Starts a handshake keyed by `secret`; send the returned `ClientHello`.
    pub fn start<R: CryptoRngCore + ?Sized>(
        secret: &SessionSecret,
        rng: &mut R,
    ) -> (Self, ClientHello) {
        let (id_a, id_b) = identities();
        let (spake, spake_msg) =
            Spake2::<Ed25519Group>::start_a_with_rng(&secret.password(), &id_a, &id_b, &mut *rng);
        let mut client_nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut client_nonce);
        let hello = ClientHello {
            version: PROTOCOL_VERSION,
            secret_kind: secret.kind(),
            spake_msg,
            client_nonce,
        };
        (
            Self {
                spake,
                hello: hello.clone(),
            },
            hello,
        )
    }

    /// Checks the device's answer. A confirmation mismatch means the secret was wrong:
    /// [`SessionError::WrongSecret`] carries the attempts the device says are left.
    pub fn finish(
        self,
        device: &DeviceHello,
    ) -> Result<(SecureChannel, DeviceInfo, ClientConfirm), SessionError> {
        if device.version != PROTOCOL_VERSION {
            return Err(SessionError::UnsupportedVersion {
                got: device.version,
                supported: PROTOCOL_VERSION,
            });
        }
        if device.spake_msg.len() != SPAKE_MSG_LEN {
            return Err(SessionError::Malformed {
                reason: "SPAKE2 message must be 33 bytes",
            });
        }
        let spake_key =
            zeroize::Zeroizing::new(self.spake.finish(&device.spake_msg).map_err(|_| {
                SessionError::Malformed {
                    reason: "invalid SPAKE2 message",
                }
            })?);
        let transcript = Transcript {
            version: self.hello.version,
            secret_kind: self.hello.secret_kind,
            client_spake: &self.hello.spake_msg,
            client_nonce: &self.hello.client_nonce,
            device_spake: &device.spake_msg,
            device_nonce: &device.device_nonce,
            attempts_left: device.attempts_left,
        };
        let keys = SessionKeys::derive(&spake_key, &transcript.hash());
        if !bool::from(keys.device_confirm.ct_eq(&device.device_confirm)) {
            return Err(SessionError::WrongSecret {
                attempts_left: device.attempts_left,
            });
        }
        let mut channel = SecureChannel::new(
            Role::Installer,
            keys.client_to_device,
            keys.device_to_client,
        );
        let info = channel.open_bytes(&device.device_info)?;
        let info: DeviceInfo = from_cbor(&info).map_err(|_| SessionError::Malformed {
            reason: "DeviceInfo is not valid CBOR",
        })?;
        Ok((
            channel,
            info,
            ClientConfirm {
                client_confirm: keys.client_confirm,
            },
        ))
    }
}

/// The installer's key confirmation, waiting for the first request to ride along.
pub struct ClientConfirm {
    client_confirm: [u8; CONFIRM_LEN],
}

impl fmt::Debug for ClientConfirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientConfirm(<redacted>)")
    }
}

impl ClientConfirm {
    /// Builds `ClientFinish` with `first` (usually `Request::Provision`) sealed on `channel`.
    pub fn finish(
        self,
        channel: &mut SecureChannel,
        first: &SecureMessage,
    ) -> Result<ClientFinish, SessionError> {
        let request = channel.seal(first)?;
        Ok(ClientFinish {
            client_confirm: self.client_confirm,
            request,
        })
    }
}
