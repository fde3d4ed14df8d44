//! Profiles: one per organisation an installer serves (an API URL plus the issuer that signs its
//! installers in). Profiles hold no secrets; their tokens live in the [`crate::secrets`] store.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{AuthError, http::check_url};

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "offline_access"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// One sign-in profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name (`acme`, `sandbox`).
    pub name: String,
    /// The provisioning API's base URL.
    pub api_url: String,
    /// The OIDC issuer URL (exactly its `iss`), e.g.
    /// `https://login.microsoftonline.com/{tenant-id}/v2.0`.
    pub issuer_url: String,
    /// The public client id registered at the issuer.
    pub client_id: String,
    /// Scopes to request. Entra ID needs the API's scope here, e.g.
    /// `api://fieldlink-api/Commission`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Extra CA certificates (PEM) trusted besides the system roots (sandbox CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Allow plain `http://` — to loopback addresses only (local sandboxes and tests).
    #[serde(default)]
    pub allow_insecure_loopback: bool,
}

impl Profile {
    /// A profile with the default scopes (`openid profile offline_access`), system roots only,
    /// HTTPS only.
    pub fn new(
        name: impl Into<String>,
        api_url: impl Into<String>,
        issuer_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            api_url: api_url.into(),
            issuer_url: issuer_url.into(),
            client_id: client_id.into(),
            scopes: default_scopes(),
            ca_file: None,
            allow_insecure_loopback: false,
        }
    }

    /// Checks names and URLs (HTTPS, or loopback HTTP with the flag).
    pub fn validate(&self) -> Result<(), AuthError> {
        let valid_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_name {
            return Err(AuthError::InvalidProfile {
                reason: format!(
                    "profile name {:?}: use 1-64 letters, digits, '-', '_' or '.'",
                    self.name
                ),
            });
        }
        if self.client_id.is_empty() {
            return Err(AuthError::InvalidProfile {
                reason: "client_id is empty".to_owned(),
            });
        }
        check_url(&self.api_url, self.allow_insecure_loopback)?;
        check_url(&self.issuer_url, self.allow_insecure_loopback)?;
        Ok(())
    }

    /// The secret-store account this profile's tokens live under.
    pub fn token_account(&self) -> String {
        format!("tokens:{}", self.name)
    }
}

/// The secret-store service name of fieldlink's tokens.
pub const TOKEN_SERVICE: &str = "fieldlink";

/// A set of profiles with a default, kept in a JSON file (no secrets in it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profiles {
    /// The profile used when none is named.
    #[serde(default)]
    pub default: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

impl Profiles {
    /// Reads `path`; a missing file is an empty set.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let profiles: Self =
                    serde_json::from_str(&text).map_err(|e| AuthError::InvalidProfile {
                        reason: format!("{}: {e}", path.display()),
                    })?;
                for profile in profiles.profiles.values() {
                    profile.validate()?;
                }
                Ok(profiles)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(AuthError::InvalidProfile {
                reason: format!("{}: {e}", path.display()),
            }),
        }
    }

    /// Writes `path` atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        let io = |e: std::io::Error| AuthError::InvalidProfile {
            reason: format!("{}: {e}", path.display()),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let body = serde_json::to_vec_pretty(self).map_err(|e| AuthError::InvalidProfile {
            reason: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Adds or replaces `profile` (validated); the first one becomes the default.
    pub fn upsert(&mut self, profile: Profile) -> Result<(), AuthError> {
        profile.validate()?;
        if self.default.is_none() {
            self.default = Some(profile.name.clone());
        }
        self.profiles.insert(profile.name.clone(), profile);
        Ok(())
    }

    /// Removes a profile (and the default, if it was the default).
    pub fn remove(&mut self, name: &str) -> Option<Profile> {
        if self.default.as_deref() == Some(name) {
            self.default = None;
        }
        self.profiles.remove(name)
    }

    /// The named profile, or the default one.
    pub fn select(&self, name: Option<&str>) -> Result<&Profile, AuthError> {
        let name = name
            .or(self.default.as_deref())
            .ok_or_else(|| AuthError::InvalidProfile {
                reason: "no profile selected and no default profile: add one first".to_owned(),
            })?;
        self.profiles
            .get(name)
            .ok_or_else(|| AuthError::InvalidProfile {
                reason: format!("no profile named {name:?}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> Profile {
        Profile::new(
            "acme",
            "https://api.acme.example",
            "https://login.microsoftonline.com/5f0c/v2.0",
            "11111111-2222",
        )
    }

    #[test]
    fn validation() {
        assert_eq!(acme().validate(), Ok(()));
        let mut bad = acme();
        bad.name = "a b".into();
        assert_eq!(bad.validate().map_err(|e| e.code()), Err("invalid_profile"));
        let mut http = acme();
        http.api_url = "http://127.0.0.1:8080".into();
        assert_eq!(http.validate().map_err(|e| e.code()), Err("insecure_url"));
        http.allow_insecure_loopback = true;
        assert_eq!(http.validate(), Ok(()));
        http.issuer_url = "http://idp.example".into();
        assert_eq!(http.validate().map_err(|e| e.code()), Err("insecure_url"));
    }

    #[test]
    fn two_profiles_round_trip_through_a_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("profiles.json");
        let mut profiles = Profiles::load(&path).expect("missing file = empty");
        profiles.upsert(acme()).expect("acme");
        let mut globex = acme();
        globex.name = "globex".into();
        globex.api_url = "https://api.globex.example".into();
        profiles.upsert(globex).expect("globex");
        profiles.save(&path).expect("save");
        let loaded = Profiles::load(&path).expect("load");
        assert_eq!(loaded, profiles);
        assert_eq!(loaded.select(None).map(|p| p.name.as_str()), Ok("acme"));
        assert_eq!(
            loaded.select(Some("globex")).map(|p| p.api_url.as_str()),
            Ok("https://api.globex.example")
        );
        assert!(loaded.select(Some("nope")).is_err());
        assert_ne!(
            acme().token_account(),
            loaded.profiles["globex"].token_account()
        );
    }
}
