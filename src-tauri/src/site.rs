//! What the commands run against for the active profile: a BLE transport and the provisioning
//! service's two sources ([`AssignmentSource`], [`RegistrationStatusSource`]).
//!
//! - **Bluetooth** profiles open the core's btleplug transport on the chosen adapter (lazily,
//!   so turning Bluetooth on later works without a restart) and reach their provisioning API
//!   with the core's [`ProvisioningApiClient`], authenticated by the profile's sign-in
//!   ([`AuthClient`]).
//! - **Sandbox** profiles (feature `sandbox`) use a running `fieldlink sandbox up` through its
//!   manifest: the radio is its fleet socket, or for `--ble bluez` btleplug on the chosen
//!   (default: the sandbox's installer) adapter of its D-Bus bus; tickets and status come from
//!   the sandbox's provisioning API with the signed-in token, else from the sandbox's bridge.
//! - **Simulator** profiles (feature `demo`) run the test world in-process: virtual device
//!   agents behind the core's in-memory radio, the DPS emulator on loopback HTTPS, a local ticket
//!   signer the devices trust and a status source over the emulator.

use std::sync::Arc;

use fieldlink_core::{
    api_client::{ApiClientConfig, ProvisioningApiClient},
    assignment::{AssignmentSource, RegistrationStatusSource},
    auth::AuthClient,
    transport::BleTransport,
    workflow::CommissioningConfig,
};
use tokio::sync::Mutex;

use crate::{
    dto::settings::{Profile, SiteKind, SiteLabel},
    error::{CommandError, ShellError},
};

/// The provisioning service, as the workflow sees it.
#[derive(Clone)]
pub struct Services {
    /// Signed tickets.
    pub assignments: Arc<dyn AssignmentSource>,
    /// DPS registration states.
    pub status: Arc<dyn RegistrationStatusSource>,
}

enum Radio {
    Ready(Arc<dyn BleTransport>),
    Bluetooth {
        adapter: Option<String>,
        opened: Mutex<Option<Arc<dyn BleTransport>>>,
    },
}

/// The active profile's transport and services.
pub struct Site {
    profile: String,
    transport_name: &'static str,
    radio: Radio,
    services: Result<Services, ShellError>,
    config: CommissioningConfig,
    labels: Vec<SiteLabel>,
    #[cfg(any(test, feature = "demo"))]
    _world: Option<fieldlink_tests::world::World>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("profile", &self.profile)
            .field("transport", &self.transport_name)
            .finish_non_exhaustive()
    }
}

impl Site {
    /// A site over explicit parts (tests, and the simulator).
    pub fn from_parts(
        profile: impl Into<String>,
        transport_name: &'static str,
        transport: Arc<dyn BleTransport>,
        services: Services,
        config: CommissioningConfig,
        labels: Vec<SiteLabel>,
    ) -> Self {
        Self {
            profile: profile.into(),
            transport_name,
            radio: Radio::Ready(transport),
            services: Ok(services),
            config,
            labels,
            #[cfg(any(test, feature = "demo"))]
            _world: None,
        }
    }

    /// Opens the site `profile` describes; `auth` is the profile's sign-in, if it has an
    /// issuer.
    pub async fn open(
        profile: &Profile,
        adapter: Option<String>,
        auth: Option<Arc<AuthClient>>,
    ) -> Result<Self, CommandError> {
        match profile.site {
            SiteKind::Simulator => Self::simulator(&profile.name).await,
            SiteKind::Bluetooth => Ok(Self::bluetooth(profile, adapter, auth)),
            SiteKind::Sandbox => Self::sandbox(profile, adapter, auth),
        }
    }

    fn bluetooth(
        profile: &Profile,
        adapter: Option<String>,
        auth: Option<Arc<AuthClient>>,
    ) -> Self {
        let services = api_services(profile, profile.api_url.as_deref(), auth);
        let radio = Radio::Bluetooth {
            adapter,
            opened: Mutex::new(None),
        };
        Self {
            profile: profile.name.clone(),
            transport_name: "bluez",
            radio,
            services,
            config: CommissioningConfig::default(),
            labels: Vec::new(),
            #[cfg(any(test, feature = "demo"))]
            _world: None,
        }
    }

    #[cfg(any(test, feature = "demo"))]
    async fn simulator(profile: &str) -> Result<Self, CommandError> {
        use fieldlink_tests::world::{World, WorldConfig};
        let config = WorldConfig {
            devices: SIMULATED_DEVICES,
            ..WorldConfig::default()
        };
        // `World::start` panics when the environment is broken (no loopback, no tokio timer):
        // contain it to an error instead of taking the app down.
        let world = tokio::spawn(World::start(config)).await.map_err(|error| {
            fieldlink_core::CommissionError::Internal {
                detail: format!("the simulator did not start: {error}"),
            }
        })?;
        Ok(Self::over_world(profile, world))
    }

    #[cfg(not(any(test, feature = "demo")))]
    async fn simulator(profile: &str) -> Result<Self, CommandError> {
        Err(ShellError::NotConfigured {
            profile: profile.to_owned(),
            reason: "this build has no simulator (build with `--features demo`)".to_owned(),
        }
        .into())
    }

    #[cfg(feature = "sandbox")]
    fn sandbox(
        profile: &Profile,
        adapter: Option<String>,
        auth: Option<Arc<AuthClient>>,
    ) -> Result<Self, CommandError> {
        use fieldlink_cli::manifest::Manifest;
        let path = profile
            .sandbox_manifest
            .clone()
            .ok_or_else(|| ShellError::InvalidSetting {
                field: "sandbox_manifest".to_owned(),
                reason: format!("profile {:?} names no sandbox manifest", profile.name),
            })?;
        let manifest = Manifest::load(std::path::Path::new(&path)).map_err(cli_error)?;
        let fleet = Arc::new(manifest.client().map_err(cli_error)?);
        let services = match (&manifest.api, auth) {
            (Some(api), Some(auth)) => api_services(profile, Some(&api.url), Some(auth)),
            _ => Ok(Services {
                assignments: fleet.clone(),
                status: fleet.clone(),
            }),
        };
        let labels = manifest
            .devices
            .iter()
            .map(|device| SiteLabel {
                registration_id: device.registration_id.clone(),
                label: device.payload.clone(),
            })
            .collect();
        // `sandbox up --ble bluez`: real device agents behind BlueZ, reached with btleplug on
        // the chosen (else the installer) adapter of the sandbox's bus.
        let (transport_name, radio) = match &manifest.bluez {
            Some(bluez) => {
                let ours = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok();
                crate::sandbox::check_system_bus(bluez.bus_address.as_deref(), ours.as_deref())?;
                let adapter = adapter.or_else(|| Some(bluez.installer_adapter.clone()));
                let radio = Radio::Bluetooth {
                    adapter,
                    opened: Mutex::new(None),
                };
                ("bluez", radio)
            }
            None => ("sandbox", Radio::Ready(fleet)),
        };
        Ok(Self {
            profile: profile.name.clone(),
            transport_name,
            radio,
            services,
            config: CommissioningConfig::default(),
            labels,
            #[cfg(any(test, feature = "demo"))]
            _world: None,
        })
    }

    #[cfg(not(feature = "sandbox"))]
    fn sandbox(
        profile: &Profile,
        _adapter: Option<String>,
        _auth: Option<Arc<AuthClient>>,
    ) -> Result<Self, CommandError> {
        Err(ShellError::NotConfigured {
            profile: profile.name.clone(),
            reason: "this build cannot open sandbox manifests (build with `--features sandbox`)"
                .to_owned(),
        }
        .into())
    }

    /// A site over a running test world.
    #[cfg(any(test, feature = "demo"))]
    pub fn over_world(profile: &str, world: fieldlink_tests::world::World) -> Self {
        let services = Services {
            assignments: Arc::new(world.signer()),
            status: world.status.clone(),
        };
        let labels = world
            .devices
            .iter()
            .map(|device| SiteLabel {
                registration_id: device.payload.registration_id.clone(),
                label: device.payload.encode(),
            })
            .collect();
        let mut site = Self::from_parts(
            profile,
            "memory",
            Arc::new(world.radio.clone()),
            services,
            world.commissioning_config(),
            labels,
        );
        site._world = Some(world);
        site
    }

    /// The profile this site belongs to.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// The journal's name for the transport (`bluez`, `memory`).
    pub fn transport_name(&self) -> &'static str {
        self.transport_name
    }

    /// The workflow configuration.
    pub fn config(&self) -> CommissioningConfig {
        self.config
    }

    /// Labels this site offers (the simulator's devices).
    pub fn labels(&self) -> &[SiteLabel] {
        &self.labels
    }

    /// The provisioning service, or why there is none.
    pub fn services(&self) -> Result<Services, CommandError> {
        self.services.clone().map_err(CommandError::from)
    }

    /// The BLE transport, opening it on first use.
    pub async fn transport(&self) -> Result<Arc<dyn BleTransport>, CommandError> {
        match &self.radio {
            Radio::Ready(transport) => Ok(Arc::clone(transport)),
            Radio::Bluetooth { adapter, opened } => {
                use fieldlink_core::transport::btleplug::{BtleplugConfig, BtleplugTransport};
                let mut opened = opened.lock().await;
                if let Some(transport) = opened.as_ref() {
                    return Ok(Arc::clone(transport));
                }
                let config = BtleplugConfig {
                    adapter: adapter.clone(),
                    ..BtleplugConfig::default()
                };
                let transport: Arc<dyn BleTransport> = Arc::new(
                    BtleplugTransport::open(config)
                        .await
                        .map_err(|error| crate::error::scan_failure(&error))?,
                );
                *opened = Some(Arc::clone(&transport));
                Ok(transport)
            }
        }
    }
}

/// The provisioning API of `profile` at `api_url`, authenticated by its sign-in.
fn api_services(
    profile: &Profile,
    api_url: Option<&str>,
    auth: Option<Arc<AuthClient>>,
) -> Result<Services, ShellError> {
    let not_configured = |reason: String| ShellError::NotConfigured {
        profile: profile.name.clone(),
        reason,
    };
    let api_url =
        api_url.ok_or_else(|| not_configured("the profile has no provisioning API URL".into()))?;
    let auth = auth.ok_or_else(|| not_configured("the profile has no sign-in issuer".into()))?;
    let mut config = ApiClientConfig::new(api_url);
    if api_url.starts_with("http://") {
        config = config.allowing_insecure_loopback();
    }
    if let Some(path) = &profile.ca_file {
        let pem = std::fs::read_to_string(path).map_err(|error| ShellError::File {
            path: path.clone(),
            detail: error.to_string(),
        })?;
        config = config.with_ca_pem(pem);
    }
    let client = Arc::new(
        ProvisioningApiClient::new(config, auth)
            .map_err(|error| not_configured(format!("the API client cannot start: {error}")))?,
    );
    Ok(Services {
        assignments: client.clone(),
        status: client,
    })
}

/// A CLI error (manifest, fleet socket) in the command error shape.
#[cfg(feature = "sandbox")]
fn cli_error(error: fieldlink_cli::exit::CliError) -> CommandError {
    CommandError {
        code: error.code,
        message: error.message,
        retryable: false,
        details: error.details,
    }
}

/// Devices in the built-in simulator.
pub const SIMULATED_DEVICES: usize = 6;
