//! Configuration of one API process (all replicas of a deployment share it).

use std::time::Duration;

use crate::{
    auth::TrustedIssuer, dps::status::RegistrationStatusConfig, model::NewDpsInstance,
    ticketing::TicketPolicy,
};

/// Everything the API needs besides its storage.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Issuers whose bearer tokens are accepted.
    pub issuers: Vec<TrustedIssuer>,
    /// The tenant whose admins administer the DPS pool and ticket keys.
    pub operator_tenant: String,
    /// Clock skew allowed on token `exp`/`nbf`, seconds.
    pub token_leeway_s: i64,
    /// Ticket lifetime and `not_before` skew.
    pub ticket: TicketPolicy,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    /// How long a duplicate request waits for the first one to finish before answering
    /// `idempotency_key_in_progress`.
    pub idempotency_wait: Duration,
    /// Refuse devices that are not on the tenant's allowlist (turn off only in sandboxes).
    pub allowlist_enforced: bool,
    /// Registration-status look-ups.
    pub registration_status: RegistrationStatusConfig,
    /// Per-request deadline.
    pub request_timeout: Duration,
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// Largest allowlist import accepted.
    pub max_allowlist_bytes: usize,
    /// Instances added to the pool at start-up when absent (existing ones are left as they
    /// are).
    pub dps_pool: Vec<NewDpsInstance>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            operator_tenant: "operator".to_owned(),
            token_leeway_s: 30,
            ticket: TicketPolicy::default(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_wait: Duration::from_secs(10),
            allowlist_enforced: true,
            registration_status: RegistrationStatusConfig::default(),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            max_allowlist_bytes: 64 * 1024 * 1024,
            dps_pool: Vec::new(),
        }
    }
}
