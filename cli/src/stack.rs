//! The in-process stack behind `demo` and `sandbox up`, HTTPS throughout on loopback with ONE
//! private CA (rcgen) that signs every server certificate:
//!
//! - a DPS emulator with K instances (devices register over HTTPS; the API calls its service
//!   API over HTTPS);
//! - the sandbox OIDC issuer on a listener of its own ([`issuer`]);
//! - the provisioning API on SQLite, trusting that issuer ([`api`]), reached with the core's API
//!   client whose tokens come from a real device-code sign-in ([`sign_in`]);
//! - N virtual devices (real device agents) behind the core's in-memory radio, trusting the
//!   API's ticket keys.
//!
//! `--local-signer` swaps the API (and the issuer) for an in-process ticket signer that spreads
//! devices over the instances (least-loaded, sticky) and a status source over the emulator.

pub mod api;
mod balance;
pub mod issuer;
pub mod sign_in;

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use fieldlink_core::{
    assignment::{DpsTarget, LocalAssignmentSigner},
    transport::{
        PeripheralId,
        memory::{InMemoryRadio, LinkModel, PeripheralLink, RadioAdvertisement},
    },
    workflow::{CommissioningConfig, StepDeadlines},
};
use fieldlink_device_agent::{
    agent::{AgentConfig, DeviceAgent},
    clock::{SharedClock, TokioClock},
    dps::DpsClientConfig,
    link::{Advertisement, PeripheralConnection},
    machine::MachineConfig,
    network::{Capabilities, SimulatedNetwork, SimulatedNetworks},
    secret::{SecretBytes, SecretString},
    store::{DeviceIdentity, DpsCredential, MemoryStore, PersistedState, TrustAnchorRecord},
};
use fieldlink_dps_emulator::{
    DpsEmulator, EmulatorConfig, EnrollmentGroup, InstanceConfig, RunningEmulator,
    SharedAccessPolicy, TlsOptions, Utilisation, tls::CertificateAuthority,
};
use fieldlink_protocol::{
    gatt::SERVICE_UUID,
    payload::{OnboardingPayload, PopSecret},
    ticket::TicketSigner,
};
use fieldlink_tests::status::EmulatorStatusSource;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

pub use self::balance::BalancedSigner;
use crate::{
    exit::{CliError, Exit},
    sources::Backend,
};

/// The ticket-signing key id the virtual devices trust.
pub const KEY_ID: &str = "fieldlink-stack-1";
/// The most virtual devices a stack holds: one per 12-bit discriminator.
pub const MAX_DEVICES: usize = 0x1000;
/// The enrollment group every instance holds for the fleet.
const ENROLLMENT_GROUP: &str = "fieldlink-fleet";

/// How to build a stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Number of virtual devices.
    pub devices: usize,
    /// Number of DPS instances.
    pub dps_instances: usize,
    /// The radio's link model.
    pub link: LinkModel,
    /// Simulated access points; empty = devices are wired and already online.
    pub networks: Vec<SimulatedNetwork>,
    /// Registration ID prefix (`demo-device` gives `demo-device-0001`).
    pub prefix: String,
    /// Seed for labels and keys.
    pub seed: u64,
    /// The devices' fail-safe window.
    pub fail_safe_window: Duration,
    /// Tickets and status from the real provisioning API (SQLite, in-process) behind the
    /// sandbox issuer; otherwise from an in-process signer and the emulator's records.
    pub api: bool,
    /// The issuer approves every sign-in as the installer test user by itself (demo only).
    pub auto_approve: bool,
}

/// One virtual device.
#[derive(Clone)]
pub struct StackDevice {
    /// Its QR label.
    pub payload: OnboardingPayload,
    /// The running agent.
    pub agent: DeviceAgent,
    /// Its handle on the radio.
    pub peripheral: PeripheralId,
    /// What it persisted.
    pub store: Arc<MemoryStore>,
}

/// A DPS instance of the stack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StackInstance {
    /// Instance name.
    pub name: String,
    /// Its ID scope.
    pub id_scope: String,
    /// Its linked IoT hub.
    pub hub: String,
}

/// The running stack.
pub struct LocalStack {
    /// The radio.
    pub radio: InMemoryRadio,
    /// The DPS emulator.
    pub emulator: RunningEmulator,
    /// The devices.
    pub devices: Vec<StackDevice>,
    /// The DPS instances.
    pub instances: Vec<StackInstance>,
    /// The ticket source.
    pub assignments: Arc<BalancedSigner>,
    /// The status source.
    pub status: Arc<EmulatorStatusSource>,
    /// The provisioning API, when the stack runs it.
    pub api: Option<api::StackApi>,
    /// The sandbox issuer, when the stack runs the API.
    pub issuer: Option<issuer::StackIssuer>,
    /// The CA certificate (PEM) that signs every server certificate of the stack.
    pub ca_pem: String,
    /// The CA certificate as a file (in `files`).
    pub ca_file: std::path::PathBuf,
    files: tempfile::TempDir,
}

fn startup_error(what: &str, error: impl std::fmt::Display) -> CliError {
    CliError::new(
        Exit::Internal,
        "stack_start_failed",
        format!("cannot start {what}: {error}"),
    )
}

impl LocalStack {
    /// Starts the emulator and the devices.
    pub async fn start(config: StackConfig) -> Result<Self, CliError> {
        let count = config.dps_instances.max(1);
        let instances: Vec<(String, String)> = (1..=count)
            .map(|k| (format!("dps-{k}"), format!("hub-{k}.azure-devices.net")))
            .collect();
        let mut rng = StdRng::seed_from_u64(config.seed);
        let policy_key = base64::engine::general_purpose::STANDARD.encode(rng.r#gen::<[u8; 32]>());
        let ca = CertificateAuthority::generate_named("fieldlink sandbox CA")
            .map_err(|error| startup_error("the sandbox CA", error))?;
        let ca_pem = ca.cert_pem();
        let files =
            tempfile::tempdir().map_err(|error| startup_error("the stack's files", error))?;
        let ca_file = files.path().join("ca.pem");
        crate::manifest::write_private(&ca_file, ca_pem.as_bytes())?;
        // The issuer's RSA key generation runs on the blocking pool while the emulator starts.
        let pending_issuer = config
            .api
            .then(|| issuer::begin(config.auto_approve))
            .transpose()?;
        // The emulator re-creates the same CA from its key (same name and key identifier), so
        // its certificate chains to `ca_pem`; it serves HTTPS only.
        let emulator = DpsEmulator::start(EmulatorConfig {
            http_bind: None,
            tls: Some(TlsOptions {
                ca_key_pem: Some(ca.key_pem()),
                ca_common_name: ca.common_name().to_owned(),
                ..TlsOptions::default()
            }),
            instances: instances
                .iter()
                .map(|(name, hub)| {
                    let mut instance = InstanceConfig::new(name, &[hub.as_str()]);
                    instance.shared_access_policies = vec![SharedAccessPolicy {
                        key_name: api::POLICY.to_owned(),
                        primary_key: policy_key.clone(),
                        secondary_key: policy_key.clone(),
                    }];
                    instance
                })
                .collect(),
        })
        .await
        .map_err(|error| startup_error("the DPS emulator", error))?;
        let global_endpoint = emulator
            .https_base_url()
            .ok_or_else(|| startup_error("the DPS emulator", "HTTPS is off"))?;

        let group_key = base64::engine::general_purpose::STANDARD.encode(rng.r#gen::<[u8; 32]>());
        let secondary = base64::engine::general_purpose::STANDARD.encode(rng.r#gen::<[u8; 32]>());
        let signing_key: [u8; 32] = rng.r#gen();
        let verifying = SigningKey::from_bytes(&signing_key).verifying_key();

        let mut summaries = Vec::with_capacity(count);
        let mut signers = Vec::with_capacity(count);
        for (name, hub) in &instances {
            let control = emulator.control();
            control
                .put_enrollment_group(
                    name,
                    EnrollmentGroup::symmetric_key(ENROLLMENT_GROUP, &group_key, &secondary),
                )
                .map_err(|error| startup_error("the enrollment group", error))?;
            let info = control
                .instance(name)
                .ok_or_else(|| startup_error("a DPS instance", name))?;
            let target = DpsTarget {
                id_scope: info.id_scope.clone(),
                global_endpoint: global_endpoint.clone(),
                tenant: "sandbox".into(),
                dps_instance: name.clone(),
            };
            let signer = TicketSigner::new(KEY_ID, SigningKey::from_bytes(&signing_key));
            signers.push(LocalAssignmentSigner::new(signer, target));
            summaries.push(StackInstance {
                name: name.clone(),
                id_scope: info.id_scope,
                hub: hub.clone(),
            });
        }

        let radio = InMemoryRadio::new(config.link);
        let clock: SharedClock = Arc::new(TokioClock::new());
        let device_ca = Some(ca_pem.as_bytes().to_vec());
        let registration_ids: Vec<String> = (1..=config.devices)
            .map(|index| format!("{}-{index:04}", config.prefix))
            .collect();
        let mut stack_issuer = None;
        let (api, anchors) = if let Some(pending_issuer) = pending_issuer {
            let names: Vec<String> = instances.iter().map(|(name, _)| name.clone()).collect();
            let started_issuer = pending_issuer.start(&ca).await?;
            let api = api::start(api::ApiParts {
                emulator: &emulator,
                instances: &names,
                policy_key: &policy_key,
                registration_ids: &registration_ids,
                ca: &ca,
                ca_file: &ca_file,
                issuer: &started_issuer,
            })
            .await?;
            stack_issuer = Some(started_issuer);
            let keys = api
                .client
                .ticket_keys()
                .await
                .map_err(|error| startup_error("the API's ticket keys", error))?;
            let anchors = keys
                .iter()
                .map(|key| TrustAnchorRecord::new(key.key_id.clone(), &key.public_key))
                .collect();
            (Some(api), anchors)
        } else {
            (None, vec![TrustAnchorRecord::new(KEY_ID, &verifying)])
        };
        let wifi = !config.networks.is_empty();
        let template = SimulatedNetworks::new(
            config.networks.clone(),
            Duration::from_millis(5),
            clock.clone(),
        );
        if config.devices > MAX_DEVICES {
            return Err(CliError::new(
                Exit::Usage,
                "usage",
                format!("at most {MAX_DEVICES} virtual devices (one per discriminator)"),
            ));
        }
        // Unique discriminators, as a factory assigns them: two devices advertising the same
        // one would make the installer pick between them by signal strength alone.
        let mut discriminators: Vec<u16> = (0..0x1000).collect();
        discriminators.shuffle(&mut rng);
        let mut devices = Vec::with_capacity(config.devices);
        for (registration_id, discriminator) in registration_ids.into_iter().zip(discriminators) {
            let payload = OnboardingPayload::new(
                registration_id.clone(),
                PopSecret::generate(&mut rng),
                discriminator,
                0x0042,
            )
            .map_err(|error| startup_error("a device label", error))?;
            let identity = DeviceIdentity {
                registration_id,
                pop: SecretBytes::new(payload.pop.expose_bytes().to_vec()),
                discriminator: payload.discriminator,
                product_code: payload.product_code,
                dps_credential: DpsCredential::GroupKey {
                    group_key: SecretString::new(group_key.clone()),
                },
            };
            let networks = template
                .for_another_device()
                .with_capabilities(Capabilities {
                    wifi,
                    ethernet: !wifi,
                    cellular: false,
                    already_online: !wifi,
                });
            let agent_config = AgentConfig {
                machine: MachineConfig {
                    fail_safe_window: config.fail_safe_window,
                    ..MachineConfig::default()
                },
                dps: DpsClientConfig {
                    extra_ca_pem: device_ca.clone(),
                    default_poll_interval: Duration::from_millis(50),
                    ..DpsClientConfig::default()
                },
                scan_at_start: wifi,
                ..AgentConfig::default()
            };
            let store = Arc::new(MemoryStore::new());
            let agent = DeviceAgent::start(
                store.clone(),
                PersistedState::new(identity, anchors.clone()),
                Arc::new(networks),
                clock.clone(),
                agent_config,
            )
            .map_err(|error| startup_error("a virtual device", error))?;
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
            devices.push(StackDevice {
                payload,
                agent,
                peripheral,
                store,
            });
        }
        let status = Arc::new(EmulatorStatusSource::new(emulator.control().clone()));
        Ok(Self {
            radio,
            emulator,
            devices,
            instances: summaries,
            assignments: Arc::new(BalancedSigner::new(signers)),
            status,
            api,
            issuer: stack_issuer,
            ca_pem,
            ca_file,
            files,
        })
    }

    /// The directory of the stack's own files (the CA certificate); removed at shutdown.
    pub fn files(&self) -> &std::path::Path {
        self.files.path()
    }

    /// The radio and sources as a [`Backend`].
    pub fn backend(&self) -> Backend {
        match &self.api {
            Some(api) => Backend {
                name: "memory".into(),
                transport: Arc::new(self.radio.clone()),
                assignments: api.client.clone(),
                status: api.client.clone(),
            },
            None => Backend {
                name: "memory".into(),
                transport: Arc::new(self.radio.clone()),
                assignments: self.assignments.clone(),
                status: self.status.clone(),
            },
        }
    }

    /// Workflow settings for the stack: short scan, quick status polls.
    pub fn commissioning_config(&self) -> CommissioningConfig {
        stack_commissioning_config()
    }

    /// An instance's utilisation.
    pub fn utilisation(&self, instance: &str) -> Option<Utilisation> {
        self.emulator.control().utilisation(instance)
    }

    /// Stops the agents and the emulator.
    pub async fn shutdown(self) {
        for device in &self.devices {
            device.agent.shutdown().await;
        }
        if let Some(api) = self.api
            && let Err(error) = api.running.shutdown().await
        {
            tracing::warn!(%error, "the provisioning API did not stop cleanly");
        }
        if let Some(issuer) = self.issuer
            && let Err(error) = issuer.running.shutdown().await
        {
            tracing::warn!(%error, "the sandbox issuer did not stop cleanly");
        }
        self.emulator.shutdown().await;
    }
}

/// Workflow settings for virtual devices (in-process or through a sandbox).
pub fn stack_commissioning_config() -> CommissioningConfig {
    let mut config = CommissioningConfig {
        deadlines: StepDeadlines {
            scanning: Duration::from_secs(5),
            registering: Duration::from_secs(60),
            ..StepDeadlines::default()
        },
        overall_timeout: Duration::from_secs(120),
        status_poll_interval: Duration::from_millis(50),
        service_uuid: SERVICE_UUID,
        ..CommissioningConfig::default()
    };
    config.reconnect.initial_delay = Duration::from_millis(50);
    config.reconnect.max_delay = Duration::from_millis(500);
    config
}

fn radio_advertisement(advertisement: &Advertisement) -> RadioAdvertisement {
    RadioAdvertisement {
        local_name: advertisement.local_name.clone(),
        service_uuids: vec![SERVICE_UUID],
        service_data: advertisement.service_data.to_vec(),
    }
}
