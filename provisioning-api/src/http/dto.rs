//! Request and response bodies (JSON, snake_case).

use fieldlink_protocol::ticket::encode_verifying_key;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    clock::rfc3339_ms,
    dps::{DeviceRegistrationState, RegistrationLookup},
    model::{Assignment, DpsInstance},
    storage::TicketKeyState,
    ticketing::PublicTicketKey,
};

/// `POST /v1/assignments`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRequest {
    /// The device's DPS registration ID (from its QR label).
    #[schema(example = "sensor-00042")]
    pub registration_id: String,
    /// Place the device in this region only.
    #[serde(default)]
    #[schema(example = "westeurope")]
    pub region: Option<String>,
    /// Re-run the allocation for an already assigned device (admin only); otherwise a repeat
    /// returns the device's current assignment (sticky).
    #[serde(default)]
    pub rebalance: bool,
}

/// `POST /v1/devices/{registrationId}/reprovision`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReprovisionRequest {
    /// Move to this instance; default: the least-loaded other eligible instance.
    #[serde(default)]
    pub target_instance: Option<String>,
    /// Region restriction for the automatic choice.
    #[serde(default)]
    pub region: Option<String>,
}

/// How an assignment came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentOutcome {
    /// A new placement.
    Created,
    /// The device's existing placement (sticky).
    Existing,
    /// The device moved to another instance.
    Moved,
}

/// An assignment with its signed commissioning ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssignmentResponse {
    /// DPS registration ID.
    pub registration_id: String,
    /// Owning tenant.
    pub tenant: String,
    /// DPS instance name.
    pub dps_instance: String,
    /// The instance's ID scope.
    pub id_scope: String,
    /// The device endpoint to register at.
    pub global_endpoint: String,
    /// The instance's region.
    pub region: String,
    /// Bumped on each move.
    pub generation: u64,
    /// Created, existing or moved.
    pub outcome: AssignmentOutcome,
    /// The instance the device left (moves only).
    pub previous_instance: Option<String>,
    /// When the device got this placement (RFC 3339).
    pub assigned_at: String,
    /// The signed ticket (`SignedTicket::to_base64url`), to push to the device.
    pub ticket: String,
    /// The key that signed the ticket.
    pub ticket_key_id: String,
    /// Ticket validity start, unix seconds.
    pub ticket_not_before: i64,
    /// Ticket expiry, unix seconds.
    pub ticket_expires_at: i64,
    /// The ticket's nonce, hex.
    pub ticket_nonce: String,
}

/// A device's placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssignmentView {
    /// DPS instance name.
    pub dps_instance: String,
    /// ID scope.
    pub id_scope: String,
    /// Device endpoint.
    pub global_endpoint: String,
    /// Region.
    pub region: String,
    /// `assigned` or `deprovisioned`.
    pub status: String,
    /// Bumped on each move.
    pub generation: u64,
    /// When the device got this placement (RFC 3339).
    pub assigned_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl From<&Assignment> for AssignmentView {
    fn from(a: &Assignment) -> Self {
        Self {
            dps_instance: a.dps_instance.clone(),
            id_scope: a.id_scope.clone(),
            global_endpoint: a.global_endpoint.clone(),
            region: a.region.clone(),
            status: a.status.as_str().to_owned(),
            generation: a.generation,
            assigned_at: rfc3339_ms(a.assigned_at_ms),
            updated_at: rfc3339_ms(a.updated_at_ms),
        }
    }
}

/// A device as its tenant sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    /// DPS registration ID.
    pub registration_id: String,
    /// Owning tenant.
    pub tenant: String,
    /// On the tenant's allowlist.
    pub allowlisted: bool,
    /// `assigned`, `deprovisioned` or `unassigned`.
    pub status: String,
    /// Its placement, if it ever had one.
    pub assignment: Option<AssignmentView>,
}

impl DeviceView {
    /// The view of a device of `tenant`: its status is its placement's, `unassigned` without
    /// one.
    pub fn new(
        registration_id: String,
        tenant: String,
        allowlisted: bool,
        assignment: Option<&Assignment>,
    ) -> Self {
        Self {
            status: assignment
                .map_or("unassigned", |a| a.status.as_str())
                .to_owned(),
            assignment: assignment.map(AssignmentView::from),
            registration_id,
            tenant,
            allowlisted,
        }
    }
}

/// DPS's registration record of a device, via the DPS service API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegistrationStatusView {
    /// DPS registration ID.
    pub registration_id: String,
    /// The DPS instance asked.
    pub dps_instance: String,
    /// Its ID scope.
    pub id_scope: String,
    /// Whether DPS has a registration record (false: the device has not registered yet).
    pub registered: bool,
    /// DPS status: `unassigned`, `assigning`, `assigned`, `failed` or `disabled`.
    pub status: String,
    /// DPS substatus.
    pub substatus: Option<String>,
    /// The IoT hub DPS assigned.
    pub assigned_hub: Option<String>,
    /// The device ID in that hub.
    pub device_id: Option<String>,
    /// DPS error code of a failed registration.
    pub error_code: Option<i64>,
    /// DPS error message.
    pub error_message: Option<String>,
    /// DPS `createdDateTimeUtc`.
    pub created_at: Option<String>,
    /// DPS `lastUpdatedDateTimeUtc`.
    pub last_updated_at: Option<String>,
    /// DPS `etag`.
    pub etag: Option<String>,
    /// When DPS was asked (RFC 3339).
    pub fetched_at: String,
    /// Served from the API's short cache.
    pub cached: bool,
}

impl RegistrationStatusView {
    /// Builds the view from DPS's answer.
    pub fn new(
        assignment: &Assignment,
        lookup: &RegistrationLookup,
        fetched_at_ms: i64,
        cached: bool,
    ) -> Self {
        let empty = DeviceRegistrationState {
            registration_id: assignment.registration_id.clone(),
            created_date_time_utc: None,
            assigned_hub: None,
            device_id: None,
            status: "unassigned".to_owned(),
            substatus: None,
            error_code: None,
            error_message: None,
            last_updated_date_time_utc: None,
            etag: None,
        };
        let (registered, state) = match lookup {
            RegistrationLookup::Found(state) => (true, (**state).clone()),
            RegistrationLookup::NotFound => (false, empty),
        };
        Self {
            registration_id: assignment.registration_id.clone(),
            dps_instance: assignment.dps_instance.clone(),
            id_scope: assignment.id_scope.clone(),
            registered,
            status: state.status,
            substatus: state.substatus,
            assigned_hub: state.assigned_hub,
            device_id: state.device_id,
            error_code: state.error_code,
            error_message: state.error_message,
            created_at: state.created_date_time_utc,
            last_updated_at: state.last_updated_date_time_utc,
            etag: state.etag,
            fetched_at: rfc3339_ms(fetched_at_ms),
            cached,
        }
    }
}

/// A DPS instance and its utilisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    /// Instance name.
    pub name: String,
    /// ID scope.
    pub id_scope: String,
    /// Device endpoint.
    pub global_endpoint: String,
    /// Service API base URL.
    pub service_endpoint: String,
    /// Region.
    pub region: String,
    /// Tenants allowed (empty: all).
    pub allowed_tenants: Vec<String>,
    /// `active` or `draining`.
    pub state: String,
    /// Devices assigned.
    pub registrations: u64,
    /// Registration cap (Azure: 1,000,000).
    pub registration_cap: u64,
    /// registrations / registration_cap.
    pub registration_utilisation: f64,
    /// Assignments in the last minute (sliding-window estimate, rounded).
    pub registrations_last_minute: u64,
    /// Registrations-per-minute limit (Azure: 1,000).
    pub rate_limit_per_minute: u64,
    /// registrations_last_minute / rate_limit_per_minute.
    pub rate_utilisation: f64,
    /// Whether service credentials are configured (the key itself is never returned).
    pub has_service_credentials: bool,
    /// When it joined the pool (RFC 3339).
    pub created_at: String,
}

fn ratio(value: f64, limit: u64) -> f64 {
    if limit == 0 {
        1.0
    } else {
        value / limit as f64
    }
}

impl InstanceView {
    /// Builds the view at `now_ms`.
    pub fn new(i: &DpsInstance, now_ms: i64) -> Self {
        let last_minute = i.rate.estimate(now_ms);
        Self {
            name: i.name.clone(),
            id_scope: i.id_scope.clone(),
            global_endpoint: i.global_endpoint.clone(),
            service_endpoint: i.service_endpoint.clone(),
            region: i.region.clone(),
            allowed_tenants: i.allowed_tenants.clone(),
            state: i.state.as_str().to_owned(),
            registrations: i.registrations,
            registration_cap: i.registration_cap,
            registration_utilisation: ratio(i.registrations as f64, i.registration_cap),
            registrations_last_minute: last_minute.round() as u64,
            rate_limit_per_minute: i.rate_limit_per_minute,
            rate_utilisation: ratio(last_minute, i.rate_limit_per_minute),
            has_service_credentials: i.service_credentials.is_some(),
            created_at: rfc3339_ms(i.created_at_ms),
        }
    }
}

/// The pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceList {
    /// Instances, by name.
    pub instances: Vec<InstanceView>,
}

/// Result of an allowlist import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    /// Rows received.
    pub received: u64,
    /// Newly listed.
    pub added: u64,
    /// Already on this tenant's list.
    pub already_listed: u64,
    /// Refused: listed by another tenant.
    pub owned_by_other_tenant: u64,
    /// The first hundred refused identifiers.
    pub owned_by_other_tenant_ids: Vec<String>,
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllowlistItem {
    /// DPS registration ID.
    pub registration_id: String,
    /// Partner's label.
    pub label: Option<String>,
}

/// A page of the tenant's allowlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllowlistPage {
    /// Entries in registration-ID order.
    pub entries: Vec<AllowlistItem>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// A ticket-verification key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketKeyView {
    /// Key id, as carried in tickets.
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The public key: base64url (no padding) of its 32 bytes.
    pub public_key: String,
    /// `current` (signs new tickets) or `previous` (still trusted).
    pub state: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

impl From<&PublicTicketKey> for TicketKeyView {
    fn from(k: &PublicTicketKey) -> Self {
        let public_key = ed25519_dalek::VerifyingKey::from_bytes(&k.public_key)
            .map(|key| encode_verifying_key(&key))
            .unwrap_or_default();
        Self {
            key_id: k.key_id.clone(),
            algorithm: "Ed25519".to_owned(),
            public_key,
            state: match k.state {
                TicketKeyState::Current => "current",
                TicketKeyState::Previous => "previous",
            }
            .to_owned(),
            created_at: rfc3339_ms(k.created_at_ms),
        }
    }
}

/// Every trusted ticket key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketKeySet {
    /// Current first, then previous keys, newest first.
    pub keys: Vec<TicketKeyView>,
}

/// Liveness / readiness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// `ok` or `ready`.
    pub status: String,
    /// Storage backend (readiness only).
    pub storage: Option<String>,
}
