//! What the commands run against for the active profile: a BLE transport and the provisioning
//! service's two sources ([`AssignmentSource`], [`RegistrationStatusSource`]).
//!
//! - **Bluetooth** profiles open the core's btleplug transport on the chosen adapter (lazily,
//!   so turning Bluetooth on later works without a restart). Their provisioning service needs
//!   the core's HTTP API client, which `fieldlink-core` does not have yet: until it lands,
//!   commissioning on such a profile fails with `not_configured` and says why.
//! - **Simulator** profiles (feature `demo`) run the test world in-process: virtual device
//!   agents behind the core's in-memory radio, the DPS emulator on loopback HTTPS, a local ticket
//!   signer the devices trust and a status source over the emulator.

use std::sync::Arc;

use fieldlink_core::{
    assignment::{AssignmentSource, RegistrationStatusSource},
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

    /// Opens the site `profile` describes.
    pub async fn open(profile: &Profile, adapter: Option<String>) -> Result<Self, CommandError> {
        match profile.site {
            SiteKind::Simulator => Self::simulator(&profile.name).await,
            SiteKind::Bluetooth => Ok(Self::bluetooth(profile, adapter)),
        }
    }

    fn bluetooth(profile: &Profile, adapter: Option<String>) -> Self {
        let services = Err(ShellError::NotConfigured {
            profile: profile.name.clone(),
            reason: match &profile.api_url {
                None => "the profile has no provisioning API URL".to_owned(),
                Some(url) => format!(
                    "this build cannot reach the provisioning API at {url} yet: fieldlink-core \
                     has no HTTP API client"
                ),
            },
        });
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

/// Devices in the built-in simulator.
pub const SIMULATED_DEVICES: usize = 6;
