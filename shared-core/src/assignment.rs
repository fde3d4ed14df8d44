//! Where the installer gets a device's signed ticket ([`AssignmentSource`]) and how it checks
//! what DPS recorded ([`RegistrationStatusSource`]).
//!
//! The provisioning-API client implements both over HTTP; [`LocalAssignmentSigner`] signs
//! tickets in-process (tests, the demo, air-gapped sites).

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use fieldlink_protocol::ticket::{SignedTicket, TicketClaims, TicketSigner};

/// One device's assignment: the ticket to push plus what the installer may read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The signed ticket, pushed to the device as is.
    pub ticket: SignedTicket,
    /// The DPS ID scope the ticket names.
    pub id_scope: String,
    /// The DPS instance the service chose.
    pub dps_instance: String,
    /// Ticket expiry (unix seconds).
    pub expires_at: i64,
}

impl Assignment {
    /// Reads the (unverified) claims of `ticket` to fill in the summary fields.
    pub fn from_ticket(ticket: SignedTicket) -> Result<Self, ServiceError> {
        let claims = ticket
            .claims_unverified()
            .map_err(|error| ServiceError::Invalid {
                detail: format!("the service returned an unreadable ticket: {error}"),
            })?;
        Ok(Self {
            ticket,
            id_scope: claims.id_scope,
            dps_instance: claims.dps_instance,
            expires_at: claims.expires_at,
        })
    }
}

/// What a registration-status source knows about one registration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegistrationView {
    /// DPS `status` (`unassigned`, `assigning`, `assigned`, `failed`, `disabled`).
    pub status: String,
    /// The IoT hub DPS assigned, when assigned.
    pub assigned_hub: Option<String>,
    /// The device ID in that hub, when assigned.
    pub device_id: Option<String>,
    /// DPS `substatus` (`initialAssignment`, `reprovisionedToInitialAssignment`, ...).
    pub substatus: Option<String>,
    /// DPS `errorCode`, when failed.
    pub error_code: Option<u32>,
}

/// Failures of the provisioning service as seen by the installer (internal tier).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// Unreachable, 5xx, or an unexpected answer.
    #[error("service unavailable: {detail}")]
    Unavailable {
        /// Secret-free description.
        detail: String,
    },
    /// 429 or 503 with `Retry-After`.
    #[error("throttled")]
    Throttled {
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// 401.
    #[error("unauthorized")]
    Unauthorized,
    /// 403.
    #[error("forbidden")]
    Forbidden,
    /// The service does not know this registration.
    #[error("unknown registration {registration_id}")]
    UnknownRegistration {
        /// The registration ID asked for.
        registration_id: String,
    },
    /// The service answered with something unusable.
    #[error("invalid answer: {detail}")]
    Invalid {
        /// Secret-free description.
        detail: String,
    },
    /// The service answered about another DPS instance / ID scope than the device's ticket
    /// names (the device was moved meanwhile): a contradiction, not an outage.
    #[error(
        "the service reports the registration in DPS {reported} but the device's ticket names \
         {expected}"
    )]
    ScopeMismatch {
        /// The ID scope and instance of the device's ticket.
        expected: DpsScope,
        /// The ID scope and instance the service answered about.
        reported: DpsScope,
        /// What the service reported there.
        view: Box<RegistrationView>,
    },
}

/// A DPS instance and its ID scope.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DpsScope {
    /// DPS ID scope.
    pub id_scope: String,
    /// DPS instance name.
    pub dps_instance: String,
}

impl DpsScope {
    /// The scope of `assignment`'s ticket.
    pub fn of(assignment: &Assignment) -> Self {
        Self {
            id_scope: assignment.id_scope.clone(),
            dps_instance: assignment.dps_instance.clone(),
        }
    }
}

impl fmt::Display for DpsScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "id_scope {} ({})", self.id_scope, self.dps_instance)
    }
}

impl ServiceError {
    /// Whether a retry with backoff may help, and the server's hint.
    pub fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            ServiceError::Unavailable { .. } => Some(None),
            ServiceError::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The public error a commissioning fails with for this service failure: the same mapping
    /// the workflow applies, for shells that call a source outside a commissioning (a
    /// registration-status query).
    pub fn to_commission_error(&self) -> crate::CommissionError {
        crate::failure::service(self)
    }
}

/// Gives the installer a signed ticket for a device.
#[async_trait]
pub trait AssignmentSource: Send + Sync {
    /// The assignment for `registration_id` (from the device's QR label).
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError>;
}

/// Tells the installer what DPS recorded for a registration.
#[async_trait]
pub trait RegistrationStatusSource: Send + Sync {
    /// The registration state of `registration_id` within the assignment's DPS scope.
    async fn registration_status(
        &self,
        registration_id: String,
        assignment: Assignment,
    ) -> Result<RegistrationView, ServiceError>;
}

/// Wall-clock source in unix seconds (injected so tests can move time).
pub type UnixClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock as a [`UnixClock`].
pub fn system_clock() -> UnixClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    })
}

/// DPS coordinates a [`LocalAssignmentSigner`] writes into every ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpsTarget {
    /// DPS ID scope.
    pub id_scope: String,
    /// DPS global endpoint host (or `host:port` of an emulator).
    pub global_endpoint: String,
    /// Tenant.
    pub tenant: String,
    /// DPS instance name.
    pub dps_instance: String,
}

/// Signs tickets in-process with a [`TicketSigner`].
pub struct LocalAssignmentSigner {
    signer: TicketSigner,
    target: DpsTarget,
    validity: Duration,
    clock: UnixClock,
}

impl fmt::Debug for LocalAssignmentSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalAssignmentSigner")
            .field("signer", &self.signer)
            .field("target", &self.target)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl LocalAssignmentSigner {
    /// Tickets valid for 10 minutes from the system clock.
    pub fn new(signer: TicketSigner, target: DpsTarget) -> Self {
        Self {
            signer,
            target,
            validity: Duration::from_secs(600),
            clock: system_clock(),
        }
    }

    /// Changes how long tickets stay valid.
    pub fn with_validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }

    /// Uses another clock (tests: expired or future tickets).
    pub fn with_clock(mut self, clock: UnixClock) -> Self {
        self.clock = clock;
        self
    }

    /// Signs a ticket for `registration_id` now.
    pub fn sign_for(&self, registration_id: &str) -> SignedTicket {
        let now = (self.clock)();
        let validity = i64::try_from(self.validity.as_secs()).unwrap_or(i64::MAX);
        let claims = TicketClaims {
            key_id: self.signer.key_id().to_owned(),
            registration_id: registration_id.to_owned(),
            id_scope: self.target.id_scope.clone(),
            global_endpoint: self.target.global_endpoint.clone(),
            tenant: self.target.tenant.clone(),
            dps_instance: self.target.dps_instance.clone(),
            // A minute of grace for device clocks running slightly behind.
            not_before: now.saturating_sub(60),
            expires_at: now.saturating_add(validity),
            nonce: TicketClaims::random_nonce(&mut rand::rngs::OsRng),
        };
        self.signer.sign(&claims)
    }
}

#[async_trait]
impl AssignmentSource for LocalAssignmentSigner {
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
        Assignment::from_ticket(self.sign_for(&registration_id))
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use fieldlink_protocol::ticket::TrustAnchors;

    use super::*;

    fn target() -> DpsTarget {
        DpsTarget {
            id_scope: "0ne000TEST".into(),
            global_endpoint: "127.0.0.1:1".into(),
            tenant: "acme".into(),
            dps_instance: "dps-1".into(),
        }
    }

    #[tokio::test]
    async fn local_signer_issues_verifiable_tickets() {
        let signer = TicketSigner::new("k1", SigningKey::from_bytes(&[7; 32]));
        let anchors = TrustAnchors::new().with_key("k1", signer.verifying_key());
        let source =
            LocalAssignmentSigner::new(signer, target()).with_clock(Arc::new(|| 1_000_000));
        let assignment = source.assignment("dev-1".into()).await.unwrap();
        assert_eq!(assignment.id_scope, "0ne000TEST");
        assert_eq!(assignment.expires_at, 1_000_600);
        let claims = anchors
            .verify(&assignment.ticket, 1_000_010, "dev-1")
            .unwrap();
        assert_eq!(claims.dps_instance, "dps-1");
        assert!(
            anchors
                .verify(&assignment.ticket, 1_000_600, "dev-1")
                .is_err()
        );
        let again = source.assignment("dev-1".into()).await.unwrap();
        assert_ne!(
            again.ticket.claims_unverified().unwrap().nonce,
            claims.nonce,
            "every ticket has a fresh nonce"
        );
    }

    #[test]
    fn retry_hints() {
        assert_eq!(
            ServiceError::Unavailable { detail: "x".into() }.retry_hint(),
            Some(None)
        );
        let throttled = ServiceError::Throttled {
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(throttled.retry_hint(), Some(Some(Duration::from_secs(2))));
        assert_eq!(ServiceError::Forbidden.retry_hint(), None);
    }
}
