//! What a sign-in leaves behind: the tokens (in the secret store only, as one JSON secret per
//! profile) and a secret-free summary of who signed in.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secrets::{REDACTED, Secret, SecretError};

/// Who is signed in (for display: `whoami`). Read from the verified ID token when there is one,
/// else from the access token's claims — the API remains the authority on what they allow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `sub`.
    pub subject: String,
    /// `name` or `preferred_username`, when given.
    pub name: Option<String>,
    /// The tenant claim (`tenant`, or Entra's `tid`), when given.
    pub tenant: Option<String>,
    /// The role claim values (`roles`).
    pub roles: Vec<String>,
    /// The issuer.
    pub issuer: String,
}

/// The unverified claims of a JWT (display only), or `None` for an opaque token.
pub(crate) fn jwt_claims(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Identity {
    /// From token claims (any of ID-token or access-token shapes).
    pub(crate) fn from_claims(claims: &serde_json::Map<String, Value>, issuer: &str) -> Self {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let roles = match claims.get("roles") {
            Some(Value::String(role)) => vec![role.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Self {
            subject: text("sub").unwrap_or_default(),
            name: text("name").or_else(|| text("preferred_username")),
            tenant: text("tenant").or_else(|| text("tid")),
            roles,
            issuer: text("iss").unwrap_or_else(|| issuer.to_owned()),
        }
    }

    /// Fills fields missing here from `other` (ID token first, access token second).
    pub(crate) fn merged_with(mut self, other: Identity) -> Self {
        if self.subject.is_empty() {
            self.subject = other.subject;
        }
        self.name = self.name.or(other.name);
        self.tenant = self.tenant.or(other.tenant);
        if self.roles.is_empty() {
            self.roles = other.roles;
        }
        self
    }
}

/// A profile's tokens as kept in the secret store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredTokens {
    pub issuer: String,
    pub client_id: String,
    /// Absent when the store could not hold it (size limits): refreshed on first use.
    pub access_token: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub identity: Identity,
    /// When these tokens were obtained (unix seconds).
    pub obtained_at: i64,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens")
            .field("issuer", &self.issuer)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| REDACTED),
            )
            .field("expires_at", &self.expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| REDACTED),
            )
            .field("identity", &self.identity)
            .finish()
    }
}

impl StoredTokens {
    pub(crate) fn to_secret(&self) -> Result<Secret, SecretError> {
        serde_json::to_vec(self)
            .map(Secret::new)
            .map_err(|e| SecretError::Platform {
                detail: format!("cannot encode tokens: {e}"),
            })
    }

    pub(crate) fn from_secret(secret: &Secret) -> Result<Self, SecretError> {
        serde_json::from_slice(secret.expose()).map_err(|_| SecretError::Platform {
            detail: "the stored session is unreadable; sign in again".to_owned(),
        })
    }

    /// Whether the access token is usable for at least `margin_s` more seconds.
    pub(crate) fn access_valid(&self, now: i64, margin_s: i64) -> bool {
        self.access_token.is_some() && self.expires_at.is_none_or(|exp| exp - margin_s > now)
    }

    pub(crate) fn session(&self, profile: &str) -> Session {
        Session {
            profile: profile.to_owned(),
            identity: self.identity.clone(),
            expires_at: self.expires_at,
            can_refresh: self.refresh_token.is_some(),
        }
    }
}

/// A signed-in profile, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// Profile name.
    pub profile: String,
    /// Who signed in.
    pub identity: Identity,
    /// When the current access token expires (unix seconds).
    pub expires_at: Option<i64>,
    /// Whether it can be renewed without signing in again.
    pub can_refresh: bool,
}

/// An access token: `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Secret);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(Secret::from_text(token))
    }

    /// The token, for the `Authorization: Bearer` header.
    pub fn expose(&self) -> &str {
        self.0.expose_str().unwrap_or_default()
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> StoredTokens {
        StoredTokens {
            issuer: "https://i.example".into(),
            client_id: "cli".into(),
            access_token: Some("at-secret".into()),
            expires_at: Some(1_000),
            refresh_token: Some("rt-secret".into()),
            scope: None,
            identity: Identity::default(),
            obtained_at: 0,
        }
    }

    #[test]
    fn debug_redacts_tokens() {
        let dumped = format!("{:?} {:?}", stored(), AccessToken::new("at-secret"));
        assert!(!dumped.contains("secret"), "{dumped}");
    }

    #[test]
    fn round_trip_and_validity() {
        let s = stored();
        let back = StoredTokens::from_secret(&s.to_secret().expect("encode")).expect("decode");
        assert_eq!(back, s);
        assert!(s.access_valid(900, 60));
        assert!(!s.access_valid(950, 60));
        assert!(StoredTokens::from_secret(&Secret::from_text("junk")).is_err());
    }

    #[test]
    fn identity_from_claims() {
        let claims = json!({"sub": "u1", "preferred_username": "alice", "tid": "t-1",
            "roles": "installer", "iss": "https://i.example"});
        let id = Identity::from_claims(claims.as_object().expect("object"), "x");
        assert_eq!(id.name.as_deref(), Some("alice"));
        assert_eq!(id.tenant.as_deref(), Some("t-1"));
        assert_eq!(id.roles, vec!["installer".to_owned()]);
        assert_eq!(id.issuer, "https://i.example");
        assert!(jwt_claims("opaque-token").is_none());
    }
}
