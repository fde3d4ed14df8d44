//! The journal's record types.

use serde::Serialize;
use serde_json::Value;

use crate::{
    CommissionError,
    assignment::{Assignment, DpsScope, RegistrationView},
    workflow::{CommissioningReport, DeviceRegistration, LinkCounters, StepTiming},
};

/// Who runs a commissioning: the signed-in identity (or the local user before sign-in exists)
/// and the configuration profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installer {
    /// The installer's identity (`sub`/e-mail once signed in, `local:<user>` otherwise).
    pub identity: String,
    /// The profile (API URL + issuer) the commissioning ran under.
    pub profile: String,
}

/// The id of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AttemptId(pub i64);

impl std::fmt::Display for AttemptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One device of one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchItemRef {
    /// The batch.
    pub batch_id: String,
    /// The device's position in the batch (0-based line of the payload file's entries).
    pub position: u32,
}

/// What the shell knows when it starts an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    /// The device's registration ID (from the label; a manual code learns it later, use `""`).
    pub registration_id: String,
    /// Who.
    pub installer: Installer,
    /// The batch item, for batch runs.
    pub batch_item: Option<BatchItemRef>,
    /// Which transport (`memory`, `sandbox`, `bluez`, ...).
    pub transport: String,
}

/// The assignment an attempt obtained (tickets carry no secret: scope, endpoint, tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssignmentRecord {
    /// DPS instance.
    pub dps_instance: String,
    /// DPS ID scope.
    pub id_scope: String,
    /// The signed ticket, base64url.
    pub ticket: String,
    /// Ticket expiry (unix seconds).
    pub expires_at: i64,
}

impl AssignmentRecord {
    /// The record of `assignment`.
    pub fn of(assignment: &Assignment) -> Self {
        Self {
            dps_instance: assignment.dps_instance.clone(),
            id_scope: assignment.id_scope.clone(),
            ticket: assignment.ticket.to_base64url(),
            expires_at: assignment.expires_at,
        }
    }

    /// The assignment again (to ask a registration-status source).
    pub fn to_assignment(&self) -> Option<Assignment> {
        let ticket = fieldlink_protocol::ticket::SignedTicket::from_base64url(&self.ticket).ok()?;
        Some(Assignment {
            ticket,
            id_scope: self.id_scope.clone(),
            dps_instance: self.dps_instance.clone(),
            expires_at: self.expires_at,
        })
    }
}

/// How a successful attempt was confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    /// The registration-status source agreed with the device.
    Confirmed,
    /// The device confirmed over BLE, the status source was unreachable: queued for sync.
    Queued,
}

impl Confirmation {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Confirmation::Confirmed => "confirmed",
            Confirmation::Queued => "queued",
        }
    }
}

/// A failure as stored: the public error tier's view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorRecord {
    /// Stable snake_case code.
    pub code: String,
    /// Actionable message.
    pub message: String,
    /// Whether an unchanged retry may succeed.
    pub retryable: bool,
    /// The variant's fields.
    pub details: Value,
}

impl From<&CommissionError> for ErrorRecord {
    fn from(error: &CommissionError) -> Self {
        let view = error.view();
        Self {
            code: view.code.to_owned(),
            message: view.message,
            retryable: view.retryable,
            details: view.details,
        }
    }
}

/// Succeeded or failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AttemptResult {
    /// The device is commissioned.
    Succeeded {
        /// Confirmed now or queued.
        confirmation: Confirmation,
    },
    /// The attempt failed.
    Failed {
        /// Why.
        error: ErrorRecord,
    },
}

/// One step's timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    /// Stable step name (`scanning`, `connecting`, ...).
    pub step: String,
    /// Start, ms since the attempt started.
    pub started_ms: u64,
    /// End, ms since the attempt started.
    pub finished_ms: u64,
    /// How many times it started.
    pub attempts: u32,
}

impl From<&StepTiming> for StepRecord {
    fn from(timing: &StepTiming) -> Self {
        Self {
            step: timing.step.as_str().to_owned(),
            started_ms: timing.started_ms,
            finished_ms: timing.finished_ms,
            attempts: timing.attempts,
        }
    }
}

/// Everything [`Journal::finish_attempt`](super::Journal::finish_attempt) stores.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    /// Succeeded or failed.
    pub result: AttemptResult,
    /// The device's own DPS status (`assigned`), when it reported one.
    pub device_status: Option<String>,
    /// Assigned IoT hub.
    pub assigned_hub: Option<String>,
    /// Device ID in that hub.
    pub device_id: Option<String>,
    /// Step timings.
    pub steps: Vec<StepRecord>,
    /// Link counters, when known.
    pub link: Option<LinkCounters>,
    /// ATT MTU of the last connection.
    pub mtu: Option<u16>,
    /// Reconnect-and-resume cycles.
    pub resumes: u32,
    /// Duration, ms.
    pub total_ms: u64,
    /// What a resume's re-check found (`device_registered`, `device_commissionable`, ...).
    pub recheck: Option<String>,
}

impl AttemptOutcome {
    /// A confirmed success.
    pub fn confirmed(report: &CommissioningReport) -> Self {
        Self {
            result: AttemptResult::Succeeded {
                confirmation: Confirmation::Confirmed,
            },
            device_status: Some(report.device.status.clone()),
            assigned_hub: report.device.assigned_hub.clone(),
            device_id: report.device.device_id.clone(),
            steps: report.steps.iter().map(StepRecord::from).collect(),
            link: Some(report.link.clone()),
            mtu: Some(report.mtu),
            resumes: report.resumes,
            total_ms: report.total_ms,
            recheck: None,
        }
    }

    /// The device confirmed `assigned` over BLE; the status source was unreachable.
    pub fn queued(steps: Vec<StepRecord>, total_ms: u64) -> Self {
        Self {
            result: AttemptResult::Succeeded {
                confirmation: Confirmation::Queued,
            },
            device_status: Some("assigned".into()),
            assigned_hub: None,
            device_id: None,
            steps,
            link: None,
            mtu: None,
            resumes: 0,
            total_ms,
            recheck: None,
        }
    }

    /// Records what the device reported over BLE (status, hub, device ID): a queued
    /// confirmation is later compared with all of it.
    pub fn with_device_report(mut self, report: &DeviceRegistration) -> Self {
        self.device_status = Some(report.status.clone());
        self.assigned_hub = report.assigned_hub.clone();
        self.device_id = report.device_id.clone();
        self
    }

    /// A failure.
    pub fn failed(error: &CommissionError, steps: Vec<StepRecord>, total_ms: u64) -> Self {
        Self {
            result: AttemptResult::Failed {
                error: ErrorRecord::from(error),
            },
            device_status: None,
            assigned_hub: None,
            device_id: None,
            steps,
            link: None,
            mtu: None,
            resumes: 0,
            total_ms,
            recheck: None,
        }
    }

    /// Notes what a resume's re-check found.
    pub fn with_recheck(mut self, recheck: impl Into<String>) -> Self {
        self.recheck = Some(recheck.into());
        self
    }

    /// Sets the link counters (from the transport when the workflow did not report them).
    pub fn with_link(mut self, link: LinkCounters) -> Self {
        self.link = Some(link);
        self
    }
}

/// One attempt as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// Attempt id.
    pub id: i64,
    /// The device.
    pub registration_id: String,
    /// Installer identity.
    pub installer: String,
    /// Profile.
    pub profile: String,
    /// Transport.
    pub transport: String,
    /// Batch, if any.
    pub batch_id: Option<String>,
    /// Position in the batch.
    pub batch_position: Option<u32>,
    /// Start (unix ms).
    pub started_at_ms: i64,
    /// End (unix ms); `None` while open.
    pub finished_at_ms: Option<i64>,
    /// `succeeded`, `failed`, `interrupted`, or `None` while open.
    pub outcome: Option<String>,
    /// `confirmed` or `queued` for successes.
    pub confirmation: Option<String>,
    /// DPS instance of the assignment.
    pub dps_instance: Option<String>,
    /// DPS ID scope.
    pub id_scope: Option<String>,
    /// Assigned hub.
    pub assigned_hub: Option<String>,
    /// Device ID in the hub.
    pub device_id: Option<String>,
    /// Error code for failures.
    pub error_code: Option<String>,
    /// Error message for failures.
    pub error_message: Option<String>,
    /// Whether the failure is retryable.
    pub retryable: Option<bool>,
    /// Duration, ms.
    pub total_ms: Option<u64>,
    /// ATT MTU.
    pub mtu: Option<u16>,
    /// Resumes.
    pub resumes: Option<u32>,
    /// Link counters.
    pub link: Option<LinkCounters>,
    /// Re-check note.
    pub recheck: Option<String>,
    /// Step timings.
    pub steps: Vec<StepRecord>,
}

/// Which attempts to list (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptQuery {
    /// Only this device.
    pub registration_id: Option<String>,
    /// Only this batch.
    pub batch_id: Option<String>,
    /// At most this many.
    pub limit: Option<u32>,
}

/// A new batch.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBatch {
    /// Who starts it.
    pub installer: Installer,
    /// Where its payloads come from (an absolute file path); re-read on resume.
    pub source: String,
    /// SHA-256 (hex) of the source, to detect a changed file on resume.
    pub source_digest: String,
    /// Shell options to reuse on resume (concurrency, network profile name; never secrets).
    pub options: Value,
    /// The devices, in order.
    pub registration_ids: Vec<String>,
}

/// A batch item's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Not started.
    Pending,
    /// Started; not known to be finished (the process may have died).
    InFlight,
    /// Commissioned.
    Succeeded,
    /// The last attempt failed.
    Failed,
}

impl ItemStatus {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::InFlight => "in_flight",
            ItemStatus::Succeeded => "succeeded",
            ItemStatus::Failed => "failed",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(ItemStatus::Pending),
            "in_flight" => Some(ItemStatus::InFlight),
            "succeeded" => Some(ItemStatus::Succeeded),
            "failed" => Some(ItemStatus::Failed),
            _ => None,
        }
    }
}

/// One device of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchItem {
    /// The batch.
    pub batch_id: String,
    /// Position.
    pub position: u32,
    /// The device.
    pub registration_id: String,
    /// Status.
    pub status: ItemStatus,
    /// Attempts started for it.
    pub attempts: u32,
    /// The latest attempt.
    pub last_attempt_id: Option<i64>,
    /// Error code of the last failure.
    pub error_code: Option<String>,
    /// Whether the last failure is retryable.
    pub retryable: Option<bool>,
    /// `confirmed`/`queued` once succeeded.
    pub confirmation: Option<String>,
}

impl BatchItem {
    /// The reference to this item.
    pub fn item_ref(&self) -> BatchItemRef {
        BatchItemRef {
            batch_id: self.batch_id.clone(),
            position: self.position,
        }
    }
}

/// How many items are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BatchCounts {
    /// Pending.
    pub pending: u32,
    /// In flight.
    pub in_flight: u32,
    /// Succeeded.
    pub succeeded: u32,
    /// Failed.
    pub failed: u32,
}

impl BatchCounts {
    /// All items.
    pub fn total(&self) -> u32 {
        self.pending + self.in_flight + self.succeeded + self.failed
    }
}

/// A batch as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRecord {
    /// Batch id.
    pub id: String,
    /// Creation (unix ms).
    pub created_at_ms: i64,
    /// Installer identity.
    pub installer: String,
    /// Profile.
    pub profile: String,
    /// Payload source.
    pub source: String,
    /// Its SHA-256.
    pub source_digest: String,
    /// Shell options.
    pub options: Value,
    /// When the last run of it ended with nothing left to do (unix ms).
    pub closed_at_ms: Option<i64>,
    /// Item counts.
    pub counts: BatchCounts,
}

/// What resuming must do with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeAction {
    /// Done (or failed for a reason a retry cannot fix): do not touch it.
    Skip,
    /// Never started, or failed retryably: commission it.
    Commission,
    /// It was in flight when the process died: ask the device's real state first. `assignment`
    /// is what the interrupted attempt obtained, if it got that far.
    Recheck {
        /// The interrupted attempt's assignment.
        assignment: Option<AssignmentRecord>,
    },
}

/// One item of a resume plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeStep {
    /// The item (status as before the resume).
    pub item: BatchItem,
    /// What to do.
    pub action: ResumeAction,
}

/// A confirmation waiting for the registration-status source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingConfirmation {
    /// The attempt it belongs to.
    pub attempt_id: i64,
    /// The device.
    pub registration_id: String,
    /// Its assignment.
    pub assignment: AssignmentRecord,
    /// What the device reported (`assigned`).
    pub device_status: String,
    /// The hub the device reported, when known.
    pub device_hub: Option<String>,
    /// The device ID the device reported, when known.
    pub device_id: Option<String>,
    /// When it was queued (unix ms).
    pub queued_at_ms: i64,
    /// Sync tries so far.
    pub tries: u32,
    /// The last sync error.
    pub last_error: Option<String>,
}

/// What the status source's answer means for a queued confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceVerdict {
    /// The service agrees with the device: confirmed.
    Agrees,
    /// The service has not caught up yet: keep it queued.
    Lagging,
    /// The service disagrees: the attempt fails with `confirmation_mismatch`.
    Disagrees(Box<ConfirmationDisagreement>),
}

/// A queued confirmation the registration-status source contradicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfirmationDisagreement {
    /// What differs, in a stable order: `id_scope`, `status`, `assigned_hub`, `device_id`.
    pub fields: Vec<&'static str>,
    /// The device's report over BLE plus the assignment it was given.
    pub device: DeviceSide,
    /// The service's view.
    pub service: RegistrationView,
    /// The DPS scope the service answered about, when it is not the ticket's (`id_scope` is
    /// then the first of `fields`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_scope: Option<DpsScope>,
}

/// The device's side of a queued confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSide {
    /// The device's DPS status.
    pub status: String,
    /// The hub it reported (unknown for confirmations queued before devices' reports were
    /// journaled).
    pub assigned_hub: Option<String>,
    /// The device ID it reported.
    pub device_id: Option<String>,
    /// The DPS instance of its ticket.
    pub dps_instance: String,
    /// The ID scope of its ticket.
    pub id_scope: String,
}

impl ConfirmationDisagreement {
    /// The stable error code (the same as the live workflow's disagreement).
    pub const CODE: &'static str = "confirmation_mismatch";

    /// An actionable message naming what differs.
    pub fn message(&self) -> String {
        let show = |v: Option<&str>| v.unwrap_or("none").to_owned();
        let differences: Vec<String> = self
            .fields
            .iter()
            .map(|field| {
                let (device, service) = match *field {
                    "id_scope" => (
                        format!("{} ({})", self.device.id_scope, self.device.dps_instance),
                        self.service_scope.as_ref().map_or_else(
                            || "none".to_owned(),
                            |scope| format!("{} ({})", scope.id_scope, scope.dps_instance),
                        ),
                    ),
                    "status" => (self.device.status.clone(), self.service.status.clone()),
                    "assigned_hub" => (
                        show(self.device.assigned_hub.as_deref()),
                        show(self.service.assigned_hub.as_deref()),
                    ),
                    _ => (
                        show(self.device.device_id.as_deref()),
                        show(self.service.device_id.as_deref()),
                    ),
                };
                format!("{field}: device {device}, service {service}")
            })
            .collect();
        format!(
            "queued confirmation rejected: the registration service contradicts the device's \
             report ({}; ticket for {} / {}); re-check the device and commission it again",
            differences.join("; "),
            self.device.dps_instance,
            self.device.id_scope
        )
    }

    /// As stored on the attempt: code, message, not retryable, and both sides in `details`.
    pub fn error_record(&self) -> ErrorRecord {
        ErrorRecord {
            code: Self::CODE.to_owned(),
            message: self.message(),
            retryable: false,
            details: serde_json::json!({
                "fields": self.fields,
                "device": self.device,
                "service": self.service,
                "service_scope": self.service_scope,
                "at": "sync",
            }),
        }
    }
}

impl PendingConfirmation {
    /// Compares the service's view with the device's full report: status, and the hub and
    /// device ID whenever the device reported them (a service that lacks them disagrees).
    pub fn judge(&self, view: &RegistrationView) -> ServiceVerdict {
        if matches!(view.status.as_str(), "unassigned" | "assigning") {
            return ServiceVerdict::Lagging;
        }
        let differs = |device: &Option<String>, service: &Option<String>| {
            device.as_ref().is_some_and(|d| service.as_ref() != Some(d))
        };
        let mut fields = Vec::new();
        if view.status != self.device_status {
            fields.push("status");
        }
        if differs(&self.device_hub, &view.assigned_hub) {
            fields.push("assigned_hub");
        }
        if differs(&self.device_id, &view.device_id) {
            fields.push("device_id");
        }
        if fields.is_empty() {
            return ServiceVerdict::Agrees;
        }
        ServiceVerdict::Disagrees(Box::new(self.disagreement(fields, view, None)))
    }

    /// The service answered about another DPS scope than the ticket's
    /// ([`crate::assignment::ServiceError::ScopeMismatch`]): a contradiction on `id_scope`
    /// (plus whatever else differs from the device's report), never "still lagging".
    pub fn judge_scope(
        &self,
        reported: &DpsScope,
        view: &RegistrationView,
    ) -> ConfirmationDisagreement {
        let mut fields = vec!["id_scope"];
        if let ServiceVerdict::Disagrees(other) = self.judge(view) {
            fields.extend(other.fields);
        }
        self.disagreement(fields, view, Some(reported.clone()))
    }

    fn disagreement(
        &self,
        fields: Vec<&'static str>,
        view: &RegistrationView,
        service_scope: Option<DpsScope>,
    ) -> ConfirmationDisagreement {
        ConfirmationDisagreement {
            fields,
            device: DeviceSide {
                status: self.device_status.clone(),
                assigned_hub: self.device_hub.clone(),
                device_id: self.device_id.clone(),
                dps_instance: self.assignment.dps_instance.clone(),
                id_scope: self.assignment.id_scope.clone(),
            },
            service: view.clone(),
            service_scope,
        }
    }
}
