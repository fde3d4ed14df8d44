//! The sandbox issuer's configuration (a JSON file): token lifetimes, registered clients, users
//! with Argon2id password hashes, their tenants and roles.

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
};

use serde::{Deserialize, Serialize};

use super::keys::SigningAlgorithm;
use crate::auth::Role;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerConfigError {
    /// The signing keys could not be generated.
    #[error("cannot generate the issuer's signing keys: {0}")]
    Keys(String),
    /// The file could not be read or parsed.
    #[error("cannot load the issuer configuration: {0}")]
    Load(String),
    /// A value is invalid.
    #[error("invalid issuer configuration: {0}")]
    Invalid(String),
}

/// A registered OAuth client (all clients are public clients: installers' apps cannot keep a
/// secret, so PKCE is mandatory for the authorization-code grant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// `client_id`.
    pub client_id: String,
    /// Shown on the consent page.
    #[serde(default)]
    pub name: Option<String>,
    /// Exact redirect URIs. Loopback URIs (`http://127.0.0.1/…`, `http://[::1]/…`) match any
    /// port (RFC 8252 §7.3); custom schemes (`com.example.fieldlink:/callback`) match exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

/// A user of the sandbox issuer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Sign-in name (also the `sub` unless `subject` is set).
    pub username: String,
    /// Stable subject identifier; defaults to the username.
    #[serde(default)]
    pub subject: Option<String>,
    /// Argon2id PHC string (`$argon2id$v=19$m=…`), see [`super::hash_password`].
    pub password_hash: String,
    /// The user's tenant.
    pub tenant: String,
    /// `installer`, `admin`, `qa`.
    pub roles: Vec<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Refuse sign-in.
    #[serde(default)]
    pub disabled: bool,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("username", &self.username)
            .field("tenant", &self.tenant)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl UserConfig {
    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        self.subject.as_deref().unwrap_or(&self.username)
    }
}

fn default_access_ttl() -> u64 {
    600
}
fn default_refresh_ttl() -> u64 {
    30 * 24 * 3600
}
fn default_device_ttl() -> u64 {
    600
}
fn default_interval() -> u64 {
    5
}
fn default_code_ttl() -> u64 {
    60
}
fn default_key_rotation() -> u64 {
    7 * 24 * 3600
}

/// Everything the sandbox issuer needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer identifier (`iss`) and public base URL, e.g. `https://sandbox.example:8443`.
    /// Its endpoints are served under its path.
    pub issuer: String,
    /// The `aud` of access tokens (the API's audience).
    pub audience: String,
    /// Access- and ID-token lifetime, seconds.
    #[serde(default = "default_access_ttl")]
    pub access_token_ttl_s: u64,
    /// Refresh-token family lifetime (from sign-in), seconds.
    #[serde(default = "default_refresh_ttl")]
    pub refresh_token_ttl_s: u64,
    /// Device-code lifetime (`expires_in`), seconds.
    #[serde(default = "default_device_ttl")]
    pub device_code_ttl_s: u64,
    /// Minimum polling interval for the device grant, seconds.
    #[serde(default = "default_interval")]
    pub poll_interval_s: u64,
    /// Authorization-code lifetime, seconds.
    #[serde(default = "default_code_ttl")]
    pub authorization_code_ttl_s: u64,
    /// The signing key is replaced after this many seconds; the previous key stays published
    /// until every token it signed has expired.
    #[serde(default = "default_key_rotation")]
    pub key_rotation_s: u64,
    /// DEMO ONLY: approve every device authorization and authorization request as this user,
    /// without a sign-in page. Never set it where real devices are commissioned.
    #[serde(default)]
    pub auto_approve_as: Option<String>,
    /// Registered clients.
    pub clients: Vec<ClientConfig>,
    /// Per-client ID-token algorithm (OIDC's `id_token_signed_response_alg`), by `client_id`:
    /// `"RS256"` (every unlisted client) or `"EdDSA"`.
    #[serde(default)]
    pub id_token_signed_response_alg: BTreeMap<String, SigningAlgorithm>,
    /// Users.
    pub users: Vec<UserConfig>,
}

impl IssuerConfig {
    /// A configuration with default lifetimes, no clients and no users.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            access_token_ttl_s: default_access_ttl(),
            refresh_token_ttl_s: default_refresh_ttl(),
            device_code_ttl_s: default_device_ttl(),
            poll_interval_s: default_interval(),
            authorization_code_ttl_s: default_code_ttl(),
            key_rotation_s: default_key_rotation(),
            auto_approve_as: None,
            clients: Vec::new(),
            id_token_signed_response_alg: BTreeMap::new(),
            users: Vec::new(),
        }
    }

    /// The algorithm of `client_id`'s ID tokens (RS256 unless configured otherwise).
    pub fn id_token_algorithm(&self, client_id: &str) -> SigningAlgorithm {
        self.id_token_signed_response_alg
            .get(client_id)
            .copied()
            .unwrap_or(SigningAlgorithm::Rs256)
    }

    /// Reads a JSON configuration file.
    pub fn from_file(path: &Path) -> Result<Self, IssuerConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| IssuerConfigError::Load(format!("{}: {e}", path.display())))?;
        let config: Self = serde_json::from_str(&text)
            .map_err(|e| IssuerConfigError::Load(format!("{}: {e}", path.display())))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration is coherent.
    pub fn validate(&self) -> Result<(), IssuerConfigError> {
        let invalid = |m: String| Err(IssuerConfigError::Invalid(m));
        let url = url::Url::parse(&self.issuer)
            .map_err(|e| IssuerConfigError::Invalid(format!("issuer {:?}: {e}", self.issuer)))?;
        if !matches!(url.scheme(), "https" | "http")
            || url.query().is_some()
            || url.fragment().is_some()
            || self.issuer.ends_with('/')
        {
            return invalid(format!(
                "issuer {:?} must be an http(s) URL without query, fragment or trailing slash",
                self.issuer
            ));
        }
        if self.audience.is_empty() {
            return invalid("audience is empty".to_owned());
        }
        if self.poll_interval_s == 0 || self.access_token_ttl_s == 0 || self.device_code_ttl_s == 0
        {
            return invalid("intervals and lifetimes must be positive".to_owned());
        }
        let mut ids = HashSet::new();
        for client in &self.clients {
            if !ids.insert(client.client_id.as_str()) {
                return invalid(format!("duplicate client {:?}", client.client_id));
            }
            for uri in &client.redirect_uris {
                let parsed = url::Url::parse(uri).map_err(|e| {
                    IssuerConfigError::Invalid(format!("redirect URI {uri:?}: {e}"))
                })?;
                if parsed.fragment().is_some() {
                    return invalid(format!("redirect URI {uri:?} has a fragment"));
                }
                if parsed.scheme() == "http" && !super::redirect::is_loopback(&parsed) {
                    return invalid(format!(
                        "redirect URI {uri:?}: plain http is allowed only for loopback"
                    ));
                }
            }
        }
        if let Some(unknown) = self
            .id_token_signed_response_alg
            .keys()
            .find(|id| !ids.contains(id.as_str()))
        {
            return invalid(format!(
                "id_token_signed_response_alg names unknown client {unknown:?}"
            ));
        }
        let mut names = HashSet::new();
        for user in &self.users {
            if !names.insert(user.username.as_str()) {
                return invalid(format!("duplicate user {:?}", user.username));
            }
            if user.tenant.is_empty() {
                return invalid(format!("user {:?} has no tenant", user.username));
            }
            if !user.password_hash.starts_with("$argon2id$") {
                return invalid(format!(
                    "user {:?}: password_hash must be an Argon2id PHC string",
                    user.username
                ));
            }
            if user.roles.is_empty() || user.roles.iter().any(|r| role(r).is_none()) {
                return invalid(format!(
                    "user {:?}: roles must be some of installer, admin, qa",
                    user.username
                ));
            }
        }
        if let Some(name) = &self.auto_approve_as
            && !self.users.iter().any(|u| &u.username == name)
        {
            return invalid(format!("auto_approve_as names unknown user {name:?}"));
        }
        Ok(())
    }
}

/// The role a configured role name stands for.
pub(crate) fn role(name: &str) -> Option<Role> {
    match name {
        "installer" => Some(Role::Installer),
        "admin" => Some(Role::Admin),
        "qa" => Some(Role::Qa),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserConfig {
        UserConfig {
            username: name.to_owned(),
            subject: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
            tenant: "acme".to_owned(),
            roles: vec!["installer".to_owned()],
            name: None,
            disabled: false,
        }
    }

    #[test]
    fn validation_catches_mistakes() {
        let mut config = IssuerConfig::new("https://issuer.test", "fieldlink-api");
        config.users.push(user("alice"));
        assert_eq!(config.validate(), Ok(()));

        let mut bad = config.clone();
        bad.issuer = "https://issuer.test/".to_owned();
        assert!(bad.validate().is_err());

        let mut bad = config.clone();
        bad.users.push(user("alice"));
        assert!(bad.validate().is_err());

        let mut bad = config.clone();
        bad.users[0].roles = vec!["root".to_owned()];
        assert!(bad.validate().is_err());

        let mut bad = config.clone();
        bad.users[0].password_hash = "plaintext".to_owned();
        assert!(bad.validate().is_err());

        let mut bad = config.clone();
        bad.clients.push(ClientConfig {
            client_id: "cli".to_owned(),
            name: None,
            redirect_uris: vec!["http://evil.example/cb".to_owned()],
        });
        assert!(bad.validate().is_err());

        let mut bad = config.clone();
        bad.auto_approve_as = Some("mallory".to_owned());
        assert!(bad.validate().is_err());

        let mut bad = config.clone();
        bad.id_token_signed_response_alg
            .insert("nobody".to_owned(), SigningAlgorithm::EdDsa);
        assert!(bad.validate().is_err());
    }

    #[test]
    fn debug_hides_password_hashes() {
        assert!(!format!("{:?}", user("alice")).contains("argon2id"));
    }

    #[test]
    fn parses_with_defaults() {
        let config: IssuerConfig = serde_json::from_str(
            r#"{"issuer":"http://127.0.0.1:8080","audience":"fieldlink-api","clients":[],"users":[]}"#,
        )
        .expect("parses");
        assert_eq!(config.poll_interval_s, 5);
        assert_eq!(config.access_token_ttl_s, 600);
        assert_eq!(config.id_token_algorithm("any"), SigningAlgorithm::Rs256);
        let config: IssuerConfig = serde_json::from_str(
            r#"{"issuer":"http://127.0.0.1:8080","audience":"a","clients":[{"client_id":"old"}],
                "users":[],"id_token_signed_response_alg":{"old":"EdDSA"}}"#,
        )
        .expect("parses");
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.id_token_algorithm("old"), SigningAlgorithm::EdDsa);
        assert!(
            serde_json::from_str::<IssuerConfig>(
                r#"{"issuer":"http://127.0.0.1:8080","audience":"a","clients":[],"users":[],
                    "id_token_signed_response_alg":{"old":"HS256"}}"#
            )
            .is_err()
        );
    }
}
