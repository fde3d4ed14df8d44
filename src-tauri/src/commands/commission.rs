//! One commissioning, and the registration status of a device.

use std::{sync::Arc, time::Duration};

use fieldlink_core::CommissionError;
use tauri::{State, ipc::Channel};

use crate::{
    dto::{
        progress::ProgressUpdate,
        result::{CommissionResult, RegistrationStatus},
    },
    error::{CommandResult, ShellError},
    label::OnboardingCode,
    run::Run,
    state::DesktopState,
};

/// How long a registration-status query may take.
const STATUS_DEADLINE: Duration = Duration::from_secs(30);

/// The journalled context of a commissioning on the active site.
pub async fn run_context(state: &DesktopState) -> CommandResult<Run> {
    Ok(Run {
        site: state.site().await?,
        journal: state.journal(),
        installer: state.installer(),
    })
}

/// Commissions the device `label` names (QR label text or manual code), streaming progress
/// to `on_progress`. Cancel it with `cancel_operation(operation_id)`.
#[tauri::command]
pub async fn commission(
    state: State<'_, DesktopState>,
    label: String,
    operation_id: String,
    on_progress: Channel<ProgressUpdate>,
) -> CommandResult<CommissionResult> {
    let code = OnboardingCode::parse(&label)?;
    let guard = state.operations().start(&operation_id)?;
    let run = run_context(&state).await?;
    let sink = Arc::new(move |update: ProgressUpdate| {
        // A window that went away is not the commissioning's problem.
        let _ = on_progress.send(update);
    });
    run.commission(code, None, sink, guard.token()).await
}

/// What the provisioning service says about `registration_id`'s DPS registration, asked with
/// the newest ticket this computer fetched for it.
#[tauri::command]
pub async fn registration_status(
    state: State<'_, DesktopState>,
    registration_id: String,
) -> CommandResult<RegistrationStatus> {
    let services = state.site().await?.services()?;
    let newest = state.journal().latest_assignment(&registration_id)?;
    let assignment = newest.ok_or(ShellError::NoAssignment {
        registration_id: registration_id.clone(),
    })?;
    let query = services
        .status
        .registration_status(registration_id, assignment);
    let view = tokio::time::timeout(STATUS_DEADLINE, query)
        .await
        .map_err(|_| CommissionError::ApiUnavailable {
            detail: "no answer in time".to_owned(),
        })?
        .map_err(|error| error.to_commission_error())?;
    Ok(view.into())
}
