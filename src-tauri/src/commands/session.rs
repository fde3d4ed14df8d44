//! Profiles and sign-in, through the core's OIDC client ([`fieldlink_core::auth`]):
//! authorization code + PKCE with a loopback redirect in the system browser, or the device
//! authorization grant (a code approved on another device). Tokens stay in the OS keyring; the
//! UI only ever sees who signed in. Profiles without an issuer (the simulator, a sandbox without
//! an issuer) sign in as the local user.

use std::time::Duration;

use fieldlink_core::{
    CommissionError,
    auth::{AuthClient, Session},
};
use tauri::{State, ipc::Channel};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::session_info,
    dto::settings::{Profile, SessionInfo, SignInEvent, SignInMethod, SiteKind},
    error::{CommandResult, ShellError},
    state::{DesktopState, local_identity},
};

/// How long a browser or device-code sign-in may take.
pub const SIGN_IN_DEADLINE: Duration = Duration::from_secs(600);

/// The signed-in installer: this run's session, else one kept in the keyring from an earlier
/// sign-in to the active profile.
#[tauri::command]
pub async fn get_session(state: State<'_, DesktopState>) -> CommandResult<Option<SessionInfo>> {
    if let Some(session) = state.session() {
        return Ok(Some(session));
    }
    let Ok(profile) = state.active_profile() else {
        return Ok(None);
    };
    let Some(client) = state.auth().client(&profile)? else {
        return Ok(None);
    };
    match client.session().await {
        Ok(Some(session)) => {
            let info = session_info(&profile, &session, SignInMethod::Restored);
            state.set_session(Some(info.clone()));
            Ok(Some(info))
        }
        Ok(None) => Ok(None),
        Err(error) => {
            // No keyring, or an unreadable entry: signed out; signing in reports the cause.
            tracing::warn!(code = error.code(), "no stored session");
            Ok(None)
        }
    }
}

async fn until_cancelled<T>(
    cancel: &CancellationToken,
    flow: impl Future<Output = Result<T, fieldlink_core::auth::AuthError>>,
) -> CommandResult<T> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(CommissionError::Cancelled.into()),
        result = flow => Ok(result?),
    }
}

async fn with_browser(
    state: &DesktopState,
    client: &AuthClient,
    events: &Channel<SignInEvent>,
    cancel: &CancellationToken,
) -> CommandResult<Session> {
    let browser = state.browser();
    let events = events.clone();
    let flow = client.sign_in_with_browser(
        move |url: &str| {
            let _ = events.send(SignInEvent::BrowserOpened {
                url: url.to_owned(),
            });
            // No browser (a headless machine): the UI shows the URL to open elsewhere, so the
            // sign-in keeps waiting for the redirect instead of failing.
            if let Err(error) = browser(url.to_owned()) {
                tracing::warn!(%error, "the system browser did not open");
            }
            Ok(())
        },
        SIGN_IN_DEADLINE,
    );
    until_cancelled(cancel, flow).await
}

async fn with_device_code(
    client: &AuthClient,
    events: &Channel<SignInEvent>,
    cancel: &CancellationToken,
) -> CommandResult<Session> {
    let started = until_cancelled(cancel, client.start_device_sign_in()).await?;
    let prompt = started.prompt().clone();
    let now = fieldlink_core::assignment::system_clock()();
    let _ = events.send(SignInEvent::DeviceCode {
        user_code: prompt.user_code,
        verification_uri: prompt.verification_uri,
        verification_uri_complete: prompt.verification_uri_complete,
        expires_in_s: u32::try_from(prompt.expires_at.saturating_sub(now).max(0)).unwrap_or(0),
    });
    until_cancelled(cancel, client.finish_device_sign_in(started)).await
}

fn local_session(profile: &Profile) -> SessionInfo {
    SessionInfo {
        profile: profile.name.clone(),
        organisation: profile.organisation.clone(),
        identity: local_identity(),
        method: SignInMethod::Local,
        expires_at_ms: None,
    }
}

/// Makes `profile` the active profile and signs in to it with `method`. Browser and device-code
/// sign-in report their steps through `on_event`; cancel with `cancel_operation(operation_id)`.
#[tauri::command]
pub async fn sign_in(
    state: State<'_, DesktopState>,
    profile: String,
    method: SignInMethod,
    operation_id: String,
    on_event: Channel<SignInEvent>,
) -> CommandResult<SessionInfo> {
    let guard = state.operations().start(&operation_id)?;
    let mut settings = state.settings();
    let chosen = settings
        .profiles
        .iter()
        .find(|candidate| candidate.name == profile)
        .cloned()
        .ok_or_else(|| ShellError::InvalidSetting {
            field: "profile".to_owned(),
            reason: format!("there is no profile called {profile:?}"),
        })?;
    let client = state.auth().client(&chosen)?;
    let session = match (client, chosen.site) {
        (None, SiteKind::Simulator | SiteKind::Sandbox) => local_session(&chosen),
        (None, SiteKind::Bluetooth) => {
            return Err(ShellError::SignInUnavailable {
                reason: format!(
                    "profile {:?} has no sign-in issuer; add one in Settings",
                    chosen.name
                ),
            }
            .into());
        }
        (Some(client), _) => {
            let cancel = guard.token();
            let core = match method {
                SignInMethod::Browser => with_browser(&state, &client, &on_event, &cancel).await?,
                SignInMethod::DeviceCode => with_device_code(&client, &on_event, &cancel).await?,
                SignInMethod::Local | SignInMethod::Restored => {
                    return Err(ShellError::SignInUnavailable {
                        reason: format!(
                            "profile {:?} signs in with its issuer: use the browser or a code",
                            chosen.name
                        ),
                    }
                    .into());
                }
            };
            session_info(&chosen, &core, method)
        }
    };
    if settings.active_profile.as_deref() != Some(chosen.name.as_str()) {
        settings.active_profile = Some(chosen.name.clone());
        state.save_settings(settings).await?;
    }
    state.set_session(Some(session.clone()));
    Ok(session)
}

/// Signs out of the active profile: revokes its tokens where the issuer supports it and always
/// forgets them here.
#[tauri::command]
pub async fn sign_out(state: State<'_, DesktopState>) -> CommandResult<()> {
    state.set_session(None);
    let Ok(profile) = state.active_profile() else {
        return Ok(());
    };
    if let Some(client) = state.auth().client(&profile)? {
        let report = client.logout().await?;
        if let Some(note) = report.revocation_note {
            tracing::info!(%note, "tokens forgotten without revocation");
        }
    }
    Ok(())
}
