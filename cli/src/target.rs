//! Where an invocation reaches devices and services: a running sandbox, or real Bluetooth plus
//! the profile's provisioning API. Flags and `FIELDLINK_*` variables win over the profile.

use std::{path::PathBuf, sync::Arc, time::Duration};

use fieldlink_core::{
    api_client::{ApiClientConfig, ProvisioningApiClient},
    journal::{Installer, Journal},
    transport::BleTransport,
    workflow::CommissioningConfig,
};

use crate::{
    args::TargetArgs,
    auth,
    config::Settings,
    exit::{CliError, Exit},
    fleet::client::FleetClient,
    manifest::Manifest,
    sources::Backend,
    stack::stack_commissioning_config,
};

/// The resolved target.
#[derive(Debug, Clone)]
pub enum Target {
    /// A running `fieldlink sandbox up`.
    Sandbox {
        /// Its manifest's path.
        path: PathBuf,
        /// The manifest.
        manifest: Box<Manifest>,
        /// Its fleet socket.
        client: FleetClient,
    },
    /// Real devices over Bluetooth, tickets and status from the provisioning API (signed in).
    Ble {
        /// Adapter.
        adapter: Option<String>,
        /// Instead of Bluetooth, the radio of a running sandbox's memory fleet (its manifest):
        /// the signed-in mode against a sandbox (a profile made with `--from-sandbox`).
        fleet_radio: Option<PathBuf>,
        /// API base URL.
        api_url: Option<String>,
        /// Extra CA file.
        ca_file: Option<PathBuf>,
    },
}

impl Target {
    /// Resolves `args` over the active profile.
    pub fn resolve(settings: &Settings, args: &TargetArgs) -> Result<Self, CliError> {
        let sandbox = args
            .sandbox
            .clone()
            .or_else(|| settings.profile.sandbox.clone());
        if let Some(path) = sandbox {
            let manifest = Manifest::load(&path)?;
            let client = manifest.client()?;
            return Ok(Target::Sandbox {
                path,
                manifest: Box::new(manifest),
                client,
            });
        }
        Ok(Target::Ble {
            // An explicit adapter means real Bluetooth.
            fleet_radio: args
                .adapter
                .is_none()
                .then(|| settings.profile.fleet_radio.clone())
                .flatten(),
            adapter: args
                .adapter
                .clone()
                .or_else(|| settings.profile.adapter.clone()),
            api_url: args
                .api_url
                .clone()
                .or_else(|| settings.profile.api_url.clone()),
            ca_file: args
                .ca_file
                .clone()
                .or_else(|| settings.profile.ca_file.clone()),
        })
    }

    /// The radio alone (for `scan`).
    pub async fn transport(&self) -> Result<Arc<dyn BleTransport>, CliError> {
        match self {
            Target::Sandbox { client, .. } => Ok(Arc::new(client.clone())),
            Target::Ble {
                fleet_radio: Some(path),
                ..
            } => fleet_radio(path),
            Target::Ble { adapter, .. } => open_bluetooth(adapter.clone()).await,
        }
    }

    /// Radio, tickets and status.
    pub async fn backend(&self, settings: &Settings) -> Result<Backend, CliError> {
        match self {
            Target::Sandbox { client, .. } => Ok(Backend {
                name: "sandbox".into(),
                transport: Arc::new(client.clone()),
                assignments: Arc::new(client.clone()),
                status: Arc::new(client.clone()),
            }),
            Target::Ble {
                adapter,
                fleet_radio: radio,
                api_url,
                ca_file,
            } => {
                let Some(api_url) = api_url else {
                    return Err(no_api(settings));
                };
                let api = provisioning_api(settings, api_url, ca_file.as_deref())?;
                let (name, transport) = match radio {
                    Some(path) => ("sandbox-radio", fleet_radio(path)?),
                    None => ("bluez", open_bluetooth(adapter.clone()).await?),
                };
                Ok(Backend {
                    name: name.into(),
                    transport,
                    assignments: api.clone(),
                    status: api,
                })
            }
        }
    }

    /// The provisioning API client alone (no radio), for a target that is not a sandbox: what
    /// `status` asks in the signed-in mode.
    pub fn api_client(&self, settings: &Settings) -> Result<Arc<ProvisioningApiClient>, CliError> {
        match self {
            Target::Sandbox { .. } => Err(CliError::internal(
                "a sandbox target reaches its services through the fleet socket",
            )),
            Target::Ble {
                api_url, ca_file, ..
            } => {
                let Some(api_url) = api_url else {
                    return Err(no_api(settings));
                };
                provisioning_api(settings, api_url, ca_file.as_deref())
            }
        }
    }

    /// Workflow settings for this target, with `timeout` as the per-device budget.
    pub fn commissioning_config(&self, timeout: Duration) -> CommissioningConfig {
        let mut config = match self {
            Target::Sandbox { .. } => stack_commissioning_config(),
            Target::Ble { .. } => CommissioningConfig::default(),
        };
        config.overall_timeout = timeout;
        config
    }
}

fn no_api(settings: &Settings) -> CliError {
    CliError::config(format!(
        "profile {:?} has no provisioning API: add one with `fieldlink profile add {} \
         --api-url URL --issuer-url URL`, or use a sandbox with `--sandbox MANIFEST`",
        settings.profile_name, settings.profile_name
    ))
}

/// The core's provisioning-API client for `api_url`, authenticated by the profile's sign-in.
fn provisioning_api(
    settings: &Settings,
    api_url: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<ProvisioningApiClient>, CliError> {
    let tokens = auth::client(settings, Some(api_url))?;
    let mut config = ApiClientConfig::new(api_url);
    if let Some(path) = ca_file {
        let pem = std::fs::read_to_string(path).map_err(|error| {
            CliError::config(format!(
                "cannot read the CA file {}: {error}",
                path.display()
            ))
        })?;
        config = config.with_ca_pem(pem);
    }
    if settings.profile.allow_insecure_loopback {
        config = config.allowing_insecure_loopback();
    }
    let client = ProvisioningApiClient::new(config, tokens)
        .map_err(|error| CliError::new(Exit::Config, error.code(), error.to_string()))?;
    Ok(Arc::new(client))
}

/// The memory fleet of the sandbox whose manifest is at `path`, as a radio only.
fn fleet_radio(path: &std::path::Path) -> Result<Arc<dyn BleTransport>, CliError> {
    Ok(Arc::new(Manifest::load(path)?.client()?))
}

async fn open_bluetooth(adapter: Option<String>) -> Result<Arc<dyn BleTransport>, CliError> {
    use fieldlink_core::transport::btleplug::{BtleplugConfig, BtleplugTransport};
    let config = BtleplugConfig {
        adapter,
        ..BtleplugConfig::default()
    };
    match BtleplugTransport::open(config).await {
        Ok(transport) => Ok(Arc::new(transport)),
        Err(error) => Err(CliError::new(
            Exit::TransportUnavailable,
            "bluetooth_unavailable",
            format!("Bluetooth unavailable: {error}"),
        )),
    }
}

/// Opens the journal.
pub fn open_journal(settings: &Settings) -> Result<Arc<Journal>, CliError> {
    Ok(Arc::new(Journal::open(&settings.journal_path)?))
}

/// Who is commissioning: the signed-in identity, else the local user, under the active profile.
pub async fn installer(settings: &Settings) -> Installer {
    Installer {
        identity: auth::identity(settings).await,
        profile: settings.profile_name.clone(),
    }
}
