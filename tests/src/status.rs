//! A [`RegistrationStatusSource`] that reads the DPS emulator's registration records.

use async_trait::async_trait;
use fieldlink_core::assignment::{
    Assignment, RegistrationStatusSource, RegistrationView, ServiceError,
};
use fieldlink_dps_emulator::EmulatorControl;

/// Reads registration state straight from the in-process DPS emulator (what the provisioning
/// API would report after asking DPS).
#[derive(Debug, Clone)]
pub struct EmulatorStatusSource {
    control: EmulatorControl,
}

impl EmulatorStatusSource {
    /// A source over `control`.
    pub fn new(control: EmulatorControl) -> Self {
        Self { control }
    }
}

#[async_trait]
impl RegistrationStatusSource for EmulatorStatusSource {
    async fn registration_status(
        &self,
        registration_id: String,
        assignment: Assignment,
    ) -> Result<RegistrationView, ServiceError> {
        let Some(state) = self
            .control
            .registration_state(&assignment.dps_instance, &registration_id)
        else {
            return Ok(RegistrationView {
                status: "unassigned".into(),
                assigned_hub: None,
                device_id: None,
                substatus: None,
                error_code: None,
            });
        };
        let substatus = state
            .substatus
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(str::to_owned));
        Ok(RegistrationView {
            status: state.status.as_str().to_owned(),
            assigned_hub: state.assigned_hub,
            device_id: state.device_id,
            substatus,
            error_code: state.error_code.and_then(|code| u32::try_from(code).ok()),
        })
    }
}
