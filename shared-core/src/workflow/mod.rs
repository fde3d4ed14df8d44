//! The commissioning workflow: a sans-I/O state machine and the async driver that runs it.

pub mod progress;
pub mod report;

pub use progress::{
    IgnoreProgress, ProgressEvent, ProgressKind, ProgressListener, progress_channel,
};
pub use report::{CommissioningReport, DeviceRegistration, LinkCounters, StepTiming};
