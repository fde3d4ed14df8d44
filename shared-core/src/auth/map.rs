//! Mapping the OAuth library's errors onto [`AuthError`] (never copying response bodies, which
//! may carry tokens).

use openidconnect::{DiscoveryError, RequestTokenError, core::CoreRevocationErrorResponse};
use serde::Serialize;

use super::{AuthError, http::TransportError};

fn transport(error: &TransportError) -> AuthError {
    match error {
        TransportError::Refused(reason) => AuthError::InsecureUrl {
            url: "an identity-provider endpoint".to_owned(),
            reason: reason.clone(),
        },
        TransportError::Failed(detail) => AuthError::IssuerUnavailable {
            detail: detail.clone(),
        },
    }
}

fn oauth_fields<T: Serialize>(response: &T) -> (String, String) {
    let value = serde_json::to_value(response).unwrap_or_default();
    let text = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("error"), text("error_description"))
}

/// A token-endpoint (or device-authorization) failure.
pub(crate) fn request_error<T>(
    error: &RequestTokenError<TransportError, T>,
    profile: &str,
) -> AuthError
where
    T: openidconnect::ErrorResponse + 'static,
{
    match error {
        RequestTokenError::ServerResponse(response) => {
            let (code, description) = oauth_fields(response);
            match code.as_str() {
                "invalid_grant" => AuthError::SessionExpired {
                    profile: profile.to_owned(),
                    reason: if description.is_empty() {
                        code
                    } else {
                        description
                    },
                },
                "access_denied" => AuthError::AccessDenied,
                "expired_token" => AuthError::SignInExpired,
                "temporarily_unavailable" | "server_error" => AuthError::IssuerUnavailable {
                    detail: format!("{code}: {description}"),
                },
                _ => AuthError::IssuerRejected {
                    error: code,
                    description,
                },
            }
        }
        RequestTokenError::Request(inner) => transport(inner),
        RequestTokenError::Parse(_, _) => AuthError::IssuerUnavailable {
            detail: "the identity provider sent an unreadable response".to_owned(),
        },
        RequestTokenError::Other(detail) => AuthError::IssuerUnavailable {
            detail: detail.chars().take(200).collect(),
        },
    }
}

/// A discovery failure.
pub(crate) fn discovery_error(error: &DiscoveryError<TransportError>) -> AuthError {
    match error {
        DiscoveryError::Request(inner) => transport(inner),
        DiscoveryError::Response(status, _, _) if status.is_server_error() => {
            AuthError::IssuerUnavailable {
                detail: format!("discovery answered {status}"),
            }
        }
        DiscoveryError::Response(status, _, _) => AuthError::Discovery {
            detail: format!(
                "discovery answered {status}; check the issuer URL (it must be the exact `iss`)"
            ),
        },
        other => AuthError::Discovery {
            detail: other.to_string(),
        },
    }
}

/// A revocation failure, as a note for the sign-out report.
pub(crate) fn revocation_error(
    error: &RequestTokenError<TransportError, CoreRevocationErrorResponse>,
) -> String {
    match error {
        RequestTokenError::ServerResponse(response) => {
            let (code, description) = oauth_fields(response);
            format!("the issuer refused revocation: {code} {description}")
        }
        other => request_error(other, "").to_string(),
    }
}
