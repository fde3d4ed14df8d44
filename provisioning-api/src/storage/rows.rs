//! Raw column values shared by both backends, and their conversion to domain records. Secret
//! columns are sealed here (on the way in) and opened here (on the way out), so both backends
//! share one code path (see [`super::sealing`]).

use super::{
    StorageError, StoredTicketKey, TicketKeyState,
    sealing::{SealedColumn, SecretsKeyring},
    to_i64, to_u64,
};
use crate::{
    allocation::RateWindow,
    model::{
        Assignment, AssignmentStatus, DpsInstance, InstanceState, NewDpsInstance,
        ServiceCredentials,
    },
};

/// Columns of `dps_instances`, in [`InstanceRow`] order.
pub(crate) const INSTANCE_COLUMNS: &str = "name, id_scope, global_endpoint, service_endpoint, \
    region, allowed_tenants, registration_cap, rate_limit_per_minute, state, registrations, \
    rate_minute, rate_count, rate_previous_count, service_policy_name, service_key, \
    service_resource_uri, created_at_ms";

/// Columns of `assignments`, in [`AssignmentRow`] order.
pub(crate) const ASSIGNMENT_COLUMNS: &str = "tenant, registration_id, dps_instance, id_scope, \
    global_endpoint, region, status, generation, assigned_at_ms, updated_at_ms";

/// One `dps_instances` row.
pub(crate) struct InstanceRow {
    pub name: String,
    pub id_scope: String,
    pub global_endpoint: String,
    pub service_endpoint: String,
    pub region: String,
    pub allowed_tenants: String,
    pub registration_cap: i64,
    pub rate_limit_per_minute: i64,
    pub state: String,
    pub registrations: i64,
    pub rate_minute: i64,
    pub rate_count: i64,
    pub rate_previous_count: i64,
    pub service_policy_name: Option<String>,
    pub service_key: Option<String>,
    pub service_resource_uri: Option<String>,
    pub created_at_ms: i64,
}

impl InstanceRow {
    /// The row for a newly added instance (its service key sealed).
    pub fn new(
        spec: NewDpsInstance,
        now_ms: i64,
        secrets: &SecretsKeyring,
    ) -> Result<Self, StorageError> {
        let (policy, key, resource) = match spec.service_credentials {
            Some(c) => (
                Some(c.policy_name),
                Some(secrets.seal(SealedColumn::DpsServiceKey, &spec.name, c.key.expose())?),
                c.resource_uri,
            ),
            None => (None, None, None),
        };
        Ok(Self {
            name: spec.name,
            id_scope: spec.id_scope,
            global_endpoint: spec.global_endpoint,
            service_endpoint: spec.service_endpoint,
            region: spec.region,
            allowed_tenants: serde_json::to_string(&spec.allowed_tenants)
                .map_err(|e| StorageError::Corrupt(e.to_string()))?,
            registration_cap: to_i64(spec.registration_cap),
            rate_limit_per_minute: to_i64(spec.rate_limit_per_minute),
            state: InstanceState::Active.as_str().to_owned(),
            registrations: 0,
            rate_minute: 0,
            rate_count: 0,
            rate_previous_count: 0,
            service_policy_name: policy,
            service_key: key,
            service_resource_uri: resource,
            created_at_ms: now_ms,
        })
    }

    /// Decodes the row (opening its service key).
    pub fn into_instance(self, secrets: &SecretsKeyring) -> Result<DpsInstance, StorageError> {
        let allowed_tenants: Vec<String> = serde_json::from_str(&self.allowed_tenants)
            .map_err(|e| StorageError::Corrupt(format!("allowed_tenants: {e}")))?;
        let state = InstanceState::parse(&self.state)
            .ok_or_else(|| StorageError::Corrupt(format!("instance state {:?}", self.state)))?;
        let service_credentials = match (self.service_policy_name, self.service_key) {
            (Some(policy_name), Some(key)) => Some(ServiceCredentials {
                policy_name,
                key: secrets.open(SealedColumn::DpsServiceKey, &self.name, &key)?,
                resource_uri: self.service_resource_uri,
            }),
            _ => None,
        };
        Ok(DpsInstance {
            name: self.name,
            id_scope: self.id_scope,
            global_endpoint: self.global_endpoint,
            service_endpoint: self.service_endpoint,
            region: self.region,
            allowed_tenants,
            registration_cap: to_u64(self.registration_cap, "registration_cap")?,
            rate_limit_per_minute: to_u64(self.rate_limit_per_minute, "rate_limit_per_minute")?,
            state,
            registrations: to_u64(self.registrations, "registrations")?,
            rate: RateWindow {
                minute: self.rate_minute,
                count: to_u64(self.rate_count, "rate_count")?,
                previous_count: to_u64(self.rate_previous_count, "rate_previous_count")?,
            },
            created_at_ms: self.created_at_ms,
            service_credentials,
        })
    }
}

/// One `assignments` row.
pub(crate) struct AssignmentRow {
    pub tenant: String,
    pub registration_id: String,
    pub dps_instance: String,
    pub id_scope: String,
    pub global_endpoint: String,
    pub region: String,
    pub status: String,
    pub generation: i64,
    pub assigned_at_ms: i64,
    pub updated_at_ms: i64,
}

impl AssignmentRow {
    /// Decodes the row.
    pub fn into_assignment(self) -> Result<Assignment, StorageError> {
        Ok(Assignment {
            status: AssignmentStatus::parse(&self.status).ok_or_else(|| {
                StorageError::Corrupt(format!("assignment status {:?}", self.status))
            })?,
            generation: to_u64(self.generation, "generation")?,
            tenant: self.tenant,
            registration_id: self.registration_id,
            dps_instance: self.dps_instance,
            id_scope: self.id_scope,
            global_endpoint: self.global_endpoint,
            region: self.region,
            assigned_at_ms: self.assigned_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

/// Encodes a public key for the `ticket_keys.public_key` column.
pub(crate) fn encode_public_key(key: &[u8; 32]) -> String {
    hex::encode(key)
}

/// Decodes [`encode_public_key`].
pub(crate) fn decode_public_key(value: &str) -> Result<[u8; 32], StorageError> {
    let bytes =
        hex::decode(value).map_err(|e| StorageError::Corrupt(format!("public key: {e}")))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| StorageError::Corrupt("public key is not 32 bytes".to_owned()))
}

/// One `ticket_keys` row as stored: key id, sealed private key, public key (hex), state,
/// creation time.
pub(crate) type TicketKeyColumns = (String, String, String, String, i64);

/// Decodes a `ticket_keys` row (opening its private key).
pub(crate) fn ticket_key_from(
    (key_id, sealed, public, state, created_at_ms): TicketKeyColumns,
    secrets: &SecretsKeyring,
) -> Result<StoredTicketKey, StorageError> {
    Ok(StoredTicketKey {
        public_key: decode_public_key(&public)?,
        state: TicketKeyState::parse(&state)
            .ok_or_else(|| StorageError::Corrupt(format!("ticket key state {state:?}")))?,
        private_pkcs8_pem: secrets.open(SealedColumn::TicketPrivateKey, &key_id, &sealed)?,
        key_id,
        created_at_ms,
    })
}

/// The stored (sealed) form of a ticket key's private key.
pub(crate) fn sealed_ticket_key(
    key: &StoredTicketKey,
    secrets: &SecretsKeyring,
) -> Result<String, StorageError> {
    secrets.seal(
        SealedColumn::TicketPrivateKey,
        &key.key_id,
        key.private_pkcs8_pem.expose(),
    )
}
