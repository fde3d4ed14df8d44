//! The device's side of the handshake.

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
    SecretKind, SecureMessage, to_cbor,
};
use crate::payload::PopSecret;

/// The device's handshake entry point.
#[derive(Debug)]
pub struct DeviceHandshake;

impl DeviceHandshake {
    /// Answers a `ClientHello`. Count the attempt persistently **before** calling this, and pass
    /// the attempts left after it. The secret is the PoP or, when the hello asks for it, the
    /// manual passcode derived from it.
    pub fn respond<R: CryptoRngCore + ?Sized>(
        pop: &PopSecret,
        hello: &ClientHello,
        device_info: &DeviceInfo,
        attempts_left: u8,
        rng: &mut R,
    ) -> Result<(PendingDeviceSession, DeviceHello), SessionError> {
        if hello.version != PROTOCOL_VERSION {
            return Err(SessionError::UnsupportedVersion {
                got: hello.version,
                supported: PROTOCOL_VERSION,
            });
        }
        if hello.spake_msg.len() != SPAKE_MSG_LEN {
            return Err(SessionError::Malformed {
                reason: "SPAKE2 message must be 33 bytes",
            });
        }
        let secret = match hello.secret_kind {
            SecretKind::Pop => SessionSecret::Pop(pop.clone()),
            SecretKind::ManualPasscode => SessionSecret::ManualPasscode(pop.manual_passcode()),
        };
        let (id_a, id_b) = identities();
        let (spake, spake_msg) =
            Spake2::<Ed25519Group>::start_b_with_rng(&secret.password(), &id_a, &id_b, &mut *rng);
        let spake_key = zeroize::Zeroizing::new(spake.finish(&hello.spake_msg).map_err(|_| {
            SessionError::Malformed {
                reason: "invalid SPAKE2 message",
            }
        })?);
        let mut device_nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut device_nonce);
        let transcript = Transcript {
            version: hello.version,
            secret_kind: hello.secret_kind,
            client_spake: &hello.spake_msg,
            client_nonce: &hello.client_nonce,
            device_spake: &spake_msg,
            device_nonce: &device_nonce,
            attempts_left,
        };
        let keys = SessionKeys::derive(&spake_key, &transcript.hash());
        let mut channel =
            SecureChannel::new(Role::Device, keys.client_to_device, keys.device_to_client);
        let device_info = channel.seal_bytes(&to_cbor(device_info))?;
        let reply = DeviceHello {
            version: PROTOCOL_VERSION,
            spake_msg,
            device_nonce,
            device_confirm: keys.device_confirm,
            attempts_left,
            device_info,
        };
        let pending = PendingDeviceSession {
            channel,
            expected_confirm: keys.client_confirm,
            attempts_left,
        };
        Ok((pending, reply))
    }
}

/// The device's session after `DeviceHello`, until the installer's confirmation arrives.
pub struct PendingDeviceSession {
    channel: SecureChannel,
    expected_confirm: [u8; CONFIRM_LEN],
    attempts_left: u8,
}

impl fmt::Debug for PendingDeviceSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingDeviceSession")
            .field("channel", &self.channel)
            .field("attempts_left", &self.attempts_left)
            .finish_non_exhaustive()
    }
}

impl PendingDeviceSession {
    /// Verifies the installer's confirmation (reset the attempt counter on success) and opens
    /// the request that rode along.
    pub fn confirm(
        mut self,
        finish: &ClientFinish,
    ) -> Result<(SecureChannel, SecureMessage), SessionError> {
        if !bool::from(self.expected_confirm.ct_eq(&finish.client_confirm)) {
            return Err(SessionError::WrongSecret {
                attempts_left: self.attempts_left,
            });
        }
        let first = self.channel.open(&finish.request)?;
        Ok((self.channel, first))
    }
}
