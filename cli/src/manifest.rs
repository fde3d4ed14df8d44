//! The sandbox manifest: everything another process needs to use a running sandbox.
//!
//! It holds the devices' onboarding payloads (their PoPs) and the test users' passwords, so it
//! is written with mode 0600 and removed when the sandbox stops. The schema is documented in
//! `docs/cli.md`.
//!
//! Schema 2 (HTTPS sandbox with a real issuer) adds to schema 1: `issuer` (URL, audience,
//! registered clients, whether sign-in is auto-approved) and the test users' passwords; every
//! URL is `https://`, and `ca_cert` is the one CA that signs the API, issuer and DPS emulator
//! certificates. Schema-1 fields keep their names and meaning.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    exit::{CliError, Exit},
    fleet::client::FleetClient,
    stack::StackInstance,
};

/// Version of the manifest format.
pub const MANIFEST_SCHEMA: u32 = 2;

/// A running sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub schema: u32,
    /// The sandbox's process id.
    pub pid: u32,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// The fleet socket (virtual radio + bridge).
    pub fleet: FleetEndpoint,
    /// The provisioning API, once the sandbox runs it (`null` until then: the bridge serves
    /// tickets and status).
    pub api: Option<ApiEndpoint>,
    /// The sandbox OIDC issuer, when the sandbox runs the API (`null` otherwise).
    #[serde(default)]
    pub issuer: Option<IssuerEndpoint>,
    /// The DPS emulator.
    pub dps: DpsEndpoint,
    /// The CA certificate (PEM) that signs every HTTPS certificate of the sandbox (API, issuer,
    /// DPS emulator).
    pub ca_cert: PathBuf,
    /// Test users.
    pub users: Vec<TestUser>,
    /// The virtual devices.
    pub devices: Vec<ManifestDevice>,
    /// `sandbox up --ble bluez`: the bus, the installer adapter and each device agent
    /// (`docs/cli.md`, "sandbox up --ble bluez"); absent for the in-memory fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bluez: Option<crate::bluez_sandbox::BluezFleet>,
}

/// The fleet socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetEndpoint {
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The token every request carries.
    pub token: String,
}

/// The provisioning API and its issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiEndpoint {
    /// API base URL.
    pub url: String,
    /// OIDC issuer URL.
    pub issuer: String,
}

/// The sandbox OIDC issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerEndpoint {
    /// Issuer URL (`iss`; discovery at `{url}/.well-known/openid-configuration`).
    pub url: String,
    /// The `aud` of its access tokens (the API).
    pub audience: String,
    /// Registered clients.
    pub clients: Vec<ManifestClient>,
    /// Every sign-in is approved by the issuer itself as the first user (demo only).
    pub auto_approve: bool,
}

/// A client registered at the sandbox issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestClient {
    /// `client_id`.
    pub client_id: String,
    /// `device_code` (CLI) or `authorization_code` (with PKCE: desktop, mobile).
    pub grant: String,
    /// Registered redirect URIs (loopback ones match any port).
    pub redirect_uris: Vec<String>,
}

impl IssuerEndpoint {
    /// The client using `grant` (the first one).
    pub fn client_for(&self, grant: &str) -> Option<&ManifestClient> {
        self.clients.iter().find(|client| client.grant == grant)
    }
}

/// The DPS emulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpsEndpoint {
    /// The global endpoint (HTTPS base URL).
    pub global_endpoint: String,
    /// Its instances.
    pub instances: Vec<StackInstance>,
}

/// A sandbox user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestUser {
    /// User name.
    pub username: String,
    /// Password (sandbox only), when the sandbox runs an issuer.
    pub password: Option<String>,
    /// Tenant.
    pub tenant: String,
    /// Role.
    pub role: String,
}

/// A virtual device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDevice {
    /// DPS registration ID.
    pub registration_id: String,
    /// The QR label's payload.
    pub payload: String,
    /// The manual code.
    pub manual_code: String,
    /// The 12-bit discriminator.
    pub discriminator: u16,
    /// Its handle on the virtual radio.
    pub peripheral: String,
}

impl Manifest {
    /// Reads a manifest.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            CliError::new(
                Exit::TransportUnavailable,
                "sandbox_unavailable",
                format!(
                    "no sandbox manifest at {} ({error}); start one with `fieldlink sandbox up`",
                    path.display()
                ),
            )
        })?;
        // The schema first: an older or newer manifest gets a clear error, not a field error.
        #[derive(Deserialize)]
        struct Version {
            schema: u32,
        }
        let not_a_manifest = |error: serde_json::Error| {
            CliError::config(format!(
                "{} is not a sandbox manifest: {error}",
                path.display()
            ))
        };
        let version: Version = serde_json::from_str(&text).map_err(not_a_manifest)?;
        match version.schema {
            MANIFEST_SCHEMA => {}
            older if older < MANIFEST_SCHEMA => {
                return Err(CliError::config(format!(
                    "{} has manifest schema {older}, written by an older fieldlink (plain-HTTP \
                     API, no sign-in); this fieldlink reads schema {MANIFEST_SCHEMA}: restart the \
                     sandbox with this fieldlink (`fieldlink sandbox up`)",
                    path.display()
                )));
            }
            newer => {
                return Err(CliError::config(format!(
                    "{} has manifest schema {newer}, written by a newer fieldlink; this fieldlink \
                     reads schema {MANIFEST_SCHEMA}: use the same fieldlink as the sandbox",
                    path.display()
                )));
            }
        }
        serde_json::from_str(&text).map_err(not_a_manifest)
    }

    /// Writes the manifest atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|error| CliError::internal(format!("manifest encoding: {error}")))?;
        write_private(path, text.as_bytes())
    }

    /// A client for its fleet socket.
    pub fn client(&self) -> Result<FleetClient, CliError> {
        let address: SocketAddr = self.fleet.address.parse().map_err(|_| {
            CliError::config(format!(
                "the manifest's fleet address {:?} is not host:port",
                self.fleet.address
            ))
        })?;
        Ok(FleetClient::new(address, self.fleet.token.clone()))
    }
}

/// Writes `bytes` to `path` (temporary file + rename), readable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let fail = |error: std::io::Error| {
        CliError::config(format!("cannot write {}: {error}", path.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let temporary = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary).map_err(fail)?;
        file.write_all(bytes).map_err(fail)?;
        file.sync_all().map_err(fail)?;
    }
    std::fs::rename(&temporary, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_and_newer_schemas_get_a_clear_error_and_schema_2_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        let old = r#"{"schema": 1, "pid": 1, "started_at": "x",
            "fleet": {"address": "127.0.0.1:1", "token": "t"},
            "api": {"url": "http://127.0.0.1:2", "issuer": "https://issuer.sandbox.fieldlink.invalid"},
            "dps": {"global_endpoint": "https://localhost:3", "instances": []},
            "ca_cert": "/tmp/ca.pem", "users": [], "devices": []}"#;
        write_private(&path, old.as_bytes()).unwrap();
        let error = Manifest::load(&path).unwrap_err();
        assert_eq!(error.code, "config_error");
        assert!(
            error.message.contains("older fieldlink"),
            "{}",
            error.message
        );
        assert!(error.message.contains("sandbox up"), "{}", error.message);

        write_private(
            &path,
            old.replace("\"schema\": 1", "\"schema\": 9").as_bytes(),
        )
        .unwrap();
        let error = Manifest::load(&path).unwrap_err();
        assert!(
            error.message.contains("newer fieldlink"),
            "{}",
            error.message
        );

        let current = old.replace("\"schema\": 1", "\"schema\": 2").replace(
            "\"dps\"",
            r#""issuer": {"url": "https://127.0.0.1:4", "audience": "a", "auto_approve": false,
                "clients": [{"client_id": "fieldlink-cli", "grant": "device_code",
                             "redirect_uris": []}]},
               "dps""#,
        );
        write_private(&path, current.as_bytes()).unwrap();
        let manifest = Manifest::load(&path).unwrap();
        let issuer = manifest.issuer.unwrap();
        assert_eq!(
            issuer.client_for("device_code").unwrap().client_id,
            "fieldlink-cli"
        );
        assert!(issuer.client_for("authorization_code").is_none());

        write_private(&path, b"{\"pid\": 3}").unwrap();
        let error = Manifest::load(&path).unwrap_err();
        assert!(error.message.contains("is not a sandbox manifest"));
    }
}
