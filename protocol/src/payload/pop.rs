//! The proof-of-possession secret printed on the device label.

use std::fmt;

use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a [`PopSecret`] in bytes (88 bits).
pub const POP_LEN: usize = 11;

/// Largest manual passcode (27 bits).
pub const MAX_MANUAL_PASSCODE: u32 = (1 << 27) - 1;

/// HMAC message from which the manual passcode is derived.
pub const MANUAL_PASSCODE_LABEL: &[u8] = b"fieldlink manual passcode";

/// The device's proof-of-possession secret: 11 random bytes (88 bits).
///
/// `Debug` prints `"<redacted>"`; the bytes are zeroed on drop; equality is constant-time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PopSecret([u8; POP_LEN]);

impl PopSecret {
    /// Wraps raw bytes.
    pub fn from_bytes(bytes: [u8; POP_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh random secret.
    pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; POP_LEN];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The raw bytes. Call this only where the secret is actually used.
    pub fn expose_bytes(&self) -> &[u8; POP_LEN] {
        &self.0
    }

    /// The 27-bit manual passcode derived from this secret:
    /// the first 4 bytes (big-endian) of HMAC-SHA256(pop, "fieldlink manual passcode"),
    /// masked to 27 bits; 0 becomes 1.
    pub fn manual_passcode(&self) -> u32 {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(MANUAL_PASSCODE_LABEL);
        let digest = mac.finalize().into_bytes();
        let value =
            u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & MAX_MANUAL_PASSCODE;
        value.max(1)
    }
}

impl fmt::Debug for PopSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::secret::REDACTED)
    }
}

impl PartialEq for PopSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for PopSecret {}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn debug_is_redacted() {
        let pop = PopSecret::from_bytes([0x42; POP_LEN]);
        assert_eq!(format!("{pop:?}"), "<redacted>");
        assert!(!format!("{:?}", Some(pop)).contains("42"));
    }

    #[test]
    fn generate_uses_the_rng() {
        let a = PopSecret::generate(&mut StdRng::seed_from_u64(1));
        let b = PopSecret::generate(&mut StdRng::seed_from_u64(1));
        let c = PopSecret::generate(&mut StdRng::seed_from_u64(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn manual_passcode_is_27_bits_nonzero_and_stable() {
        let pop = PopSecret::from_bytes(*b"fieldlink!!");
        let passcode = pop.manual_passcode();
        assert!(passcode > 0 && passcode <= MAX_MANUAL_PASSCODE);
        assert_eq!(passcode, pop.manual_passcode());
        let other = PopSecret::from_bytes(*b"fieldlink!?").manual_passcode();
        assert_ne!(passcode, other);
        // Known answer, so other implementations (device firmware in C) can check theirs.
        let digest = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"fieldlink!!").expect("key");
            mac.update(b"fieldlink manual passcode");
            mac.finalize().into_bytes()
        };
        let expected =
            u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x07ff_ffff;
        assert_eq!(passcode, expected.max(1));
    }
}
