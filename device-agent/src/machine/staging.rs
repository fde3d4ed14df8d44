//! Ticket checks, staging, commit and rollback over the persisted state (pure functions).
//!
//! A ticket is staged whole (with its candidate network) in one atomic save, with the fail-safe
//! deadline and its burnt nonce in the same record: a ticket is single-use from the moment it is
//! staged, so neither a rollback (installer `Cancel`, fail-safe expiry, DPS refusal) nor a crash
//! between staging and commit makes it presentable again. Commit (on DPS `assigned`) and rollback (on failure, fail-safe
//! expiry, or an expired staging found at boot) are single saves too, so the device is never
//! half-configured: it has either the old committed state or the new one.

use std::time::Duration;

use fieldlink_protocol::ticket::{SignedTicket, TicketClaims, TicketError, TrustAnchors};

use crate::clock::duration_ms;
use crate::store::{CommittedAssignment, PersistedState, StagedCommissioning, StoredNetwork};

/// Why a pushed ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketRejection {
    /// Signature, key, validity or device checks failed.
    #[error(transparent)]
    Invalid(#[from] TicketError),
    /// Its nonce belongs to a ticket this device already staged (committed or rolled back).
    #[error("ticket was already used on this device; request a new ticket")]
    Replayed,
}

impl TicketRejection {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(error) => error.code(),
            Self::Replayed => "ticket_replayed",
        }
    }
}

/// Builds the protocol's trust anchors from the stored records (bad records are skipped and
/// reported, never fatal: a device with no usable anchor just refuses every ticket).
pub fn trust_anchors(state: &PersistedState) -> (TrustAnchors, Vec<String>) {
    let mut anchors = TrustAnchors::new();
    let mut problems = Vec::new();
    for record in &state.trust_anchors {
        let key = hex::decode(&record.public_key)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .and_then(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok());
        match key {
            Some(key) => anchors.insert(record.key_id.clone(), key),
            None => problems.push(format!(
                "trust anchor {:?} is not an Ed25519 key",
                record.key_id
            )),
        }
    }
    (anchors, problems)
}

/// Verifies a ticket for this device: trust anchors, own registration ID, validity window, and
/// the burnt-nonce set. The ticket that is staged right now is not a replay of itself (an
/// installer re-sending it while the staging waits for a corrected network replaces the staging
/// whole).
pub fn check_ticket(
    anchors: &TrustAnchors,
    ticket: &SignedTicket,
    state: &PersistedState,
    now_unix: i64,
) -> Result<TicketClaims, TicketRejection> {
    let claims = anchors.verify(ticket, now_unix, &state.identity.registration_id)?;
    let staged_now = state
        .staged
        .as_ref()
        .is_some_and(|staged| staged.nonce == hex::encode(claims.nonce));
    if state.nonce_seen(&claims.nonce) && !staged_now {
        return Err(TicketRejection::Replayed);
    }
    Ok(claims)
}

/// Stages a verified ticket, burns its nonce and arms the fail-safe (`window` from `now_ms`),
/// all in the one state the caller then saves atomically.
pub fn stage(
    state: &mut PersistedState,
    ticket: &SignedTicket,
    claims: &TicketClaims,
    network: Option<StoredNetwork>,
    now_ms: u64,
    window: Duration,
) {
    state.staged = Some(StagedCommissioning {
        ticket: ticket.to_base64url(),
        nonce: hex::encode(claims.nonce),
        id_scope: claims.id_scope.clone(),
        global_endpoint: claims.global_endpoint.clone(),
        tenant: claims.tenant.clone(),
        dps_instance: claims.dps_instance.clone(),
        expires_at: claims.expires_at,
        network,
        staged_at_ms: now_ms,
        fail_safe_deadline_ms: now_ms.saturating_add(duration_ms(window)),
        operation_id: None,
    });
    let now_unix = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    state.burn_nonce(&claims.nonce, claims.expires_at, now_unix);
}

/// Drops the staged commissioning; returns it (its candidate network must be undone by
/// restoring `state.network.current`). Its nonce stays burnt: a rolled-back ticket is not
/// replayable.
pub fn roll_back(state: &mut PersistedState) -> Option<StagedCommissioning> {
    state.staged.take()
}

/// What DPS assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Hub host name.
    pub assigned_hub: String,
    /// Device ID.
    pub device_id: String,
    /// DPS substatus.
    pub substatus: Option<String>,
}

/// Commits the staged commissioning: the assignment replaces the old one, the candidate network
/// becomes the proven one (the old one is kept as `previous`). The nonce was burnt at staging;
/// it is burnt again here for a staging saved by an older agent that burnt at commit only.
/// Returns `false` (and changes nothing) if nothing is staged.
pub fn commit(state: &mut PersistedState, assignment: Assignment, now_ms: u64) -> bool {
    let Some(staged) = state.staged.take() else {
        return false;
    };
    state.assignment = Some(CommittedAssignment {
        id_scope: staged.id_scope.clone(),
        global_endpoint: staged.global_endpoint.clone(),
        assigned_hub: assignment.assigned_hub,
        device_id: assignment.device_id,
        substatus: assignment.substatus,
        committed_at_ms: now_ms,
        ticket_nonce: staged.nonce.clone(),
    });
    if let Some(network) = staged.network.clone() {
        state.network.previous = state.network.current.replace(network);
    }
    if let Some(nonce) = hex::decode(&staged.nonce)
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
    {
        let now_unix = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        state.burn_nonce(&nonce, staged.expires_at, now_unix);
    }
    true
}

/// What boot found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootRecovery {
    /// Nothing staged.
    Clean,
    /// A staging whose fail-safe expired while the device was off: rolled back (save needed;
    /// restore `state.network.current`).
    RolledBack(Box<StagedCommissioning>),
    /// A staging still within its window: resume registration.
    Resume,
}

/// Applies the fail-safe at boot.
pub fn recover_at_boot(state: &mut PersistedState, now_ms: u64) -> BootRecovery {
    match &state.staged {
        None => BootRecovery::Clean,
        Some(staged) if now_ms >= staged.fail_safe_deadline_ms => roll_back(state)
            .map_or(BootRecovery::Clean, |staged| {
                BootRecovery::RolledBack(Box::new(staged))
            }),
        Some(_) => BootRecovery::Resume,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;
    use crate::store::TrustAnchorRecord;
    use crate::store::fixtures::sample_state;
    use ed25519_dalek::SigningKey;
    use fieldlink_protocol::ticket::TicketSigner;

    pub(crate) fn signer() -> TicketSigner {
        TicketSigner::new("api-1", SigningKey::from_bytes(&[9; 32]))
    }

    fn claims(registration_id: &str, nonce: u8) -> TicketClaims {
        TicketClaims {
            key_id: "api-1".into(),
            registration_id: registration_id.into(),
            id_scope: "0ne00AAA".into(),
            global_endpoint: "https://127.0.0.1:1".into(),
            tenant: "acme".into(),
            dps_instance: "dps-1".into(),
            not_before: 1_000,
            expires_at: 2_000,
            nonce: [nonce; 16],
        }
    }

    fn state_with_anchor() -> PersistedState {
        let mut state = sample_state();
        state.trust_anchors = vec![TrustAnchorRecord {
            key_id: "api-1".into(),
            public_key: hex::encode(signer().verifying_key().to_bytes()),
        }];
        state
    }

    #[test]
    fn rejects_each_bad_ticket_with_its_code() {
        let state = state_with_anchor();
        let (anchors, problems) = trust_anchors(&state);
        assert!(problems.is_empty());
        let good = signer().sign(&claims("sensor-0001", 1));
        assert!(check_ticket(&anchors, &good, &state, 1_500).is_ok());

        let mut tampered = good.clone();
        let last = tampered.claims.len() - 1;
        tampered.claims[last] ^= 1;
        let foreign = signer().sign(&claims("other-device", 1));
        let unknown = TicketSigner::new("api-1", SigningKey::from_bytes(&[8; 32]))
            .sign(&claims("sensor-0001", 1));
        let cases = [
            (
                &tampered,
                1_500,
                ["ticket_bad_signature", "ticket_malformed"].as_slice(),
            ),
            (&good, 2_000, &["ticket_expired"]),
            (&good, 999, &["ticket_not_yet_valid"]),
            (&foreign, 1_500, &["ticket_wrong_device"]),
            (&unknown, 1_500, &["ticket_bad_signature"]),
        ];
        for (ticket, now, codes) in cases {
            let code = check_ticket(&anchors, ticket, &state, now)
                .unwrap_err()
                .code();
            assert!(codes.contains(&code), "{code} not in {codes:?}");
        }
    }

    #[test]
    fn a_staged_ticket_cannot_be_replayed_after_rollback_or_commit() {
        let mut state = state_with_anchor();
        let (anchors, _) = trust_anchors(&state);
        let ticket = signer().sign(&claims("sensor-0001", 4));
        let verified = check_ticket(&anchors, &ticket, &state, 1_500).unwrap();
        stage(
            &mut state,
            &ticket,
            &verified,
            None,
            1_500_000,
            Duration::from_secs(120),
        );
        // The ticket being staged is not a replay of itself (re-sent for a corrected network).
        assert!(check_ticket(&anchors, &ticket, &state, 1_500).is_ok());
        // Rolled back: used all the same.
        roll_back(&mut state);
        assert_eq!(
            check_ticket(&anchors, &ticket, &state, 1_500).unwrap_err(),
            TicketRejection::Replayed
        );
        let second = signer().sign(&claims("sensor-0001", 5));
        let verified = check_ticket(&anchors, &second, &state, 1_500).unwrap();
        stage(
            &mut state,
            &second,
            &verified,
            None,
            1_500_000,
            Duration::from_secs(120),
        );
        assert!(commit(
            &mut state,
            Assignment {
                assigned_hub: "hub".into(),
                device_id: "sensor-0001".into(),
                substatus: None
            },
            1_500_000
        ));
        assert_eq!(
            check_ticket(&anchors, &second, &state, 1_500).unwrap_err(),
            TicketRejection::Replayed
        );
        assert_eq!(state.seen_nonces.len(), 2, "burnt once each");
    }

    #[test]
    fn commit_promotes_the_candidate_network_and_keeps_the_old_one() {
        let mut state = state_with_anchor();
        let old = StoredNetwork::Wifi {
            ssid: "old".into(),
            passphrase: SecretString::new("p"),
            hidden: false,
            bssid: None,
        };
        let new = StoredNetwork::Cellular { apn: "iot".into() };
        state.network.current = Some(old.clone());
        let ticket = signer().sign(&claims("sensor-0001", 5));
        let verified = ticket.claims_unverified().unwrap();
        stage(
            &mut state,
            &ticket,
            &verified,
            Some(new.clone()),
            10,
            Duration::from_secs(1),
        );
        assert_eq!(state.staged.as_ref().unwrap().fail_safe_deadline_ms, 1_010);
        commit(
            &mut state,
            Assignment {
                assigned_hub: "hub-2".into(),
                device_id: "d".into(),
                substatus: Some("initialAssignment".into()),
            },
            20,
        );
        assert_eq!(state.network.current, Some(new));
        assert_eq!(state.network.previous, Some(old));
        assert_eq!(state.assignment.as_ref().unwrap().assigned_hub, "hub-2");
        assert!(state.staged.is_none());
        assert!(!commit(
            &mut state,
            Assignment {
                assigned_hub: "x".into(),
                device_id: "x".into(),
                substatus: None
            },
            30
        ));
    }

    #[test]
    fn boot_rolls_back_an_expired_staging_and_resumes_a_live_one() {
        let mut state = state_with_anchor();
        let ticket = signer().sign(&claims("sensor-0001", 6));
        let verified = ticket.claims_unverified().unwrap();
        stage(
            &mut state,
            &ticket,
            &verified,
            None,
            1_000,
            Duration::from_secs(120),
        );
        let mut live = state.clone();
        assert_eq!(recover_at_boot(&mut live, 120_999), BootRecovery::Resume);
        assert!(live.staged.is_some());
        assert!(matches!(
            recover_at_boot(&mut state, 121_000),
            BootRecovery::RolledBack(_)
        ));
        assert!(state.staged.is_none());
        assert_eq!(recover_at_boot(&mut state, 121_000), BootRecovery::Clean);
    }

    #[test]
    fn broken_anchor_records_are_reported_not_fatal() {
        let mut state = state_with_anchor();
        state.trust_anchors.push(TrustAnchorRecord {
            key_id: "bad".into(),
            public_key: "zz".into(),
        });
        let (anchors, problems) = trust_anchors(&state);
        assert_eq!(anchors.len(), 1);
        assert_eq!(problems.len(), 1);
    }
}
