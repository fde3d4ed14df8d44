//! The in-process world: N virtual devices (real device agents with in-memory stores and
//! simulated networks, assembled like the device agent's `VirtualFleet` but keeping each
//! `DeviceAgent` reachable, which the BLE bench needs to serve it over BlueZ) behind the core's [`InMemoryRadio`], a DPS emulator on loopback HTTPS
//! they really register with, a [`LocalAssignmentSigner`] the devices trust and an
//! [`EmulatorStatusSource`] for confirmation.
//!
//! ```no_run
//! # async fn demo() {
//! use fieldlink_tests::world::{World, WorldConfig};
//! let world = World::start(WorldConfig::default()).await;
//! let report = world.commission(0, None).await.expect("commissioned");
//! assert!(report.agreed);
//! world.shutdown().await;
//! # }
//! ```

use std::{sync::Arc, time::Duration};

use ed25519_dalek::SigningKey;
use fieldlink_core::{
    CommissionError,
    assignment::{AssignmentSource, DpsTarget, LocalAssignmentSigner, UnixClock},
    transport::{
        PeripheralId,
        memory::{InMemoryRadio, LinkModel, PeripheralLink, RadioAdvertisement},
    },
    workflow::{
        CommissionRequest, Commissioner, CommissioningConfig, CommissioningReport,
        DiscriminatorMatch, IgnoreProgress, StepDeadlines,
    },
};
use fieldlink_device_agent::{
    agent::{AgentConfig, DeviceAgent},
    clock::{SharedClock, TokioClock},
    dps::DpsClientConfig,
    link::{Advertisement, PeripheralConnection},
    machine::{LockoutPolicy, MachineConfig},
    network::{Capabilities, SimulatedNetwork, SimulatedNetworks},
    secret::{SecretBytes, SecretString},
    store::{
        DeviceIdentity, DpsCredential, MemoryStore, PersistedState, StoredNetwork,
        TrustAnchorRecord,
    },
};
use fieldlink_dps_emulator::{
    DpsEmulator, EmulatorConfig, EnrollmentGroup, InstanceConfig, Knobs, RunningEmulator,
};
use fieldlink_protocol::{
    gatt::SERVICE_UUID,
    message::NetworkConfig,
    payload::{OnboardingPayload, PopSecret},
    session::SessionSecret,
    ticket::TicketSigner,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio_util::sync::CancellationToken;

use crate::status::EmulatorStatusSource;

/// The DPS instance every device is assigned through.
pub const DPS_INSTANCE: &str = "dps-world";
/// The IoT hub the DPS instance assigns to.
pub const IOT_HUB: &str = "hub-world.azure-devices.net";
/// The ticket-signing key id the devices trust.
pub const KEY_ID: &str = "world-key-1";
/// The enrollment group's primary key (base64).
const GROUP_KEY: &str = "d29ybGQtZ3JvdXAtcHJpbWFyeS1rZXktMDEyMzQ1Njc4OQ==";
const GROUP_SECONDARY: &str = "d29ybGQtZ3JvdXAtc2Vjb25kYXJ5LWtleS0wMTIzNDU2Nzg=";

/// How to build a world.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Number of virtual devices.
    pub devices: usize,
    /// The radio's link model (MTU, connection interval).
    pub link: LinkModel,
    /// Simulated access points. Empty: devices have Ethernet and are already online.
    pub networks: Vec<SimulatedNetwork>,
    /// Time each network-join stage takes.
    pub network_stage_delay: Duration,
    /// The devices' fail-safe window.
    pub fail_safe_window: Duration,
    /// The devices' wrong-PoP lockout (short answer delays by default, to keep tests quick).
    pub lockout: LockoutPolicy,
    /// A network each device already has as its proven config (factory or earlier site).
    pub initial_network: Option<(String, String)>,
    /// The DPS instance's knobs (`Retry-After`, latency, faults). The default answers polls
    /// with `Retry-After: 0`, to keep scenarios quick; Azure says 3 s.
    pub dps_knobs: Knobs,
    /// Seed for labels (registration IDs, PoPs, discriminators).
    pub seed: u64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            devices: 1,
            link: LinkModel {
                connection_interval: Duration::from_millis(2),
                ..LinkModel::default()
            },
            networks: Vec::new(),
            network_stage_delay: Duration::from_millis(5),
            fail_safe_window: Duration::from_secs(30),
            lockout: LockoutPolicy {
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
                ..LockoutPolicy::default()
            },
            initial_network: None,
            dps_knobs: Knobs {
                retry_after_secs: 0,
                ..Knobs::default()
            },
            seed: 7,
        }
    }
}

/// One virtual device and what the installer knows about it.
#[derive(Clone)]
pub struct WorldDevice {
    /// The QR label.
    pub payload: OnboardingPayload,
    /// The running agent (state, status).
    pub agent: DeviceAgent,
    /// Its handle on the radio.
    pub peripheral: PeripheralId,
    /// Its config store (inspect what was persisted).
    pub store: Arc<MemoryStore>,
    /// Its simulated network interface.
    pub networks: SimulatedNetworks,
}

impl std::fmt::Debug for WorldDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldDevice")
            .field("registration_id", &self.payload.registration_id)
            .field("peripheral", &self.peripheral)
            .finish_non_exhaustive()
    }
}

/// The assembled world.
pub struct World {
    /// The radio between installer and devices.
    pub radio: InMemoryRadio,
    /// The DPS emulator.
    pub emulator: RunningEmulator,
    /// The devices.
    pub devices: Vec<WorldDevice>,
    /// The DPS coordinates tickets carry.
    pub target: DpsTarget,
    /// Confirmation source over the emulator.
    pub status: Arc<EmulatorStatusSource>,
    signing_key: [u8; 32],
    config: WorldConfig,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("devices", &self.devices)
            .finish_non_exhaustive()
    }
}

impl World {
    /// Starts the emulator and the devices and registers them on the radio.
    ///
    /// # Panics
    /// If the emulator or an agent cannot start (a broken test environment).
    pub async fn start(config: WorldConfig) -> World {
        let emulator = DpsEmulator::start(
            EmulatorConfig::with_instances(vec![InstanceConfig::new(DPS_INSTANCE, &[IOT_HUB])])
                .with_tls(),
        )
        .await
        .expect("the DPS emulator starts");
        emulator
            .control()
            .set_knobs(DPS_INSTANCE, config.dps_knobs.clone())
            .expect("knobs are accepted");
        let info = emulator
            .control()
            .instance(DPS_INSTANCE)
            .expect("instance exists");
        emulator
            .control()
            .put_enrollment_group(
                DPS_INSTANCE,
                EnrollmentGroup::symmetric_key("world-group", GROUP_KEY, GROUP_SECONDARY),
            )
            .expect("enrollment group is accepted");
        let target = DpsTarget {
            id_scope: info.id_scope,
            global_endpoint: emulator.https_base_url().expect("HTTPS is enabled"),
            tenant: "world".into(),
            dps_instance: DPS_INSTANCE.into(),
        };
        let mut rng = StdRng::seed_from_u64(config.seed);
        let signing_key: [u8; 32] = rng.r#gen();
        let verifying = SigningKey::from_bytes(&signing_key).verifying_key();
        let anchor = TrustAnchorRecord {
            key_id: KEY_ID.into(),
            public_key: hex::encode(verifying.as_bytes()),
        };
        let radio = InMemoryRadio::new(config.link);
        let clock: SharedClock = Arc::new(TokioClock::new());
        let ca = emulator.ca_pem().map(|pem| pem.as_bytes().to_vec());
        let template = SimulatedNetworks::new(
            config.networks.clone(),
            config.network_stage_delay,
            clock.clone(),
        );
        let mut devices = Vec::with_capacity(config.devices);
        for index in 0..config.devices {
            let registration_id = format!("world-device-{index:04}");
            // Distinct discriminators, as the device agent's virtual fleet does, so a label
            // always picks out one device.
            let discriminator = loop {
                let candidate: u16 = rng.gen_range(0..0x1000);
                if !devices
                    .iter()
                    .any(|d: &WorldDevice| d.payload.discriminator == candidate)
                {
                    break candidate;
                }
            };
            let payload = OnboardingPayload::new(
                registration_id.clone(),
                PopSecret::generate(&mut rng),
                discriminator,
                0x0042,
            )
            .expect("generated labels are valid");
            let identity = DeviceIdentity {
                registration_id,
                pop: SecretBytes::new(payload.pop.expose_bytes().to_vec()),
                discriminator: payload.discriminator,
                product_code: payload.product_code,
                dps_credential: DpsCredential::GroupKey {
                    group_key: SecretString::new(GROUP_KEY),
                },
            };
            let networks = template
                .for_another_device()
                .with_capabilities(Capabilities {
                    wifi: !config.networks.is_empty(),
                    ethernet: config.networks.is_empty(),
                    cellular: false,
                    already_online: config.networks.is_empty(),
                });
            let agent_config = AgentConfig {
                machine: MachineConfig {
                    fail_safe_window: config.fail_safe_window,
                    lockout: config.lockout,
                    capabilities: networks_capabilities(&networks),
                    ..MachineConfig::default()
                },
                dps: DpsClientConfig {
                    extra_ca_pem: ca.clone(),
                    default_poll_interval: Duration::from_millis(50),
                    ..DpsClientConfig::default()
                },
                scan_at_start: !config.networks.is_empty(),
                ..AgentConfig::default()
            };
            let store = Arc::new(MemoryStore::new());
            let mut factory = PersistedState::new(identity, vec![anchor.clone()]);
            if let Some((ssid, passphrase)) = &config.initial_network {
                factory.network.current = Some(StoredNetwork::Wifi {
                    ssid: ssid.clone(),
                    passphrase: SecretString::new(passphrase.clone()),
                    hidden: false,
                    bssid: None,
                });
            }
            let agent = DeviceAgent::start(
                store.clone(),
                factory,
                Arc::new(networks.clone()),
                clock.clone(),
                agent_config,
            )
            .expect("the device agent starts");
            let serving = agent.clone();
            let peripheral = radio.register_peripheral(
                agent.watch_advertisement(),
                radio_advertisement,
                move |link: PeripheralLink| {
                    serving.serve(PeripheralConnection {
                        mtu: link.mtu,
                        from_central: link.from_central,
                        to_central: link.to_central,
                    });
                },
            );
            devices.push(WorldDevice {
                payload,
                agent,
                peripheral,
                store,
                networks,
            });
        }
        let status = Arc::new(EmulatorStatusSource::new(emulator.control().clone()));
        World {
            radio,
            emulator,
            devices,
            target,
            status,
            signing_key,
            config,
        }
    }

    /// The world's configuration.
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// The ticket-signing key the devices trust.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.signing_key)
    }

    /// A signer with the key the devices trust.
    pub fn signer(&self) -> LocalAssignmentSigner {
        let key = SigningKey::from_bytes(&self.signing_key);
        LocalAssignmentSigner::new(TicketSigner::new(KEY_ID, key), self.target.clone())
    }

    /// A signer with the trusted key and another clock (expired or future tickets).
    pub fn signer_with_clock(&self, clock: UnixClock) -> LocalAssignmentSigner {
        self.signer().with_clock(clock)
    }

    /// Workflow settings suited to the world: short deadlines, quick reconnects.
    pub fn commissioning_config(&self) -> CommissioningConfig {
        let mut config = CommissioningConfig {
            deadlines: StepDeadlines {
                scanning: Duration::from_secs(2),
                registering: Duration::from_secs(30),
                ..StepDeadlines::default()
            },
            overall_timeout: Duration::from_secs(60),
            status_poll_interval: Duration::from_millis(50),
            service_uuid: SERVICE_UUID,
            ..CommissioningConfig::default()
        };
        config.reconnect.initial_delay = Duration::from_millis(20);
        config.reconnect.max_delay = Duration::from_millis(200);
        config
    }

    /// A commissioner over the radio, the trusted signer and the emulator status source.
    pub fn commissioner(&self) -> Commissioner {
        self.commissioner_with(Arc::new(self.signer()))
    }

    /// A commissioner with another assignment source (tampered, foreign, expired tickets).
    pub fn commissioner_with(&self, assignments: Arc<dyn AssignmentSource>) -> Commissioner {
        Commissioner::new(
            Arc::new(self.radio.clone()),
            assignments,
            self.status.clone(),
        )
        .with_config(self.commissioning_config())
    }

    /// The request an installer makes after scanning device `index`'s QR label.
    pub fn request(&self, index: usize, network: Option<NetworkConfig>) -> CommissionRequest {
        let payload = &self.devices[index].payload;
        CommissionRequest {
            registration_id: Some(payload.registration_id.clone()),
            discriminator: DiscriminatorMatch::Full(payload.discriminator),
            secret: SessionSecret::Pop(payload.pop.clone()),
            network,
        }
    }

    /// Commissions device `index` with the default commissioner.
    pub async fn commission(
        &self,
        index: usize,
        network: Option<NetworkConfig>,
    ) -> Result<CommissioningReport, CommissionError> {
        self.commissioner()
            .commission(
                self.request(index, network),
                &IgnoreProgress,
                CancellationToken::new(),
            )
            .await
    }

    /// Stops the agents and the emulator.
    pub async fn shutdown(self) {
        for device in &self.devices {
            device.agent.shutdown().await;
        }
        self.emulator.shutdown().await;
    }
}

fn networks_capabilities(networks: &SimulatedNetworks) -> Capabilities {
    use fieldlink_device_agent::network::NetworkConfigurator;
    networks.capabilities()
}

fn radio_advertisement(advertisement: &Advertisement) -> RadioAdvertisement {
    RadioAdvertisement {
        local_name: advertisement.local_name.clone(),
        service_uuids: vec![SERVICE_UUID],
        service_data: advertisement.service_data.to_vec(),
    }
}
