//! Syncing queued confirmations with the registration-status source (`history --sync`, and
//! automatically at the start of `commission` and `resume`).

use std::{sync::Arc, time::Duration};

use fieldlink_core::{
    assignment::{RegistrationStatusSource, ServiceError},
    journal::{AttemptId, ConfirmationDisagreement, Journal, PendingConfirmation, ServiceVerdict},
};
use serde::Serialize;

use crate::{exit::CliError, output::Output};

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    /// Confirmed now.
    pub confirmed: usize,
    /// The service disagreed: now failed with `confirmation_mismatch`.
    pub rejected: usize,
    /// Still queued (service unreachable or lagging).
    pub pending: usize,
    /// One entry per rejected confirmation: which attempt, and why.
    pub rejections: Vec<SyncRejection>,
}

/// A queued confirmation the service contradicted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncRejection {
    /// The journal attempt (now failed).
    pub attempt_id: i64,
    /// The device.
    pub registration_id: String,
    /// `confirmation_mismatch`.
    pub code: String,
    /// What differs, device against service.
    pub message: String,
    /// The fields that differ (`id_scope`, `status`, `assigned_hub`, `device_id`).
    pub fields: Vec<&'static str>,
}

/// Asks the status source about every queued confirmation, `per_try` at most each.
pub async fn sync_pending(
    journal: &Journal,
    status: &Arc<dyn RegistrationStatusSource>,
    per_try: Duration,
) -> Result<SyncSummary, CliError> {
    let mut summary = SyncSummary::default();
    for pending in journal.pending_confirmations()? {
        let attempt = AttemptId(pending.attempt_id);
        let Some(assignment) = pending.assignment.to_assignment() else {
            journal.note_sync_failure(attempt, "the recorded ticket is unreadable")?;
            summary.pending += 1;
            continue;
        };
        let asked = status.registration_status(pending.registration_id.clone(), assignment);
        match tokio::time::timeout(per_try, asked).await {
            Ok(Ok(view)) => match pending.judge(&view) {
                ServiceVerdict::Agrees => {
                    journal.confirm_pending(attempt, &view)?;
                    summary.confirmed += 1;
                }
                ServiceVerdict::Lagging => {
                    journal.note_sync_failure(attempt, &format!("service says {}", view.status))?;
                    summary.pending += 1;
                }
                ServiceVerdict::Disagrees(disagreement) => {
                    reject(journal, &pending, &disagreement, &mut summary)?;
                }
            },
            // The service's record is in another DPS scope than the ticket's: settled as a
            // contradiction on `id_scope`, not retried forever.
            Ok(Err(ServiceError::ScopeMismatch { reported, view, .. })) => {
                let disagreement = pending.judge_scope(&reported, &view);
                reject(journal, &pending, &disagreement, &mut summary)?;
            }
            Ok(Err(error)) => {
                journal.note_sync_failure(attempt, &error.to_string())?;
                summary.pending += 1;
            }
            Err(_) => {
                journal.note_sync_failure(attempt, "no answer in time")?;
                summary.pending += 1;
            }
        }
    }
    Ok(summary)
}

/// Fails a queued attempt the service contradicted and counts it.
fn reject(
    journal: &Journal,
    pending: &PendingConfirmation,
    disagreement: &ConfirmationDisagreement,
    summary: &mut SyncSummary,
) -> Result<(), CliError> {
    let record = disagreement.error_record();
    journal.reject_pending(AttemptId(pending.attempt_id), &record)?;
    tracing::warn!(
        attempt = pending.attempt_id,
        registration_id = %pending.registration_id,
        "{}",
        record.message
    );
    summary.rejected += 1;
    summary.rejections.push(SyncRejection {
        attempt_id: pending.attempt_id,
        registration_id: pending.registration_id.clone(),
        code: record.code,
        message: record.message,
        fields: disagreement.fields.clone(),
    });
    Ok(())
}

/// Best-effort sync before a run; reports what changed on stdout (human mode).
pub async fn auto_sync(
    journal: &Journal,
    status: &Arc<dyn RegistrationStatusSource>,
    output: &Output,
) -> Result<(), CliError> {
    if journal.pending_confirmations()?.is_empty() {
        return Ok(());
    }
    let summary = sync_pending(journal, status, Duration::from_secs(5)).await?;
    if summary.confirmed + summary.rejected > 0 {
        output.info(format!(
            "queued confirmations synced: {} confirmed, {} rejected, {} still queued",
            summary.confirmed, summary.rejected, summary.pending
        ));
    }
    for rejection in &summary.rejections {
        output.info(format!(
            "{} (attempt {}): {}",
            rejection.registration_id, rejection.attempt_id, rejection.message
        ));
    }
    output.event("sync", &summary);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use fieldlink_core::{
        assignment::{
            AssignmentSource, DpsTarget, LocalAssignmentSigner, RegistrationView, ServiceError,
        },
        journal::{AssignmentRecord, AttemptOutcome, Installer, NewAttempt},
        workflow::DeviceRegistration,
    };
    use fieldlink_protocol::ticket::TicketSigner;

    use super::*;

    /// The service's views by registration ID (`None`: unreachable). A scripted source inside
    /// a unit test; the journal is a real SQLite file.
    struct Views(Mutex<Vec<(String, Option<RegistrationView>)>>);

    #[async_trait]
    impl RegistrationStatusSource for Views {
        async fn registration_status(
            &self,
            registration_id: String,
            _assignment: fieldlink_core::assignment::Assignment,
        ) -> Result<RegistrationView, ServiceError> {
            let views = self.0.lock().expect("lock");
            match views.iter().find(|(id, _)| *id == registration_id) {
                Some((_, Some(view))) => Ok(view.clone()),
                _ => Err(ServiceError::Unavailable {
                    detail: "offline".into(),
                }),
            }
        }
    }

    fn view(hub: &str, device_id: &str) -> RegistrationView {
        RegistrationView {
            status: "assigned".into(),
            assigned_hub: Some(hub.into()),
            device_id: Some(device_id.into()),
            substatus: Some("initialAssignment".into()),
            error_code: None,
        }
    }

    async fn queue(journal: &Journal, registration_id: &str, hub: &str) -> AttemptId {
        let signer = LocalAssignmentSigner::new(
            TicketSigner::new("k1", ed25519_dalek::SigningKey::from_bytes(&[3; 32])),
            DpsTarget {
                id_scope: "0ne00SYNC1".into(),
                global_endpoint: "127.0.0.1:1".into(),
                tenant: "acme".into(),
                dps_instance: "dps-2".into(),
            },
        );
        let assignment = signer
            .assignment(registration_id.into())
            .await
            .expect("ticket");
        let id = journal
            .begin_attempt(&NewAttempt {
                registration_id: registration_id.into(),
                installer: Installer {
                    identity: "local:qa".into(),
                    profile: "sandbox".into(),
                },
                batch_item: None,
                transport: "sandbox".into(),
            })
            .expect("begin");
        journal
            .record_assignment(id, &AssignmentRecord::of(&assignment))
            .expect("assignment");
        let report = DeviceRegistration {
            status: "assigned".into(),
            assigned_hub: Some(hub.into()),
            device_id: Some(registration_id.into()),
            substatus: Some("initialAssignment".into()),
            error_code: None,
            error_message: None,
        };
        journal
            .finish_attempt(
                id,
                &AttemptOutcome::queued(Vec::new(), 10).with_device_report(&report),
            )
            .expect("queued");
        id
    }

    #[tokio::test]
    async fn the_sync_confirms_agreement_and_rejects_another_hub_with_a_stable_code() {
        let dir = tempfile::tempdir().expect("tmp");
        let journal = Journal::open(dir.path().join("journal.sqlite3")).expect("journal");
        let agreeing = queue(&journal, "dev-a", "hub-1.example").await;
        let moved = queue(&journal, "dev-b", "hub-1.example").await;
        let offline = queue(&journal, "dev-c", "hub-1.example").await;
        let status: Arc<dyn RegistrationStatusSource> = Arc::new(Views(Mutex::new(vec![
            ("dev-a".into(), Some(view("hub-1.example", "dev-a"))),
            // Same status, another hub: a status-only comparison would confirm it.
            ("dev-b".into(), Some(view("hub-2.example", "dev-b"))),
            ("dev-c".into(), None),
        ])));

        let summary = sync_pending(&journal, &status, Duration::from_secs(5))
            .await
            .expect("sync");
        assert_eq!(
            (summary.confirmed, summary.rejected, summary.pending),
            (1, 1, 1)
        );
        assert_eq!(summary.rejections.len(), 1);
        let rejection = &summary.rejections[0];
        assert_eq!(rejection.attempt_id, moved.0);
        assert_eq!(rejection.registration_id, "dev-b");
        assert_eq!(rejection.code, "confirmation_mismatch");
        assert_eq!(rejection.fields, ["assigned_hub"]);
        assert!(
            rejection
                .message
                .contains("assigned_hub: device hub-1.example, service hub-2.example"),
            "{}",
            rejection.message
        );
        let json = serde_json::to_value(&summary).expect("json");
        assert_eq!(json["rejections"][0]["code"], "confirmation_mismatch");

        let record = |id: AttemptId| journal.attempt(id).expect("read").expect("exists");
        assert_eq!(record(agreeing).confirmation.as_deref(), Some("confirmed"));
        let rejected = record(moved);
        assert_eq!(rejected.outcome.as_deref(), Some("failed"));
        assert_eq!(
            rejected.error_code.as_deref(),
            Some("confirmation_mismatch")
        );
        assert_eq!(
            rejected.error_message.as_deref(),
            Some(rejection.message.as_str())
        );
        assert_eq!(record(offline).confirmation.as_deref(), Some("queued"));
        let pending = journal.pending_confirmations().expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].registration_id, "dev-c");
        assert_eq!(pending[0].tries, 1);

        // A second sync settles nothing twice.
        let again = sync_pending(&journal, &status, Duration::from_secs(5))
            .await
            .expect("sync");
        assert_eq!((again.confirmed, again.rejected, again.pending), (0, 0, 1));
    }

    /// Answers every question about another DPS scope than the ticket's, as the API client does
    /// when the service's record moved to another instance.
    struct MovedScope;

    #[async_trait]
    impl RegistrationStatusSource for MovedScope {
        async fn registration_status(
            &self,
            registration_id: String,
            assignment: fieldlink_core::assignment::Assignment,
        ) -> Result<RegistrationView, ServiceError> {
            Err(ServiceError::ScopeMismatch {
                expected: fieldlink_core::assignment::DpsScope::of(&assignment),
                reported: fieldlink_core::assignment::DpsScope {
                    id_scope: "0ne00OTHER".into(),
                    dps_instance: "dps-9".into(),
                },
                view: Box::new(view("hub-1.example", &registration_id)),
            })
        }
    }

    #[tokio::test]
    async fn an_answer_about_another_id_scope_settles_the_entry_as_a_mismatch() {
        let dir = tempfile::tempdir().expect("tmp");
        let journal = Journal::open(dir.path().join("journal.sqlite3")).expect("journal");
        let moved = queue(&journal, "dev-s", "hub-1.example").await;
        let status: Arc<dyn RegistrationStatusSource> = Arc::new(MovedScope);

        let summary = sync_pending(&journal, &status, Duration::from_secs(5))
            .await
            .expect("sync");
        assert_eq!(
            (summary.confirmed, summary.rejected, summary.pending),
            (0, 1, 0)
        );
        let rejection = &summary.rejections[0];
        assert_eq!(rejection.attempt_id, moved.0);
        assert_eq!(rejection.code, "confirmation_mismatch");
        // Hub, device ID and status agree: only the scope differs.
        assert_eq!(rejection.fields, ["id_scope"]);
        assert!(
            rejection
                .message
                .contains("id_scope: device 0ne00SYNC1 (dps-2), service 0ne00OTHER (dps-9)"),
            "{}",
            rejection.message
        );
        let record = journal.attempt(moved).expect("read").expect("exists");
        assert_eq!(record.outcome.as_deref(), Some("failed"));
        assert_eq!(record.error_code.as_deref(), Some("confirmation_mismatch"));
        assert!(journal.pending_confirmations().expect("pending").is_empty());
    }
}
