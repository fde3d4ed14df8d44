//! `fieldlink sandbox up` manifests as profiles (feature `sandbox`).
//!
//! A sandbox (manifest schema 2) runs the real provisioning API and a real OIDC issuer over
//! HTTPS, both signed by one CA whose PEM file the manifest names. Its profile signs in to that
//! issuer as the desktop client (`fieldlink-desktop`: the device code, or the browser with PKCE
//! and the loopback redirect) and reaches the API with the signed-in token. Manifests written by
//! an older `fieldlink` (schema 1, a stand-in issuer nobody could sign in to) are refused by the
//! manifest reader with a message that says to restart the sandbox.

use crate::{
    dto::settings::{Profile, SiteKind},
    error::CommandError,
};

/// The profile name a sandbox gets.
pub const SANDBOX_PROFILE: &str = "sandbox";

/// What opening a manifest sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSetup {
    /// The `sandbox` profile.
    pub profile: Profile,
    /// For a `sandbox up --ble bluez` sandbox, the adapter installers use (Settings → BLE
    /// adapter).
    pub ble_adapter: Option<String>,
}

/// The profile (and adapter) for the sandbox whose manifest is at `path`.
#[cfg(feature = "sandbox")]
pub fn profile_from_manifest(path: &str) -> Result<SandboxSetup, CommandError> {
    use fieldlink_cli::manifest::Manifest;
    let absolute = std::path::absolute(path).map_err(|error| crate::error::ShellError::File {
        path: path.to_owned(),
        detail: error.to_string(),
    })?;
    let manifest = Manifest::load(&absolute).map_err(|error| CommandError {
        code: error.code,
        message: error.message,
        retryable: false,
        details: error.details,
    })?;
    let issuer = manifest.issuer.as_ref();
    let client_id =
        issuer.map(|issuer| desktop_client(issuer.clients.iter().map(|c| &c.client_id)));
    let profile = Profile {
        name: SANDBOX_PROFILE.to_owned(),
        organisation: format!("fieldlink sandbox ({} devices)", manifest.devices.len()),
        site: SiteKind::Sandbox,
        api_url: manifest.api.as_ref().map(|api| api.url.clone()),
        issuer: issuer.map(|issuer| issuer.url.clone()),
        client_id,
        ca_file: Some(manifest.ca_cert.display().to_string()),
        sandbox_manifest: Some(absolute.display().to_string()),
    };
    Ok(SandboxSetup {
        profile,
        ble_adapter: manifest
            .bluez
            .as_ref()
            .map(|bluez| bluez.installer_adapter.clone()),
    })
}

/// Checks that this process talks to the D-Bus system bus a BlueZ sandbox's adapters are on
/// (`bus_address`, `None` = the machine's own). libdbus reads `DBUS_SYSTEM_BUS_ADDRESS` once,
/// so the app must be started with it.
pub fn check_system_bus(
    bus_address: Option<&str>,
    ours: Option<&str>,
) -> Result<(), crate::error::ShellError> {
    match bus_address {
        Some(wanted) if ours != Some(wanted) => Err(crate::error::ShellError::NotConfigured {
            profile: SANDBOX_PROFILE.to_owned(),
            reason: format!(
                "the sandbox's Bluetooth devices are on its own D-Bus system bus: quit and start \
                 fieldlink-desktop with DBUS_SYSTEM_BUS_ADDRESS={wanted}"
            ),
        }),
        _ => Ok(()),
    }
}

/// The client the app signs in as: the desktop's (`fieldlink-desktop`) when the issuer lists
/// it, else the first one it lists, else the desktop's anyway (the issuer will say it does not
/// know it).
pub fn desktop_client<'a>(mut registered: impl Iterator<Item = &'a String> + Clone) -> String {
    let desktop = crate::auth::DEFAULT_CLIENT_ID;
    if registered.clone().any(|client| client == desktop) {
        return desktop.to_owned();
    }
    registered
        .next()
        .cloned()
        .unwrap_or_else(|| desktop.to_owned())
}

/// Without the `sandbox` feature: says how to get it.
#[cfg(not(feature = "sandbox"))]
pub fn profile_from_manifest(path: &str) -> Result<SandboxSetup, CommandError> {
    let _ = (path, SiteKind::Sandbox);
    Err(crate::error::ShellError::NotConfigured {
        profile: SANDBOX_PROFILE.to_owned(),
        reason: "this build cannot open sandbox manifests (build with `--features sandbox`)"
            .to_owned(),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desktop_client_is_preferred() {
        let listed = |ids: &[&str]| ids.iter().map(|id| id.to_string()).collect::<Vec<_>>();
        let all = listed(&["fieldlink-cli", "fieldlink-desktop", "fieldlink-mobile"]);
        assert_eq!(desktop_client(all.iter()), "fieldlink-desktop");
        let cli_only = listed(&["fieldlink-cli"]);
        assert_eq!(desktop_client(cli_only.iter()), "fieldlink-cli");
        assert_eq!(desktop_client([].iter()), "fieldlink-desktop");
    }

    #[test]
    fn a_bench_bus_must_be_the_apps_bus() {
        let bench = "unix:path=/tmp/sbx/bench/system_bus_socket";
        assert!(check_system_bus(None, None).is_ok());
        assert!(check_system_bus(None, Some(bench)).is_ok());
        assert!(check_system_bus(Some(bench), Some(bench)).is_ok());
        let error =
            crate::error::CommandError::from(check_system_bus(Some(bench), None).unwrap_err());
        assert_eq!(error.code, "not_configured");
        assert!(
            error
                .message
                .contains(&format!("DBUS_SYSTEM_BUS_ADDRESS={bench}"))
        );
        assert!(check_system_bus(Some(bench), Some("unix:path=/other")).is_err());
    }
}
