//! One emulated DPS instance: configuration, enrollments, registrations, limits and knobs.
//!
//! Everything here is synchronous and guarded by one mutex per instance that is never held
//! across an `.await`; the HTTP layer calls in, sleeps for injected latency outside the lock,
//! and renders the results.

mod auth;
mod enrollments;
mod registration;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use auth::DeviceAuth;

use crate::config::{
    AllocationPolicy, DEFAULT_POLICY_NAME, DPS_HOST_SUFFIX, InstanceConfig, Knobs, Limits,
    LinkedHub, SharedAccessPolicy, derived_id_scope, is_valid_id_scope, is_valid_instance_name,
};
use crate::error::DpsError;
use crate::model::{DeviceRegistrationResult, EnrollmentGroup, IndividualEnrollment};
use crate::window::SlidingWindow;

/// Why an instance could not be created or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    /// The name breaks DPS's naming rules.
    #[error(
        "invalid instance name {0:?}: use 3-64 of a-z, 0-9 and '-', not starting or ending in '-'"
    )]
    InvalidName(String),
    /// The ID scope is not `0ne` + 8 hex digits.
    #[error("invalid ID scope {0:?}: use 0ne followed by 8 hex digits")]
    InvalidIdScope(String),
    /// Another instance already has this name.
    #[error("an instance named {0:?} already exists")]
    DuplicateName(String),
    /// Another instance already has this ID scope.
    #[error("an instance with ID scope {0:?} already exists")]
    DuplicateIdScope(String),
    /// No instance has this name.
    #[error("no instance named {0:?}")]
    NotFound(String),
    /// A knob is out of range.
    #[error("invalid knob: {0}")]
    InvalidKnob(String),
    /// An initial enrollment was refused.
    #[error("invalid enrollment: {0}")]
    InvalidEnrollment(String),
}

/// Registrations and throughput of an instance against its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Utilisation {
    /// Registration records held.
    pub registrations: u64,
    /// The capacity (`None` = unlimited).
    pub max_registrations: Option<u64>,
    /// Register requests admitted in the last 60 s.
    pub registrations_last_minute: u64,
    /// The per-minute limit (`None` = unlimited).
    pub registrations_per_minute_limit: Option<u32>,
    /// Records currently `assigned`.
    pub assigned: u64,
    /// Operations still `assigning`.
    pub assigning: u64,
}

/// A snapshot of an instance, for the Rust API and the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    /// Instance name.
    pub name: String,
    /// ID scope devices use.
    pub id_scope: String,
    /// `{name}.azure-devices-provisioning.net`: the service API host and service-SAS resource.
    pub service_host_name: String,
    /// Allocation policy.
    pub allocation_policy: AllocationPolicy,
    /// Linked hubs.
    pub linked_hubs: Vec<LinkedHub>,
    /// Limits.
    pub limits: Limits,
    /// Knobs.
    pub knobs: Knobs,
    /// Service-API policies (with keys: this is a sandbox).
    pub shared_access_policies: Vec<SharedAccessPolicy>,
    /// Current utilisation.
    pub utilisation: Utilisation,
}

/// Monotonic counters for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceCounters {
    /// Register requests admitted.
    pub registrations_requested: u64,
    /// Operations finished `assigned`.
    pub assigned: u64,
    /// Operations finished `failed`.
    pub failed: u64,
    /// Operations finished `disabled`.
    pub disabled: u64,
    /// 429s at the registrations-per-minute limit.
    pub throttled_registration_rate: u64,
    /// 429s at the per-device poll limit.
    pub throttled_poll_rate: u64,
    /// 429s at the capacity limit.
    pub throttled_capacity: u64,
    /// Injected 5xx answers.
    pub injected_errors: u64,
    /// Requests that got injected latency.
    pub injected_latency: u64,
    /// Operation-status polls admitted.
    pub polls: u64,
    /// Device requests refused as unauthorized.
    pub unauthorized: u64,
}

/// Which API a request belongs to (the two have separate error rates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The device (global endpoint) API.
    Device,
    /// The service API.
    Service,
}

pub(crate) struct Registration {
    pub(crate) result: DeviceRegistrationResult,
    pub(crate) first_hub: Option<String>,
    pub(crate) current_operation: Option<String>,
}

pub(crate) enum Planned {
    Assign { hub: String, device_id: String },
    Disabled,
    Failed { code: i32, message: String },
}

pub(crate) struct Operation {
    pub(crate) registration_id: String,
    pub(crate) group: Option<String>,
    pub(crate) payload: Option<serde_json::Value>,
    pub(crate) planned: Option<Planned>,
    pub(crate) done: Option<DeviceRegistrationResult>,
}

pub(crate) struct InstanceState {
    pub(crate) linked_hubs: Vec<LinkedHub>,
    pub(crate) allocation_policy: AllocationPolicy,
    pub(crate) limits: Limits,
    pub(crate) knobs: Knobs,
    pub(crate) policies: Vec<SharedAccessPolicy>,
    pub(crate) enrollments: HashMap<String, IndividualEnrollment>,
    pub(crate) groups: BTreeMap<String, EnrollmentGroup>,
    pub(crate) registrations: HashMap<String, Registration>,
    pub(crate) operations: HashMap<String, Operation>,
    pub(crate) pending: BinaryHeap<Reverse<(Instant, u64, String)>>,
    pub(crate) finished: VecDeque<(Instant, String)>,
    pub(crate) registration_window: SlidingWindow,
    pub(crate) minute_window: SlidingWindow,
    pub(crate) polls: HashMap<String, SlidingWindow>,
    pub(crate) polls_prune_at: usize,
    pub(crate) rng: StdRng,
    pub(crate) seq: u64,
    pub(crate) counters: InstanceCounters,
}

/// One DPS instance.
pub struct Instance {
    name: String,
    id_scope: String,
    service_host_name: String,
    state: Mutex<InstanceState>,
}

/// Finished operations are forgotten after this long.
pub(crate) const OPERATION_RETENTION: Duration = Duration::from_secs(15 * 60);
/// The registration-rate window.
pub(crate) const MINUTE: Duration = Duration::from_secs(60);

impl Instance {
    /// Builds an instance from its configuration (enrollments included).
    pub fn new(config: InstanceConfig) -> Result<Self, InstanceError> {
        if !is_valid_instance_name(&config.name) {
            return Err(InstanceError::InvalidName(config.name));
        }
        let id_scope = match config.id_scope {
            Some(scope) if is_valid_id_scope(&scope) => scope,
            Some(scope) => return Err(InstanceError::InvalidIdScope(scope)),
            None => derived_id_scope(&config.name),
        };
        validate_knobs(&config.knobs)?;
        let mut rng = match config.knobs.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let policies = if config.shared_access_policies.is_empty() {
            vec![SharedAccessPolicy {
                key_name: DEFAULT_POLICY_NAME.to_owned(),
                primary_key: generate_key(&mut rng),
                secondary_key: generate_key(&mut rng),
            }]
        } else {
            config.shared_access_policies
        };
        let instance = Self {
            service_host_name: format!("{}.{DPS_HOST_SUFFIX}", config.name),
            name: config.name,
            id_scope,
            state: Mutex::new(InstanceState {
                linked_hubs: config.linked_hubs,
                allocation_policy: config.allocation_policy,
                limits: config.limits,
                knobs: config.knobs,
                policies,
                enrollments: HashMap::new(),
                groups: BTreeMap::new(),
                registrations: HashMap::new(),
                operations: HashMap::new(),
                pending: BinaryHeap::new(),
                finished: VecDeque::new(),
                registration_window: SlidingWindow::default(),
                minute_window: SlidingWindow::default(),
                polls: HashMap::new(),
                polls_prune_at: 10_000,
                rng,
                seq: 0,
                counters: InstanceCounters::default(),
            }),
        };
        for enrollment in config.individual_enrollments {
            instance
                .put_enrollment(enrollment, None)
                .map_err(|err| InstanceError::InvalidEnrollment(err.to_string()))?;
        }
        for group in config.enrollment_groups {
            instance
                .put_enrollment_group(group, None)
                .map_err(|err| InstanceError::InvalidEnrollment(err.to_string()))?;
        }
        Ok(instance)
    }

    /// Instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// ID scope.
    pub fn id_scope(&self) -> &str {
        &self.id_scope
    }

    /// Service API host name (also the service-SAS resource).
    pub fn service_host_name(&self) -> &str {
        &self.service_host_name
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, InstanceState> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the emulator, so a poisoned lock is recovered.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Snapshot for the Rust and admin APIs.
    pub fn info(&self) -> InstanceInfo {
        let now = Instant::now();
        let mut state = self.lock();
        state.settle(now);
        InstanceInfo {
            name: self.name.clone(),
            id_scope: self.id_scope.clone(),
            service_host_name: self.service_host_name.clone(),
            allocation_policy: state.allocation_policy,
            linked_hubs: state.linked_hubs.clone(),
            limits: state.limits.clone(),
            knobs: state.knobs.clone(),
            shared_access_policies: state.policies.clone(),
            utilisation: state.utilisation(now),
        }
    }

    /// Current utilisation.
    pub fn utilisation(&self) -> Utilisation {
        let now = Instant::now();
        let mut state = self.lock();
        state.settle(now);
        state.utilisation(now)
    }

    /// Counters for `/metrics`.
    pub fn counters(&self) -> InstanceCounters {
        self.lock().counters.clone()
    }

    /// Current knobs.
    pub fn knobs(&self) -> Knobs {
        self.lock().knobs.clone()
    }

    /// Current limits.
    pub fn limits(&self) -> Limits {
        self.lock().limits.clone()
    }

    /// Replaces the linked hubs.
    pub fn set_linked_hubs(&self, hubs: Vec<LinkedHub>) {
        self.lock().linked_hubs = hubs;
    }

    /// Sets the allocation policy.
    pub fn set_allocation_policy(&self, policy: AllocationPolicy) {
        self.lock().allocation_policy = policy;
    }

    /// Replaces the limits.
    pub fn set_limits(&self, limits: Limits) {
        self.lock().limits = limits;
    }

    /// Replaces the knobs; a new seed re-seeds the random generator.
    pub fn set_knobs(&self, knobs: Knobs) -> Result<(), InstanceError> {
        validate_knobs(&knobs)?;
        let mut state = self.lock();
        if let Some(seed) = knobs.seed
            && state.knobs.seed != Some(seed)
        {
            state.rng = StdRng::seed_from_u64(seed);
        }
        state.knobs = knobs;
        Ok(())
    }

    /// Draws this request's injected latency and fault from the instance's generator.
    pub fn draw_fault(&self, api: Api) -> (Duration, Option<DpsError>) {
        let mut state = self.lock();
        let knobs = state.knobs.clone();
        let jitter = if knobs.latency_jitter_ms > 0 {
            state.rng.gen_range(0..knobs.latency_jitter_ms)
        } else {
            0
        };
        let latency = Duration::from_millis(knobs.latency_ms + jitter);
        if !latency.is_zero() {
            state.counters.injected_latency += 1;
        }
        let rate = match api {
            Api::Device => knobs.device_error_rate,
            Api::Service => knobs.service_error_rate,
        };
        let fault = (rate > 0.0 && state.rng.gen_bool(rate.clamp(0.0, 1.0))).then_some(
            DpsError::Injected {
                status: knobs.error_status,
            },
        );
        if fault.is_some() {
            state.counters.injected_errors += 1;
        }
        (latency, fault)
    }
}

impl InstanceState {
    pub(crate) fn utilisation(&mut self, now: Instant) -> Utilisation {
        let assigned = self
            .registrations
            .values()
            .filter(|r| r.result.state.status == crate::model::RegistrationStatus::Assigned)
            .count();
        Utilisation {
            registrations: self.registrations.len() as u64,
            max_registrations: self.limits.max_registrations,
            registrations_last_minute: self.minute_window.count(now, MINUTE) as u64,
            registrations_per_minute_limit: self.limits.registrations_per_minute,
            assigned: assigned as u64,
            assigning: self.pending.len() as u64,
        }
    }
}

fn validate_knobs(knobs: &Knobs) -> Result<(), InstanceError> {
    for (name, rate) in [
        ("deviceErrorRate", knobs.device_error_rate),
        ("serviceErrorRate", knobs.service_error_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(InstanceError::InvalidKnob(format!(
                "{name} must be within 0..=1"
            )));
        }
    }
    if !(500..=599).contains(&knobs.error_status) {
        return Err(InstanceError::InvalidKnob(
            "errorStatus must be a 5xx status".to_owned(),
        ));
    }
    Ok(())
}

/// A random 64-byte key, base64 (the size Azure generates).
pub fn generate_key(rng: &mut impl RngCore) -> String {
    let mut key = [0u8; 64];
    rng.fill_bytes(&mut key);
    data_encoding::BASE64.encode(&key)
}
