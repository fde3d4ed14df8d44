//! Sign-in for the CLI: `login`, `logout`, `whoami`.
//!
//! The OIDC client (device-code flow, refresh, revocation) and the keyring-backed secret store
//! belong to the core's auth module. Until this build has it, [`SignIn::current`] is the only
//! provider: it knows nobody is signed in, `login` fails with the typed `signin_unavailable`
//! error (exit code 5), and `logout` has nothing to forget. When the auth module lands, a
//! provider that wraps it implements [`SignIn`] and [`provider`] returns it; nothing else in the
//! CLI changes (the journal already records [`identity`]).

use crate::{
    config::Settings,
    exit::{CliError, Exit},
};

/// Who is signed in under a profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignedIn {
    /// Subject or e-mail from the ID token.
    pub subject: String,
    /// Tenant.
    pub tenant: Option<String>,
    /// Access-token expiry (unix seconds).
    pub expires_at: Option<i64>,
}

/// A sign-in provider.
pub trait SignIn {
    /// Signs in (device-code flow); returns who.
    fn login(&self, settings: &Settings, no_browser: bool) -> Result<SignedIn, CliError>;
    /// Revokes and forgets the profile's tokens; `true` if there were any.
    fn logout(&self, settings: &Settings) -> Result<bool, CliError>;
    /// Who is signed in, if anyone.
    fn signed_in(&self, settings: &Settings) -> Option<SignedIn>;
}

/// The provider while the build has no OIDC client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unavailable;

impl SignIn for Unavailable {
    fn login(&self, settings: &Settings, _no_browser: bool) -> Result<SignedIn, CliError> {
        Err(CliError::new(
            Exit::Auth,
            "signin_unavailable",
            format!(
                "sign-in is not available in this build of fieldlink yet (no OIDC client); \
                 profile {:?} cannot sign in. Sandboxes need no sign-in: use `--sandbox MANIFEST`",
                settings.profile_name
            ),
        ))
    }

    fn logout(&self, _settings: &Settings) -> Result<bool, CliError> {
        Ok(false)
    }

    fn signed_in(&self, _settings: &Settings) -> Option<SignedIn> {
        None
    }
}

/// The provider of this build.
pub fn provider() -> Box<dyn SignIn> {
    Box::new(Unavailable)
}

/// The local user's name (`$USER`, `$LOGNAME`, else `unknown`).
pub fn local_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// The identity recorded in the journal: the signed-in subject, else `local:<user>`.
pub fn identity(settings: &Settings) -> String {
    provider()
        .signed_in(settings)
        .map(|who| who.subject)
        .unwrap_or_else(|| format!("local:{}", local_user()))
}
