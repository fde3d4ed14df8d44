//! Values that must never reach a log: keys, PoP secrets, Wi-Fi passphrases.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// A secret string (a base64 key, a passphrase). `Debug` and `Display` never show it; the
/// memory is wiped on drop. Serialises transparently, because the config store must keep it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// Secret bytes (the PoP). Stored as lowercase hex; `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps secret bytes.
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    /// The secret bytes; call only where they are used.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut text = String::deserialize(deserializer)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom);
        text.zeroize();
        bytes.map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = SecretString::new("c2VjcmV0LWtleQ==");
        let pop = SecretBytes::new(vec![0xab; 11]);
        let shown = format!("{key:?} {pop:?}");
        assert!(!shown.contains("c2Vj"));
        assert!(!shown.contains("abab"));
        assert_eq!(shown, "\"<redacted>\" \"<redacted>\"");
    }

    #[test]
    fn serde_round_trip_keeps_the_value() {
        let pop = SecretBytes::new(vec![1, 2, 3]);
        let json = serde_json::to_string(&pop).unwrap();
        assert_eq!(json, "\"010203\"");
        let back: SecretBytes = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose(), &[1, 2, 3]);
    }
}
