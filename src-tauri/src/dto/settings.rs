//! Settings, profiles and the signed-in session.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Light, dark, or whatever the system says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    /// Follow the system.
    #[default]
    System,
    /// Light.
    Light,
    /// Dark.
    Dark,
}

/// Where a profile's devices and services are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    /// Real Bluetooth and the profile's provisioning API.
    #[default]
    Bluetooth,
    /// Simulated devices and services inside the app (builds with the `demo` feature).
    Simulator,
    /// A running `fieldlink sandbox up`, through its manifest (builds with the `sandbox`
    /// feature).
    Sandbox,
}

/// One organisation's configuration: a provisioning API plus its sign-in issuer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, TS)]
pub struct Profile {
    /// Unique name.
    pub name: String,
    /// The organisation (tenant) shown at sign-in.
    pub organisation: String,
    /// Real radio and API, or the built-in simulator.
    #[serde(default)]
    pub site: SiteKind,
    /// Provisioning API base URL (`https://...`; `http://` only to loopback).
    pub api_url: Option<String>,
    /// OIDC issuer URL.
    pub issuer: Option<String>,
    /// OIDC client id registered for the desktop app.
    pub client_id: Option<String>,
    /// An extra CA certificate (PEM) to trust for this profile's servers.
    pub ca_file: Option<String>,
    /// The `fieldlink sandbox up` manifest this profile came from, if any.
    pub sandbox_manifest: Option<String>,
}

/// Everything the Settings screen edits; stored as JSON in the app's config directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, TS)]
pub struct Settings {
    /// The profiles.
    pub profiles: Vec<Profile>,
    /// The profile in use.
    pub active_profile: Option<String>,
    /// The Bluetooth adapter (`hci0`, or an address); `null` takes the first powered one.
    pub ble_adapter: Option<String>,
    /// Colour scheme.
    #[serde(default)]
    pub theme: Theme,
    /// Devices commissioned at once in a batch.
    #[serde(default = "default_concurrency")]
    pub batch_concurrency: u32,
}

fn default_concurrency() -> u32 {
    4
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            profiles: Vec::new(),
            active_profile: None,
            ble_adapter: None,
            theme: Theme::System,
            batch_concurrency: default_concurrency(),
        }
    }
}

impl Settings {
    /// The active profile, if it exists.
    pub fn active(&self) -> Option<&Profile> {
        let name = self.active_profile.as_deref()?;
        self.profiles.iter().find(|profile| profile.name == name)
    }
}

/// How the installer signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// Authorization code with PKCE, in the system browser.
    Browser,
    /// Device authorization grant: a code approved on another device.
    DeviceCode,
    /// No issuer (the simulator, a sandbox without an issuer): the local user.
    Local,
    /// A session kept in the keyring from an earlier sign-in.
    Restored,
}

/// The signed-in installer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SessionInfo {
    /// The profile.
    pub profile: String,
    /// The organisation.
    pub organisation: String,
    /// Who (`sub`/e-mail, or `local:<user>`).
    pub identity: String,
    /// How.
    pub method: SignInMethod,
    /// When the session expires, unix ms.
    #[ts(type = "number | null")]
    pub expires_at_ms: Option<i64>,
}

/// What happens while signing in (streamed through a channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SignInEvent {
    /// The system browser was opened at this URL; waiting for the redirect.
    BrowserOpened {
        /// The authorization URL (shown so it can be copied when no browser opened).
        url: String,
    },
    /// Enter this code at this address on another device.
    DeviceCode {
        /// The code to type.
        user_code: String,
        /// Where to type it.
        verification_uri: String,
        /// The same with the code filled in (for a QR code), if the issuer gives one.
        verification_uri_complete: Option<String>,
        /// Seconds until the code expires.
        expires_in_s: u32,
    },
}

/// A Bluetooth adapter, for the Settings screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct AdapterInfo {
    /// Short name (`hci0`).
    pub name: String,
    /// Address, when known.
    pub address: Option<String>,
    /// Whether it is powered on.
    pub powered: bool,
}

/// What this build of the app can do, for the About box and for hiding what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct AppInfo {
    /// App version.
    pub version: String,
    /// Whether the built-in simulator is compiled in.
    pub simulator_available: bool,
    /// Whether this build can open `fieldlink sandbox up` manifests.
    pub sandbox_available: bool,
    /// Whether sign-in with an OIDC issuer is available.
    pub sign_in_available: bool,
    /// Whether this build can reach a provisioning API.
    pub api_client_available: bool,
    /// Where the commissioning journal lives.
    pub journal_path: String,
    /// Where the settings live.
    pub settings_path: String,
}

/// The labels a site offers (the simulator's devices, a sandbox manifest's devices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SiteLabel {
    /// Registration ID.
    pub registration_id: String,
    /// The QR label text.
    pub label: String,
}
