//! The API's JSON shapes the client reads and writes (a subset: unknown fields are ignored so
//! the API may add some), and what the client makes of them.

use ed25519_dalek::VerifyingKey;
use fieldlink_protocol::ticket::{SignedTicket, decode_verifying_key};
use serde::{Deserialize, Serialize};

use super::error::ApiClientError;
use crate::assignment::{Assignment, RegistrationView};

/// `POST /v1/assignments` body.
#[derive(Debug, Serialize)]
pub(crate) struct AssignmentRequest<'a> {
    pub registration_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
}

/// `POST /v1/assignments` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct AssignmentBody {
    registration_id: String,
    tenant: String,
    dps_instance: String,
    id_scope: String,
    global_endpoint: String,
    region: String,
    generation: u64,
    outcome: String,
    ticket: String,
}

/// An assignment as the API issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedAssignment {
    /// The ticket and its summary, as the workflow uses it.
    pub assignment: Assignment,
    /// The tenant the device belongs to.
    pub tenant: String,
    /// The DPS device endpoint the ticket names.
    pub global_endpoint: String,
    /// The DPS instance's region.
    pub region: String,
    /// Bumped each time the device moves to another instance.
    pub generation: u64,
    /// `created`, `existing` (sticky) or `moved`.
    pub outcome: String,
    /// The API replayed the stored answer to an earlier request with the same
    /// `Idempotency-Key` (`Idempotent-Replayed: true`).
    pub replayed: bool,
}

impl AssignmentBody {
    /// Checks the answer against the request and decodes the ticket.
    pub(crate) fn into_issued(
        self,
        registration_id: &str,
        replayed: bool,
    ) -> Result<IssuedAssignment, ApiClientError> {
        let invalid = |detail: String| ApiClientError::InvalidAnswer { detail };
        if self.registration_id != registration_id {
            return Err(invalid(format!(
                "asked for {registration_id:?}, got an assignment for {:?}",
                self.registration_id
            )));
        }
        let ticket = SignedTicket::from_base64url(&self.ticket)
            .map_err(|error| invalid(format!("unreadable ticket: {error}")))?;
        let claims = ticket
            .claims_unverified()
            .map_err(|error| invalid(format!("unreadable ticket claims: {error}")))?;
        if claims.registration_id != registration_id
            || claims.id_scope != self.id_scope
            || claims.dps_instance != self.dps_instance
        {
            return Err(invalid(
                "the ticket's claims do not match the assignment it came with".to_owned(),
            ));
        }
        let assignment =
            Assignment::from_ticket(ticket).map_err(|error| invalid(error.to_string()))?;
        Ok(IssuedAssignment {
            assignment,
            tenant: self.tenant,
            global_endpoint: self.global_endpoint,
            region: self.region,
            generation: self.generation,
            outcome: self.outcome,
            replayed,
        })
    }
}

/// `GET /v1/devices/{id}/registration` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct RegistrationBody {
    registration_id: String,
    dps_instance: String,
    id_scope: String,
    registered: bool,
    status: String,
    #[serde(default)]
    substatus: Option<String>,
    #[serde(default)]
    assigned_hub: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    cached: bool,
}

/// DPS's registration record of a device, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRegistration {
    /// What the workflow compares with the device's report.
    pub view: RegistrationView,
    /// The DPS instance the API asked.
    pub dps_instance: String,
    /// Its ID scope.
    pub id_scope: String,
    /// Whether DPS has a record at all (`false`: the device has not registered yet).
    pub registered: bool,
    /// Served from the API's short cache.
    pub cached: bool,
}

impl RegistrationBody {
    pub(crate) fn into_registration(
        self,
        registration_id: &str,
    ) -> Result<ServiceRegistration, ApiClientError> {
        if self.registration_id != registration_id {
            return Err(ApiClientError::InvalidAnswer {
                detail: format!(
                    "asked for {registration_id:?}, got the registration of {:?}",
                    self.registration_id
                ),
            });
        }
        Ok(ServiceRegistration {
            view: RegistrationView {
                status: self.status,
                assigned_hub: self.assigned_hub,
                device_id: self.device_id,
                substatus: self.substatus,
                error_code: self.error_code.and_then(|code| u32::try_from(code).ok()),
            },
            dps_instance: self.dps_instance,
            id_scope: self.id_scope,
            registered: self.registered,
            cached: self.cached,
        })
    }
}

/// `GET /v1/ticket-keys` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct TicketKeySetBody {
    keys: Vec<TicketKeyBody>,
}

#[derive(Debug, Deserialize)]
struct TicketKeyBody {
    key_id: String,
    algorithm: String,
    public_key: String,
    state: String,
}

/// A key the API signs tickets with (devices hold these as trust anchors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketKey {
    /// The key id tickets carry.
    pub key_id: String,
    /// The Ed25519 public key.
    pub public_key: VerifyingKey,
    /// Signs new tickets (`false`: a previous key, still trusted during rotation).
    pub current: bool,
}

impl TicketKeySetBody {
    pub(crate) fn into_keys(self) -> Result<Vec<TicketKey>, ApiClientError> {
        self.keys
            .into_iter()
            .map(|key| {
                if key.algorithm != "Ed25519" {
                    return Err(ApiClientError::InvalidAnswer {
                        detail: format!(
                            "ticket key {:?} uses {:?}, not Ed25519",
                            key.key_id, key.algorithm
                        ),
                    });
                }
                let public_key = decode_verifying_key(&key.public_key).map_err(|error| {
                    ApiClientError::InvalidAnswer {
                        detail: format!("ticket key {:?}: {error}", key.key_id),
                    }
                })?;
                Ok(TicketKey {
                    current: key.state == "current",
                    key_id: key.key_id,
                    public_key,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use fieldlink_protocol::ticket::{TicketClaims, TicketSigner, encode_verifying_key};
    use serde_json::json;

    use super::*;

    fn ticket(registration_id: &str, id_scope: &str) -> String {
        let signer = TicketSigner::new("k1", SigningKey::from_bytes(&[3; 32]));
        signer
            .sign(&TicketClaims {
                key_id: "k1".into(),
                registration_id: registration_id.into(),
                id_scope: id_scope.into(),
                global_endpoint: "global.example".into(),
                tenant: "acme".into(),
                dps_instance: "dps-1".into(),
                not_before: 0,
                expires_at: 600,
                nonce: [9; 16],
            })
            .to_base64url()
    }

    fn body(registration_id: &str, ticket: String) -> AssignmentBody {
        serde_json::from_value(json!({
            "registration_id": registration_id, "tenant": "acme", "dps_instance": "dps-1",
            "id_scope": "0ne001", "global_endpoint": "global.example", "region": "weu",
            "generation": 1, "outcome": "created", "previous_instance": null,
            "assigned_at": "2026-01-01T00:00:00.000Z", "ticket": ticket,
            "ticket_key_id": "k1", "ticket_not_before": 0, "ticket_expires_at": 600,
            "ticket_nonce": "09", "some_future_field": true
        }))
        .unwrap()
    }

    #[test]
    fn an_assignment_is_checked_against_the_request_and_its_ticket() {
        let issued = body("sensor-1", ticket("sensor-1", "0ne001"))
            .into_issued("sensor-1", true)
            .unwrap();
        assert_eq!(issued.assignment.id_scope, "0ne001");
        assert_eq!(issued.assignment.dps_instance, "dps-1");
        assert_eq!(issued.assignment.expires_at, 600);
        assert!(issued.replayed);
        for (wrong, reason) in [
            (
                body("sensor-2", ticket("sensor-2", "0ne001")),
                "another device",
            ),
            (
                body("sensor-1", ticket("sensor-2", "0ne001")),
                "ticket for another",
            ),
            (
                body("sensor-1", ticket("sensor-1", "0ne999")),
                "ticket scope differs",
            ),
            (body("sensor-1", "not-a-ticket".into()), "garbage ticket"),
        ] {
            assert!(
                matches!(
                    wrong.into_issued("sensor-1", false),
                    Err(ApiClientError::InvalidAnswer { .. })
                ),
                "{reason}"
            );
        }
    }

    #[test]
    fn registration_and_ticket_keys_decode() {
        let registration: RegistrationBody = serde_json::from_value(json!({
            "registration_id": "sensor-1", "dps_instance": "dps-1", "id_scope": "0ne001",
            "registered": true, "status": "assigned", "substatus": "initialAssignment",
            "assigned_hub": "hub.example", "device_id": "sensor-1", "error_code": null,
            "error_message": null, "fetched_at": "x", "cached": false
        }))
        .unwrap();
        let registration = registration.into_registration("sensor-1").unwrap();
        assert_eq!(
            registration.view.assigned_hub.as_deref(),
            Some("hub.example")
        );
        assert!(registration.registered);
        let key = SigningKey::from_bytes(&[4; 32]).verifying_key();
        let set: TicketKeySetBody = serde_json::from_value(json!({"keys": [
            {"key_id": "k2", "algorithm": "Ed25519", "public_key": encode_verifying_key(&key),
             "state": "current", "created_at": "x"}
        ]}))
        .unwrap();
        let keys = set.into_keys().unwrap();
        assert_eq!(keys[0].public_key, key);
        assert!(keys[0].current);
        let bad: TicketKeySetBody = serde_json::from_value(json!({"keys": [
            {"key_id": "k3", "algorithm": "RS256", "public_key": "AA", "state": "current"}
        ]}))
        .unwrap();
        assert!(bad.into_keys().is_err());
    }
}
