//! The device-side commissioning state machine (sans-I/O).
//!
//! [`DeviceMachine::handle`] takes one [`Input`] (a decoded wire message, a disconnect, a timer
//! tick, or the outcome of network/DPS/scan work the driver ran) with the current time and
//! returns [`Output`]s for the driver to carry out **in order**: persist the state, send a
//! message (possibly not before a given time), close the link, start or cancel work, restore
//! the network, update the advertisement. A `Persist` must be durable before any later output of
//! the same step is carried out; if it fails, the driver drops the rest and rebuilds the machine
//! from the store.
//!
//! ```text
//!                 ClientHello (attempt counted + persisted first)
//!  Commissionable ───────────────────────────────► (pending session) ──ClientFinish ok──► SessionOpen
//!    ▲   ▲   ▲          │ too many attempts                                                  │
//!    │   │   │          ▼                                                                    │ Provision
//!    │   │   │        Locked ──lockout over──► Commissionable                                │ (ticket ok, staged,
//!    │   │   │                                                                               ▼  fail-safe armed)
//!    │   │   │   join failed: network restored,                                        TicketStaged
//!    │   │   │   ticket stays staged ◄──────── joining network ◄───────────────────────────┘
//!    │   │   │   (ConfigureNetwork / Provision retries)  │ joined (or no network needed)
//!    │   │   │                                           ▼
//!    │   │   └──── Failed ◄── DPS failed/unreachable ── Registering ──DPS assigned──► Registered
//!    │   │        (rolled back)                           │                       (committed)
//!    │   └──────── fail-safe expired / Cancel: rolled back┘
//!    └──────────── boot with an expired staging: rolled back
//! ```
//!
//! A device with a valid committed assignment boots straight into `Registered` and never calls
//! DPS again unless it is re-provisioned.

mod convert;
pub mod lockout;
mod requests;
mod session;
pub mod staging;
mod work;

use std::time::Duration;

use fieldlink_protocol::message::{
    DeviceInfo, DeviceState, DeviceStatus, DpsResult, DpsStatus, NetworkResult, SecureMessage,
    WifiNetwork, WireMessage,
};
use fieldlink_protocol::payload::{POP_LEN, PopSecret};
use fieldlink_protocol::session::{PendingDeviceSession, SecureChannel};
use fieldlink_protocol::ticket::TrustAnchors;
use rand::SeedableRng;
use rand::rngs::StdRng;

pub use lockout::LockoutPolicy;

use crate::dps::{DpsError, DpsProgress, RegistrationOutcome};
use crate::network::{Capabilities, JoinFailure, JoinStage, NetworkError};
use crate::store::{PersistedState, StoredNetwork};

/// Identifies one piece of work the driver runs for the machine.
pub type JobId = u64;

/// Machine settings.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// Wrong-PoP lockout.
    pub lockout: LockoutPolicy,
    /// How long a staged ticket may wait for a DPS assignment before it is rolled back.
    pub fail_safe_window: Duration,
    /// Reported in `DeviceInfo`.
    pub firmware_version: String,
    /// The device's network interfaces.
    pub capabilities: Capabilities,
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            lockout: LockoutPolicy::default(),
            fail_safe_window: Duration::from_secs(120),
            firmware_version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: Capabilities {
                ethernet: true,
                already_online: true,
                ..Capabilities::default()
            },
        }
    }
}

/// Something that happened.
#[derive(Debug)]
pub enum Input {
    /// A reassembled, decoded message from the installer.
    Message(WireMessage),
    /// A reassembled message that could not be decoded (or a framing error).
    Undecodable(String),
    /// The link closed.
    Disconnected,
    /// Time passed (the driver sends this at [`DeviceMachine::next_wakeup`]).
    Tick,
    /// A network join reached a stage.
    NetworkStage {
        /// The job.
        job: JobId,
        /// The stage reached.
        stage: JoinStage,
    },
    /// A network join ended.
    NetworkDone {
        /// The job.
        job: JobId,
        /// Its result.
        result: Result<(), JoinFailure>,
    },
    /// DPS registration progress.
    DpsProgress {
        /// The job.
        job: JobId,
        /// What happened.
        progress: DpsProgress,
    },
    /// DPS registration ended.
    DpsDone {
        /// The job.
        job: JobId,
        /// Its result.
        result: Result<RegistrationOutcome, DpsError>,
    },
    /// A Wi-Fi scan ended.
    ScanDone {
        /// The job.
        job: JobId,
        /// Its result.
        result: Result<Vec<WifiNetwork>, NetworkError>,
    },
}

/// Work the driver runs and reports back as [`Input`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Join a candidate network; report `NetworkStage`s then `NetworkDone`.
    JoinNetwork {
        /// Job id.
        id: JobId,
        /// The candidate.
        network: StoredNetwork,
        /// DPS host to check reachability of.
        dps_host: String,
        /// Give up at (Unix ms): the fail-safe deadline.
        deadline_ms: u64,
    },
    /// Register with DPS; report `DpsProgress` then `DpsDone`.
    Register {
        /// Job id.
        id: JobId,
        /// DPS global endpoint from the ticket.
        global_endpoint: String,
        /// ID scope from the ticket.
        id_scope: String,
        /// Give up at (Unix ms): the fail-safe deadline.
        deadline_ms: u64,
    },
    /// Scan for Wi-Fi networks; report `ScanDone`.
    Scan {
        /// Job id.
        id: JobId,
    },
}

/// Something for the driver to do.
#[derive(Debug)]
pub enum Output {
    /// Save this state durably before carrying out any later output.
    Persist(Box<PersistedState>),
    /// Send a message to the installer, not before `not_before_ms` (Unix ms).
    Send {
        /// The message.
        message: WireMessage,
        /// Earliest send time (the growing wrong-PoP delay); 0 = now.
        not_before_ms: u64,
    },
    /// Close the link (after a protocol violation).
    CloseLink,
    /// Start work.
    Start(Job),
    /// Stop work (its late results are ignored anyway).
    Cancel(JobId),
    /// Return the network to this proven config (`None`: no managed network).
    RestoreNetwork(Option<StoredNetwork>),
    /// The advertised state changed.
    Advertise(DeviceState),
}

/// A machine that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The stored PoP does not have the protocol's length.
    #[error("stored PoP is {actual} bytes; it must be {POP_LEN}")]
    BadPop {
        /// Its length.
        actual: usize,
    },
}

enum Link {
    Idle,
    Pending(Box<PendingDeviceSession>),
    Open(Box<SecureChannel>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Nothing running (if a ticket is staged: waiting for a corrected network).
    Idle,
    Joining(JobId),
    Registering(JobId),
}

/// The device's commissioning state machine.
pub struct DeviceMachine {
    config: MachineConfig,
    state: PersistedState,
    anchors: TrustAnchors,
    pop: PopSecret,
    link: Link,
    work: Work,
    next_job: JobId,
    pending_scan: Option<JobId>,
    scan_cache: Option<Vec<WifiNetwork>>,
    last_registration: Option<DpsResult>,
    last_network: Option<NetworkResult>,
    last_attempt_failed: bool,
    advertised: Option<DeviceState>,
    rng: StdRng,
}

impl std::fmt::Debug for DeviceMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceMachine")
            .field("registration_id", &self.state.identity.registration_id)
            .field("work", &self.work)
            .field("advertised", &self.advertised)
            .finish_non_exhaustive()
    }
}

impl DeviceMachine {
    /// Starts the machine from the stored state. Applies the fail-safe to a staging left from
    /// before a restart (expired: rolled back; live: registration resumes). Returns warnings
    /// (unusable trust anchors) with the first outputs.
    pub fn boot(
        state: PersistedState,
        config: MachineConfig,
        now_ms: u64,
    ) -> Result<(Self, Vec<Output>, Vec<String>), MachineError> {
        let pop_bytes = state.identity.pop.expose();
        let pop = <[u8; POP_LEN]>::try_from(pop_bytes)
            .map(PopSecret::from_bytes)
            .map_err(|_| MachineError::BadPop {
                actual: pop_bytes.len(),
            })?;
        let (anchors, warnings) = staging::trust_anchors(&state);
        let mut machine = Self {
            config,
            state,
            anchors,
            pop,
            link: Link::Idle,
            work: Work::Idle,
            next_job: 1,
            pending_scan: None,
            scan_cache: None,
            last_registration: None,
            last_network: None,
            last_attempt_failed: false,
            advertised: None,
            rng: StdRng::from_entropy(),
        };
        let mut out = Vec::new();
        let mut candidate_dropped = false;
        match staging::recover_at_boot(&mut machine.state, now_ms) {
            staging::BootRecovery::Clean => {}
            staging::BootRecovery::RolledBack(staged) => {
                out.push(machine.persist());
                candidate_dropped = staged.network.is_some();
                machine.last_attempt_failed = true;
                machine.last_registration = Some(convert::unassigned_result(
                    fieldlink_protocol::message::ErrorCode::FailSafeExpired,
                    "the fail-safe expired while the device was off; the staged ticket was rolled back",
                ));
            }
            staging::BootRecovery::Resume => machine.begin_work(now_ms, &mut out),
        }
        // Bring the proven network up, unless a resumed staging is joining its candidate.
        let joining = machine
            .state
            .staged
            .as_ref()
            .is_some_and(|s| s.network.is_some());
        if !joining && (candidate_dropped || machine.state.network.current.is_some()) {
            out.push(Output::RestoreNetwork(
                machine.state.network.current.clone(),
            ));
        }
        machine.advertise_if_changed(now_ms, &mut out);
        Ok((machine, out, warnings))
    }

    /// Uses a fixed RNG seed (tests).
    pub fn with_rng_seed(mut self, seed: u64) -> Self {
        self.rng = StdRng::seed_from_u64(seed);
        self
    }

    /// Handles one input at `now_ms`.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Message(message) => self.on_message(message, now_ms, &mut out),
            Input::Undecodable(reason) => self.on_undecodable(&reason, &mut out),
            Input::Disconnected => {
                self.link = Link::Idle;
                self.pending_scan = None;
            }
            Input::Tick => self.on_tick(now_ms, &mut out),
            Input::NetworkStage { job, stage } => self.on_network_stage(job, stage, &mut out),
            Input::NetworkDone { job, result } => {
                self.on_network_done(job, result, now_ms, &mut out);
            }
            Input::DpsProgress { job, progress } => {
                self.on_dps_progress(job, progress, &mut out);
            }
            Input::DpsDone { job, result } => self.on_dps_done(job, result, now_ms, &mut out),
            Input::ScanDone { job, result } => self.on_scan_done(job, result, now_ms, &mut out),
        }
        self.advertise_if_changed(now_ms, &mut out);
        out
    }

    /// The next time the machine needs a [`Input::Tick`] (fail-safe expiry, lockout end).
    pub fn next_wakeup(&self, now_ms: u64) -> Option<u64> {
        let fail_safe = self
            .state
            .staged
            .as_ref()
            .map(|staged| staged.fail_safe_deadline_ms);
        let unlock = self.state.pop_attempts.locked_until_ms;
        [fail_safe, unlock]
            .into_iter()
            .flatten()
            .filter(|at| *at > now_ms)
            .min()
    }

    /// Whether an installer holds a confirmed session.
    pub fn has_open_session(&self) -> bool {
        matches!(self.link, Link::Open(_))
    }

    /// The state as advertised.
    pub fn device_state(&self, now_ms: u64) -> DeviceState {
        self.state_at(now_ms, true)
    }

    /// The state last handed out in an [`Output::Advertise`]: the one source the agent
    /// publishes from, so a stale `Advertise` still queued behind a nested disconnect can never
    /// overwrite a newer state.
    pub fn advertised_state(&self) -> Option<DeviceState> {
        self.advertised
    }

    /// Re-evaluates the advertised state at `now_ms` (time alone can change it, e.g. a lockout
    /// ending) and returns the `Advertise` output if it changed. The agent calls it before it
    /// answers a status query, so `status()` and the advertisement never disagree.
    pub fn refresh_advertisement(&mut self, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.advertise_if_changed(now_ms, &mut out);
        out
    }

    /// The persisted state (as last handed out in `Output::Persist`).
    pub fn persisted(&self) -> &PersistedState {
        &self.state
    }

    /// The status a `GetStatus` would return.
    pub fn status(&self, now_ms: u64) -> DeviceStatus {
        let registration = self.last_registration.clone().or_else(|| {
            self.state
                .assignment
                .as_ref()
                .filter(|committed| committed.is_valid() && self.state.staged.is_none())
                .map(|committed| DpsResult {
                    status: DpsStatus::Assigned,
                    assigned_hub: Some(committed.assigned_hub.clone()),
                    device_id: Some(committed.device_id.clone()),
                    substatus: committed.substatus.clone(),
                    error_code: None,
                    error_message: None,
                    failure: None,
                })
        });
        DeviceStatus {
            state: self.state_at(now_ms, true),
            assignment: convert::assignment(&self.state),
            registration,
            network: self.last_network.clone(),
            fail_safe_remaining_s: self.state.staged.as_ref().map(|staged| {
                convert::ceil_secs(staged.fail_safe_deadline_ms.saturating_sub(now_ms))
            }),
        }
    }

    /// Replaces the cached Wi-Fi scan (reported in `DeviceInfo`).
    pub fn set_scan_cache(&mut self, networks: Vec<WifiNetwork>) {
        self.scan_cache = Some(networks);
    }

    /// The `DeviceInfo` sealed into a `DeviceHello`.
    pub fn device_info(&self, now_ms: u64) -> DeviceInfo {
        DeviceInfo {
            registration_id: self.state.identity.registration_id.clone(),
            product_code: self.state.identity.product_code,
            firmware_version: self.config.firmware_version.clone(),
            // The lock armed by the attempt being answered is not reported to that attempt.
            state: self.state_at(now_ms, false),
            assignment: convert::assignment(&self.state),
            network: self.config.capabilities,
            wifi_networks: if self.config.capabilities.wifi {
                self.scan_cache.clone()
            } else {
                None
            },
        }
    }

    fn state_at(&self, now_ms: u64, include_lock: bool) -> DeviceState {
        if self.state.staged.is_some() {
            return match self.work {
                Work::Registering(_) => DeviceState::Registering,
                Work::Idle | Work::Joining(_) => DeviceState::TicketStaged,
            };
        }
        if include_lock
            && self
                .config
                .lockout
                .locked_for(&self.state.pop_attempts, now_ms)
                .is_some()
        {
            return DeviceState::Locked;
        }
        if self.last_attempt_failed {
            return DeviceState::Failed;
        }
        if self
            .state
            .assignment
            .as_ref()
            .is_some_and(|committed| committed.is_valid())
        {
            return DeviceState::Registered;
        }
        if matches!(self.link, Link::Open(_)) {
            return DeviceState::SessionOpen;
        }
        DeviceState::Commissionable
    }

    fn advertise_if_changed(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let state = self.state_at(now_ms, true);
        if self.advertised != Some(state) {
            self.advertised = Some(state);
            out.push(Output::Advertise(state));
        }
    }

    fn persist(&self) -> Output {
        Output::Persist(Box::new(self.state.clone()))
    }

    fn new_job(&mut self) -> JobId {
        let id = self.next_job;
        self.next_job += 1;
        id
    }

    /// Seals and queues a message to the installer, if a session is open.
    fn send_secure(&mut self, message: SecureMessage, out: &mut Vec<Output>) {
        let Link::Open(channel) = &mut self.link else {
            return;
        };
        match channel.seal(&message) {
            Ok(sealed) => out.push(Output::Send {
                message: WireMessage::Sealed(sealed),
                not_before_ms: 0,
            }),
            Err(error) => {
                tracing::warn!(%error, "cannot seal a message; closing the session");
                self.link = Link::Idle;
                out.push(Output::CloseLink);
            }
        }
    }
}

#[cfg(test)]
mod tests;
