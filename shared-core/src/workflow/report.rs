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

/// Step timings as a commissioning's report builds them, accumulated from step starts and
/// completions.
///
/// The workflow keeps one to fill [`CommissioningReport::steps`]; a shell fed the same
/// [`ProgressEvent`](super::ProgressEvent)s through [`StepTimings::record`] gets the same
/// timings (for a failed or queued attempt, which has no report).
///
/// A step's first start fixes `started_ms`; each further start counts one more attempt; each
/// completion moves `finished_ms` (a completion of a step never started is ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepTimings(Vec<StepTiming>);

impl StepTimings {
    /// `step` started at `at_ms` (since the commissioning started).
    pub fn started(&mut self, step: Step, at_ms: u64) {
        match self.0.iter_mut().find(|t| t.step == step) {
            Some(timing) => timing.attempts += 1,
            None => self.0.push(StepTiming {
                step,
                started_ms: at_ms,
                finished_ms: at_ms,
                attempts: 1,
            }),
        }
    }

    /// `step` completed at `at_ms`.
    pub fn completed(&mut self, step: Step, at_ms: u64) {
        if let Some(timing) = self.0.iter_mut().find(|t| t.step == step) {
            timing.finished_ms = at_ms;
        }
    }

    /// Feeds one progress event (only `started` and `completed` count); whether it counted.
    pub fn record(&mut self, event: &super::ProgressEvent) -> bool {
        match event.kind {
            super::ProgressKind::Started => self.started(event.step, event.at_ms),
            super::ProgressKind::Completed => self.completed(event.step, event.at_ms),
            _ => return false,
        }
        true
    }

    /// How many times `step` started so far (1 for a step not started yet: the attempt an
    /// event about it belongs to).
    pub fn attempt(&self, step: Step) -> u32 {
        self.0
            .iter()
            .find(|t| t.step == step)
            .map_or(1, |t| t.attempts)
    }

    /// The timings, in the order the steps first started.
    pub fn as_slice(&self) -> &[StepTiming] {
        &self.0
    }
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
