//! A throw-away Ed25519 token issuer for tests, benches and the in-process sandbox: it mints
//! JWTs the API accepts once [`TokenMinter::trusted_issuer`] is in its configuration. Not an
//! OIDC issuer (no discovery, no sign-in); just keys and claims.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::auth::{Role, StaticJwks, TrustedIssuer};

/// Mints tokens signed with one Ed25519 key.
pub struct TokenMinter {
    signing_key: SigningKey,
    encoding_key: EncodingKey,
    key_id: String,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMinter")
            .field("key_id", &self.key_id)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenMinter {
    /// A minter with a fresh random key.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut seed);
        Self::from_seed(seed, issuer, audience)
    }

    /// A minter whose key is derived from `seed` (reproducible).
    pub fn from_seed(
        seed: [u8; 32],
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        let signing_key = SigningKey::from_bytes(&seed);
        let der = signing_key
            .to_pkcs8_der()
            .expect("an Ed25519 key always encodes as PKCS#8");
        let encoding_key = EncodingKey::from_ed_der(der.as_bytes());
        let key_id = format!(
            "test-{}",
            &hex::encode(signing_key.verifying_key().as_bytes())[..12]
        );
        Self {
            signing_key,
            encoding_key,
            key_id,
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    /// The key id tokens carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The `iss` tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` tokens carry.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The raw public key (for confusion tests: an HMAC "signed" with it must fail).
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    /// The JWKS publishing the public key.
    pub fn jwks_json(&self) -> String {
        json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public_key()),
            "kid": self.key_id,
            "alg": "EdDSA",
            "use": "sig",
        }]})
        .to_string()
    }

    /// An issuer configuration trusting this minter (tenant claim `tenant`, role claim
    /// `roles`).
    pub fn trusted_issuer(&self) -> TrustedIssuer {
        let jwks = StaticJwks::from_json(&self.jwks_json()).expect("the minter's JWKS is valid");
        TrustedIssuer::new(self.issuer.clone(), self.audience.clone(), Arc::new(jwks))
    }

    /// Standard claims for `tenant` with `roles`, valid for an hour from `now_unix`.
    pub fn claims(&self, tenant: &str, roles: &[Role], now_unix: i64) -> Value {
        json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": format!("user@{tenant}"),
            "tenant": tenant,
            "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "iat": now_unix,
            "exp": now_unix + 3_600,
        })
    }

    /// A valid token for `tenant` with `roles`.
    pub fn token(&self, tenant: &str, roles: &[Role], now_unix: i64) -> String {
        self.sign(&self.claims(tenant, roles, now_unix))
    }

    /// Signs arbitrary claims with this key (EdDSA, this key id).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key_id.clone());
        self.sign_with_header(&header, claims)
    }

    /// Signs arbitrary claims with this key under an arbitrary header (wrong `kid`, ...).
    pub fn sign_with_header(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding_key)
            .expect("Ed25519 signing of JSON claims cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let minter = TokenMinter::from_seed([7; 32], "https://issuer.test", "fieldlink");
        let debug = format!("{minter:?}");
        assert!(debug.contains("test-"));
        assert!(!debug.contains("signing_key"));
    }
}
