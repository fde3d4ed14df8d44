//! The issuer's Ed25519 signing keys with rotation: one current key signs; retired keys stay in
//! the JWKS until every token they signed has expired. The set also serves the API's verifier
//! directly ([`JwksSource`]), so rotation is seen without a fetch.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use rand::RngCore;
use serde_json::{Value, json};

use crate::auth::{JwksError, JwksSource, VerificationKey};

struct KeyPair {
    key_id: String,
    encoding: EncodingKey,
    public: [u8; 32],
    created_at: i64,
    /// When it stopped signing (retired keys only).
    retired_at: Option<i64>,
}

impl KeyPair {
    fn generate(now_unix: i64) -> Self {
        let mut seed = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut seed);
        let signing = SigningKey::from_bytes(&seed);
        seed.fill(0);
        let der = signing
            .to_pkcs8_der()
            .expect("an Ed25519 key always encodes as PKCS#8");
        let public = signing.verifying_key().to_bytes();
        let mut id = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut id);
        Self {
            key_id: format!("sbx-{}", hex::encode(id)),
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public,
            created_at: now_unix,
            retired_at: None,
        }
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public),
            "kid": self.key_id,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

struct KeySet {
    current: KeyPair,
    retired: Vec<KeyPair>,
}

/// The issuer's signing keys.
pub struct SigningKeys {
    set: RwLock<KeySet>,
    rotate_after_s: i64,
    /// How long a retired key stays published (longest token lifetime + skew).
    publish_retired_s: i64,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("current", &self.current_key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// A fresh key, replaced every `rotate_after_s`; retired keys are published for
    /// `publish_retired_s` more.
    pub fn new(now_unix: i64, rotate_after_s: u64, publish_retired_s: u64) -> Self {
        Self {
            set: RwLock::new(KeySet {
                current: KeyPair::generate(now_unix),
                retired: Vec::new(),
            }),
            rotate_after_s: i64::try_from(rotate_after_s).unwrap_or(i64::MAX),
            publish_retired_s: i64::try_from(publish_retired_s).unwrap_or(i64::MAX),
        }
    }

    /// The key id that signs now.
    pub fn current_key_id(&self) -> String {
        self.set
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .key_id
            .clone()
    }

    /// Replaces the signing key now; returns the new key id.
    pub fn rotate(&self, now_unix: i64) -> String {
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        let mut old = std::mem::replace(&mut set.current, KeyPair::generate(now_unix));
        old.retired_at = Some(now_unix);
        set.retired.push(old);
        self.prune(&mut set, now_unix);
        set.current.key_id.clone()
    }

    fn prune(&self, set: &mut KeySet, now_unix: i64) {
        let keep = self.publish_retired_s;
        set.retired
            .retain(|k| k.retired_at.is_none_or(|at| now_unix - at < keep));
    }

    fn rotate_if_due(&self, now_unix: i64) {
        let due = {
            let set = self.set.read().unwrap_or_else(|p| p.into_inner());
            now_unix - set.current.created_at >= self.rotate_after_s
        };
        if due {
            self.rotate(now_unix);
        } else {
            let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
            self.prune(&mut set, now_unix);
        }
    }

    /// Signs `claims` with the current key (rotating first when due).
    pub fn sign(&self, claims: &Value, typ: &str, now_unix: i64) -> String {
        self.rotate_if_due(now_unix);
        let set = self.set.read().unwrap_or_else(|p| p.into_inner());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(set.current.key_id.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &set.current.encoding)
            .expect("Ed25519 signing of JSON claims cannot fail")
    }

    /// The published key set (current and still-published retired keys).
    pub fn jwks(&self, now_unix: i64) -> Value {
        self.rotate_if_due(now_unix);
        let set = self.set.read().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<Value> = std::iter::once(&set.current)
            .chain(set.retired.iter())
            .map(KeyPair::jwk)
            .collect();
        json!({ "keys": keys })
    }

    fn published(&self, kid: &str) -> Option<Value> {
        let set = self.set.read().unwrap_or_else(|p| p.into_inner());
        std::iter::once(&set.current)
            .chain(set.retired.iter())
            .find(|k| k.key_id == kid)
            .map(KeyPair::jwk)
    }
}

/// The API's view of the issuer's keys (no HTTP round trip).
#[derive(Debug, Clone)]
pub struct IssuerJwks(pub Arc<SigningKeys>);

#[async_trait]
impl JwksSource for IssuerJwks {
    async fn key(&self, kid: &str) -> Result<Option<Arc<VerificationKey>>, JwksError> {
        let Some(jwk) = self.0.published(kid) else {
            return Ok(None);
        };
        let jwk: Jwk =
            serde_json::from_value(jwk).map_err(|e| JwksError::Malformed(e.to_string()))?;
        Ok(Some(Arc::new(VerificationKey::from_jwk(&jwk)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotation_keeps_the_old_key_published_for_a_while() {
        let keys = Arc::new(SigningKeys::new(1_000, 100, 50));
        let first = keys.current_key_id();
        let token = keys.sign(&json!({"sub": "a"}), "at+jwt", 1_000);
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(first.as_str()));
        assert_eq!(header.alg, Algorithm::EdDSA);

        // Due at +100: the next signature uses a new key, the old one is still published.
        let token = keys.sign(&json!({"sub": "a"}), "at+jwt", 1_100);
        let second = keys.current_key_id();
        assert_ne!(first, second);
        assert_eq!(
            jsonwebtoken::decode_header(&token).expect("header").kid,
            Some(second.clone())
        );
        let jwks = keys.jwks(1_120);
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
        let source = IssuerJwks(keys.clone());
        assert!(source.key(&first).await.expect("ok").is_some());

        // 50 s after retirement the old key is gone.
        let jwks = keys.jwks(1_150);
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
        assert!(source.key(&first).await.expect("ok").is_none());
        assert!(source.key(&second).await.expect("ok").is_some());
        assert!(!format!("{keys:?}").contains("encoding"));
    }

    #[test]
    fn manual_rotation() {
        let keys = SigningKeys::new(0, 1_000_000, 600);
        let before = keys.current_key_id();
        let after = keys.rotate(10);
        assert_ne!(before, after);
        assert_eq!(keys.current_key_id(), after);
    }
}
