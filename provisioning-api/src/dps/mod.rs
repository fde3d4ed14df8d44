//! The DPS service API, as the provisioning API uses it: Device Registration State – Get
//! (`GET https://{dps}/registrations/{id}?api-version=2021-10-01`, service SAS). The client sits
//! behind [`DpsServiceClient`] so the retry/cache layer ([`status::RegistrationStatus`]) is
//! tested without a server.

pub mod http;
pub mod status;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{DpsInstance, ServiceCredentials};

/// The DPS REST API version this client speaks.
pub const DPS_API_VERSION: &str = "2021-10-01";

/// Where and how to reach one instance's service API.
#[derive(Debug, Clone)]
pub struct DpsServiceTarget {
    /// Instance name (cache and throttle key).
    pub instance: String,
    /// Base URL of the service API.
    pub service_endpoint: String,
    /// Shared-access policy.
    pub credentials: ServiceCredentials,
}

impl DpsServiceTarget {
    /// The target for `instance`, if it has service credentials.
    pub fn of(instance: &DpsInstance) -> Option<Self> {
        Some(Self {
            instance: instance.name.clone(),
            service_endpoint: instance.service_endpoint.clone(),
            credentials: instance.service_credentials.clone()?,
        })
    }
}

fn lenient_code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Code {
        Number(i64),
        Text(String),
    }
    Ok(match Option::<Code>::deserialize(deserializer)? {
        Some(Code::Number(n)) => Some(n),
        Some(Code::Text(text)) => text.parse().ok(),
        None => None,
    })
}

/// DPS's `DeviceRegistrationState`, as the service API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRegistrationState {
    /// Registration ID.
    pub registration_id: String,
    /// First registration.
    #[serde(default)]
    pub created_date_time_utc: Option<String>,
    /// The IoT hub DPS assigned.
    #[serde(default)]
    pub assigned_hub: Option<String>,
    /// The device ID in that hub.
    #[serde(default)]
    pub device_id: Option<String>,
    /// `unassigned`, `assigning`, `assigned`, `failed` or `disabled`.
    pub status: String,
    /// `initialAssignment`, `deviceDataMigrated`, `deviceDataReset`, `reprovisionedToInitialAssignment`.
    #[serde(default)]
    pub substatus: Option<String>,
    /// DPS error code of a failed registration.
    #[serde(default, deserialize_with = "lenient_code")]
    pub error_code: Option<i64>,
    /// DPS error message of a failed registration.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Last update.
    #[serde(default)]
    pub last_updated_date_time_utc: Option<String>,
    /// Entity tag.
    #[serde(default)]
    pub etag: Option<String>,
}

/// The answer to a registration-state look-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationLookup {
    /// DPS has a registration record.
    Found(Box<DeviceRegistrationState>),
    /// DPS has none (404): the device has not registered yet.
    NotFound,
}

/// Why a look-up failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpsServiceError {
    /// 429: DPS throttled us.
    #[error("DPS throttled the request")]
    Throttled {
        /// DPS's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// 5xx, timeout or connection failure.
    #[error("DPS is unavailable: {message}")]
    Unavailable {
        /// DPS's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        /// What failed.
        message: String,
    },
    /// 401/403: our service credentials were refused.
    #[error("DPS refused the service credentials (HTTP {status})")]
    CredentialsRejected {
        /// HTTP status.
        status: u16,
    },
    /// Any other answer.
    #[error("unexpected DPS answer: {message}")]
    Unexpected {
        /// What came back.
        message: String,
    },
}

/// The DPS service API operations the provisioning API needs.
#[async_trait]
pub trait DpsServiceClient: Send + Sync + 'static {
    /// Device Registration State – Get.
    async fn registration_state(
        &self,
        target: &DpsServiceTarget,
        registration_id: &str,
        now_unix: i64,
    ) -> Result<RegistrationLookup, DpsServiceError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let state: DeviceRegistrationState = serde_json::from_str(
            r#"{"registrationId":"dev-1","createdDateTimeUtc":"2024-01-01T00:00:00Z",
                "assignedHub":"hub-1.azure-devices.net","deviceId":"dev-1","status":"assigned",
                "substatus":"initialAssignment","lastUpdatedDateTimeUtc":"2024-01-01T00:00:01Z",
                "etag":"IjAwMDAi","errorCode":"400209","unknownField":1}"#,
        )
        .expect("documented shape");
        assert_eq!(state.status, "assigned");
        assert_eq!(
            state.assigned_hub.as_deref(),
            Some("hub-1.azure-devices.net")
        );
        assert_eq!(state.error_code, Some(400_209));
        let minimal: DeviceRegistrationState =
            serde_json::from_str(r#"{"registrationId":"d","status":"failed","errorCode":401002}"#)
                .expect("minimal");
        assert_eq!(minimal.error_code, Some(401_002));
        let _ = RegistrationLookup::Found(Box::new(minimal));
    }
}
