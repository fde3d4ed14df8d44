//! Progress of one commissioning, as streamed to the UI through a `tauri::ipc::Channel`.

use fieldlink_core::{
    error::Step,
    workflow::{ProgressEvent, ProgressKind},
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A step of one commissioning (the core's [`Step`], same snake_case names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    /// Looking for the device's advertisement.
    Scanning,
    /// Opening the BLE link.
    Connecting,
    /// PAKE handshake.
    Handshaking,
    /// Waiting for the signed ticket.
    AwaitingAssignment,
    /// Pushing the ticket.
    Provisioning,
    /// The device joins the network.
    JoiningNetwork,
    /// The device registers with DPS.
    Registering,
    /// Comparing the device's report with the service's view.
    Confirming,
}

impl From<Step> for StepName {
    fn from(step: Step) -> Self {
        match step {
            Step::Scanning => StepName::Scanning,
            Step::Connecting => StepName::Connecting,
            Step::Handshaking => StepName::Handshaking,
            Step::AwaitingAssignment => StepName::AwaitingAssignment,
            Step::Provisioning => StepName::Provisioning,
            Step::JoiningNetwork => StepName::JoiningNetwork,
            Step::Registering => StepName::Registering,
            Step::Confirming => StepName::Confirming,
        }
    }
}

/// What happened (the core's [`ProgressKind`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProgressDetail {
    /// The step began, or began again with a higher attempt.
    Started,
    /// The step finished.
    Completed,
    /// The device was seen advertising.
    DeviceFound {
        /// Platform handle.
        peripheral: String,
        /// dBm.
        rssi: Option<i16>,
    },
    /// The link is up.
    Connected {
        /// Negotiated ATT MTU.
        mtu: u16,
    },
    /// A network-join stage.
    NetworkStage {
        /// Stage name.
        stage: String,
    },
    /// A DPS registration stage.
    RegistrationStage {
        /// Stage name.
        stage: String,
    },
    /// The link dropped; the workflow reconnects.
    LinkLost,
    /// Reconnected and resumed.
    Resumed {
        /// The device's state.
        device_state: String,
    },
    /// The service has not caught up yet; asking again.
    StatusPending {
        /// The service's status so far.
        status: String,
    },
    /// A service call failed transiently; the next attempt follows after `wait_ms`.
    ServiceRetry {
        /// The attempt after the wait (2 = the first retry).
        attempt: u32,
        /// The attempt cap.
        max_attempts: u32,
        /// The wait, `Retry-After` included.
        #[ts(type = "number")]
        wait_ms: u64,
        /// The server's `Retry-After`, if any.
        #[ts(type = "number | null")]
        retry_after_ms: Option<u64>,
        /// Why the last attempt failed (`unreachable`, `timed_out`, `http_503`, ...).
        reason: String,
    },
}

impl From<ProgressKind> for ProgressDetail {
    fn from(kind: ProgressKind) -> Self {
        match kind {
            ProgressKind::Started => ProgressDetail::Started,
            ProgressKind::Completed => ProgressDetail::Completed,
            ProgressKind::DeviceFound { peripheral, rssi } => ProgressDetail::DeviceFound {
                peripheral: peripheral.0,
                rssi,
            },
            ProgressKind::Connected { mtu } => ProgressDetail::Connected { mtu },
            ProgressKind::NetworkStage { stage } => ProgressDetail::NetworkStage { stage },
            ProgressKind::RegistrationStage { stage } => {
                ProgressDetail::RegistrationStage { stage }
            }
            ProgressKind::LinkLost => ProgressDetail::LinkLost,
            ProgressKind::Resumed { device_state } => ProgressDetail::Resumed { device_state },
            ProgressKind::StatusPending { status } => ProgressDetail::StatusPending { status },
            ProgressKind::ServiceRetry {
                attempt,
                max_attempts,
                wait_ms,
                retry_after_ms,
                reason,
            } => ProgressDetail::ServiceRetry {
                attempt,
                max_attempts,
                wait_ms,
                retry_after_ms,
                reason,
            },
        }
    }
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ProgressUpdate {
    /// The step it belongs to.
    pub step: StepName,
    /// What happened.
    pub detail: ProgressDetail,
    /// Milliseconds since the commissioning started.
    #[ts(type = "number")]
    pub at_ms: u64,
    /// Attempt number of this step (1 = first try; reconnects raise it).
    pub attempt: u32,
}

impl From<ProgressEvent> for ProgressUpdate {
    fn from(event: ProgressEvent) -> Self {
        let ProgressEvent {
            step,
            kind,
            at_ms,
            attempt,
        } = event;
        Self {
            step: step.into(),
            detail: kind.into(),
            at_ms,
            attempt,
        }
    }
}

#[cfg(test)]
mod tests {
    use fieldlink_core::transport::PeripheralId;
    use serde_json::json;

    use super::*;

    #[test]
    fn progress_serialises_with_a_tagged_detail() {
        let update = ProgressUpdate::from(ProgressEvent {
            step: Step::Scanning,
            kind: ProgressKind::DeviceFound {
                peripheral: PeripheralId("AA:BB".into()),
                rssi: Some(-61),
            },
            at_ms: 120,
            attempt: 1,
        });
        assert_eq!(
            serde_json::to_value(update).unwrap(),
            json!({"step": "scanning", "detail": {"kind": "device_found", "peripheral": "AA:BB",
                   "rssi": -61}, "at_ms": 120, "attempt": 1})
        );
    }

    #[test]
    fn step_names_match_the_core() {
        for step in [
            Step::Scanning,
            Step::Connecting,
            Step::Handshaking,
            Step::AwaitingAssignment,
            Step::Provisioning,
            Step::JoiningNetwork,
            Step::Registering,
            Step::Confirming,
        ] {
            assert_eq!(
                serde_json::to_value(StepName::from(step)).unwrap(),
                step.as_str()
            );
        }
    }
}
