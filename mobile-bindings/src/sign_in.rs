//! Sign-in records and objects: the core's OIDC client (`fieldlink_core::auth`) as the apps see
//! it — the device-code flow with a listener, and authorization code + PKCE with a custom-scheme
//! redirect that the app completes.

use std::sync::{Mutex, PoisonError};

use fieldlink_core::auth::{DevicePrompt, LogoutReport, PendingAuthorization, Session};

/// What to show during a device-code sign-in.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceCodePrompt {
    /// The code to type on the verification page.
    pub user_code: String,
    /// Where to type it.
    pub verification_uri: String,
    /// The URI with the code filled in, when the issuer gives one (open it, or show it as a QR
    /// code for another device).
    pub verification_uri_complete: Option<String>,
    /// When the code expires (unix seconds).
    pub expires_at: i64,
}

impl From<&DevicePrompt> for DeviceCodePrompt {
    fn from(prompt: &DevicePrompt) -> Self {
        Self {
            user_code: prompt.user_code.clone(),
            verification_uri: prompt.verification_uri.clone(),
            verification_uri_complete: prompt.verification_uri_complete.clone(),
            expires_at: prompt.expires_at,
        }
    }
}

/// Receives the device-code prompt, once, from a Rust runtime thread (hop to the UI thread).
#[uniffi::export(callback_interface)]
pub trait SignInListener: Send + Sync {
    /// Show `prompt`; the sign-in then polls the issuer until the user approves.
    fn on_device_code(&self, prompt: DeviceCodePrompt);
}

/// A signed-in profile, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignedIn {
    /// Profile name.
    pub profile: String,
    /// The subject (`sub`).
    pub subject: String,
    /// Display name, when the issuer gives one.
    pub name: Option<String>,
    /// Tenant, when the issuer gives one.
    pub tenant: Option<String>,
    /// Role claim values.
    pub roles: Vec<String>,
    /// The issuer.
    pub issuer: String,
    /// When the current access token expires (unix seconds).
    pub expires_at: Option<i64>,
    /// Whether it renews without signing in again.
    pub can_refresh: bool,
}

impl From<Session> for SignedIn {
    fn from(session: Session) -> Self {
        Self {
            profile: session.profile,
            subject: session.identity.subject,
            name: session.identity.name,
            tenant: session.identity.tenant,
            roles: session.identity.roles,
            issuer: session.identity.issuer,
            expires_at: session.expires_at,
            can_refresh: session.can_refresh,
        }
    }
}

/// What signing out did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignOutReport {
    /// Whether a session was stored.
    pub was_signed_in: bool,
    /// Whether the issuer confirmed revoking the refresh token.
    pub revoked: bool,
    /// Why revocation did not happen; the local tokens are forgotten regardless.
    pub revocation_note: Option<String>,
}

impl From<LogoutReport> for SignOutReport {
    fn from(report: LogoutReport) -> Self {
        Self {
            was_signed_in: report.was_signed_in,
            revoked: report.revoked,
            revocation_note: report.revocation_note,
        }
    }
}

/// A started browser sign-in: open `authorize_url` (Custom Tabs, `ASWebAuthenticationSession`),
/// then hand the URL the browser is redirected to (the app's custom scheme) to
/// `FieldlinkClient.complete_sign_in`. Usable once.
#[derive(uniffi::Object)]
pub struct PendingSignIn {
    authorize_url: String,
    redirect_uri: String,
    pending: Mutex<Option<PendingAuthorization>>,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl PendingSignIn {
    pub(crate) fn new(pending: PendingAuthorization) -> Self {
        Self {
            authorize_url: pending.authorize_url().to_owned(),
            redirect_uri: pending.redirect_uri().to_owned(),
            pending: Mutex::new(Some(pending)),
        }
    }

    /// Takes the core's pending authorization out (`None` once used).
    pub(crate) fn take(&self) -> Option<PendingAuthorization> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[uniffi::export]
impl PendingSignIn {
    /// The URL to open in the browser.
    pub fn authorize_url(&self) -> String {
        self.authorize_url.clone()
    }

    /// The redirect URI registered for this sign-in (the app's custom scheme).
    pub fn redirect_uri(&self) -> String {
        self.redirect_uri.clone()
    }
}
