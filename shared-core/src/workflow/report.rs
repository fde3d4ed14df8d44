//! What a finished commissioning reports.

use serde::Serialize;

use crate::{assignment::RegistrationView, error::Step};

/// The device's own account of its DPS registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRegistration {
    /// DPS `status`.
    pub status: String,
    /// Assigned IoT hub.
    pub assigned_hub: Option<String>,
    /// Device ID in that hub.
    pub device_id: Option<String>,
    /// DPS `substatus`.
    pub substatus: Option<String>,
    /// DPS `errorCode`.
    pub error_code: Option<u32>,
    /// DPS `errorMessage`.
    pub error_message: Option<String>,
}

impl DeviceRegistration {
    /// Whether the device's report and the service's view name the same assignment.
    pub fn agrees_with(&self, view: &RegistrationView) -> bool {
        self.status == view.status
            && self.assigned_hub == view.assigned_hub
            && self.device_id == view.device_id
    }

    /// `status hub/device`, for messages.
    pub fn summary(&self) -> String {
        summary(
            &self.status,
            self.assigned_hub.as_deref(),
            self.device_id.as_deref(),
        )
    }
}

/// `status hub/device`, for messages.
pub(crate) fn summary(status: &str, hub: Option<&str>, device: Option<&str>) -> String {
    format!("{status} {}/{}", hub.unwrap_or("-"), device.unwrap_or("-"))
}

/// How long one step took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepTiming {
    /// The step.
    pub step: Step,
    /// When it first started (ms since the commissioning started).
    pub started_ms: u64,
    /// When it last completed.
    pub finished_ms: u64,
    /// How many times it started.
    pub attempts: u32,
}

/// What crossed the BLE link, counted by the workflow itself (from "connected" on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinkCounters {
    /// Connections opened (1 without resumes).
    pub connections: u32,
    /// Client-initiated round trips (each installer message expects an answer).
    pub round_trips: u32,
    /// Frames written.
    pub frames_sent: u32,
    /// Notification frames received.
    pub frames_received: u32,
    /// Bytes written (ATT payload).
    pub bytes_sent: u64,
    /// Bytes received (ATT payload).
    pub bytes_received: u64,
}

/// The outcome of a successful commissioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommissioningReport {
    /// The device's DPS registration ID.
    pub registration_id: String,
    /// The ATT MTU of the last connection.
    pub mtu: u16,
    /// What the device reported.
    pub device: DeviceRegistration,
    /// What the registration-status source reported.
    pub service: RegistrationView,
    /// Whether the two agree (always `true` in a report: disagreement is an error).
    pub agreed: bool,
    /// Whether network credentials were pushed and joined.
    pub network_configured: bool,
    /// Per-step timings, in the order the steps first started.
    pub steps: Vec<StepTiming>,
    /// Link counters.
    pub link: LinkCounters,
    /// Reconnect-and-resume cycles.
    pub resumes: u32,
    /// Total duration, ms.
    pub total_ms: u64,
}

impl CommissioningReport {
    /// The timing of `step`, if it ran.
    pub fn step(&self, step: Step) -> Option<&StepTiming> {
        self.steps.iter().find(|t| t.step == step)
    }
}
