//! Bearer-token authentication: JWTs verified against a trusted issuer's JWKS.
//!
//! A token is accepted when its `kid` names a key in its issuer's key set, its `alg` is one that
//! key allows (never `none`, never HMAC), the signature verifies, `iss` is a configured issuer,
//! `aud` contains a configured audience, `exp` is in the future (with leeway), `nbf` (if any) is
//! past, and it carries a tenant and at least one known role. Any issuer with a JWKS plugs in
//! through [`JwksSource`]: a static set (tests), a fetched `jwks_uri` ([`RemoteJwks`]), or an
//! issuer running in this process.

pub mod jwks;

use std::{collections::BTreeSet, collections::HashMap, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

pub use jwks::{JwksError, JwksSource, RemoteJwks, StaticJwks, VerificationKey};

/// The only JWS algorithms a token may use: asymmetric signatures (the sandbox issuer's RS256
/// and EdDSA, and what external issuers use). Never `none` (which does not even parse as a
/// header) and never HMAC, whose "secret" could be a published public key. Each key is further
/// bound to the algorithms its type (or its JWK `alg`) allows.
pub const ACCEPTED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What a caller may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Commissions devices: assignments, device and registration reads.
    Installer,
    /// Everything within the tenant: lifecycle, allowlist; pool administration when the tenant
    /// is the operator tenant.
    Admin,
    /// Read-only verification: device and registration reads, allowlist reads.
    Qa,
}

impl Role {
    /// Stable snake_case name, as it appears in tokens by default.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installer => "installer",
            Self::Admin => "admin",
            Self::Qa => "qa",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub subject: String,
    /// The caller's tenant.
    pub tenant: String,
    /// The caller's roles.
    pub roles: BTreeSet<Role>,
    /// The issuer that vouched for the caller.
    pub issuer: String,
}

impl Principal {
    /// Whether the caller holds any of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.roles.contains(r))
    }
}

/// Where a token's tenant comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSource {
    /// A claim of the token (e.g. `tenant`, or Entra's `tid`).
    Claim(String),
    /// Every token of this issuer belongs to one tenant (an organisation's own issuer).
    Fixed(String),
}

/// An issuer the API trusts.
#[derive(Clone)]
pub struct TrustedIssuer {
    /// Exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values (the token must name at least one).
    pub audiences: Vec<String>,
    /// Its verification keys.
    pub jwks: Arc<dyn JwksSource>,
    /// Where the tenant comes from.
    pub tenant: TenantSource,
    /// The claim holding the role(s), a string or an array of strings.
    pub role_claim: String,
    /// Claim value → role. Defaults to `installer`, `admin`, `qa`.
    pub role_values: HashMap<String, Role>,
}

impl std::fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedIssuer")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("tenant", &self.tenant)
            .field("role_claim", &self.role_claim)
            .finish()
    }
}

impl TrustedIssuer {
    /// An issuer with the default claim names: tenant in `tenant`, roles in `roles`.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: Arc<dyn JwksSource>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            jwks,
            tenant: TenantSource::Claim("tenant".to_owned()),
            role_claim: "roles".to_owned(),
            role_values: default_role_values(),
        }
    }
}

/// `installer`, `admin`, `qa` → the matching roles.
pub fn default_role_values() -> HashMap<String, Role> {
    [Role::Installer, Role::Admin, Role::Qa]
        .into_iter()
        .map(|r| (r.as_str().to_owned(), r))
        .collect()
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    MissingToken,
    /// Not a JWT.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// `alg` is `none`, HMAC, or not allowed for the key.
    #[error("the token's algorithm is not accepted")]
    AlgorithmRejected,
    /// `iss` is not a trusted issuer.
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    /// No key with the token's `kid`.
    #[error("the token's signing key is unknown")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `aud` names none of the accepted audiences.
    #[error("the token is for another audience")]
    WrongAudience,
    /// `exp` passed (or missing).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A required claim is missing or has the wrong type.
    #[error("the token lacks the {0:?} claim")]
    MissingClaim(String),
    /// The token carries no recognised role.
    #[error("the token carries no fieldlink role")]
    NoRole,
    /// The issuer's keys could not be fetched.
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// Stable snake_case reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::Malformed => "malformed_token",
            Self::AlgorithmRejected => "algorithm_rejected",
            Self::UnknownIssuer => "unknown_issuer",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::WrongAudience => "wrong_audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingClaim(_) => "missing_claim",
            Self::NoRole => "no_role",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// Verifies bearer tokens against the trusted issuers.
#[derive(Debug, Clone)]
pub struct Authenticator {
    issuers: Vec<TrustedIssuer>,
    leeway_s: i64,
}

fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::Malformed)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    match claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        _ => Err(AuthError::MissingClaim("iss".to_owned())),
    }
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl Authenticator {
    /// Trusts `issuers`, with `leeway_s` seconds of clock skew on `exp`/`nbf`.
    pub fn new(issuers: Vec<TrustedIssuer>, leeway_s: i64) -> Self {
        Self { issuers, leeway_s }
    }

    /// Extracts the token from an `Authorization` header value.
    pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
        let header = header.ok_or(AuthError::MissingToken)?.trim();
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::MissingToken)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::MissingToken);
        }
        Ok(token.trim())
    }

    /// Verifies `token` at `now_unix`.
    pub async fn authenticate(&self, token: &str, now_unix: i64) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            // `alg: none` (and any unknown algorithm) fails to parse as a header.
            if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::Json(_)) {
                AuthError::AlgorithmRejected
            } else {
                AuthError::Malformed
            }
        })?;
        if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::AlgorithmRejected);
        }
        let iss = unverified_issuer(token)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer == iss)
            .ok_or(AuthError::UnknownIssuer)?;
        let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
        let key = issuer
            .jwks
            .key(kid)
            .await
            .map_err(|_| AuthError::KeysUnavailable)?
            .ok_or(AuthError::UnknownKey)?;
        if !key.algorithms.contains(&header.alg) {
            return Err(AuthError::AlgorithmRejected);
        }
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => AuthError::AlgorithmRejected,
                _ => AuthError::Malformed,
            })?
            .claims;
        self.check_claims(issuer, &claims, now_unix)
    }

    fn check_claims(
        &self,
        issuer: &TrustedIssuer,
        claims: &Map<String, Value>,
        now_unix: i64,
    ) -> Result<Principal, AuthError> {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer.issuer.as_str()) {
            return Err(AuthError::UnknownIssuer);
        }
        let audiences = strings(claims.get("aud"));
        if !audiences
            .iter()
            .any(|aud| issuer.audiences.iter().any(|a| a == aud))
        {
            return Err(AuthError::WrongAudience);
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or(AuthError::Expired)?;
        if exp + self.leeway_s as f64 <= now_unix as f64 {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64)
            && nbf - self.leeway_s as f64 > now_unix as f64
        {
            return Err(AuthError::NotYetValid);
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::MissingClaim("sub".to_owned()))?
            .to_owned();
        let tenant = match &issuer.tenant {
            TenantSource::Fixed(tenant) => tenant.clone(),
            TenantSource::Claim(name) => claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| AuthError::MissingClaim(name.clone()))?
                .to_owned(),
        };
        let roles: BTreeSet<Role> = strings(claims.get(&issuer.role_claim))
            .into_iter()
            .filter_map(|value| issuer.role_values.get(value).copied())
            .collect();
        if roles.is_empty() {
            return Err(AuthError::NoRole);
        }
        Ok(Principal {
            subject,
            tenant,
            roles,
            issuer: issuer.issuer.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
