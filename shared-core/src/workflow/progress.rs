//! Progress events: what a shell shows while a commissioning runs.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use super::report::DeviceRegistration;
use crate::{error::Step, transport::PeripheralId};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProgressKind {
    /// The step began (or began again, with a higher attempt).
    Started,
    /// The step finished successfully.
    Completed,
    /// The device was seen advertising.
    DeviceFound {
        /// Platform handle.
        #[serde(serialize_with = "serialize_peripheral")]
        peripheral: PeripheralId,
        /// Signal strength, dBm.
        rssi: Option<i16>,
    },
    /// The link is up.
    Connected {
        /// Negotiated ATT MTU.
        mtu: u16,
    },
    /// The device reported a network-join stage (`associating`, `authenticated`, `got_ip`,
    /// `internet_reachable`, `dps_reachable`).
    NetworkStage {
        /// Stable snake_case stage name.
        stage: String,
    },
    /// The device reported a DPS registration stage.
    RegistrationStage {
        /// Stable snake_case stage name.
        stage: String,
    },
    /// The link dropped; the workflow will reconnect and resume.
    LinkLost,
    /// Reconnected; the device reported its state and the workflow continues from there.
    Resumed {
        /// The device's state (snake_case).
        device_state: String,
    },
    /// The service has not caught up with the device yet; asking again.
    StatusPending {
        /// The service's status so far.
        status: String,
    },
    /// A service call (assignment or status) failed transiently and its source waits before
    /// trying again: "attempt `attempt` of `max_attempts` in `wait_ms`". The counts are the
    /// source's own (the layer that retries); the workflow does not retry on top.
    ServiceRetry {
        /// The attempt made after the wait (2 = the first retry). Serialised as
        /// `retry_attempt`: the event's own `attempt` (the step's) sits beside it once flattened.
        #[serde(rename = "retry_attempt")]
        attempt: u32,
        /// The source's attempt cap (the step's deadline may end the retries earlier).
        max_attempts: u32,
        /// The wait before that attempt, `Retry-After` included.
        wait_ms: u64,
        /// The server's `Retry-After`, when it sent one.
        retry_after_ms: Option<u64>,
        /// Why the last attempt failed (`unreachable`, `timed_out`, `http_503`, ...).
        reason: String,
    },
}

fn serialize_peripheral<S: serde::Serializer>(id: &PeripheralId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.0)
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressEvent {
    /// The step it belongs to.
    pub step: Step,
    /// What happened.
    #[serde(flatten)]
    pub kind: ProgressKind,
    /// Monotonic milliseconds since the commissioning started.
    pub at_ms: u64,
    /// Attempt number of this step (1 = first try; reconnects raise it).
    pub attempt: u32,
}

/// Receives progress events; implemented by shells (a uniffi callback interface, a Tauri
/// channel, the CLI's printer). Must not block.
pub trait ProgressListener: Send + Sync {
    /// Called for every event, in order.
    fn on_progress(&self, event: ProgressEvent);

    /// The device reported its DPS registration (`assigned`) over BLE, before the workflow
    /// confirms it with the registration-status source. A shell that journals attempts keeps
    /// it: if the source is unreachable, the queued confirmation is later compared with this
    /// full report (status, hub, device ID), not just the status. Ignored by default.
    fn on_device_report(&self, report: &DeviceRegistration) {
        let _ = report;
    }
}

/// Discards events.
#[derive(Debug, Clone, Copy, Default)]
pub struct IgnoreProgress;

impl ProgressListener for IgnoreProgress {
    fn on_progress(&self, _event: ProgressEvent) {}
}

impl ProgressListener for mpsc::UnboundedSender<ProgressEvent> {
    fn on_progress(&self, event: ProgressEvent) {
        // A listener that went away is not the workflow's problem.
        let _ = self.send(event);
    }
}

impl<F: Fn(ProgressEvent) + Send + Sync> ProgressListener for F {
    fn on_progress(&self, event: ProgressEvent) {
        self(event)
    }
}

/// A listener plus the stream of its events, for shells that prefer a stream.
pub fn progress_channel() -> (
    Arc<dyn ProgressListener>,
    mpsc::UnboundedReceiver<ProgressEvent>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(tx), rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_flat_with_a_kind_tag() {
        let event = ProgressEvent {
            step: Step::Connecting,
            kind: ProgressKind::Connected { mtu: 247 },
            at_ms: 120,
            attempt: 1,
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"step": "connecting", "kind": "connected", "mtu": 247, "at_ms": 120, "attempt": 1})
        );
    }

    #[test]
    fn a_service_retry_keeps_its_attempt_apart_from_the_steps() {
        let event = ProgressEvent {
            step: Step::AwaitingAssignment,
            kind: ProgressKind::ServiceRetry {
                attempt: 3,
                max_attempts: 5,
                wait_ms: 2_400,
                retry_after_ms: None,
                reason: "http_503".into(),
            },
            at_ms: 900,
            attempt: 1,
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["attempt"], 1, "the step's attempt");
        assert_eq!(value["retry_attempt"], 3, "the retry's own attempt");
        assert_eq!(value["max_attempts"], 5);
        assert_eq!(value["retry_after_ms"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn channel_listener_delivers_in_order() {
        let (listener, mut rx) = progress_channel();
        for at_ms in [1, 2] {
            listener.on_progress(ProgressEvent {
                step: Step::Scanning,
                kind: ProgressKind::Started,
                at_ms,
                attempt: 1,
            });
        }
        assert_eq!(rx.recv().await.unwrap().at_ms, 1);
        assert_eq!(rx.recv().await.unwrap().at_ms, 2);
    }
}
