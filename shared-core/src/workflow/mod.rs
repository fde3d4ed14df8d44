//! The commissioning workflow: a sans-I/O state machine ([`Commissioning`]) and the async
//! driver that runs it ([`Commissioner`]).

mod driver;
mod machine;
pub mod progress;
pub mod report;
pub mod service_call;
pub mod state;
pub(crate) mod wire;

pub use driver::{Commissioner, NetworkCorrection};
pub use progress::{
    IgnoreProgress, ProgressEvent, ProgressKind, ProgressListener, progress_channel,
};
pub use report::{CommissioningReport, DeviceRegistration, LinkCounters, StepTiming, StepTimings};
pub use service_call::{ServiceCallScope, ServiceRetry};
pub use state::{
    Action, CommissionRequest, Commissioning, CommissioningConfig, DiscriminatorMatch, Input,
    State, StepDeadlines,
};

#[cfg(test)]
mod tests;
