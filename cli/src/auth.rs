//! Sign-in for the CLI (`login`, `logout`, `whoami`) over the core's OIDC client
//! (`fieldlink_core::auth::AuthClient`): the device authorization grant with the verification
//! URL and a terminal QR code, tokens in the OS keyring (`KeyringStore`; no keyring means a
//! typed error, never plaintext), refresh before expiry and on a 401 when the API client asks.
//!
//! A profile needs `api_url` and `issuer_url` to sign in (`client_id` defaults to
//! [`DEFAULT_CLIENT_ID`]). A sandbox profile (`sandbox = MANIFEST`) needs no sign-in.

use std::sync::Arc;

use fieldlink_core::{
    auth::{AuthClient, AuthError, DevicePrompt, LogoutReport, Profile as AuthProfile, Session},
    secrets::{KeyringStore, SecretStore},
};
use serde_json::json;

use crate::{
    config::Settings,
    exit::{CliError, Exit},
    output::Output,
};

/// The public client id used when a profile names none.
pub const DEFAULT_CLIENT_ID: &str = "fieldlink-cli";

/// A CLI error for an auth failure, with the core's stable code.
pub fn auth_error(error: &AuthError) -> CliError {
    let exit = match error.code() {
        "invalid_profile" | "insecure_url" => Exit::Config,
        "issuer_unavailable" | "discovery_failed" => Exit::ServiceUnavailable,
        _ => Exit::Auth,
    };
    CliError::new(exit, error.code(), error.to_string())
}

/// The core's sign-in profile for the active profile, with `api_url` overriding its API URL.
pub fn sign_in_profile(
    settings: &Settings,
    api_url: Option<&str>,
) -> Result<AuthProfile, CliError> {
    let profile = &settings.profile;
    let api_url = api_url
        .map(str::to_owned)
        .or_else(|| profile.api_url.clone());
    let (Some(api_url), Some(issuer_url)) = (api_url, profile.issuer_url.clone()) else {
        return Err(CliError::new(
            Exit::Config,
            "profile_incomplete",
            format!(
                "profile {:?} needs an API URL and an issuer URL to sign in: `fieldlink profile \
                 add {} --api-url URL --issuer-url URL` (sandboxes need no sign-in)",
                settings.profile_name, settings.profile_name
            ),
        ));
    };
    let mut core = AuthProfile::new(
        settings.profile_name.clone(),
        api_url,
        issuer_url,
        profile
            .client_id
            .clone()
            .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned()),
    );
    if let Some(scopes) = &profile.scopes {
        core.scopes = scopes.clone();
    }
    core.ca_file = profile.ca_file.clone();
    core.allow_insecure_loopback = profile.allow_insecure_loopback;
    Ok(core)
}

/// The OIDC client of the active profile, keeping tokens in the OS keyring.
pub fn client(settings: &Settings, api_url: Option<&str>) -> Result<Arc<AuthClient>, CliError> {
    let profile = sign_in_profile(settings, api_url)?;
    // The URL policy (HTTPS, or loopback HTTP only with `allow_insecure_loopback`) and the
    // names are checked before the keyring is touched: a refused URL is a configuration error
    // on every machine.
    profile.validate().map_err(|error| auth_error(&error))?;
    let store: Arc<dyn SecretStore> = Arc::new(
        KeyringStore::open()
            .map_err(|error| CliError::new(Exit::Auth, error.code(), error.to_string()))?,
    );
    AuthClient::new(profile, store).map_err(|error| auth_error(&error))
}

fn show_prompt(prompt: &DevicePrompt, output: &Output) {
    output.event(
        "sign_in_prompt",
        &json!({
            "user_code": prompt.user_code,
            "verification_uri": prompt.verification_uri,
            "verification_uri_complete": prompt.verification_uri_complete,
            "expires_at": prompt.expires_at,
        }),
    );
    if output.is_json() {
        return;
    }
    // The prompt goes to stderr: stdout stays for results.
    eprintln!(
        "To sign in, open {} and enter the code {}",
        prompt.verification_uri, prompt.user_code
    );
    if let Some(qr) = &prompt.qr {
        eprintln!("{qr}");
    }
}

/// Signs in with the device authorization grant.
pub async fn login(settings: &Settings, output: &Output) -> Result<Session, CliError> {
    let client = client(settings, None)?;
    client
        .sign_in_with_device_code(|prompt| show_prompt(prompt, output))
        .await
        .map_err(|error| auth_error(&error))
}

/// Signs out (revocation where supported; the local tokens are always forgotten). A profile
/// that cannot sign in has nothing to forget.
pub async fn logout(settings: &Settings) -> Result<LogoutReport, CliError> {
    if sign_in_profile(settings, None).is_err() {
        return Ok(LogoutReport {
            was_signed_in: false,
            revoked: false,
            revocation_note: None,
        });
    }
    client(settings, None)?
        .logout()
        .await
        .map_err(|error| auth_error(&error))
}

/// The stored session of the active profile, if any (no network; `None` for a profile that
/// cannot sign in or without a usable keyring).
pub async fn session(settings: &Settings) -> Option<Session> {
    sign_in_profile(settings, None).ok()?;
    let client = match client(settings, None) {
        Ok(client) => client,
        Err(error) => {
            tracing::debug!(code = %error.code, "no sign-in session: {error}");
            return None;
        }
    };
    client.session().await.ok().flatten()
}

/// The local user's name (`$USER`, `$LOGNAME`, else `unknown`).
pub fn local_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// The identity the journal records: the signed-in subject (name when given), else
/// `local:<user>`.
pub async fn identity(settings: &Settings) -> String {
    match session(settings).await {
        Some(session) => session
            .identity
            .name
            .clone()
            .unwrap_or(session.identity.subject),
        None => format!("local:{}", local_user()),
    }
}
