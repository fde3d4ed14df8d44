//! DPS wire types, with the field names of Azure's REST reference (camelCase).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The API version Azure documents for the device and service APIs.
pub const API_VERSION: &str = "2021-10-01";

/// Every `api-version` the emulator accepts. The Node.js and C SDKs still send `2019-03-31`.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["2019-03-31", "2021-06-01", API_VERSION];

/// Formats a time the way DPS does: RFC 3339, UTC, seven fractional digits, `Z`.
pub fn timestamp_utc(at: DateTime<Utc>) -> String {
    use chrono::Timelike as _;
    // chrono has no `%.7f`; DPS prints 100-ns ticks.
    let ticks = at.nanosecond() % 1_000_000_000 / 100;
    format!("{}.{ticks:07}Z", at.format("%Y-%m-%dT%H:%M:%S"))
}

/// `ProvisioningServiceErrorDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    /// `HTTP status × 1000 + detail`.
    pub error_code: i32,
    /// A fresh GUID per error.
    pub tracking_id: String,
    /// Human-readable message.
    pub message: String,
    /// When the error happened.
    pub timestamp_utc: String,
    /// Extra detail (`null` when there is none).
    #[serde(default)]
    pub info: Value,
}

/// A registration's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RegistrationStatus {
    /// Not assigned.
    Unassigned,
    /// Assignment in progress.
    Assigning,
    /// Assigned to a hub.
    Assigned,
    /// Assignment failed (see `errorCode`/`errorMessage`).
    Failed,
    /// The enrollment is disabled.
    Disabled,
}

impl RegistrationStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unassigned => "unassigned",
            Self::Assigning => "assigning",
            Self::Assigned => "assigned",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }
}

/// Substatus of an `assigned` registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Substatus {
    /// First assignment to a hub.
    InitialAssignment,
    /// Moved to another hub with its data.
    DeviceDataMigrated,
    /// Moved to another hub, data reset from the enrollment.
    DeviceDataReset,
    /// Reprovisioned to the hub it was first assigned to.
    ReprovisionedToInitialAssignment,
}

/// `SymmetricKeyRegistrationResult`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymmetricKeyRegistrationResult {
    /// The enrollment group the device authenticated through, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub enrollment_group_id: Option<String>,
}

/// `DeviceRegistrationResult` (device API): the fields of [`DeviceRegistrationState`], in the
/// same order, then the attestation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRegistrationResult {
    /// The registration as the service API shows it.
    #[serde(flatten)]
    pub state: DeviceRegistrationState,
    /// Symmetric-key attestation result.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub symmetric_key: Option<SymmetricKeyRegistrationResult>,
}

impl DeviceRegistrationResult {
    /// The service-API view of the same registration.
    pub fn to_state(&self) -> DeviceRegistrationState {
        self.state.clone()
    }
}

/// `RegistrationOperationStatus` (register and operation-status responses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationOperationStatus {
    /// Operation ID.
    pub operation_id: String,
    /// Status.
    pub status: RegistrationStatus,
    /// The registration, once there is something to show.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub registration_state: Option<DeviceRegistrationResult>,
}

/// `DeviceRegistration`: the register request body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRegistration {
    /// Must equal the registration ID in the path.
    #[serde(default)]
    pub registration_id: Option<String>,
    /// Custom allocation payload (accepted and stored).
    #[serde(default)]
    pub payload: Option<Value>,
    /// TPM attestation (refused: symmetric keys only).
    #[serde(default)]
    pub tpm: Option<Value>,
}

/// `DeviceRegistrationState` (service API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRegistrationState {
    /// The registration ID.
    pub registration_id: String,
    /// First registration time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created_date_time_utc: Option<String>,
    /// Assigned IoT hub host name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub assigned_hub: Option<String>,
    /// Device ID in the hub.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device_id: Option<String>,
    /// Status.
    pub status: RegistrationStatus,
    /// Substatus (assigned only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub substatus: Option<Substatus>,
    /// Error code (failed only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_code: Option<i32>,
    /// Error message (failed only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_message: Option<String>,
    /// Last update time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_updated_date_time_utc: Option<String>,
    /// Entity tag.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
    /// Custom allocation payload.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payload: Option<Value>,
}

impl DeviceRegistrationState {
    /// A registration with only its ID and status (every optional field absent).
    pub fn new(registration_id: &str, status: RegistrationStatus) -> Self {
        Self {
            registration_id: registration_id.to_owned(),
            created_date_time_utc: None,
            assigned_hub: None,
            device_id: None,
            status,
            substatus: None,
            error_code: None,
            error_message: None,
            last_updated_date_time_utc: None,
            etag: None,
            payload: None,
        }
    }
}

/// Whether an enrollment accepts registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProvisioningStatus {
    /// Registrations are assigned.
    #[default]
    Enabled,
    /// Registrations end `disabled`.
    Disabled,
}

/// An enrollment-level allocation policy (`allocationPolicy` on an enrollment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EnrollmentAllocationPolicy {
    /// Evenly weighted by a hash of the registration ID.
    Hashed,
    /// Treated like `hashed` (there is no geography on loopback).
    GeoLatency,
    /// The single hub in `iotHubs`.
    Static,
}

/// Symmetric keys of an enrollment. `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymmetricKeyAttestation {
    /// Base64 primary key (generated when absent).
    #[serde(default)]
    pub primary_key: Option<String>,
    /// Base64 secondary key (generated when absent).
    #[serde(default)]
    pub secondary_key: Option<String>,
}

impl fmt::Debug for SymmetricKeyAttestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKeyAttestation(<redacted>)")
    }
}

/// `AttestationMechanism`. Only `symmetricKey` is emulated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationMechanism {
    /// `symmetricKey`, `x509`, `tpm` or `none`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The keys, for `symmetricKey`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub symmetric_key: Option<SymmetricKeyAttestation>,
}

impl AttestationMechanism {
    /// A symmetric-key attestation with the given base64 keys.
    pub fn symmetric_key(primary_key: &str, secondary_key: &str) -> Self {
        Self {
            kind: "symmetricKey".to_owned(),
            symmetric_key: Some(SymmetricKeyAttestation {
                primary_key: Some(primary_key.to_owned()),
                secondary_key: Some(secondary_key.to_owned()),
            }),
        }
    }
}

/// `IndividualEnrollment` (the fields the emulator acts on; the others are stored and echoed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualEnrollment {
    /// The device's registration ID.
    pub registration_id: String,
    /// Device ID in the hub (defaults to the registration ID).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device_id: Option<String>,
    /// How the device authenticates.
    pub attestation: AttestationMechanism,
    /// Linked hubs this enrollment may use (host names); all linked hubs when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iot_hubs: Option<Vec<String>>,
    /// Deprecated single-hub form of `iotHubs`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iot_hub_host_name: Option<String>,
    /// Enabled or disabled.
    #[serde(default)]
    pub provisioning_status: ProvisioningStatus,
    /// Overrides the instance's allocation policy.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub allocation_policy: Option<EnrollmentAllocationPolicy>,
    /// Stored and echoed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub initial_twin: Option<Value>,
    /// Stored and echoed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub capabilities: Option<Value>,
    /// Stored and echoed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reprovision_policy: Option<Value>,
    /// Stored and echoed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub optional_device_information: Option<Value>,
    /// Current registration (output only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub registration_state: Option<DeviceRegistrationState>,
    /// Entity tag (output only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
    /// Creation time (output only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created_date_time_utc: Option<String>,
    /// Last update time (output only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_updated_date_time_utc: Option<String>,
}

impl IndividualEnrollment {
    /// An enabled symmetric-key enrollment.
    pub fn symmetric_key(registration_id: &str, primary_key: &str, secondary_key: &str) -> Self {
        Self {
            registration_id: registration_id.to_owned(),
            device_id: None,
            attestation: AttestationMechanism::symmetric_key(primary_key, secondary_key),
            iot_hubs: None,
            iot_hub_host_name: None,
            provisioning_status: ProvisioningStatus::Enabled,
            allocation_policy: None,
            initial_twin: None,
            capabilities: None,
            reprovision_policy: None,
            optional_device_information: None,
            registration_state: None,
            etag: None,
            created_date_time_utc: None,
            last_updated_date_time_utc: None,
        }
    }
}

/// `EnrollmentGroup` (symmetric-key groups only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentGroup {
    /// The group's ID.
    pub enrollment_group_id: String,
    /// The group keys; device keys are derived from them.
    pub attestation: AttestationMechanism,
    /// Linked hubs this group may use; all linked hubs when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iot_hubs: Option<Vec<String>>,
    /// Deprecated single-hub form of `iotHubs`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iot_hub_host_name: Option<String>,
    /// Enabled or disabled.
    #[serde(default)]
    pub provisioning_status: ProvisioningStatus,
    /// Overrides the instance's allocation policy.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub allocation_policy: Option<EnrollmentAllocationPolicy>,
    /// Stored and echoed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub initial_twin: Option<Value>,
    /// Stored and echoed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub capabilities: Option<Value>,
    /// Stored and echoed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reprovision_policy: Option<Value>,
    /// Entity tag (output only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
    /// Creation time (output only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created_date_time_utc: Option<String>,
    /// Last update time (output only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_updated_date_time_utc: Option<String>,
}

impl EnrollmentGroup {
    /// An enabled symmetric-key group.
    pub fn symmetric_key(
        enrollment_group_id: &str,
        primary_key: &str,
        secondary_key: &str,
    ) -> Self {
        Self {
            enrollment_group_id: enrollment_group_id.to_owned(),
            attestation: AttestationMechanism::symmetric_key(primary_key, secondary_key),
            iot_hubs: None,
            iot_hub_host_name: None,
            provisioning_status: ProvisioningStatus::Enabled,
            allocation_policy: None,
            initial_twin: None,
            capabilities: None,
            reprovision_policy: None,
            etag: None,
            created_date_time_utc: None,
            last_updated_date_time_utc: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_seven_fraction_digits() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp_utc(at), "2026-01-02T03:04:05.1234567Z");
    }

    fn full_result() -> DeviceRegistrationResult {
        DeviceRegistrationResult {
            state: DeviceRegistrationState {
                registration_id: "dev-1".to_owned(),
                created_date_time_utc: Some("2026-01-02T03:04:05.1234567Z".to_owned()),
                assigned_hub: Some("hub-a.azure-devices.net".to_owned()),
                device_id: Some("device-1".to_owned()),
                status: RegistrationStatus::Assigned,
                substatus: Some(Substatus::InitialAssignment),
                error_code: Some(400_209),
                error_message: Some("message".to_owned()),
                last_updated_date_time_utc: Some("2026-01-02T03:04:06.0000000Z".to_owned()),
                etag: Some("\"etag\"".to_owned()),
                payload: Some(serde_json::json!({ "k": 1 })),
            },
            symmetric_key: Some(SymmetricKeyRegistrationResult {
                enrollment_group_id: Some("group".to_owned()),
            }),
        }
    }

    #[test]
    fn registration_results_and_states_keep_their_wire_form() {
        let result = full_result();
        let expected = r#"{"registrationId":"dev-1","createdDateTimeUtc":"2026-01-02T03:04:05.1234567Z","assignedHub":"hub-a.azure-devices.net","deviceId":"device-1","status":"assigned","substatus":"initialAssignment","errorCode":400209,"errorMessage":"message","lastUpdatedDateTimeUtc":"2026-01-02T03:04:06.0000000Z","etag":"\"etag\"","payload":{"k":1}"#;
        let text = serde_json::to_string(&result).unwrap();
        assert_eq!(
            text,
            format!(r#"{expected},"symmetricKey":{{"enrollmentGroupId":"group"}}}}"#)
        );
        assert_eq!(
            serde_json::from_str::<DeviceRegistrationResult>(&text).unwrap(),
            result
        );
        assert_eq!(
            serde_json::to_string(&result.to_state()).unwrap(),
            format!("{expected}}}")
        );
        let stub = DeviceRegistrationResult {
            state: DeviceRegistrationState::new("dev-1", RegistrationStatus::Assigning),
            symmetric_key: None,
        };
        assert_eq!(
            serde_json::to_string(&stub).unwrap(),
            r#"{"registrationId":"dev-1","status":"assigning"}"#
        );
    }

    #[test]
    fn keys_are_redacted_in_debug() {
        let enrollment = IndividualEnrollment::symmetric_key("dev-1", "c2VjcmV0", "b3RoZXI=");
        let debug = format!("{enrollment:?}");
        assert!(!debug.contains("c2VjcmV0"));
        assert!(debug.contains("<redacted>"));
    }
}
