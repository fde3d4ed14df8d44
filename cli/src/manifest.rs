//! The sandbox manifest: everything another process needs to use a running sandbox.
//!
//! It holds the devices' onboarding payloads (their PoPs), so it is written with mode 0600 and
//! removed when the sandbox stops. The schema is documented in `docs/cli.md`.

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
pub const MANIFEST_SCHEMA: u32 = 1;

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
    /// The DPS emulator.
    pub dps: DpsEndpoint,
    /// The CA certificate (PEM) that signs the sandbox's HTTPS certificates.
    pub ca_cert: PathBuf,
    /// Test users.
    pub users: Vec<TestUser>,
    /// The virtual devices.
    pub devices: Vec<ManifestDevice>,
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
        let manifest: Manifest = serde_json::from_str(&text).map_err(|error| {
            CliError::config(format!(
                "{} is not a sandbox manifest: {error}",
                path.display()
            ))
        })?;
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(CliError::config(format!(
                "{} has manifest schema {}, this fieldlink reads {MANIFEST_SCHEMA}",
                path.display(),
                manifest.schema
            )));
        }
        Ok(manifest)
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
