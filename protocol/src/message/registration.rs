//! DPS registration progress and result, reported by the device.

use minicbor::{Decode, Encode};

use super::ErrorCode;

/// A step of the device's DPS registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
pub enum RegistrationStage {
    /// Device Registration Status Lookup (`POST …/registrations/{id}`), before registering.
    #[n(0)]
    StatusLookup,
    /// Register (`PUT …/register`) sent.
    #[n(1)]
    Registering,
    /// Polling the operation (`GET …/operations/{id}`) while DPS is assigning.
    #[n(2)]
    Assigning,
    /// Waiting before a retry (throttled, or backing off after an error).
    #[n(3)]
    WaitingToRetry,
    /// DPS assigned the device; committing the staged assignment.
    #[n(4)]
    Committing,
}

impl RegistrationStage {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusLookup => "status_lookup",
            Self::Registering => "registering",
            Self::Assigning => "assigning",
            Self::WaitingToRetry => "waiting_to_retry",
            Self::Committing => "committing",
        }
    }
}

/// One registration progress report (`Event::Registration`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct RegistrationProgress {
    /// The step now in progress.
    #[n(0)]
    pub stage: RegistrationStage,
    /// Attempt number of this step, from 1.
    #[n(1)]
    pub attempt: u16,
    /// When waiting: seconds until the retry (from `Retry-After` or the backoff).
    #[n(2)]
    pub retry_after_s: Option<u32>,
}

/// DPS `registrationState.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
pub enum DpsStatus {
    /// `unassigned`.
    #[n(0)]
    Unassigned,
    /// `assigning`.
    #[n(1)]
    Assigning,
    /// `assigned`.
    #[n(2)]
    Assigned,
    /// `failed`.
    #[n(3)]
    Failed,
    /// `disabled`.
    #[n(4)]
    Disabled,
}

impl DpsStatus {
    /// The DPS JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unassigned => "unassigned",
            Self::Assigning => "assigning",
            Self::Assigned => "assigned",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }

    /// From the DPS JSON value (case-insensitive).
    pub fn from_dps(value: &str) -> Option<Self> {
        [
            Self::Unassigned,
            Self::Assigning,
            Self::Assigned,
            Self::Failed,
            Self::Disabled,
        ]
        .into_iter()
        .find(|status| status.as_str().eq_ignore_ascii_case(value))
    }
}

/// The DPS registration result, mirroring DPS `registrationState`
/// (`Event::RegistrationResult`, and in `DeviceStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct DpsResult {
    /// `status`.
    #[n(0)]
    pub status: DpsStatus,
    /// `assignedHub`.
    #[n(1)]
    pub assigned_hub: Option<String>,
    /// `deviceId`.
    #[n(2)]
    pub device_id: Option<String>,
    /// `substatus` (for example `initialAssignment`).
    #[n(3)]
    pub substatus: Option<String>,
    /// `errorCode` (for example 400209).
    #[n(4)]
    pub error_code: Option<u32>,
    /// `errorMessage` (or, when DPS gave no verdict, what the device saw; for people only).
    #[n(5)]
    pub error_message: Option<String>,
    /// Why the registration did not end in an assignment, as a stable code (`None` when
    /// assigned): `registration_failed` (DPS said `failed`/`disabled`, or refused the request),
    /// `dps_unreachable`, `dps_throttled`, `dps_unauthorized` (401/403), `dps_not_found` (404),
    /// `fail_safe_expired`, `internal`. Added in protocol 1 without a version bump: key 6 is
    /// optional, so older peers skip it and older devices simply omit it.
    #[n(6)]
    pub failure: Option<ErrorCode>,
}

impl DpsResult {
    /// Whether DPS assigned the device to a hub.
    pub fn is_assigned(&self) -> bool {
        self.status == DpsStatus::Assigned && self.assigned_hub.is_some()
    }
}
