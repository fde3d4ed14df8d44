//! The core's commissioning report and registration views as records.

use fieldlink_core::{assignment, workflow};

use crate::progress::Step;

/// What a registration-status source (the provisioning service) knows about a registration.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RegistrationStatus {
    /// DPS `status` (`unassigned`, `assigning`, `assigned`, `failed`, `disabled`).
    pub status: String,
    /// The IoT hub DPS assigned, when assigned.
    pub assigned_hub: Option<String>,
    /// The device ID in that hub, when assigned.
    pub device_id: Option<String>,
    /// DPS `substatus`.
    pub substatus: Option<String>,
    /// DPS `errorCode`, when failed.
    pub error_code: Option<u32>,
}

impl From<assignment::RegistrationView> for RegistrationStatus {
    fn from(view: assignment::RegistrationView) -> Self {
        Self {
            status: view.status,
            assigned_hub: view.assigned_hub,
            device_id: view.device_id,
            substatus: view.substatus,
            error_code: view.error_code,
        }
    }
}

/// The device's own account of its DPS registration.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
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

impl From<workflow::DeviceRegistration> for DeviceRegistration {
    fn from(device: workflow::DeviceRegistration) -> Self {
        Self {
            status: device.status,
            assigned_hub: device.assigned_hub,
            device_id: device.device_id,
            substatus: device.substatus,
            error_code: device.error_code,
            error_message: device.error_message,
        }
    }
}

/// How long one step took.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
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

impl From<workflow::StepTiming> for StepTiming {
    fn from(timing: workflow::StepTiming) -> Self {
        Self {
            step: timing.step.into(),
            started_ms: timing.started_ms,
            finished_ms: timing.finished_ms,
            attempts: timing.attempts,
        }
    }
}

/// What crossed the BLE link (from "connected" on).
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct LinkCounters {
    /// Connections opened (1 without resumes).
    pub connections: u32,
    /// Client-initiated round trips.
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

impl From<workflow::LinkCounters> for LinkCounters {
    fn from(link: workflow::LinkCounters) -> Self {
        Self {
            connections: link.connections,
            round_trips: link.round_trips,
            frames_sent: link.frames_sent,
            frames_received: link.frames_received,
            bytes_sent: link.bytes_sent,
            bytes_received: link.bytes_received,
        }
    }
}

/// The outcome of a successful commissioning.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CommissioningReport {
    /// The device's DPS registration ID.
    pub registration_id: String,
    /// The ATT MTU of the last connection.
    pub mtu: u16,
    /// What the device reported.
    pub device: DeviceRegistration,
    /// What the provisioning service reported.
    pub service: RegistrationStatus,
    /// Whether the two agree (always `true`: a disagreement is a `ConfirmationMismatch` error).
    pub agreed: bool,
    /// Whether network settings were pushed and joined.
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

impl From<workflow::CommissioningReport> for CommissioningReport {
    fn from(report: workflow::CommissioningReport) -> Self {
        Self {
            registration_id: report.registration_id,
            mtu: report.mtu,
            device: report.device.into(),
            service: report.service.into(),
            agreed: report.agreed,
            network_configured: report.network_configured,
            steps: report.steps.into_iter().map(Into::into).collect(),
            link: report.link.into(),
            resumes: report.resumes,
            total_ms: report.total_ms,
        }
    }
}
