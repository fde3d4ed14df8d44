//! The sans-I/O commissioning state machine.
//!
//! [`Commissioning`] owns no sockets, radios, clocks or tasks. The driver feeds it [`Input`]s
//! stamped with monotonic milliseconds since the start, and performs the [`Action`]s it returns.
//! It tells the driver when it next needs a [`Input::Tick`] through
//! [`deadline`](Commissioning::deadline).
//!
//! ```text
//!            ┌──────── FetchAssignment runs in parallel from the start ───────┐
//! Idle → Scanning → Connecting → Handshaking ─→ AwaitingAssignment ─→ Provisioning
//!                                     │                                    │ ticket (+ network)
//!                                     │ device already has a ticket        │ accepted
//!                                     ▼                                    ▼
//!                                 Resyncing ──────────────────→ JoiningNetwork → Registering
//!                                     ▲                                                │ assigned
//!  link lost after the ticket was sent│                                                ▼
//!  Provisioning/JoiningNetwork/Registering → Reconnecting → (re-handshake)     Confirming → Done
//!  any state → Failed { from, error } (deadline, cancel, device or service error)
//! ```
//!
//! - **Scanning**: waits for the scan result; picks the strongest device with the label's
//!   discriminator. None ⇒ `device_not_found`.
//! - **Connecting**: waits for the link. On connect it writes `ClientHello` (round trip 1).
//! - **Handshaking**: waits for `DeviceHello`; a bad device confirmation ⇒ `wrong_pop`, a
//!   refusal ⇒ `device_locked`/`device_busy`. If the device already holds a ticket (a resume),
//!   `ClientFinish` carries `GetStatus` and the machine goes to **Resyncing**; otherwise it carries
//!   `Provision{ticket, network}` (round trip 2) as soon as the assignment is there
//!   (**AwaitingAssignment** until then).
//! - **Provisioning**: waits for `ProvisionAccepted`, or a typed refusal (`ticket_rejected`).
//! - **JoiningNetwork** (only when a network config was pushed): network stages by notification,
//!   then the typed join result. On a failure the device keeps its previous network and the
//!   session; the machine asks the shell for corrected settings (`AskNetworkCorrection`, up to
//!   `network_corrections` times) and sends `ConfigureNetwork` (one extra round trip), or sends
//!   `Cancel` so the device rolls the staged ticket back at once, and fails with
//!   `network_join_failed{kind}`.
//! - **Registering**: DPS stages by notification, then the DPS result (`registration_failed`).
//! - **Confirming**: the link is closed; asks the registration-status source and compares
//!   (`confirmation_mismatch`), re-asking while the service lags behind the device.
//! - Any failure or cancellation once the ticket was accepted sends `Cancel` (when the link is
//!   up) so the device rolls back at once instead of waiting for its fail-safe.
//! - **Reconnecting**: after a link loss once the ticket was sent, waits a backoff delay,
//!   reconnects and re-handshakes, never re-pushing an accepted ticket. A link loss before the
//!   ticket was sent ends in `link_lost{retryable}` instead: an automatic new handshake would
//!   spend one of the device's proof-of-possession attempts.

use std::time::Duration;

use fieldlink_protocol::{message::NetworkConfig, session::SessionSecret};
use rand::{SeedableRng, rngs::StdRng};

use super::{
    machine::{Machine, Phase},
    progress::ProgressEvent,
    report::{CommissioningReport, DeviceRegistration},
};
use crate::{
    assignment::{Assignment, RegistrationView, ServiceError},
    error::{CommissionError, NetworkFailureKind, Step},
    retry::RetryPolicy,
    transport::{DiscoveredDevice, PeripheralId, ScanFilter, TransportError},
};

/// Which device to commission and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct CommissionRequest {
    /// The DPS registration ID, when known from the QR label (the assignment is then fetched
    /// while connecting). With a manual code it is learnt from the device during the handshake.
    pub registration_id: Option<String>,
    /// What the advertisement must carry.
    pub discriminator: DiscriminatorMatch,
    /// The PAKE secret: the label's PoP or the manual passcode.
    pub secret: SessionSecret,
    /// Network credentials to push with the ticket, if any.
    pub network: Option<NetworkConfig>,
}

/// How much of the discriminator the installer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscriminatorMatch {
    /// All 12 bits (QR label).
    Full(u16),
    /// The top 4 bits (manual code).
    Short(u8),
}

impl DiscriminatorMatch {
    /// Whether an advertised discriminator matches.
    pub fn matches(self, discriminator: u16) -> bool {
        match self {
            DiscriminatorMatch::Full(full) => full & 0x0fff == discriminator & 0x0fff,
            DiscriminatorMatch::Short(top) => u16::from(top & 0x0f) == (discriminator >> 8) & 0x0f,
        }
    }
}

/// Deadline of each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepDeadlines {
    /// Scanning.
    pub scanning: Duration,
    /// Connecting (each attempt).
    pub connecting: Duration,
    /// Handshaking (each attempt). Devices delay the answer after wrong attempts (up to 16 s
    /// by default), so keep this above their longest delay.
    pub handshaking: Duration,
    /// Waiting for the assignment once the session is open.
    pub awaiting_assignment: Duration,
    /// Waiting for `ProvisionAccepted`.
    pub provisioning: Duration,
    /// Waiting for the network-join result.
    pub joining_network: Duration,
    /// Waiting for the DPS result.
    pub registering: Duration,
    /// Confirming with the registration-status source.
    pub confirming: Duration,
}

impl Default for StepDeadlines {
    fn default() -> Self {
        Self {
            scanning: Duration::from_secs(10),
            connecting: Duration::from_secs(10),
            handshaking: Duration::from_secs(20),
            awaiting_assignment: Duration::from_secs(20),
            provisioning: Duration::from_secs(10),
            joining_network: Duration::from_secs(60),
            registering: Duration::from_secs(90),
            confirming: Duration::from_secs(30),
        }
    }
}

impl StepDeadlines {
    /// How long a scan listens: the scanning deadline minus a margin (a fifth of it, at most
    /// 1 s) in which the answer reaches the workflow, over a socket or a platform queue, before
    /// the deadline. A scan that still has not answered at the deadline fails the step with
    /// `timeout{scanning}`; there is no other scan deadline.
    pub fn scan_window(&self) -> Duration {
        let margin = (self.scanning / 5).min(Duration::from_secs(1));
        self.scanning.saturating_sub(margin)
    }

    /// The deadline of `step`.
    pub fn of(&self, step: Step) -> Duration {
        match step {
            Step::Scanning => self.scanning,
            Step::Connecting => self.connecting,
            Step::Handshaking => self.handshaking,
            Step::AwaitingAssignment => self.awaiting_assignment,
            Step::Provisioning => self.provisioning,
            Step::JoiningNetwork => self.joining_network,
            Step::Registering => self.registering,
            Step::Confirming => self.confirming,
        }
    }
}

/// Tunables of one commissioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommissioningConfig {
    /// Per-step deadlines.
    pub deadlines: StepDeadlines,
    /// Overall budget from start to done.
    pub overall_timeout: Duration,
    /// Reconnect attempts and backoff after a link loss (`max_attempts` counts reconnects).
    pub reconnect: RetryPolicy,
    /// How long to wait before asking the status source again while it lags.
    pub status_poll_interval: Duration,
    /// The fieldlink service UUID to scan for.
    pub service_uuid: u128,
    /// How many times to ask for corrected network settings after a failed join, in the same
    /// session (each costs one extra round trip). 0 = fail at once.
    pub network_corrections: u32,
    /// Proof-of-possession attempts a device allows before locking (for "attempt k of N").
    pub max_pop_attempts: u8,
    /// Seed for the session's randomness and the backoff jitter; `None` = OS entropy.
    pub seed: Option<u64>,
}

impl Default for CommissioningConfig {
    fn default() -> Self {
        Self {
            deadlines: StepDeadlines::default(),
            overall_timeout: Duration::from_secs(180),
            reconnect: RetryPolicy {
                initial_delay: Duration::from_millis(250),
                max_delay: Duration::from_secs(4),
                max_attempts: 5,
                deadline: Duration::from_secs(60),
            },
            status_poll_interval: Duration::from_millis(500),
            service_uuid: fieldlink_protocol::gatt::SERVICE_UUID,
            max_pop_attempts: 5,
            network_corrections: 0,
            seed: None,
        }
    }
}

/// Where the machine is. Every state is documented in the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started.
    Idle,
    /// Waiting for the scan result.
    Scanning,
    /// Waiting for the link.
    Connecting {
        /// The chosen peripheral.
        peripheral: PeripheralId,
    },
    /// `ClientHello` sent, waiting for `DeviceHello`.
    Handshaking,
    /// Session keys agreed, waiting for the assignment.
    AwaitingAssignment,
    /// Ticket sent, waiting for `ProvisionAccepted`.
    Provisioning,
    /// Resumed session: `GetStatus` sent, waiting for the device's status.
    Resyncing,
    /// Waiting for the network-join result.
    JoiningNetwork,
    /// Waiting for the DPS result.
    Registering,
    /// Link lost after the ticket was sent; reconnecting to resume `resume`.
    Reconnecting {
        /// The step that was interrupted.
        resume: Step,
    },
    /// Asking the registration-status source.
    Confirming,
    /// Finished successfully.
    Done,
    /// Finished with an error.
    Failed {
        /// The state the failure happened in.
        from: Box<State>,
        /// What went wrong.
        error: CommissionError,
    },
}

impl State {
    /// The user-facing step of this state (`None` for `Idle`, `Done` and `Failed`).
    pub fn step(&self) -> Option<Step> {
        match self {
            State::Idle | State::Done | State::Failed { .. } => None,
            State::Scanning => Some(Step::Scanning),
            State::Connecting { .. } => Some(Step::Connecting),
            State::Handshaking | State::Resyncing => Some(Step::Handshaking),
            State::AwaitingAssignment => Some(Step::AwaitingAssignment),
            State::Provisioning => Some(Step::Provisioning),
            State::JoiningNetwork => Some(Step::JoiningNetwork),
            State::Registering => Some(Step::Registering),
            State::Reconnecting { .. } => Some(Step::Connecting),
            State::Confirming => Some(Step::Confirming),
        }
    }
}

/// What happened outside the machine.
#[derive(Debug, Clone)]
pub enum Input {
    /// The scan finished.
    ScanCompleted(Vec<DiscoveredDevice>),
    /// The scan failed.
    ScanFailed(TransportError),
    /// The link is up.
    Connected {
        /// Negotiated ATT MTU.
        mtu: u16,
    },
    /// Connecting failed.
    ConnectFailed(TransportError),
    /// One notification frame.
    Notification(Vec<u8>),
    /// The link dropped (or a write failed because it did).
    Disconnected,
    /// The assignment source answered.
    AssignmentReady(Assignment),
    /// The assignment source failed (after its own retries; the workflow does not retry).
    AssignmentFailed(ServiceError),
    /// The registration-status source answered.
    StatusReady(RegistrationView),
    /// The registration-status source failed (after its own retries; the workflow does not
    /// retry).
    StatusFailed(ServiceError),
    /// A service source scheduled a retry of the call made for `step`
    /// ([`super::service_call`]).
    ServiceRetrying {
        /// The step the call serves (`awaiting_assignment` or `confirming`).
        step: Step,
        /// The retry.
        retry: super::service_call::ServiceRetry,
    },
    /// Time passed; sent when [`Commissioning::deadline`] is reached.
    Tick,
    /// The user cancelled.
    Cancel,
    /// The answer to [`Action::AskNetworkCorrection`]: corrected settings, or `None` to give up.
    NetworkCorrection(Option<NetworkConfig>),
}

/// What the driver must do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Scan; answer with `ScanCompleted`/`ScanFailed`. The scanning step's deadline governs:
    /// `timeout` is the listening window ([`StepDeadlines::scan_window`]), which ends before
    /// that deadline, so a scan that listens the whole window (a manual code's 4-bit
    /// discriminator cannot stop at the first match) answers in time.
    Scan {
        /// What to look for.
        filter: ScanFilter,
        /// How long to listen.
        timeout: Duration,
    },
    /// The device reported its DPS registration (`assigned`) over BLE: hand it to the
    /// listener ([`super::ProgressListener::on_device_report`]) before confirming it.
    DeviceReported(DeviceRegistration),
    /// Connect; answer with `Connected`/`ConnectFailed`.
    Connect {
        /// To what.
        peripheral: PeripheralId,
        /// Within how long.
        timeout: Duration,
    },
    /// Ask the assignment source once (the source retries transient failures itself within
    /// `budget`, [`super::service_call`]); answer with `AssignmentReady`/`AssignmentFailed`.
    FetchAssignment {
        /// For which device.
        registration_id: String,
        /// How long the call may take, retries and waits included.
        budget: Duration,
    },
    /// Write these frames in order; a failure is `Disconnected`.
    Write(Vec<Vec<u8>>),
    /// Close the link.
    Disconnect,
    /// Ask the registration-status source once (it retries transient failures itself within
    /// `budget`); answer with `StatusReady`/`StatusFailed`.
    QueryStatus {
        /// For which device.
        registration_id: String,
        /// Under which assignment.
        assignment: Assignment,
        /// How long the call may take (what is left of the confirming step), retries and
        /// waits included.
        budget: Duration,
    },
    /// The device could not join the network; ask the shell for corrected settings (answer
    /// with `NetworkCorrection`). The device keeps its session open and its previous network.
    AskNetworkCorrection {
        /// Why the join failed.
        kind: NetworkFailureKind,
        /// Corrections asked for so far in this commissioning, including this one.
        attempt: u32,
    },
    /// Tell the listener.
    Progress(ProgressEvent),
    /// Done; nothing else will follow.
    Finished(Result<CommissioningReport, CommissionError>),
}

/// The commissioning state machine. See the module docs for states and transitions.
#[derive(Debug)]
pub struct Commissioning {
    machine: Machine,
}

impl Commissioning {
    /// A machine for one commissioning.
    pub fn new(request: CommissionRequest, config: CommissioningConfig) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        Self {
            machine: Machine::new(request, config, rng),
        }
    }

    /// The current state.
    pub fn state(&self) -> &State {
        self.machine.state()
    }

    /// Starts: scanning and, when the registration ID is known, fetching the assignment.
    pub fn start(&mut self, now_ms: u64) -> Vec<Action> {
        self.machine.start(now_ms)
    }

    /// Feeds one input.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Action> {
        self.machine.handle(now_ms, input)
    }

    /// When the machine next needs a [`Input::Tick`] (ms since start), if ever.
    pub fn deadline(&self) -> Option<u64> {
        self.machine.deadline()
    }

    /// Whether the machine has finished.
    pub fn is_finished(&self) -> bool {
        matches!(self.machine.phase(), Phase::Finished)
    }
}
