//! End to end through the real provisioning API: the core's `Commissioner` with the
//! provisioning-API client (`fieldlink_core::api_client`) as its assignment and
//! registration-status source, the real API (`fieldlink-provisioning-api`, SQLite in a temp dir,
//! trusting a test JWKS) on loopback, the DPS emulator with three instances behind one HTTPS
//! global endpoint, and virtual device agents over the in-memory radio whose only ticket trust
//! anchors are the keys the API publishes at `GET /v1/ticket-keys`.
//!
//! The API is served over plain HTTP on loopback (the client's explicit
//! `allow_insecure_loopback`); the client's HTTPS path against the same API is covered by
//! `shared-core/tests/api_client.rs`. Devices reach DPS over HTTPS with the emulator's CA.
//!
//! This builds its own world rather than `fieldlink_tests::world`, whose devices trust a local
//! signer and one DPS instance.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use fieldlink_core::{
    CommissionError,
    api_client::{ApiClientConfig, ProvisioningApiClient, StaticAccessToken},
    assignment::{Assignment, AssignmentSource, ServiceError, system_clock},
    error::TicketRejection,
    transport::memory::{InMemoryRadio, LinkModel, PeripheralLink, RadioAdvertisement},
    workflow::{
        CommissionRequest, Commissioner, CommissioningConfig, DiscriminatorMatch, IgnoreProgress,
        StepDeadlines,
    },
};
use fieldlink_device_agent::{
    agent::{AgentConfig, DeviceAgent},
    clock::{SharedClock, TokioClock},
    dps::DpsClientConfig,
    link::{Advertisement, PeripheralConnection},
    machine::{LockoutPolicy, MachineConfig},
    network::{Capabilities, NetworkConfigurator, SimulatedNetworks},
    secret::{SecretBytes, SecretString},
    store::{DeviceIdentity, DpsCredential, MemoryStore, PersistedState, TrustAnchorRecord},
};
use fieldlink_dps_emulator::{
    DpsEmulator, EmulatorConfig, EnrollmentGroup, InstanceConfig, Knobs, RunningEmulator,
    SharedAccessPolicy,
};
use fieldlink_protocol::{
    gatt::SERVICE_UUID,
    payload::{OnboardingPayload, PopSecret},
    session::SessionSecret,
};
use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi, RunningApi,
    auth::Role,
    dps::status::RegistrationStatusConfig,
    model::{AllowlistEntry, NewDpsInstance},
    storage::SqliteStorage,
    test_tokens::TokenMinter,
};
use rand::{SeedableRng, rngs::StdRng};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const TENANT: &str = "acme";
const INSTANCES: [(&str, &str); 3] = [
    ("dps-e2e-a", "hub-e2e-a.azure-devices.net"),
    ("dps-e2e-b", "hub-e2e-b.azure-devices.net"),
    ("dps-e2e-c", "hub-e2e-c.azure-devices.net"),
];
const POLICY: &str = "provisioningserviceowner";
const POLICY_KEY: &str = "ZTJlLXNlcnZpY2UtcG9saWN5LWtleS0wMTIzNDU2Nzg5YWI=";
const GROUP_KEY: &str = "ZTJlLWdyb3VwLXByaW1hcnkta2V5LTAxMjM0NTY3ODlhYmM=";
const GROUP_SECONDARY: &str = "ZTJlLWdyb3VwLXNlY29uZGFyeS1rZXktMDEyMzQ1Njc4OWE=";

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "fieldlink-api-e2e-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Remembers every assignment handed to the workflow.
struct RecordingSource {
    inner: ProvisioningApiClient,
    issued: Mutex<Vec<Assignment>>,
}

#[async_trait]
impl AssignmentSource for RecordingSource {
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
        let assignment = self.inner.assignment(registration_id).await?;
        self.issued.lock().expect("lock").push(assignment.clone());
        Ok(assignment)
    }
}

struct Device {
    payload: OnboardingPayload,
    agent: DeviceAgent,
    store: Arc<MemoryStore>,
}

/// Which ticket keys a device is manufactured with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Anchors {
    /// The API's published keys.
    Api,
    /// The API's key ids, but other public keys (a device from another vendor's line).
    Forged,
}

struct Site {
    emulator: RunningEmulator,
    api: RunningApi,
    client: ProvisioningApiClient,
    radio: InMemoryRadio,
    devices: Vec<Device>,
    _dir: TempDir,
}

impl Site {
    async fn start(anchors: &[Anchors]) -> Site {
        let emulator = start_emulator().await;
        let dir = TempDir::new();
        let storage = Arc::new(
            SqliteStorage::open(dir.0.join("api.db"))
                .await
                .expect("SQLite"),
        );
        let minter = TokenMinter::new("https://issuer.e2e.test", "fieldlink-provisioning-api");
        let config = ApiConfig {
            issuers: vec![minter.trusted_issuer()],
            registration_status: RegistrationStatusConfig {
                cache_ttl: Duration::from_millis(100),
                ..RegistrationStatusConfig::default()
            },
            dps_pool: INSTANCES
                .iter()
                .map(|(name, _)| pool_instance(&emulator, name))
                .collect(),
            ..ApiConfig::default()
        };
        let api = ProvisioningApi::builder(config, storage)
            .build()
            .await
            .expect("the API builds");
        let ids: Vec<String> = (0..anchors.len())
            .map(|i| format!("e2e-device-{i:04}"))
            .collect();
        api.storage()
            .import_allowlist(
                TENANT,
                ids.iter()
                    .map(|id| AllowlistEntry {
                        registration_id: id.clone(),
                        label: Some("line 3".into()),
                    })
                    .collect(),
                system_clock()() * 1_000,
            )
            .await
            .expect("allowlist");
        let api = api
            .bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("the API serves");
        let token = minter.token(TENANT, &[Role::Installer], system_clock()());
        let client = ProvisioningApiClient::new(
            ApiClientConfig::new(api.base_url()).allowing_insecure_loopback(),
            Arc::new(StaticAccessToken::new(token)),
        )
        .expect("client");

        let published: Vec<TrustAnchorRecord> = client
            .ticket_keys()
            .await
            .expect("ticket keys")
            .iter()
            .map(|key| TrustAnchorRecord::new(key.key_id.clone(), &key.public_key))
            .collect();
        assert!(!published.is_empty());
        let forged: Vec<TrustAnchorRecord> = published
            .iter()
            .map(|record| {
                let stranger = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
                TrustAnchorRecord::new(record.key_id.clone(), &stranger.verifying_key())
            })
            .collect();

        let radio = InMemoryRadio::new(LinkModel {
            connection_interval: Duration::from_millis(2),
            ..LinkModel::default()
        });
        let clock: SharedClock = Arc::new(TokioClock::new());
        let ca = emulator.ca_pem().map(|pem| pem.as_bytes().to_vec());
        let template = SimulatedNetworks::new(Vec::new(), Duration::from_millis(5), clock.clone());
        let mut rng = StdRng::seed_from_u64(2024);
        let mut devices = Vec::new();
        for (index, (registration_id, trust)) in ids.into_iter().zip(anchors).enumerate() {
            let discriminator = 0x100 + u16::try_from(index).expect("few devices") * 0x101;
            let payload = OnboardingPayload::new(
                registration_id.clone(),
                PopSecret::generate(&mut rng),
                discriminator,
                0x0042,
            )
            .expect("valid label");
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
                    wifi: false,
                    ethernet: true,
                    cellular: false,
                    already_online: true,
                });
            let agent_config = AgentConfig {
                machine: MachineConfig {
                    fail_safe_window: Duration::from_secs(30),
                    lockout: LockoutPolicy {
                        base_delay: Duration::from_millis(20),
                        max_delay: Duration::from_millis(200),
                        ..LockoutPolicy::default()
                    },
                    capabilities: networks.capabilities(),
                    ..MachineConfig::default()
                },
                dps: DpsClientConfig {
                    extra_ca_pem: ca.clone(),
                    default_poll_interval: Duration::from_millis(50),
                    ..DpsClientConfig::default()
                },
                scan_at_start: false,
                ..AgentConfig::default()
            };
            let trusted = match trust {
                Anchors::Api => published.clone(),
                Anchors::Forged => forged.clone(),
            };
            let store = Arc::new(MemoryStore::new());
            let agent = DeviceAgent::start(
                store.clone(),
                PersistedState::new(identity, trusted),
                Arc::new(networks),
                clock.clone(),
                agent_config,
            )
            .expect("the device agent starts");
            let serving = agent.clone();
            radio.register_peripheral(
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
            devices.push(Device {
                payload,
                agent,
                store,
            });
        }
        Site {
            emulator,
            api,
            client,
            radio,
            devices,
            _dir: dir,
        }
    }

    fn commissioner(&self, assignments: Arc<dyn AssignmentSource>) -> Commissioner {
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
        Commissioner::new(
            Arc::new(self.radio.clone()),
            assignments,
            Arc::new(self.client.clone()),
        )
        .with_config(config)
    }

    fn request(&self, index: usize) -> CommissionRequest {
        let payload = &self.devices[index].payload;
        CommissionRequest {
            registration_id: Some(payload.registration_id.clone()),
            discriminator: DiscriminatorMatch::Full(payload.discriminator),
            secret: SessionSecret::Pop(payload.pop.clone()),
            network: None,
        }
    }

    async fn shutdown(self) {
        for device in &self.devices {
            device.agent.shutdown().await;
        }
        self.api.shutdown().await.expect("API shutdown");
        self.emulator.shutdown().await;
    }
}

async fn start_emulator() -> RunningEmulator {
    let instances = INSTANCES
        .iter()
        .map(|(name, hub)| {
            let mut instance = InstanceConfig::new(name, &[hub]);
            instance.shared_access_policies = vec![SharedAccessPolicy {
                key_name: POLICY.to_owned(),
                primary_key: POLICY_KEY.to_owned(),
                secondary_key: GROUP_SECONDARY.to_owned(),
            }];
            instance.enrollment_groups = vec![EnrollmentGroup::symmetric_key(
                "e2e-devices",
                GROUP_KEY,
                GROUP_SECONDARY,
            )];
            // Azure asks devices to poll after 3 s; the scenario does not need to wait.
            instance.knobs = Knobs {
                retry_after_secs: 0,
                ..Knobs::default()
            };
            instance
        })
        .collect();
    DpsEmulator::start(EmulatorConfig::with_instances(instances).with_tls())
        .await
        .expect("the DPS emulator starts")
}

/// The API's pool entry for one emulated instance: devices register at the emulator's HTTPS
/// global endpoint; the API reads registration state from its service API.
fn pool_instance(emulator: &RunningEmulator, name: &str) -> NewDpsInstance {
    let info = emulator.control().instance(name).expect("instance");
    let service = emulator.http_base_url().expect("HTTP listener");
    serde_json::from_value(json!({
        "name": name,
        "id_scope": info.id_scope,
        "global_endpoint": emulator.https_base_url().expect("HTTPS listener"),
        "service_endpoint": format!("{service}/dps/{name}"),
        "region": "weu",
        "service_credentials": {
            "policy_name": POLICY,
            "key": POLICY_KEY,
            "resource_uri": info.service_host_name,
        },
    }))
    .expect("instance spec")
}

fn radio_advertisement(advertisement: &Advertisement) -> RadioAdvertisement {
    RadioAdvertisement {
        local_name: advertisement.local_name.clone(),
        service_uuids: vec![SERVICE_UUID],
        service_data: advertisement.service_data.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_commissioned_through_the_real_api_across_dps_instances() {
    const GOOD: usize = 6;
    let mut anchors = vec![Anchors::Api; GOOD];
    anchors.push(Anchors::Forged);
    let site = Site::start(&anchors).await;
    let recording = Arc::new(RecordingSource {
        inner: site.client.clone(),
        issued: Mutex::new(Vec::new()),
    });
    let commissioner = site.commissioner(recording.clone());

    // A device that does not trust the API's keys refuses its ticket (bad signature: the key
    // id matches, the key does not) and is not registered anywhere.
    let forged = &site.devices[GOOD];
    let error = commissioner
        .commission(
            site.request(GOOD),
            &IgnoreProgress,
            CancellationToken::new(),
        )
        .await
        .expect_err("an untrusted ticket is refused");
    assert_eq!(
        error,
        CommissionError::TicketRejected {
            reason: TicketRejection::BadSignature
        }
    );
    assert!(
        site.emulator
            .control()
            .find_registration(&forged.payload.registration_id)
            .is_none()
    );

    let anchors = site.client.ticket_trust_anchors().await.expect("keys");
    let mut per_instance: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for index in 0..GOOD {
        let device = &site.devices[index];
        let id = device.payload.registration_id.clone();
        let report = commissioner
            .commission(
                site.request(index),
                &IgnoreProgress,
                CancellationToken::new(),
            )
            .await
            .unwrap_or_else(|error| panic!("{id}: {error}"));

        // The workflow compared the device's report with the API's view and they agreed.
        assert!(report.agreed);
        assert_eq!(report.device.status, "assigned");
        assert_eq!(report.service.status, "assigned");
        assert_eq!(report.device.assigned_hub, report.service.assigned_hub);
        assert_eq!(report.device.device_id, report.service.device_id);

        // Asked again, the API reports what the device reports, from the instance it chose.
        let api_view = site.client.registration(&id).await.expect("registration");
        assert!(api_view.registered);
        assert_eq!(api_view.view.status, "assigned");
        assert_eq!(api_view.view.assigned_hub, report.device.assigned_hub);
        assert_eq!(api_view.view.device_id, report.device.device_id);
        let hub = INSTANCES
            .iter()
            .find(|(name, _)| *name == api_view.dps_instance)
            .map(|(_, hub)| *hub)
            .expect("a pool instance");
        assert_eq!(report.device.assigned_hub.as_deref(), Some(hub));
        let dps = site
            .emulator
            .control()
            .registration_state(&api_view.dps_instance, &id)
            .expect("registered at the instance the API chose");
        assert_eq!(dps.assigned_hub.as_deref(), Some(hub));

        // The device committed the ticket the API issued, verified with the API's keys.
        let committed = device
            .store
            .snapshot()
            .expect("persisted")
            .assignment
            .expect("committed");
        assert_eq!(committed.assigned_hub, hub);
        assert_eq!(committed.id_scope, api_view.id_scope);
        let issued = recording
            .issued
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .find(|a| {
                a.ticket
                    .claims_unverified()
                    .is_ok_and(|c| c.registration_id == id)
            })
            .cloned()
            .expect("a ticket was issued");
        let claims = anchors
            .verify(&issued.ticket, system_clock()(), &id)
            .expect("the ticket verifies with the API's published keys");
        assert_eq!(claims.nonce_hex(), committed.ticket_nonce);
        assert_eq!(claims.dps_instance, api_view.dps_instance);
        assert_eq!(claims.tenant, TENANT);
        per_instance
            .entry(api_view.dps_instance.clone())
            .or_default()
            .push(id);
    }

    // Least-loaded allocation over three empty instances: two devices each.
    assert_eq!(per_instance.len(), INSTANCES.len(), "{per_instance:?}");
    for (name, ids) in &per_instance {
        assert_eq!(ids.len(), GOOD / INSTANCES.len(), "{name}: {ids:?}");
        assert_eq!(
            site.emulator.control().registration_states(name).len(),
            ids.len()
        );
    }
    site.shutdown().await;
}
