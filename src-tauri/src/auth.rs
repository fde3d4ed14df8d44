//! Sign-in glue: the Settings screen's profiles as the core's [`auth::Profile`]s, one
//! [`AuthClient`] per profile (tokens in the OS keyring), and [`AuthError`] in the command error
//! shape. The OIDC flows themselves are the core's.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use fieldlink_core::{
    auth::{self, AuthClient, AuthError, Session},
    secrets::SecretStore,
};
use serde_json::json;

use crate::{
    dto::settings::{Profile, SessionInfo, SignInMethod},
    error::{CommandError, ShellError},
};

/// The client id the desktop app uses when a profile names none.
pub const DEFAULT_CLIENT_ID: &str = "fieldlink-desktop";

impl From<AuthError> for CommandError {
    fn from(error: AuthError) -> Self {
        let retryable = error.is_retryable();
        let needs_sign_in = error.needs_sign_in();
        Self {
            code: error.code().to_owned(),
            message: error.to_string(),
            retryable,
            details: json!({"needs_sign_in": needs_sign_in}),
        }
    }
}

fn uses_plain_http(url: Option<&str>) -> bool {
    url.is_some_and(|url| url.starts_with("http://"))
}

/// The core's profile for a settings profile with an issuer (`None` without one).
pub fn core_profile(profile: &Profile) -> Result<Option<auth::Profile>, CommandError> {
    let Some(issuer) = profile.issuer.clone() else {
        return Ok(None);
    };
    let api_url = profile
        .api_url
        .clone()
        .ok_or_else(|| ShellError::InvalidSetting {
            field: "api_url".to_owned(),
            reason: format!("profile {:?} has an issuer but no API URL", profile.name),
        })?;
    let mut core = auth::Profile::new(
        profile.name.clone(),
        api_url,
        issuer,
        profile
            .client_id
            .clone()
            .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned()),
    );
    core.ca_file = profile.ca_file.clone().map(Into::into);
    // Settings already refuse plain HTTP except to loopback; the core checks it again on every
    // request.
    core.allow_insecure_loopback =
        uses_plain_http(profile.api_url.as_deref()) || uses_plain_http(profile.issuer.as_deref());
    core.validate()?;
    Ok(Some(core))
}

/// One [`AuthClient`] per profile, rebuilt when the profile changes.
pub struct AuthClients {
    store: Arc<dyn SecretStore>,
    clients: Mutex<HashMap<String, (auth::Profile, Arc<AuthClient>)>>,
}

impl std::fmt::Debug for AuthClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthClients")
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

impl AuthClients {
    /// Clients keeping their tokens in `store`.
    pub fn new(store: Arc<dyn SecretStore>) -> Self {
        Self {
            store,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client of `profile`, or `None` when it has no issuer.
    pub fn client(&self, profile: &Profile) -> Result<Option<Arc<AuthClient>>, CommandError> {
        let Some(core) = core_profile(profile)? else {
            return Ok(None);
        };
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((known, client)) = clients.get(&profile.name)
            && *known == core
        {
            return Ok(Some(Arc::clone(client)));
        }
        let client = AuthClient::new(core.clone(), Arc::clone(&self.store))?;
        clients.insert(profile.name.clone(), (core, Arc::clone(&client)));
        Ok(Some(client))
    }
}

/// The UI's view of a core session.
pub fn session_info(profile: &Profile, session: &Session, method: SignInMethod) -> SessionInfo {
    let identity = &session.identity;
    SessionInfo {
        profile: profile.name.clone(),
        organisation: identity
            .tenant
            .clone()
            .filter(|_| profile.organisation.is_empty())
            .unwrap_or_else(|| profile.organisation.clone()),
        identity: identity
            .name
            .clone()
            .unwrap_or_else(|| identity.subject.clone()),
        method,
        expires_at_ms: session.expires_at.map(|s| s.saturating_mul(1000)),
    }
}

#[cfg(test)]
mod tests {
    use fieldlink_core::secrets::MemoryStore;

    use super::*;
    use crate::dto::settings::SiteKind;

    fn profile(issuer: Option<&str>, api: Option<&str>) -> Profile {
        Profile {
            name: "acme".into(),
            organisation: "Acme".into(),
            site: SiteKind::Bluetooth,
            api_url: api.map(Into::into),
            issuer: issuer.map(Into::into),
            client_id: None,
            ca_file: None,
            sandbox_manifest: None,
        }
    }

    #[test]
    fn profiles_map_onto_the_core_with_loopback_http_only_when_used() {
        assert!(
            core_profile(&profile(None, Some("https://a")))
                .unwrap()
                .is_none()
        );
        let core = core_profile(&profile(
            Some("https://login.acme.example"),
            Some("https://api.acme.example"),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(core.client_id, DEFAULT_CLIENT_ID);
        assert!(!core.allow_insecure_loopback);
        let local = core_profile(&profile(
            Some("http://127.0.0.1:9000"),
            Some("https://127.0.0.1:9001"),
        ))
        .unwrap()
        .unwrap();
        assert!(local.allow_insecure_loopback);
        let missing_api = core_profile(&profile(Some("https://login.acme.example"), None));
        assert_eq!(missing_api.unwrap_err().code, "invalid_setting");
    }

    #[test]
    fn clients_are_reused_until_the_profile_changes() {
        let clients = AuthClients::new(Arc::new(MemoryStore::new()));
        let mut acme = profile(
            Some("https://login.acme.example"),
            Some("https://api.acme.example"),
        );
        let first = clients.client(&acme).unwrap().unwrap();
        let again = clients.client(&acme).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        acme.client_id = Some("other".into());
        let changed = clients.client(&acme).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&first, &changed));
    }

    #[test]
    fn auth_errors_keep_their_codes() {
        let error: CommandError = AuthError::SessionExpired {
            profile: "acme".into(),
            reason: "invalid_grant".into(),
        }
        .into();
        assert_eq!(error.code, "session_expired");
        assert_eq!(error.details["needs_sign_in"], true);
        assert!(!error.retryable);
    }
}
