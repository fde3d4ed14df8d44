//! Secret strings (Wi-Fi passphrases and the like) that never show up in logs.

use std::fmt;

use minicbor::{Decode, Decoder, Encode, Encoder};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What every secret's `Debug` and `Display` print.
pub const REDACTED: &str = "<redacted>";

/// A secret text value: its `Debug` prints `"<redacted>"` and its memory is zeroed on drop.
///
/// On the wire it is a plain CBOR text string; it only ever travels inside a sealed record.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret value. Call this only where the value is actually used.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty (an open network's "passphrase").
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl<C> Encode<C> for Secret {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _ctx: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.str(&self.0)?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for Secret {
    fn decode(d: &mut Decoder<'b>, _ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        Ok(Self::new(d.str()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::new("hunter2-wifi");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&secret)), "Some(<redacted>)");
        assert_eq!(secret.expose(), "hunter2-wifi");
        assert_eq!(secret.len(), 12);
    }

    #[test]
    fn cbor_round_trip() {
        let secret = Secret::new("pass phrase");
        let bytes = minicbor::to_vec(&secret).expect("encode");
        let back: Secret = minicbor::decode(&bytes).expect("decode");
        assert_eq!(back, secret);
        assert_ne!(back, Secret::new("other"));
    }
}
