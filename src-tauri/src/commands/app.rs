//! App information, settings, adapters and cancellation.

use std::time::Duration;

use tauri::State;

use crate::{
    dto::settings::{AdapterInfo, AppInfo, Settings, SiteLabel},
    error::{CommandResult, scan_failure},
    state::DesktopState,
};

/// What this build can do and where it keeps its files.
#[tauri::command]
pub fn app_info(state: State<'_, DesktopState>) -> AppInfo {
    let paths = state.paths();
    AppInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        simulator_available: cfg!(feature = "demo"),
        sandbox_available: cfg!(feature = "sandbox"),
        sign_in_available: true,
        api_client_available: true,
        journal_path: paths.journal.display().to_string(),
        settings_path: paths.settings.display().to_string(),
    }
}

/// The current settings.
#[tauri::command]
pub fn get_settings(state: State<'_, DesktopState>) -> Settings {
    state.settings()
}

/// Validates and stores the settings.
#[tauri::command]
pub async fn save_settings(
    state: State<'_, DesktopState>,
    settings: Settings,
) -> CommandResult<Settings> {
    state.save_settings(settings).await?;
    Ok(state.settings())
}

/// Adds (or updates) the `sandbox` profile from a `fieldlink sandbox up` manifest and makes it
/// the active profile; for a `--ble bluez` sandbox the BLE adapter becomes its installer
/// adapter.
#[tauri::command]
pub async fn open_sandbox_manifest(
    state: State<'_, DesktopState>,
    path: String,
) -> CommandResult<Settings> {
    let setup = crate::sandbox::profile_from_manifest(&path)?;
    let profile = setup.profile;
    let mut settings = state.settings();
    if let Some(adapter) = setup.ble_adapter {
        settings.ble_adapter = Some(adapter);
    }
    settings
        .profiles
        .retain(|existing| existing.name != profile.name);
    settings.active_profile = Some(profile.name.clone());
    settings.profiles.push(profile);
    state.save_settings(settings).await?;
    Ok(state.settings())
}

/// The Bluetooth adapters of this computer.
#[tauri::command]
pub async fn list_adapters() -> CommandResult<Vec<AdapterInfo>> {
    let adapters = fieldlink_core::transport::btleplug::list_adapters(Duration::from_secs(5))
        .await
        .map_err(|error| scan_failure(&error))?;
    Ok(adapters
        .into_iter()
        .map(|adapter| AdapterInfo {
            name: adapter.name,
            address: adapter.address,
            powered: adapter.powered,
        })
        .collect())
}

/// The labels the active site offers (the simulator's devices).
#[tauri::command]
pub async fn site_labels(state: State<'_, DesktopState>) -> CommandResult<Vec<SiteLabel>> {
    Ok(state.site().await?.labels().to_vec())
}

/// Cancels a running scan, commissioning, batch or sign-in.
#[tauri::command]
pub fn cancel_operation(state: State<'_, DesktopState>, operation_id: String) -> CommandResult<()> {
    Ok(state.operations().cancel(&operation_id)?)
}
