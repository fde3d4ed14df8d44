//! Azure DPS device registration over HTTPS (symmetric-key SAS).
//!
//! [`DpsClient::register`] asks the (non-billable) Device Registration Status Lookup first and
//! only registers (`PUT …/register`, then polls `GET …/operations/{id}`) when DPS has no
//! assignment yet. Every request has a deadline; 429 and 5xx are retried with exponential backoff
//! and full jitter, honouring `Retry-After`.

mod client;
mod wire;

use std::time::Duration;

pub use client::{DpsClient, DpsClientConfig, RegistrationRequest};

/// DPS `registrationState.status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationStatus {
    /// Not registered yet.
    Unassigned,
    /// Registration in progress.
    Assigning,
    /// Assigned to a hub.
    Assigned,
    /// DPS could not assign the device.
    Failed,
    /// The enrollment is disabled.
    Disabled,
    /// A status this client does not know.
    Other(String),
}

impl RegistrationStatus {
    /// Parses the DPS string (case-insensitive).
    pub fn parse(text: &str) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "unassigned" => Self::Unassigned,
            "assigning" => Self::Assigning,
            "assigned" => Self::Assigned,
            "failed" => Self::Failed,
            "disabled" => Self::Disabled,
            _ => Self::Other(text.to_owned()),
        }
    }

    /// The DPS string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unassigned => "unassigned",
            Self::Assigning => "assigning",
            Self::Assigned => "assigned",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
            Self::Other(text) => text,
        }
    }

    /// Whether DPS will not change this status without a new registration.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Assigned | Self::Failed | Self::Disabled)
    }
}

/// DPS `registrationState`, as far as the device needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationState {
    /// Registration ID.
    pub registration_id: String,
    /// Status.
    pub status: RegistrationStatus,
    /// Assigned IoT hub host name.
    pub assigned_hub: Option<String>,
    /// Device ID in the hub.
    pub device_id: Option<String>,
    /// `initialAssignment`, `deviceDataMigrated`, …
    pub substatus: Option<String>,
    /// DPS error code, for failed registrations.
    pub error_code: Option<i64>,
    /// DPS error message.
    pub error_message: Option<String>,
}

/// Where the final state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeSource {
    /// The status lookup already had a final assignment; no registration was made.
    StatusLookup,
    /// A registration (`PUT …/register`) and its polling.
    Registration,
}

/// A final registration outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationOutcome {
    /// The final state (assigned, failed or disabled).
    pub state: RegistrationState,
    /// Lookup or registration.
    pub source: OutcomeSource,
    /// The registration operation, when one was made.
    pub operation_id: Option<String>,
}

/// Progress of a registration, reported as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpsProgress {
    /// Asking the status lookup.
    LookingUp,
    /// Sending `PUT …/register`.
    Registering,
    /// DPS accepted the registration; polling the operation.
    Assigning {
        /// The operation being polled.
        operation_id: String,
    },
    /// A retryable failure; waiting before the next try.
    Retrying {
        /// Which request.
        step: DpsStep,
        /// Retry number (1-based).
        attempt: u32,
        /// How long the client waits.
        delay: Duration,
        /// Why (HTTP status or transport error), without secrets.
        reason: String,
    },
}

/// The three DPS requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpsStep {
    /// `POST /{idScope}/registrations/{registrationId}`.
    StatusLookup,
    /// `PUT /{idScope}/registrations/{registrationId}/register`.
    Register,
    /// `GET /{idScope}/registrations/{registrationId}/operations/{operationId}`.
    PollOperation,
}

impl DpsStep {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusLookup => "status_lookup",
            Self::Register => "register",
            Self::PollOperation => "poll_operation",
        }
    }
}

/// Why a registration did not reach a final state.
#[derive(Debug, thiserror::Error)]
pub enum DpsError {
    /// DPS could not be reached (connection, TLS, timeout) before the deadline.
    #[error("DPS unreachable during {}: {last_error}", step.as_str())]
    Unreachable {
        /// The request that failed last.
        step: DpsStep,
        /// The last transport error.
        last_error: String,
    },
    /// DPS kept throttling until the deadline.
    #[error("DPS throttled {} until the deadline", step.as_str())]
    Throttled {
        /// The throttled request.
        step: DpsStep,
        /// The last `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// DPS answered with a non-retryable error (401, 403, 400, 404 on register…).
    #[error("DPS rejected {} with HTTP {http_status}: {message}", step.as_str())]
    Rejected {
        /// The rejected request.
        step: DpsStep,
        /// HTTP status.
        http_status: u16,
        /// DPS `errorCode`, if given.
        error_code: Option<i64>,
        /// DPS message or a summary.
        message: String,
    },
    /// The overall deadline passed.
    #[error("DPS registration deadline passed during {}", step.as_str())]
    DeadlineExceeded {
        /// The request in progress.
        step: DpsStep,
    },
    /// DPS answered something this client cannot understand.
    #[error("unexpected DPS response to {}: {reason}", step.as_str())]
    InvalidResponse {
        /// The request.
        step: DpsStep,
        /// What was wrong.
        reason: String,
    },
    /// The device credential cannot make a SAS token.
    #[error("device DPS credential unusable: {0}")]
    Credential(String),
    /// The endpoint in the ticket is not a usable URL.
    #[error("invalid DPS endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built (bad CA PEM).
    #[error("cannot build the DPS HTTP client: {0}")]
    ClientSetup(String),
}

impl DpsError {
    /// Whether a later try (after the fail-safe, or by the installer) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Throttled { .. } | Self::DeadlineExceeded { .. }
        )
    }
}
