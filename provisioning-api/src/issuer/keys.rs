//! The issuer's signing keys with rotation: an RSA 2048 key (RS256, the algorithm OpenID Connect
//! Discovery makes mandatory; the default for ID tokens) and an Ed25519 key (EdDSA: access
//! tokens, and ID tokens of clients that register it). For each algorithm one current key
//! signs; retired keys stay in the JWKS until every token they signed has expired. The set also
//! serves the API's verifier directly ([`JwksSource`]), so rotation is seen without a fetch.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use rand::RngCore;
use rsa::{RsaPrivateKey, pkcs1::EncodeRsaPrivateKey, traits::PublicKeyParts};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{JwksError, JwksSource, VerificationKey};

/// RSA modulus size of the RS256 keys.
pub const RSA_BITS: usize = 2048;

/// The algorithms the issuer signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over an RSA 2048 key.
    #[serde(rename = "RS256")]
    Rs256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    /// Every algorithm, in the order discovery advertises them.
    pub const ALL: [SigningAlgorithm; 2] = [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa];

    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }

    fn jose(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyGenerationError {
    /// RSA key generation or its PKCS#1 encoding failed.
    #[error("RSA key generation failed: {0}")]
    Rsa(String),
}

struct KeyPair {
    key_id: String,
    encoding: EncodingKey,
    /// The public JWK (with `kid`, `alg`, `use`).
    jwk: Value,
    created_at: i64,
    /// When it stopped signing (retired keys only).
    retired_at: Option<i64>,
}

fn key_id(prefix: &str) -> String {
    let mut id = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut id);
    format!("{prefix}-{}", hex::encode(id))
}

impl KeyPair {
    fn generate(algorithm: SigningAlgorithm, now_unix: i64) -> Result<Self, KeyGenerationError> {
        match algorithm {
            SigningAlgorithm::EdDsa => Ok(Self::ed25519(now_unix)),
            SigningAlgorithm::Rs256 => Self::rsa(now_unix),
        }
    }

    fn ed25519(now_unix: i64) -> Self {
        let mut seed = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut seed);
        let signing = SigningKey::from_bytes(&seed);
        seed.fill(0);
        let der = signing
            .to_pkcs8_der()
            .expect("an Ed25519 key always encodes as PKCS#8");
        let key_id = key_id("sbx");
        let jwk = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes()),
            "kid": key_id,
            "alg": "EdDSA",
            "use": "sig",
        });
        Self {
            key_id,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            jwk,
            created_at: now_unix,
            retired_at: None,
        }
    }

    fn rsa(now_unix: i64) -> Result<Self, KeyGenerationError> {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), RSA_BITS)
            .map_err(|e| KeyGenerationError::Rsa(e.to_string()))?;
        // PKCS#1 DER is what jsonwebtoken's `from_rsa_der` (ring's RsaKeyPair) reads; the
        // encoding zeroizes on drop.
        let der = private
            .to_pkcs1_der()
            .map_err(|e| KeyGenerationError::Rsa(e.to_string()))?;
        let key_id = key_id("sbx-rsa");
        let jwk = json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
            "kid": key_id,
            "alg": "RS256",
            "use": "sig",
        });
        Ok(Self {
            key_id,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk,
            created_at: now_unix,
            retired_at: None,
        })
    }
}

/// The key ids a rotation put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedKeys {
    /// The new RS256 (RSA) key id: ID tokens.
    pub rs256: String,
    /// The new EdDSA (Ed25519) key id: access tokens.
    pub eddsa: String,
}

struct KeySet {
    current: KeyPair,
    retired: Vec<KeyPair>,
}

impl KeySet {
    fn all(&self) -> impl Iterator<Item = &KeyPair> {
        std::iter::once(&self.current).chain(self.retired.iter())
    }
}

/// One algorithm's rotating keys.
struct Rotation {
    algorithm: SigningAlgorithm,
    set: RwLock<KeySet>,
}

impl Rotation {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        self.set.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeySet> {
        self.set.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The issuer's signing keys: one rotation per [`SigningAlgorithm`].
pub struct SigningKeys {
    rotations: [Rotation; 2],
    rotate_after_s: i64,
    /// How long a retired key stays published (longest token lifetime + skew).
    publish_retired_s: i64,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("rs256", &self.current_key_id_for(SigningAlgorithm::Rs256))
            .field("eddsa", &self.current_key_id_for(SigningAlgorithm::EdDsa))
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Fresh keys (RSA 2048 and Ed25519), each replaced every `rotate_after_s`; retired keys are
    /// published for `publish_retired_s` more.
    pub fn new(
        now_unix: i64,
        rotate_after_s: u64,
        publish_retired_s: u64,
    ) -> Result<Self, KeyGenerationError> {
        let rotation = |algorithm| -> Result<Rotation, KeyGenerationError> {
            Ok(Rotation {
                algorithm,
                set: RwLock::new(KeySet {
                    current: KeyPair::generate(algorithm, now_unix)?,
                    retired: Vec::new(),
                }),
            })
        };
        Ok(Self {
            rotations: [
                rotation(SigningAlgorithm::Rs256)?,
                rotation(SigningAlgorithm::EdDsa)?,
            ],
            rotate_after_s: i64::try_from(rotate_after_s).unwrap_or(i64::MAX),
            publish_retired_s: i64::try_from(publish_retired_s).unwrap_or(i64::MAX),
        })
    }

    fn rotation(&self, algorithm: SigningAlgorithm) -> &Rotation {
        match algorithm {
            SigningAlgorithm::Rs256 => &self.rotations[0],
            SigningAlgorithm::EdDsa => &self.rotations[1],
        }
    }

    /// The key id that signs access tokens now (EdDSA).
    pub fn current_key_id(&self) -> String {
        self.current_key_id_for(SigningAlgorithm::EdDsa)
    }

    /// The key id that signs with `algorithm` now.
    pub fn current_key_id_for(&self, algorithm: SigningAlgorithm) -> String {
        self.rotation(algorithm).read().current.key_id.clone()
    }

    /// Replaces every signing key now (the old ones stay published).
    pub fn rotate(&self, now_unix: i64) -> Result<RotatedKeys, KeyGenerationError> {
        let rs256 = self.rotate_one(self.rotation(SigningAlgorithm::Rs256), now_unix, false)?;
        let eddsa = self.rotate_one(self.rotation(SigningAlgorithm::EdDsa), now_unix, false)?;
        Ok(RotatedKeys { rs256, eddsa })
    }

    /// Rotates `rotation` (only if still due when `only_if_due`: two signers may race).
    fn rotate_one(
        &self,
        rotation: &Rotation,
        now_unix: i64,
        only_if_due: bool,
    ) -> Result<String, KeyGenerationError> {
        // Generate outside the lock: RSA generation takes a while.
        let fresh = KeyPair::generate(rotation.algorithm, now_unix)?;
        let mut set = rotation.write();
        if only_if_due && now_unix - set.current.created_at < self.rotate_after_s {
            return Ok(set.current.key_id.clone());
        }
        let mut old = std::mem::replace(&mut set.current, fresh);
        old.retired_at = Some(now_unix);
        set.retired.push(old);
        self.prune(&mut set, now_unix);
        Ok(set.current.key_id.clone())
    }

    fn prune(&self, set: &mut KeySet, now_unix: i64) {
        let keep = self.publish_retired_s;
        set.retired
            .retain(|k| k.retired_at.is_none_or(|at| now_unix - at < keep));
    }

    fn rotate_if_due(&self, rotation: &Rotation, now_unix: i64) {
        let due = now_unix - rotation.read().current.created_at >= self.rotate_after_s;
        if due {
            if let Err(error) = self.rotate_one(rotation, now_unix, true) {
                // Keep signing with the current key; the next use tries again.
                tracing::error!(%error, alg = rotation.algorithm.as_str(), "key rotation failed");
            }
        } else {
            self.prune(&mut rotation.write(), now_unix);
        }
    }

    /// Signs `claims` with the current `algorithm` key (rotating first when due).
    pub fn sign(
        &self,
        algorithm: SigningAlgorithm,
        claims: &Value,
        typ: &str,
        now_unix: i64,
    ) -> String {
        let rotation = self.rotation(algorithm);
        self.rotate_if_due(rotation, now_unix);
        let set = rotation.read();
        let mut header = Header::new(algorithm.jose());
        header.kid = Some(set.current.key_id.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &set.current.encoding)
            .expect("signing JSON claims with a freshly generated key cannot fail")
    }

    /// The published key set (current and still-published retired keys of every algorithm).
    pub fn jwks(&self, now_unix: i64) -> Value {
        let mut keys: Vec<Value> = Vec::new();
        for rotation in &self.rotations {
            self.rotate_if_due(rotation, now_unix);
            keys.extend(rotation.read().all().map(|k| k.jwk.clone()));
        }
        json!({ "keys": keys })
    }

    fn published(&self, kid: &str) -> Option<Value> {
        self.rotations.iter().find_map(|rotation| {
            rotation
                .read()
                .all()
                .find(|k| k.key_id == kid)
                .map(|k| k.jwk.clone())
        })
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
mod tests;
