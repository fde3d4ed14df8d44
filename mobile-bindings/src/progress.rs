//! Progress events: the core's [`fieldlink_core::workflow::ProgressEvent`] as records, and the
//! app's listener (a callback interface) adapted to the core's listener trait.

use fieldlink_core::{error::Step as CoreStep, workflow};

/// A step of one commissioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Step {
    /// Looking for the device's advertisement.
    Scanning,
    /// Opening the BLE link.
    Connecting,
    /// PAKE handshake (round trip 1).
    Handshaking,
    /// Waiting for the signed ticket.
    AwaitingAssignment,
    /// Pushing the ticket and network settings (round trip 2).
    Provisioning,
    /// The device is joining the network.
    JoiningNetwork,
    /// The device is registering with DPS.
    Registering,
    /// Comparing the device's report with the provisioning service's view.
    Confirming,
}

impl From<CoreStep> for Step {
    fn from(step: CoreStep) -> Self {
        match step {
            CoreStep::Scanning => Step::Scanning,
            CoreStep::Connecting => Step::Connecting,
            CoreStep::Handshaking => Step::Handshaking,
            CoreStep::AwaitingAssignment => Step::AwaitingAssignment,
            CoreStep::Provisioning => Step::Provisioning,
            CoreStep::JoiningNetwork => Step::JoiningNetwork,
            CoreStep::Registering => Step::Registering,
            CoreStep::Confirming => Step::Confirming,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ProgressKind {
    /// The step began (or began again, with a higher attempt).
    Started,
    /// The step finished successfully.
    Completed,
    /// The device was seen advertising.
    DeviceFound {
        /// The app's peripheral handle.
        peripheral_id: String,
        /// Signal strength, dBm.
        rssi: Option<i16>,
    },
    /// The link is up.
    Connected {
        /// Negotiated ATT MTU.
        mtu: u16,
    },
    /// A network-join stage (`associating`, `authenticated`, `got_ip`, ...).
    NetworkStage {
        /// Stable snake_case stage name.
        stage: String,
    },
    /// A DPS registration stage.
    RegistrationStage {
        /// Stable snake_case stage name.
        stage: String,
    },
    /// The link dropped; the core reconnects and resumes.
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
    /// A service call failed transiently; the API client waits `wait_ms`, then makes attempt
    /// `attempt` of `max_attempts` (the client's own counts: the core does not retry on top).
    ServiceRetry {
        /// The attempt made after the wait (2 = the first retry).
        attempt: u32,
        /// The client's attempt cap.
        max_attempts: u32,
        /// The wait, `Retry-After` included.
        wait_ms: u64,
        /// The server's `Retry-After`, when it sent one.
        retry_after_ms: Option<u64>,
        /// Why the last attempt failed (`unreachable`, `timed_out`, `http_503`, ...).
        reason: String,
    },
}

impl From<workflow::ProgressKind> for ProgressKind {
    fn from(kind: workflow::ProgressKind) -> Self {
        use workflow::ProgressKind as Core;
        match kind {
            Core::Started => Self::Started,
            Core::Completed => Self::Completed,
            Core::DeviceFound { peripheral, rssi } => Self::DeviceFound {
                peripheral_id: peripheral.0,
                rssi,
            },
            Core::Connected { mtu } => Self::Connected { mtu },
            Core::NetworkStage { stage } => Self::NetworkStage { stage },
            Core::RegistrationStage { stage } => Self::RegistrationStage { stage },
            Core::LinkLost => Self::LinkLost,
            Core::Resumed { device_state } => Self::Resumed { device_state },
            Core::StatusPending { status } => Self::StatusPending { status },
            Core::ServiceRetry {
                attempt,
                max_attempts,
                wait_ms,
                retry_after_ms,
                reason,
            } => Self::ServiceRetry {
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
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProgressEvent {
    /// The step it belongs to.
    pub step: Step,
    /// What happened.
    pub kind: ProgressKind,
    /// Milliseconds since the commissioning started (monotonic).
    pub at_ms: u64,
    /// Attempt number of this step (1 = first try; reconnects raise it).
    pub attempt: u32,
}

impl From<workflow::ProgressEvent> for ProgressEvent {
    fn from(event: workflow::ProgressEvent) -> Self {
        Self {
            step: event.step.into(),
            kind: event.kind.into(),
            at_ms: event.at_ms,
            attempt: event.attempt,
        }
    }
}

/// Receives progress events, in order, from a Rust runtime thread. Must return quickly: hop to
/// the UI thread (Android `Handler`/`Dispatchers.Main`, iOS `DispatchQueue.main`) to draw.
#[uniffi::export(callback_interface)]
pub trait ProgressListener: Send + Sync {
    /// One event.
    fn on_progress(&self, event: ProgressEvent);
}

/// The core's listener over an app's listener.
pub(crate) struct ForeignProgress(pub(crate) Box<dyn ProgressListener>);

impl workflow::ProgressListener for ForeignProgress {
    fn on_progress(&self, event: workflow::ProgressEvent) {
        self.0.on_progress(event.into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use fieldlink_core::transport::PeripheralId;
    use workflow::ProgressListener as _;

    use super::*;

    struct Collect(Arc<Mutex<Vec<ProgressEvent>>>);

    impl ProgressListener for Collect {
        fn on_progress(&self, event: ProgressEvent) {
            self.0.lock().unwrap().push(event);
        }
    }

    #[test]
    fn core_events_reach_the_app_listener_converted() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let adapter = ForeignProgress(Box::new(Collect(seen.clone())));
        adapter.on_progress(workflow::ProgressEvent {
            step: CoreStep::Scanning,
            kind: workflow::ProgressKind::DeviceFound {
                peripheral: PeripheralId("aa:bb".into()),
                rssi: Some(-40),
            },
            at_ms: 12,
            attempt: 1,
        });
        adapter.on_progress(workflow::ProgressEvent {
            step: CoreStep::Registering,
            kind: workflow::ProgressKind::RegistrationStage {
                stage: "assigning".into(),
            },
            at_ms: 50,
            attempt: 2,
        });
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen[0],
            ProgressEvent {
                step: Step::Scanning,
                kind: ProgressKind::DeviceFound {
                    peripheral_id: "aa:bb".into(),
                    rssi: Some(-40)
                },
                at_ms: 12,
                attempt: 1,
            }
        );
        assert_eq!(seen[1].step, Step::Registering);
        assert_eq!(seen[1].attempt, 2);
    }

    #[test]
    fn service_retries_keep_every_count_and_the_reason() {
        let retry = |retry_after_ms| workflow::ProgressKind::ServiceRetry {
            attempt: 3,
            max_attempts: 5,
            wait_ms: 2_400,
            retry_after_ms,
            reason: "http_503".into(),
        };
        assert_eq!(
            ProgressKind::from(retry(Some(2_000))),
            ProgressKind::ServiceRetry {
                attempt: 3,
                max_attempts: 5,
                wait_ms: 2_400,
                retry_after_ms: Some(2_000),
                reason: "http_503".into(),
            }
        );
        assert!(matches!(
            ProgressKind::from(retry(None)),
            ProgressKind::ServiceRetry {
                retry_after_ms: None,
                ..
            }
        ));
    }
}
