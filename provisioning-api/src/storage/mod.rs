//! Persistent state behind one trait, [`Storage`], with two implementations run through the
//! same conformance suite (`tests/storage_conformance.rs`): [`SqliteStorage`] (embedded, WAL,
//! one dedicated thread) and [`PostgresStorage`] (sqlx, for several API replicas).
//!
//! Everything that must be atomic is one storage call: an assignment checks the allowlist,
//! reads the device's record, picks an instance with [`crate::allocation`], conditionally
//! increments that instance's counters and writes the record under the unique key
//! `(tenant, registration_id)`, all in one transaction.

mod plan;
mod postgres;
mod rows;
mod sealing;
mod sqlite;

use async_trait::async_trait;

pub use postgres::{PostgresOptions, PostgresStorage};
pub use sealing::{SECRETS_KEY_LEN, SecretsKey, SecretsKeyError, SecretsKeyring};
pub use sqlite::SqliteStorage;

use crate::{
    allocation::AllocationRefusal,
    model::{
        AllowlistEntry, Assignment, DpsInstance, ImportOutcome, InstanceState, NewDpsInstance,
    },
    secret::SecretString,
};

/// The schema, shared by both backends (portable SQL; `BIGINT` everywhere).
pub(crate) const SCHEMA: &str = include_str!("schema.sql");

/// The store failed (I/O, connection, corrupt row).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be reached or the statement failed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored row could not be decoded.
    #[error("corrupt stored record: {0}")]
    Corrupt(String),
    /// A secret is sealed with a key-encryption key that is not configured.
    #[error(
        "secrets_key_mismatch: stored secrets are sealed with secrets key {found}, but the \
         configured key(s) are {configured:?}: configure the key this database was sealed with \
         (secrets_key_file or FIELDLINK_API_SECRETS_KEY), or, while rotating, give the old key \
         as previous_secrets_key_file"
    )]
    SecretsKeyMismatch {
        /// Id of the key the value was sealed with.
        found: String,
        /// Ids of the configured keys (current first).
        configured: Vec<String>,
    },
    /// A sealed secret does not open under its own key: tampered, truncated, or copied from
    /// another row.
    #[error(
        "sealed_secret_invalid: the sealed {location} does not authenticate (tampered, or \
         copied from another row); restore it from a backup or replace the secret"
    )]
    SealedSecretInvalid {
        /// Column and row.
        location: String,
    },
    /// A plaintext secret was found where only sealed ones may be (after start-up).
    #[error(
        "secret_not_sealed: {location} is stored in plaintext; restart the API with its \
         secrets key so the start-up migration seals it"
    )]
    SecretNotSealed {
        /// Column and row.
        location: String,
    },
    /// The database holds plaintext secrets but only a temporary (ephemeral) key was given.
    #[error(
        "secrets_key_required: {location} is stored in plaintext and no secrets key is \
         configured to seal it; create one with `provisioning-api gen-secrets-key FILE` and \
         set secrets_key_file (see docs/provisioning-api.md, \"Secrets at rest\")"
    )]
    SecretsKeyRequired {
        /// Column and row.
        location: String,
    },
}

impl StorageError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "storage_unavailable",
            Self::Corrupt(_) => "storage_corrupt",
            Self::SecretsKeyMismatch { .. } => "secrets_key_mismatch",
            Self::SealedSecretInvalid { .. } => "sealed_secret_invalid",
            Self::SecretNotSealed { .. } => "secret_not_sealed",
            Self::SecretsKeyRequired { .. } => "secrets_key_required",
        }
    }
}

/// Why a pool change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No instance with that name.
    #[error("no DPS instance named {0:?}")]
    NotFound(String),
    /// The name or ID scope is taken.
    #[error("a DPS instance with this name or ID scope already exists")]
    AlreadyExists,
    /// Devices are still assigned to it.
    #[error("the DPS instance still holds {registrations} devices")]
    NotEmpty {
        /// Devices still assigned.
        registrations: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why an assignment (or move, or deprovisioning) was refused.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    /// The device is not on the tenant's allowlist.
    #[error("device is not on the tenant's allowlist")]
    NotAllowlisted,
    /// The device belongs to another tenant.
    #[error("device belongs to another tenant")]
    OtherTenant,
    /// A move or deprovisioning needs a current assignment.
    #[error("device has no current assignment")]
    NotAssigned,
    /// The requested target instance cannot take the device.
    #[error("target instance {name:?} cannot take the device: {reason}")]
    TargetUnavailable {
        /// Target name.
        name: String,
        /// Why (unknown, draining, full, rate, not for this tenant or region).
        reason: &'static str,
    },
    /// The pool has no room.
    #[error("no DPS instance can take the device: {0:?}")]
    Refused(AllocationRefusal),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What to do when the device already has an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignMode {
    /// Keep the current instance (a reprovision gets the same ID scope).
    Sticky,
    /// Re-run the policy with the device's own slot counted as free (may stay).
    Rebalance,
    /// Move to another instance: `target`, or the least-loaded other one.
    MoveToAnother {
        /// Explicit target instance.
        target: Option<String>,
    },
}

/// One assignment request.
#[derive(Debug, Clone)]
pub struct AssignRequest {
    /// Caller's tenant.
    pub tenant: String,
    /// DPS registration ID.
    pub registration_id: String,
    /// Region restriction.
    pub region: Option<String>,
    /// Sticky, rebalance or move.
    pub mode: AssignMode,
    /// Refuse devices that are not on the tenant's allowlist.
    pub require_allowlisted: bool,
    /// Current time, unix ms.
    pub now_ms: i64,
}

/// How the assignment came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignKind {
    /// A new placement (first time, or after deprovisioning).
    Created,
    /// The device keeps its current placement.
    Existing,
    /// The device moved; `from` is the instance it left.
    Moved {
        /// Previous instance.
        from: String,
    },
}

/// The result of [`Storage::assign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignOutcome {
    /// The device's placement now.
    pub assignment: Assignment,
    /// Created, existing or moved.
    pub kind: AssignKind,
}

/// What the store knows about a device, from one tenant's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceLookup {
    /// The device belongs to the caller's tenant.
    Owned {
        /// On the tenant's allowlist.
        allowlisted: bool,
        /// Its placement, if it ever had one.
        assignment: Option<Assignment>,
    },
    /// The device belongs to another tenant.
    OtherTenant,
    /// Nobody knows this device.
    Unknown,
}

/// A request to claim an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    /// Caller's tenant (keys are per tenant).
    pub tenant: String,
    /// The header value.
    pub key: String,
    /// Hash of the request body; the same key with another body is refused.
    pub fingerprint: String,
    /// Current time, unix ms.
    pub now_ms: i64,
    /// A pending claim older than this many ms is taken over (its holder died).
    pub stale_after_ms: i64,
    /// The record is forgotten after this time, unix ms.
    pub expires_at_ms: i64,
}

/// The result of [`Storage::claim_idempotency_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller holds the key and must complete or release it.
    Claimed,
    /// Another request holds it; try again shortly.
    InProgress,
    /// Done before: replay this response.
    Completed {
        /// The stored response body.
        response: String,
    },
    /// The key was used with a different request.
    Mismatch,
}

/// Lifecycle of a ticket signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKeyState {
    /// Signs new tickets.
    Current,
    /// Still trusted by devices; no longer signs.
    Previous,
}

impl TicketKeyState {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Previous => "previous",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "current" => Some(Self::Current),
            "previous" => Some(Self::Previous),
            _ => None,
        }
    }
}

/// A persisted Ed25519 ticket signing key.
#[derive(Debug, Clone)]
pub struct StoredTicketKey {
    /// Key id carried in tickets.
    pub key_id: String,
    /// PKCS#8 PEM of the private key (sealed at rest; see [`SecretsKeyring`]).
    pub private_pkcs8_pem: SecretString,
    /// The raw 32-byte public key.
    pub public_key: [u8; 32],
    /// Current or previous.
    pub state: TicketKeyState,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
}

/// The provisioning API's persistent state.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"` (metrics, logs).
    fn backend(&self) -> &'static str;

    /// Round trip to the database (readiness).
    async fn ping(&self) -> Result<(), StorageError>;

    /// Adds an instance to the pool (active, empty).
    async fn add_instance(
        &self,
        spec: NewDpsInstance,
        now_ms: i64,
    ) -> Result<DpsInstance, PoolError>;

    /// Every instance, by name.
    async fn list_instances(&self) -> Result<Vec<DpsInstance>, StorageError>;

    /// One instance.
    async fn instance(&self, name: &str) -> Result<Option<DpsInstance>, StorageError>;

    /// Drains or re-activates an instance.
    async fn set_instance_state(
        &self,
        name: &str,
        state: InstanceState,
    ) -> Result<DpsInstance, PoolError>;

    /// Removes an empty instance.
    async fn remove_instance(&self, name: &str) -> Result<(), PoolError>;

    /// Adds identifiers to `tenant`'s allowlist; identifiers owned by another tenant are
    /// refused (reported), duplicates are counted.
    async fn import_allowlist(
        &self,
        tenant: &str,
        entries: Vec<AllowlistEntry>,
        now_ms: i64,
    ) -> Result<ImportOutcome, StorageError>;

    /// Up to `limit` of `tenant`'s identifiers after `after`, in order.
    async fn allowlist_page(
        &self,
        tenant: &str,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<AllowlistEntry>, StorageError>;

    /// Removes one identifier from `tenant`'s list; `false` if it was not there.
    async fn remove_from_allowlist(
        &self,
        tenant: &str,
        registration_id: &str,
    ) -> Result<bool, StorageError>;

    /// A device as seen by `tenant`.
    async fn device(
        &self,
        tenant: &str,
        registration_id: &str,
    ) -> Result<DeviceLookup, StorageError>;

    /// Places (or keeps, or moves) a device, atomically.
    async fn assign(&self, request: AssignRequest) -> Result<AssignOutcome, AssignError>;

    /// Releases a device's slot; the record stays, marked deprovisioned. Deprovisioning a
    /// deprovisioned device returns it unchanged.
    async fn deprovision(
        &self,
        tenant: &str,
        registration_id: &str,
        now_ms: i64,
    ) -> Result<Assignment, AssignError>;

    /// Claims an idempotency key (see [`ClaimOutcome`]).
    async fn claim_idempotency_key(
        &self,
        claim: IdempotencyClaim,
    ) -> Result<ClaimOutcome, StorageError>;

    /// Stores the response of a claimed key.
    async fn complete_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        response: &str,
    ) -> Result<(), StorageError>;

    /// Gives a claimed key back (the request failed; a retry may run it again).
    async fn release_idempotency_key(&self, tenant: &str, key: &str) -> Result<(), StorageError>;

    /// Forgets idempotency records that expired before `now_ms`; returns how many.
    async fn purge_idempotency_keys(&self, now_ms: i64) -> Result<u64, StorageError>;

    /// Every ticket key (current and previous), newest first.
    async fn ticket_keys(&self) -> Result<Vec<StoredTicketKey>, StorageError>;

    /// Stores `key` as the current key. With `rotate`, the current key (if any) becomes
    /// previous in the same transaction; without, nothing is stored when a current key exists
    /// (returns `false`; used at start-up by racing replicas).
    async fn put_ticket_key(
        &self,
        key: StoredTicketKey,
        rotate: bool,
    ) -> Result<bool, StorageError>;

    /// Deletes a previous key; `false` if no such previous key.
    async fn retire_ticket_key(&self, key_id: &str) -> Result<bool, StorageError>;
}

/// Converts a stored `BIGINT` count to `u64`.
pub(crate) fn to_u64(value: i64, column: &str) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| StorageError::Corrupt(format!("negative {column}")))
}

/// Converts a count to a storable `BIGINT`.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
