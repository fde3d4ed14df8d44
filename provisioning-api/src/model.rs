//! Domain records: DPS instances, assignments, allowlist entries.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::{allocation::RateWindow, secret::SecretString};

/// Azure's documented cap of registrations per DPS instance.
pub const DEFAULT_REGISTRATION_CAP: u64 = 1_000_000;
/// Azure's documented limit of device registrations per minute per DPS instance.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u64 = 1_000;
/// Azure's global device provisioning endpoint.
pub const AZURE_GLOBAL_ENDPOINT: &str = "global.azure-devices-provisioning.net";

/// Whether an instance takes new devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceState {
    /// Takes new assignments.
    Active,
    /// Keeps its devices but takes no new assignments (being emptied or retired).
    Draining,
}

impl InstanceState {
    /// Stable snake_case name, as stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Draining => "draining",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            "draining" => Some(Self::Draining),
            _ => None,
        }
    }
}

/// The shared-access policy the API uses against an instance's DPS service API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
pub struct ServiceCredentials {
    /// Shared access policy name (`skn`), e.g. `provisioningserviceowner`.
    pub policy_name: String,
    /// The policy's key, base64. Write-only: never returned by the API.
    #[schema(value_type = String, format = Password)]
    pub key: SecretString,
    /// The `sr` the token is signed for; defaults to the host of `service_endpoint`.
    #[serde(default)]
    pub resource_uri: Option<String>,
}

/// A DPS instance to add to the pool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
pub struct NewDpsInstance {
    /// Instance name (unique in the pool), e.g. `dps-weu-1`.
    pub name: String,
    /// The instance's ID scope, e.g. `0ne000A1B2C`.
    pub id_scope: String,
    /// The device endpoint host devices register at (Azure's is the global endpoint).
    #[serde(default = "default_global_endpoint")]
    pub global_endpoint: String,
    /// Base URL of the instance's service API, e.g. `https://dps-weu-1.azure-devices-provisioning.net`.
    pub service_endpoint: String,
    /// Region label used by region-restricted requests, e.g. `westeurope`.
    pub region: String,
    /// Tenants allowed on this instance; empty means every tenant.
    #[serde(default)]
    pub allowed_tenants: Vec<String>,
    /// Registration cap (Azure: 1,000,000).
    #[serde(default = "default_registration_cap")]
    pub registration_cap: u64,
    /// Registrations per minute the API lets through to this instance (Azure: 1,000).
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_minute: u64,
    /// Credentials for the DPS service API (registration status look-ups).
    #[serde(default)]
    pub service_credentials: Option<ServiceCredentials>,
}

fn default_global_endpoint() -> String {
    AZURE_GLOBAL_ENDPOINT.to_owned()
}

fn default_registration_cap() -> u64 {
    DEFAULT_REGISTRATION_CAP
}

fn default_rate_limit() -> u64 {
    DEFAULT_RATE_LIMIT_PER_MINUTE
}

/// A DPS instance in the pool, with its counters.
#[derive(Debug, Clone, PartialEq)]
pub struct DpsInstance {
    /// Instance name.
    pub name: String,
    /// ID scope.
    pub id_scope: String,
    /// Device endpoint host.
    pub global_endpoint: String,
    /// Service API base URL.
    pub service_endpoint: String,
    /// Region label.
    pub region: String,
    /// Tenants allowed; empty = all.
    pub allowed_tenants: Vec<String>,
    /// Registration cap.
    pub registration_cap: u64,
    /// Registrations per minute allowed.
    pub rate_limit_per_minute: u64,
    /// Active or draining.
    pub state: InstanceState,
    /// Devices currently assigned here.
    pub registrations: u64,
    /// Recent assignment rate.
    pub rate: RateWindow,
    /// When it was added, unix ms.
    pub created_at_ms: i64,
    /// Service API credentials.
    pub service_credentials: Option<ServiceCredentials>,
}

impl DpsInstance {
    /// Whether `tenant` may be placed on this instance.
    pub fn serves_tenant(&self, tenant: &str) -> bool {
        self.allowed_tenants.is_empty() || self.allowed_tenants.iter().any(|t| t == tenant)
    }

    /// Whether the instance is in `region` (any region when `None`).
    pub fn in_region(&self, region: Option<&str>) -> bool {
        region.is_none_or(|r| r == self.region)
    }
}

/// Whether a device currently holds a slot on its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssignmentStatus {
    /// Holds a slot on `dps_instance`.
    Assigned,
    /// Released; `dps_instance` is where it last was.
    Deprovisioned,
}

impl AssignmentStatus {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::Deprovisioned => "deprovisioned",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "assigned" => Some(Self::Assigned),
            "deprovisioned" => Some(Self::Deprovisioned),
            _ => None,
        }
    }
}

/// A device's placement on a DPS instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Owning tenant.
    pub tenant: String,
    /// DPS registration ID.
    pub registration_id: String,
    /// Instance name.
    pub dps_instance: String,
    /// The instance's ID scope at assignment time.
    pub id_scope: String,
    /// The instance's device endpoint at assignment time.
    pub global_endpoint: String,
    /// The instance's region.
    pub region: String,
    /// Assigned or deprovisioned.
    pub status: AssignmentStatus,
    /// Bumped on every move to another instance (and on re-assignment after deprovisioning).
    pub generation: u64,
    /// First assignment, unix ms.
    pub assigned_at_ms: i64,
    /// Last change, unix ms.
    pub updated_at_ms: i64,
}

/// One hardware identifier from a manufacturing partner's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowlistEntry {
    /// The device's DPS registration ID.
    pub registration_id: String,
    /// Free text from the partner (batch, serial number), optional.
    pub label: Option<String>,
}

/// Outcome of importing an allowlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Newly listed identifiers.
    pub added: u64,
    /// Identifiers that were already on this tenant's list.
    pub already_listed: u64,
    /// Identifiers already owned by another tenant (refused).
    pub owned_by_other_tenant: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in [InstanceState::Active, InstanceState::Draining] {
            assert_eq!(InstanceState::parse(state.as_str()), Some(state));
        }
        for status in [AssignmentStatus::Assigned, AssignmentStatus::Deprovisioned] {
            assert_eq!(AssignmentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(InstanceState::parse("gone"), None);
    }

    #[test]
    fn new_instance_defaults_follow_azure_limits() {
        let spec: NewDpsInstance = serde_json::from_value(serde_json::json!({
            "name": "dps-1", "id_scope": "0ne0001", "service_endpoint": "https://dps-1.example",
            "region": "weu",
            "service_credentials": {"policy_name": "owner", "key": "a2V5"}
        }))
        .expect("valid spec");
        assert_eq!(spec.registration_cap, 1_000_000);
        assert_eq!(spec.rate_limit_per_minute, 1_000);
        assert_eq!(spec.global_endpoint, AZURE_GLOBAL_ENDPOINT);
        assert!(format!("{spec:?}").contains("<redacted>"));
        assert!(!format!("{spec:?}").contains("a2V5"));
    }
}
