//! Minting: access tokens (RFC 9068 JWTs the API's verifier accepts: `iss`, `aud`, `sub`, `exp`,
//! `tenant`, `roles`; EdDSA) and OIDC ID tokens (RS256, the algorithm every relying party must
//! support), plus the token-endpoint response body.

use rand::RngCore;
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    config::UserConfig,
    grants::Approval,
    keys::{SigningAlgorithm, SigningKeys},
};

/// The algorithm of access tokens.
pub const ACCESS_TOKEN_ALGORITHM: SigningAlgorithm = SigningAlgorithm::EdDsa;

/// Scopes this issuer knows; others are dropped from the granted scope (RFC 6749 §3.3).
pub const SCOPES: &[&str] = &["openid", "profile", "offline_access"];

/// The granted subset of a requested scope string.
pub fn granted_scope(requested: &str) -> String {
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested.split_ascii_whitespace() {
        if SCOPES.contains(&scope) && !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    granted.join(" ")
}

/// The successful token-endpoint response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The access token (JWT).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime, seconds.
    pub expires_in: u64,
    /// The next refresh token.
    pub refresh_token: String,
    /// Granted scope.
    pub scope: String,
    /// OIDC ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// What minting needs from the issuer.
#[derive(Debug)]
pub struct Minter<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// Access-token `aud`.
    pub audience: &'a str,
    /// Lifetime of access and ID tokens, seconds.
    pub ttl_s: u64,
    /// Signing keys.
    pub keys: &'a SigningKeys,
    /// The algorithm of the ID token (the client's: RS256 unless it registered EdDSA).
    pub id_token_algorithm: SigningAlgorithm,
}

impl Minter<'_> {
    fn base_claims(&self, user: &UserConfig, now: i64) -> serde_json::Map<String, Value> {
        let mut jti = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut jti);
        let ttl = i64::try_from(self.ttl_s).unwrap_or(3600);
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(user.subject()));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + ttl));
        claims.insert("jti".into(), json!(hex::encode(jti)));
        claims.insert("tenant".into(), json!(user.tenant));
        claims.insert("roles".into(), json!(user.roles));
        claims
    }

    /// The access token and, with `openid`, the ID token for `approval`.
    pub fn mint(
        &self,
        approval: &Approval,
        user: &UserConfig,
        refresh_token: String,
        now: i64,
    ) -> TokenResponse {
        let scope = granted_scope(&approval.scope);
        let mut access = self.base_claims(user, now);
        access.insert("aud".into(), json!(self.audience));
        access.insert("nbf".into(), json!(now));
        access.insert("client_id".into(), json!(approval.client_id));
        access.insert("scope".into(), json!(scope));
        access.insert("auth_time".into(), json!(approval.auth_time));
        let access_token = self.keys.sign(
            ACCESS_TOKEN_ALGORITHM,
            &Value::Object(access),
            "at+jwt",
            now,
        );
        let id_token = scope.split(' ').any(|s| s == "openid").then(|| {
            let mut id = self.base_claims(user, now);
            id.insert("aud".into(), json!(approval.client_id));
            id.insert("auth_time".into(), json!(approval.auth_time));
            id.insert("preferred_username".into(), json!(user.username));
            if let Some(name) = &user.name {
                id.insert("name".into(), json!(name));
            }
            if let Some(nonce) = &approval.nonce {
                id.insert("nonce".into(), json!(nonce));
            }
            self.keys
                .sign(self.id_token_algorithm, &Value::Object(id), "JWT", now)
        });
        TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.ttl_s,
            refresh_token,
            scope,
            id_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scopes_are_dropped() {
        assert_eq!(
            granted_scope("openid  admin:all profile openid"),
            "openid profile"
        );
        assert_eq!(granted_scope(""), "");
        assert_eq!(granted_scope("offline_access"), "offline_access");
    }
}
