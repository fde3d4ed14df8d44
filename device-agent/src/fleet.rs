//! The virtual fleet: many virtual devices in one process, each with its own identity, label,
//! in-memory store and simulated network, sharing one DPS configuration and trust anchors.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldlink_protocol::message::{DeviceState, DeviceStatus};
use fieldlink_protocol::payload::{MAX_DISCRIMINATOR, OnboardingPayload, PopSecret};
use fieldlink_protocol::registration_id::validate_registration_id;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agent::{AgentConfig, AgentError, DeviceAgent};
use crate::clock::{SharedClock, TokioClock};
use crate::link::{Advertisement, PeripheralConnection};
use crate::network::{SimulatedNetwork, SimulatedNetworks};
use crate::secret::{SecretBytes, SecretString};
use crate::store::{DeviceIdentity, DpsCredential, MemoryStore, PersistedState, TrustAnchorRecord};

/// How the fleet's devices authenticate to DPS.
#[derive(Debug, Clone)]
pub enum FleetCredential {
    /// One symmetric-key enrollment group. With `derive_at_factory` each device stores its
    /// derived key (as real devices should); otherwise it stores the group key and derives at
    /// registration.
    GroupEnrollment {
        /// The group's primary key, base64.
        group_key: SecretString,
        /// Store the derived device key instead of the group key.
        derive_at_factory: bool,
    },
    /// A random 32-byte key per device (individual enrollments; see [`VirtualDevice::dps_key`]).
    IndividualEnrollments,
}

/// The site's simulated networks.
#[derive(Debug, Clone)]
pub struct FleetNetworks {
    /// Access points in range.
    pub access_points: Vec<SimulatedNetwork>,
    /// Time each join stage takes.
    pub stage_delay: Duration,
}

/// Fleet settings.
#[derive(Clone)]
pub struct FleetConfig {
    /// Registration IDs are `{prefix}{index:04}` (index from 1).
    pub registration_id_prefix: String,
    /// Product code on every label.
    pub product_code: u16,
    /// DPS credential scheme.
    pub credential: FleetCredential,
    /// Ticket-signing keys every device trusts.
    pub trust_anchors: Vec<TrustAnchorRecord>,
    /// Agent settings shared by every device (DPS extra CA, lockout, fail-safe window…).
    pub agent: AgentConfig,
    /// Wi-Fi at the site; `None`: devices are already online over Ethernet.
    pub networks: Option<FleetNetworks>,
    /// The clock every device uses.
    pub clock: SharedClock,
    /// Seed for reproducible identities (PoPs, discriminators, keys); `None`: random.
    pub seed: Option<u64>,
}

impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("registration_id_prefix", &self.registration_id_prefix)
            .field("product_code", &self.product_code)
            .field("credential", &self.credential)
            .field("trust_anchors", &self.trust_anchors)
            .field("networks", &self.networks)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl FleetConfig {
    /// Defaults: prefix `fl-virtual-`, product 1, the given credential and anchors, wired
    /// devices, [`TokioClock`].
    pub fn new(credential: FleetCredential, trust_anchors: Vec<TrustAnchorRecord>) -> Self {
        Self {
            registration_id_prefix: "fl-virtual-".into(),
            product_code: 1,
            credential,
            trust_anchors,
            agent: AgentConfig::default(),
            networks: None,
            clock: Arc::new(TokioClock::new()),
            seed: None,
        }
    }
}

/// Why a fleet could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// More devices than distinct 12-bit discriminators.
    #[error("a fleet holds at most {max} devices (distinct discriminators); asked for {asked}")]
    TooMany {
        /// Requested.
        asked: usize,
        /// Maximum.
        max: usize,
    },
    /// The prefix makes invalid registration IDs.
    #[error("registration ID {id:?} is invalid: {reason}")]
    InvalidRegistrationId {
        /// The ID.
        id: String,
        /// Why.
        reason: String,
    },
    /// A group key could not be used.
    #[error("group key unusable: {0}")]
    GroupKey(String),
    /// An agent did not start.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// One virtual device: an agent over an in-memory store and simulated networks, with its label.
/// Its advertisement channel stays the same across [`VirtualDevice::restart`].
pub struct VirtualDevice {
    payload: OnboardingPayload,
    factory: PersistedState,
    dps_key: Option<SecretString>,
    store: MemoryStore,
    networks: SimulatedNetworks,
    config: AgentConfig,
    clock: SharedClock,
    agent: Mutex<DeviceAgent>,
    advertisement: watch::Sender<Advertisement>,
    forwarder: Mutex<JoinHandle<()>>,
}

impl std::fmt::Debug for VirtualDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualDevice")
            .field("registration_id", &self.payload.registration_id)
            .field("discriminator", &self.payload.discriminator)
            .finish_non_exhaustive()
    }
}

impl VirtualDevice {
    /// Starts a virtual device from its factory state. Must be called inside a tokio runtime.
    pub fn start(
        factory: PersistedState,
        dps_key: Option<SecretString>,
        networks: SimulatedNetworks,
        config: AgentConfig,
        clock: SharedClock,
    ) -> Result<Self, FleetError> {
        let identity = &factory.identity;
        let pop = <[u8; 11]>::try_from(identity.pop.expose())
            .map(PopSecret::from_bytes)
            .map_err(|_| {
                AgentError::Machine(crate::machine::MachineError::BadPop {
                    actual: identity.pop.expose().len(),
                })
            })?;
        let payload = OnboardingPayload::new(
            identity.registration_id.clone(),
            pop,
            identity.discriminator,
            identity.product_code,
        )
        .map_err(|error| FleetError::InvalidRegistrationId {
            id: identity.registration_id.clone(),
            reason: error.to_string(),
        })?;
        let store = MemoryStore::new();
        let agent = DeviceAgent::start(
            Arc::new(store.clone()),
            factory.clone(),
            Arc::new(networks.clone()),
            clock.clone(),
            config.clone(),
        )?;
        let (advertisement, _) = watch::channel(agent.advertisement());
        let forwarder = forward(&agent, advertisement.clone());
        Ok(Self {
            payload,
            factory,
            dps_key,
            store,
            networks,
            config,
            clock,
            agent: Mutex::new(agent),
            advertisement,
            forwarder: Mutex::new(forwarder),
        })
    }

    fn agent(&self) -> DeviceAgent {
        self.agent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The registration ID.
    pub fn registration_id(&self) -> &str {
        &self.payload.registration_id
    }

    /// The onboarding payload (QR label contents).
    pub fn payload(&self) -> &OnboardingPayload {
        &self.payload
    }

    /// The QR label text.
    pub fn payload_text(&self) -> String {
        self.payload.encode()
    }

    /// The 11-digit manual code.
    pub fn manual_code(&self) -> String {
        self.payload.manual_code().encode()
    }

    /// The BLE discriminator.
    pub fn discriminator(&self) -> u16 {
        self.payload.discriminator
    }

    /// The device's own DPS key (individual enrollments), to enroll it in DPS.
    pub fn dps_key(&self) -> Option<&SecretString> {
        self.dps_key.as_ref()
    }

    /// What the device advertises now.
    pub fn advertisement(&self) -> Advertisement {
        self.advertisement.borrow().clone()
    }

    /// The advertisement, watched (stable across restarts).
    pub fn watch_advertisement(&self) -> watch::Receiver<Advertisement> {
        self.advertisement.subscribe()
    }

    /// The advertised state now.
    pub fn state(&self) -> Option<DeviceState> {
        self.advertisement.borrow().state()
    }

    /// Waits until the advertised state satisfies `done` (or `timeout` of tokio time passes).
    pub async fn wait_for_state(
        &self,
        timeout: Duration,
        done: impl Fn(DeviceState) -> bool,
    ) -> Option<DeviceState> {
        let mut watch = self.advertisement.subscribe();
        let wait = watch.wait_for(|adv| adv.state().is_some_and(&done));
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(adv)) => adv.state(),
            _ => None,
        }
    }

    /// Serves one connection (spawned; returns at once).
    pub fn serve(&self, connection: PeripheralConnection) -> JoinHandle<()> {
        self.agent().serve(connection)
    }

    /// The current status.
    pub async fn status(&self) -> Option<DeviceStatus> {
        self.agent().status().await
    }

    /// The persisted state (as the device would find it after a power cut).
    pub fn persisted(&self) -> Option<PersistedState> {
        self.store.snapshot()
    }

    /// The device's simulated networks.
    pub fn networks(&self) -> &SimulatedNetworks {
        &self.networks
    }

    /// A power cycle: the agent stops at once (work in flight is lost, the link drops) and a new
    /// one boots from the persisted state.
    pub async fn restart(&self) -> Result<(), FleetError> {
        let old = self.agent();
        old.shutdown().await;
        let agent = DeviceAgent::start(
            Arc::new(self.store.clone()),
            self.factory.clone(),
            Arc::new(self.networks.clone()),
            self.clock.clone(),
            self.config.clone(),
        )?;
        let forwarder = forward(&agent, self.advertisement.clone());
        *self
            .agent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = agent;
        let previous = std::mem::replace(
            &mut *self
                .forwarder
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            forwarder,
        );
        previous.abort();
        Ok(())
    }
}

impl Drop for VirtualDevice {
    fn drop(&mut self) {
        if let Ok(forwarder) = self.forwarder.lock() {
            forwarder.abort();
        }
    }
}

/// Copies an agent's advertisement into the device's stable channel.
fn forward(agent: &DeviceAgent, into: watch::Sender<Advertisement>) -> JoinHandle<()> {
    let mut from = agent.watch_advertisement();
    into.send_replace(from.borrow_and_update().clone());
    tokio::spawn(async move {
        while from.changed().await.is_ok() {
            into.send_replace(from.borrow_and_update().clone());
        }
    })
}

/// Many virtual devices.
#[derive(Debug)]
pub struct VirtualFleet {
    devices: Vec<Arc<VirtualDevice>>,
    networks: SimulatedNetworks,
}

impl VirtualFleet {
    /// Builds and starts `n` devices. Must be called inside a tokio runtime.
    pub fn new(n: usize, config: FleetConfig) -> Result<Self, FleetError> {
        let max = usize::from(MAX_DISCRIMINATOR) + 1;
        if n > max {
            return Err(FleetError::TooMany { asked: n, max });
        }
        let mut rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let site = match &config.networks {
            Some(networks) => SimulatedNetworks::new(
                networks.access_points.clone(),
                networks.stage_delay,
                config.clock.clone(),
            ),
            None => SimulatedNetworks::wired(config.clock.clone()),
        };
        let mut discriminators = HashSet::new();
        let mut devices = Vec::with_capacity(n);
        for index in 1..=n {
            let registration_id = format!("{}{index:04}", config.registration_id_prefix);
            validate_registration_id(&registration_id).map_err(|error| {
                FleetError::InvalidRegistrationId {
                    id: registration_id.clone(),
                    reason: error.to_string(),
                }
            })?;
            let discriminator = loop {
                let candidate = rng.gen_range(0..=MAX_DISCRIMINATOR);
                if discriminators.insert(candidate) {
                    break candidate;
                }
            };
            let pop = PopSecret::generate(&mut rng);
            let (dps_credential, dps_key) =
                credential(&config.credential, &registration_id, &mut rng)?;
            let factory = PersistedState::new(
                DeviceIdentity {
                    registration_id,
                    pop: SecretBytes::new(pop.expose_bytes().to_vec()),
                    discriminator,
                    product_code: config.product_code,
                    dps_credential,
                },
                config.trust_anchors.clone(),
            );
            let device = VirtualDevice::start(
                factory,
                dps_key,
                site.for_another_device(),
                config.agent.clone(),
                config.clock.clone(),
            )?;
            devices.push(Arc::new(device));
        }
        Ok(Self {
            devices,
            networks: site,
        })
    }

    /// Every device, in registration-ID order.
    pub fn devices(&self) -> &[Arc<VirtualDevice>] {
        &self.devices
    }

    /// The device with this registration ID.
    pub fn device(&self, registration_id: &str) -> Option<&Arc<VirtualDevice>> {
        self.devices
            .iter()
            .find(|device| device.registration_id() == registration_id)
    }

    /// The device with this discriminator.
    pub fn by_discriminator(&self, discriminator: u16) -> Option<&Arc<VirtualDevice>> {
        self.devices
            .iter()
            .find(|device| device.discriminator() == discriminator)
    }

    /// `(registration ID, QR label text)` of every device.
    pub fn labels(&self) -> Vec<(String, String)> {
        self.devices
            .iter()
            .map(|device| (device.registration_id().to_owned(), device.payload_text()))
            .collect()
    }

    /// The site's access points (shared by every device): change faults here.
    pub fn site_networks(&self) -> &SimulatedNetworks {
        &self.networks
    }
}

fn credential(
    scheme: &FleetCredential,
    registration_id: &str,
    rng: &mut StdRng,
) -> Result<(DpsCredential, Option<SecretString>), FleetError> {
    match scheme {
        FleetCredential::GroupEnrollment {
            group_key,
            derive_at_factory: false,
        } => Ok((
            DpsCredential::GroupKey {
                group_key: group_key.clone(),
            },
            None,
        )),
        FleetCredential::GroupEnrollment {
            group_key,
            derive_at_factory: true,
        } => {
            let key = fieldlink_protocol::sas::derive_group_device_key(
                group_key.expose(),
                registration_id,
            )
            .map_err(|error| FleetError::GroupKey(error.code().to_owned()))?;
            let key = SecretString::new(key);
            Ok((DpsCredential::SymmetricKey { key: key.clone() }, Some(key)))
        }
        FleetCredential::IndividualEnrollments => {
            use base64::Engine;
            let mut bytes = [0u8; 32];
            rng.fill(&mut bytes);
            let key = SecretString::new(base64::engine::general_purpose::STANDARD.encode(bytes));
            Ok((DpsCredential::SymmetricKey { key: key.clone() }, Some(key)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn config(credential: FleetCredential) -> FleetConfig {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let mut config = FleetConfig::new(
            credential,
            vec![TrustAnchorRecord::new("k1", &key.verifying_key())],
        );
        config.clock = Arc::new(ManualClock::new(1_700_000_000_000));
        config.seed = Some(3);
        config
    }

    #[tokio::test]
    async fn every_device_has_its_own_identity_and_a_parseable_label() {
        let fleet = VirtualFleet::new(
            50,
            config(FleetCredential::GroupEnrollment {
                group_key: "Z3JvdXAta2V5".into(),
                derive_at_factory: true,
            }),
        )
        .unwrap();
        let devices = fleet.devices();
        assert_eq!(devices.len(), 50);
        let discriminators: HashSet<_> = devices.iter().map(|d| d.discriminator()).collect();
        assert_eq!(discriminators.len(), 50);
        let keys: HashSet<_> = devices
            .iter()
            .map(|d| d.dps_key().unwrap().expose().to_owned())
            .collect();
        assert_eq!(keys.len(), 50, "derived keys differ per device");
        for (index, device) in devices.iter().enumerate() {
            assert_eq!(
                device.registration_id(),
                format!("fl-virtual-{:04}", index + 1)
            );
            let parsed = OnboardingPayload::parse(&device.payload_text()).unwrap();
            assert_eq!(&parsed, device.payload());
            assert_eq!(device.manual_code().len(), 11);
            assert_eq!(device.state(), Some(DeviceState::Commissionable));
            assert!(
                device
                    .advertisement()
                    .local_name
                    .starts_with(fieldlink_protocol::gatt::LOCAL_NAME_PREFIX)
            );
            assert!(fleet.by_discriminator(device.discriminator()).is_some());
        }
        assert_eq!(fleet.labels().len(), 50);
        assert!(fleet.device("fl-virtual-0007").is_some());
        // Secrets stay out of Debug.
        let shown = format!("{:?}", devices[0].persisted().unwrap());
        assert!(!shown.contains(devices[0].dps_key().unwrap().expose()));
    }

    #[tokio::test]
    async fn the_same_seed_builds_the_same_labels() {
        let first = VirtualFleet::new(3, config(FleetCredential::IndividualEnrollments)).unwrap();
        let second = VirtualFleet::new(3, config(FleetCredential::IndividualEnrollments)).unwrap();
        assert_eq!(first.labels(), second.labels());
    }

    #[tokio::test]
    async fn limits_and_bad_prefixes_are_reported() {
        assert!(matches!(
            VirtualFleet::new(4097, config(FleetCredential::IndividualEnrollments)),
            Err(FleetError::TooMany { .. })
        ));
        let mut bad = config(FleetCredential::IndividualEnrollments);
        bad.registration_id_prefix = "Upper Case ".into();
        assert!(matches!(
            VirtualFleet::new(1, bad),
            Err(FleetError::InvalidRegistrationId { .. })
        ));
    }

    #[tokio::test]
    async fn site_faults_reach_every_device() {
        let mut config = config(FleetCredential::IndividualEnrollments);
        config.networks = Some(FleetNetworks {
            access_points: vec![SimulatedNetwork::wpa2("site", "passphrase")],
            stage_delay: Duration::ZERO,
        });
        let fleet = VirtualFleet::new(2, config).unwrap();
        fleet
            .site_networks()
            .set_fault("site", Some(crate::network::NetworkFault::OutOfRange));
        use crate::network::NetworkConfigurator;
        for device in fleet.devices() {
            assert!(device.networks().scan().await.unwrap().is_empty());
        }
    }
}
