//! Sign-in failures (public tier): stable snake_case codes and messages that say what to do.

use crate::secrets::SecretError;

/// Why signing in, refreshing or signing out failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No stored session for this profile.
    #[error("not signed in to profile {profile:?}: run `fieldlink login`")]
    NotSignedIn {
        /// Profile name.
        profile: String,
    },
    /// The issuer refused the refresh token (expired, revoked, reused): sign in again.
    #[error("the session of profile {profile:?} ended ({reason}): sign in again")]
    SessionExpired {
        /// Profile name.
        profile: String,
        /// The issuer's reason.
        reason: String,
    },
    /// The user (or the issuer) denied the sign-in.
    #[error("the sign-in was denied")]
    AccessDenied,
    /// The device code or the browser sign-in ran out of time.
    #[error("the sign-in was not completed in time; start again")]
    SignInExpired,
    /// A URL is not acceptable (plain HTTP outside loopback, or without the explicit flag).
    #[error("refusing {url}: {reason}")]
    InsecureUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The profile is incomplete or malformed.
    #[error("invalid profile: {reason}")]
    InvalidProfile {
        /// What is wrong.
        reason: String,
    },
    /// The issuer could not be reached or answered with a server error (retry later).
    #[error("the identity provider is unreachable: {detail}")]
    IssuerUnavailable {
        /// Secret-free description.
        detail: String,
    },
    /// The issuer's discovery document or keys are unusable.
    #[error("the identity provider's configuration is unusable: {detail}")]
    Discovery {
        /// Secret-free description.
        detail: String,
    },
    /// The issuer answered with an OAuth error not covered above.
    #[error("the identity provider refused: {error} ({description})")]
    IssuerRejected {
        /// OAuth `error`.
        error: String,
        /// OAuth `error_description`.
        description: String,
    },
    /// The issuer lacks a needed capability (e.g. no device authorization endpoint).
    #[error("the identity provider does not support {what}")]
    Unsupported {
        /// The missing capability.
        what: String,
    },
    /// The redirect back from the browser is not the one expected (state, issuer or shape).
    #[error("the sign-in redirect is not valid: {detail}")]
    InvalidRedirect {
        /// Why.
        detail: String,
    },
    /// The browser could not be opened.
    #[error("could not open the browser: {detail}")]
    Browser {
        /// The shell's explanation.
        detail: String,
    },
    /// The token store failed (see the inner code: `keyring_unavailable`, ...).
    #[error(transparent)]
    Secrets(#[from] SecretError),
}

impl AuthError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotSignedIn { .. } => "not_signed_in",
            Self::SessionExpired { .. } => "session_expired",
            Self::AccessDenied => "access_denied",
            Self::SignInExpired => "sign_in_expired",
            Self::InsecureUrl { .. } => "insecure_url",
            Self::InvalidProfile { .. } => "invalid_profile",
            Self::IssuerUnavailable { .. } => "issuer_unavailable",
            Self::Discovery { .. } => "discovery_failed",
            Self::IssuerRejected { .. } => "issuer_rejected",
            Self::Unsupported { .. } => "unsupported",
            Self::InvalidRedirect { .. } => "invalid_redirect",
            Self::Browser { .. } => "browser_failed",
            Self::Secrets(inner) => inner.code(),
        }
    }

    /// Whether the same call may succeed later without the user doing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::IssuerUnavailable { .. })
    }

    /// Whether the user must sign in (again) to go on.
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, Self::NotSignedIn { .. } | Self::SessionExpired { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_classes() {
        let expired = AuthError::SessionExpired {
            profile: "acme".into(),
            reason: "invalid_grant".into(),
        };
        assert_eq!(expired.code(), "session_expired");
        assert!(expired.needs_sign_in());
        assert!(!expired.is_retryable());
        let down = AuthError::IssuerUnavailable {
            detail: "timeout".into(),
        };
        assert!(down.is_retryable());
        let keyring = AuthError::from(SecretError::KeyringUnavailable {
            backend: "linux keyutils".into(),
            reason: "no session keyring".into(),
        });
        assert_eq!(keyring.code(), "keyring_unavailable");
        assert!(keyring.to_string().contains("no session keyring"));
    }
}
