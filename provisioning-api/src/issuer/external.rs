//! Production trust: the API accepts tokens from external issuers (an organisation's own OIDC
//! provider, e.g. Microsoft Entra ID) by configuration — issuer URL → tenant, accepted
//! audiences, and the claim that carries the role. Each entry becomes a
//! [`crate::auth::TrustedIssuer`] whose keys are fetched from the issuer's JWKS.
//!
//! ```json
//! [{
//!   "issuer": "https://login.microsoftonline.com/5f0c…/v2.0",
//!   "audiences": ["api://fieldlink-api"],
//!   "tenant": { "fixed": "acme" },
//!   "role_claim": "roles",
//!   "role_values": { "Fieldlink.Installer": "installer", "Fieldlink.Admin": "admin" }
//! }]
//! ```

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use super::config::{IssuerConfigError, role};
use crate::auth::{JwksError, RemoteJwks, TenantSource, TrustedIssuer, default_role_values};

/// Where an external issuer's tenant comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalTenant {
    /// Every token of this issuer belongs to this tenant (one issuer URL per organisation, as
    /// with Entra ID's per-directory issuer).
    Fixed(String),
    /// The tenant is the value of this claim (a multi-tenant issuer).
    Claim(String),
}

fn default_role_claim() -> String {
    "roles".to_owned()
}

/// One external issuer the API trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalIssuerConfig {
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// The JWKS URL; discovered from `{issuer}/.well-known/openid-configuration` when absent.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Tenant mapping.
    pub tenant: ExternalTenant,
    /// The claim holding the role(s) (a string or an array).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Claim value → fieldlink role (`installer`, `admin`, `qa`). Empty: the values are the
    /// role names themselves.
    #[serde(default)]
    pub role_values: HashMap<String, String>,
}

impl ExternalIssuerConfig {
    /// Reads a JSON array of external issuers.
    pub fn load_all(path: &Path) -> Result<Vec<Self>, IssuerConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| IssuerConfigError::Load(format!("{}: {e}", path.display())))?;
        let all: Vec<Self> = serde_json::from_str(&text)
            .map_err(|e| IssuerConfigError::Load(format!("{}: {e}", path.display())))?;
        for one in &all {
            one.validate()?;
        }
        Ok(all)
    }

    /// Checks the entry.
    pub fn validate(&self) -> Result<(), IssuerConfigError> {
        let invalid = |m: String| Err(IssuerConfigError::Invalid(m));
        match url::Url::parse(&self.issuer) {
            Ok(url) if url.scheme() == "https" => {}
            _ => return invalid(format!("issuer {:?} must be an https URL", self.issuer)),
        }
        if self.audiences.is_empty() {
            return invalid(format!("issuer {:?} accepts no audience", self.issuer));
        }
        if let Some(uri) = &self.jwks_uri
            && !uri.starts_with("https://")
        {
            return invalid(format!("jwks_uri {uri:?} must be https"));
        }
        if let Some((value, name)) = self.role_values.iter().find(|(_, r)| role(r).is_none()) {
            return invalid(format!(
                "role value {value:?} maps to {name:?}; use installer, admin or qa"
            ));
        }
        Ok(())
    }

    /// The API's trust entry, with keys fetched by `client` (cached for `ttl`). Without a
    /// `jwks_uri` this performs discovery now.
    pub async fn trusted_issuer(
        &self,
        client: reqwest::Client,
        ttl: Duration,
    ) -> Result<TrustedIssuer, JwksError> {
        self.validate()
            .map_err(|e| JwksError::Malformed(e.to_string()))?;
        let jwks = match &self.jwks_uri {
            Some(uri) => RemoteJwks::new(uri.clone(), client, ttl),
            None => RemoteJwks::discover(&self.issuer, client, ttl).await?,
        };
        Ok(self.with_jwks(Arc::new(jwks)))
    }

    /// The trust entry over an existing key source.
    pub fn with_jwks(&self, jwks: Arc<dyn crate::auth::JwksSource>) -> TrustedIssuer {
        let mut trusted = TrustedIssuer::new(self.issuer.clone(), String::new(), jwks);
        trusted.audiences = self.audiences.clone();
        trusted.tenant = match &self.tenant {
            ExternalTenant::Fixed(t) => TenantSource::Fixed(t.clone()),
            ExternalTenant::Claim(c) => TenantSource::Claim(c.clone()),
        };
        trusted.role_claim = self.role_claim.clone();
        trusted.role_values = if self.role_values.is_empty() {
            default_role_values()
        } else {
            self.role_values
                .iter()
                .filter_map(|(value, name)| role(name).map(|r| (value.clone(), r)))
                .collect()
        };
        trusted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Authenticator, Role, StaticJwks};
    use crate::test_tokens::TokenMinter;
    use serde_json::json;

    const ENTRA: &str = r#"[{
        "issuer": "https://login.microsoftonline.com/5f0c0000-0000-0000-0000-000000000001/v2.0",
        "audiences": ["api://fieldlink-api"],
        "tenant": { "fixed": "acme" },
        "role_values": { "Fieldlink.Installer": "installer", "Fieldlink.Admin": "admin" }
    }]"#;

    #[tokio::test]
    async fn entra_style_mapping_authenticates() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("issuers.json");
        std::fs::write(&path, ENTRA).expect("write");
        let configs = ExternalIssuerConfig::load_all(&path).expect("valid");
        let config = &configs[0];
        let minter = TokenMinter::from_seed([9; 32], &config.issuer, "api://fieldlink-api");
        let jwks = Arc::new(StaticJwks::from_json(&minter.jwks_json()).expect("jwks"));
        let auth = Authenticator::new(vec![config.with_jwks(jwks)], 30);
        let now = 1_800_000_000;
        let claims = json!({
            "iss": config.issuer, "aud": "api://fieldlink-api", "sub": "oid-1",
            "tid": "5f0c0000-0000-0000-0000-000000000001",
            "roles": ["Fieldlink.Installer", "Other.Role"], "exp": now + 600,
        });
        let principal = auth
            .authenticate(&minter.sign(&claims), now)
            .await
            .expect("accepted");
        assert_eq!(principal.tenant, "acme");
        assert!(principal.roles.contains(&Role::Installer));
        assert!(!principal.roles.contains(&Role::Admin));
        let mut plain = claims.clone();
        plain["roles"] = json!(["installer"]);
        assert!(auth.authenticate(&minter.sign(&plain), now).await.is_err());
    }

    #[test]
    fn refuses_insecure_or_incomplete_entries() {
        let good: Vec<ExternalIssuerConfig> = serde_json::from_str(ENTRA).expect("parse");
        let mut bad = good[0].clone();
        bad.issuer = "http://idp.example".into();
        assert!(bad.validate().is_err());
        let mut bad = good[0].clone();
        bad.audiences.clear();
        assert!(bad.validate().is_err());
        let mut bad = good[0].clone();
        bad.role_values.insert("X".into(), "root".into());
        assert!(bad.validate().is_err());
        let mut bad = good[0].clone();
        bad.jwks_uri = Some("http://idp.example/keys".into());
        assert!(bad.validate().is_err());
    }
}
