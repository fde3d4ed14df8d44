//! Profiles and sign-in.
//!
//! The OIDC flows (authorization code + PKCE with a loopback redirect in the system browser,
//! and the device authorization grant) belong to the core's `auth` module, which has not landed
//! in `fieldlink-core` yet. Until it does, profiles with an issuer answer `sign_in_unavailable`
//! (saying exactly that), and the simulator signs in as the local user.

use tauri::{State, ipc::Channel};

use crate::{
    dto::settings::{SessionInfo, SignInEvent, SignInMethod, SiteKind},
    error::{CommandResult, ShellError},
    state::{DesktopState, local_identity},
};

/// The signed-in installer, if any.
#[tauri::command]
pub fn get_session(state: State<'_, DesktopState>) -> Option<SessionInfo> {
    state.session()
}

/// Makes `profile` the active profile and signs in to it with `method`. Browser and
/// device-code sign-in report their steps through `on_event`; cancel with
/// `cancel_operation(operation_id)`.
#[tauri::command]
pub async fn sign_in(
    state: State<'_, DesktopState>,
    profile: String,
    method: SignInMethod,
    operation_id: String,
    on_event: Channel<SignInEvent>,
) -> CommandResult<SessionInfo> {
    let _guard = state.operations().start(&operation_id)?;
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
    let session = match (chosen.site, method) {
        (SiteKind::Simulator, _) => SessionInfo {
            profile: chosen.name.clone(),
            organisation: chosen.organisation.clone(),
            identity: local_identity(),
            method: SignInMethod::Local,
            expires_at_ms: None,
        },
        (SiteKind::Bluetooth, _) if chosen.issuer.is_none() => {
            return Err(ShellError::SignInUnavailable {
                reason: format!(
                    "profile {:?} has no sign-in issuer; add one in Settings",
                    chosen.name
                ),
            }
            .into());
        }
        (SiteKind::Bluetooth, _) => {
            // The channel stays unused until the core's OIDC client exists.
            drop(on_event);
            return Err(ShellError::SignInUnavailable {
                reason: "this build of fieldlink has no OIDC client yet (the `auth` module of \
                         fieldlink-core has not landed)"
                    .to_owned(),
            }
            .into());
        }
    };
    if settings.active_profile.as_deref() != Some(chosen.name.as_str()) {
        settings.active_profile = Some(chosen.name.clone());
        state.save_settings(settings).await?;
    }
    state.set_session(Some(session.clone()));
    Ok(session)
}

/// Forgets the session.
#[tauri::command]
pub fn sign_out(state: State<'_, DesktopState>) {
    state.set_session(None);
}
