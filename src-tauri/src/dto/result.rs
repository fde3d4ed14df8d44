//! A finished commissioning, as the Result screen shows it.

use fieldlink_core::{
    assignment::{Assignment, RegistrationView},
    workflow::{CommissioningReport, DeviceRegistration, LinkCounters, StepTiming},
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::progress::StepName;

/// What DPS recorded for a registration (the core's [`RegistrationView`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RegistrationStatus {
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
}

impl From<RegistrationView> for RegistrationStatus {
    fn from(view: RegistrationView) -> Self {
        let RegistrationView {
            status,
            assigned_hub,
            device_id,
            substatus,
            error_code,
        } = view;
        Self {
            status,
            assigned_hub,
            device_id,
            substatus,
            error_code,
        }
    }
}

/// The device's own account of its registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DeviceReport {
    /// DPS `status`.
    pub status: String,
    /// Assigned IoT hub.
    pub assigned_hub: Option<String>,
    /// Device ID.
    pub device_id: Option<String>,
    /// DPS `substatus`.
    pub substatus: Option<String>,
    /// DPS `errorCode`.
    pub error_code: Option<u32>,
    /// DPS `errorMessage`.
    pub error_message: Option<String>,
}

impl From<DeviceRegistration> for DeviceReport {
    fn from(device: DeviceRegistration) -> Self {
        let DeviceRegistration {
            status,
            assigned_hub,
            device_id,
            substatus,
            error_code,
            error_message,
        } = device;
        Self {
            status,
            assigned_hub,
            device_id,
            substatus,
            error_code,
            error_message,
        }
    }
}

/// How long one step took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct StepTime {
    /// The step.
    pub step: StepName,
    /// First start, ms since the commissioning started.
    #[ts(type = "number")]
    pub started_ms: u64,
    /// Last completion.
    #[ts(type = "number")]
    pub finished_ms: u64,
    /// How many times it started.
    pub attempts: u32,
}

impl From<StepTiming> for StepTime {
    fn from(timing: StepTiming) -> Self {
        let StepTiming {
            step,
            started_ms,
            finished_ms,
            attempts,
        } = timing;
        Self {
            step: step.into(),
            started_ms,
            finished_ms,
            attempts,
        }
    }
}

/// What crossed the BLE link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct LinkTotals {
    /// Connections opened.
    pub connections: u32,
    /// Client-initiated round trips.
    pub round_trips: u32,
    /// Frames written.
    pub frames_sent: u32,
    /// Frames received.
    pub frames_received: u32,
    /// Bytes written.
    #[ts(type = "number")]
    pub bytes_sent: u64,
    /// Bytes received.
    #[ts(type = "number")]
    pub bytes_received: u64,
}

impl From<LinkCounters> for LinkTotals {
    fn from(link: LinkCounters) -> Self {
        let LinkCounters {
            connections,
            round_trips,
            frames_sent,
            frames_received,
            bytes_sent,
            bytes_received,
        } = link;
        Self {
            connections,
            round_trips,
            frames_sent,
            frames_received,
            bytes_sent,
            bytes_received,
        }
    }
}

/// The DPS target the provisioning service chose (from the signed ticket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AssignmentSummary {
    /// DPS instance.
    pub dps_instance: String,
    /// DPS ID scope.
    pub id_scope: String,
    /// Ticket expiry, unix seconds.
    #[ts(type = "number")]
    pub expires_at: i64,
}

impl From<&Assignment> for AssignmentSummary {
    fn from(assignment: &Assignment) -> Self {
        Self {
            dps_instance: assignment.dps_instance.clone(),
            id_scope: assignment.id_scope.clone(),
            expires_at: assignment.expires_at,
        }
    }
}

/// A successful commissioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CommissionResult {
    /// The journal's attempt id.
    #[ts(type = "number")]
    pub attempt_id: i64,
    /// DPS registration ID.
    pub registration_id: String,
    /// The DPS target of the pushed ticket, when this attempt fetched one (a resumed device
    /// that already held a ticket has none).
    pub assignment: Option<AssignmentSummary>,
    /// ATT MTU of the last connection.
    pub mtu: u16,
    /// What the device reported.
    pub device: DeviceReport,
    /// What the provisioning service reported.
    pub service: RegistrationStatus,
    /// Whether the two agree.
    pub agreed: bool,
    /// Whether network credentials were pushed.
    pub network_configured: bool,
    /// Step timings.
    pub steps: Vec<StepTime>,
    /// Link counters.
    pub link: LinkTotals,
    /// Reconnect-and-resume cycles.
    pub resumes: u32,
    /// Total duration, ms.
    #[ts(type = "number")]
    pub total_ms: u64,
}

impl CommissionResult {
    /// The result of `report`, journalled as `attempt_id`.
    pub fn new(
        attempt_id: i64,
        report: CommissioningReport,
        assignment: Option<AssignmentSummary>,
    ) -> Self {
        let CommissioningReport {
            registration_id,
            mtu,
            device,
            service,
            agreed,
            network_configured,
            steps,
            link,
            resumes,
            total_ms,
        } = report;
        Self {
            attempt_id,
            registration_id,
            assignment,
            mtu,
            device: device.into(),
            service: service.into(),
            agreed,
            network_configured,
            steps: steps.into_iter().map(StepTime::from).collect(),
            link: link.into(),
            resumes,
            total_ms,
        }
    }
}
