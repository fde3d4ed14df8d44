//! DPS JSON bodies (camelCase, as in the Azure device REST API).

use serde::{Deserialize, Serialize};

use super::{RegistrationState, RegistrationStatus};

/// Body of the register and status-lookup requests.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeviceRegistration<'a> {
    pub registration_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a serde_json::Value>,
}

/// `RegistrationOperationStatus`: the answer to register and operation polls.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OperationStatus {
    pub operation_id: Option<String>,
    pub status: Option<String>,
    pub registration_state: Option<DeviceRegistrationResult>,
}

/// `DeviceRegistrationResult`: the registration state (also the status lookup's answer).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeviceRegistrationResult {
    pub registration_id: Option<String>,
    pub status: Option<String>,
    pub assigned_hub: Option<String>,
    pub device_id: Option<String>,
    pub substatus: Option<String>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
}

/// `ProvisioningServiceErrorDetails`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorDetails {
    pub error_code: Option<i64>,
    pub message: Option<String>,
}

impl DeviceRegistrationResult {
    pub(crate) fn into_state(self, fallback_registration_id: &str) -> Option<RegistrationState> {
        let status = RegistrationStatus::parse(self.status.as_deref()?);
        Some(RegistrationState {
            registration_id: self
                .registration_id
                .unwrap_or_else(|| fallback_registration_id.to_owned()),
            status,
            assigned_hub: self.assigned_hub.filter(|hub| !hub.is_empty()),
            device_id: self.device_id.filter(|id| !id.is_empty()),
            substatus: self.substatus,
            error_code: self.error_code,
            error_message: self.error_message,
        })
    }
}
