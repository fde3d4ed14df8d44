//! Journal tests on real SQLite files in a temporary directory.

mod device_reports;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use super::*;
use crate::{
    CommissionError, Step,
    assignment::{DpsScope, DpsTarget, LocalAssignmentSigner, RegistrationView},
    error::NetworkFailureKind,
    workflow::{CommissioningReport, DeviceRegistration, LinkCounters, StepTiming},
};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let unique = format!(
            "fieldlink-journal-{name}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn file(&self) -> PathBuf {
        self.0.join("nested").join("journal.sqlite3")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn clock() -> (WallClockMs, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(1_700_000_000_000));
    let reader = Arc::clone(&now);
    (Arc::new(move || reader.load(Ordering::SeqCst)), now)
}

fn installer() -> Installer {
    Installer {
        identity: "local:alice".into(),
        profile: "sandbox".into(),
    }
}

fn attempt(registration_id: &str, batch_item: Option<BatchItemRef>) -> NewAttempt {
    NewAttempt {
        registration_id: registration_id.into(),
        installer: installer(),
        batch_item,
        transport: "memory".into(),
    }
}

fn assignment() -> AssignmentRecord {
    AssignmentRecord {
        dps_instance: "dps-1".into(),
        id_scope: "0ne0001".into(),
        ticket: "dGlja2V0".into(),
        expires_at: 1_700_000_600,
    }
}

fn report(registration_id: &str) -> CommissioningReport {
    let registration = DeviceRegistration {
        status: "assigned".into(),
        assigned_hub: Some("hub-1.azure-devices.net".into()),
        device_id: Some(registration_id.into()),
        substatus: Some("initialAssignment".into()),
        error_code: None,
        error_message: None,
    };
    CommissioningReport {
        registration_id: registration_id.into(),
        mtu: 247,
        service: RegistrationView {
            status: "assigned".into(),
            assigned_hub: registration.assigned_hub.clone(),
            device_id: registration.device_id.clone(),
            substatus: registration.substatus.clone(),
            error_code: None,
        },
        device: registration,
        agreed: true,
        network_configured: false,
        steps: vec![
            StepTiming {
                step: Step::Scanning,
                started_ms: 0,
                finished_ms: 12,
                attempts: 1,
            },
            StepTiming {
                step: Step::Handshaking,
                started_ms: 14,
                finished_ms: 40,
                attempts: 1,
            },
        ],
        link: LinkCounters {
            connections: 1,
            round_trips: 2,
            frames_sent: 5,
            frames_received: 9,
            bytes_sent: 700,
            bytes_received: 1_100,
        },
        resumes: 0,
        total_ms: 321,
    }
}

fn new_batch(ids: &[&str]) -> NewBatch {
    NewBatch {
        installer: installer(),
        source: "/site/payloads.txt".into(),
        source_digest: "abc123".into(),
        options: serde_json::json!({"jobs": 4}),
        registration_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
    }
}

#[test]
fn opens_in_wal_mode_and_reopens() {
    let dir = TempDir::new("wal");
    let journal = Journal::open(dir.file()).unwrap();
    let mode: String = journal
        .lock()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let id = journal.begin_attempt(&attempt("dev-1", None)).unwrap();
    drop(journal);
    let again = Journal::open(dir.file()).unwrap();
    assert_eq!(again.attempt(id).unwrap().unwrap().registration_id, "dev-1");
}

#[test]
fn refuses_a_newer_schema() {
    let dir = TempDir::new("schema");
    let journal = Journal::open(dir.file()).unwrap();
    journal
        .lock()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    drop(journal);
    let error = Journal::open(dir.file()).unwrap_err();
    assert_eq!(error.code(), "journal_too_new");
    assert!(error.to_string().contains("99"), "{error}");
}

#[test]
fn a_success_round_trips_with_steps_and_link_counters() {
    let dir = TempDir::new("success");
    let (clock, now) = clock();
    let journal = Journal::open_with_clock(dir.file(), clock).unwrap();
    let id = journal.begin_attempt(&attempt("dev-1", None)).unwrap();
    let open = journal.attempt(id).unwrap().unwrap();
    assert_eq!(open.outcome, None, "an attempt is open until finished");
    journal.record_assignment(id, &assignment()).unwrap();
    now.fetch_add(400, Ordering::SeqCst);
    journal
        .finish_attempt(id, &AttemptOutcome::confirmed(&report("dev-1")))
        .unwrap();
    let record = journal.attempt(id).unwrap().unwrap();
    assert_eq!(record.outcome.as_deref(), Some("succeeded"));
    assert_eq!(record.confirmation.as_deref(), Some("confirmed"));
    assert_eq!(record.installer, "local:alice");
    assert_eq!(record.profile, "sandbox");
    assert_eq!(record.dps_instance.as_deref(), Some("dps-1"));
    assert_eq!(
        record.assigned_hub.as_deref(),
        Some("hub-1.azure-devices.net")
    );
    assert_eq!(record.finished_at_ms, Some(record.started_at_ms + 400));
    assert_eq!(record.link, Some(report("dev-1").link));
    assert_eq!(record.mtu, Some(247));
    assert_eq!(
        record
            .steps
            .iter()
            .map(|s| s.step.as_str())
            .collect::<Vec<_>>(),
        ["scanning", "handshaking"]
    );
    assert_eq!(record.steps[1].finished_ms, 40);
    assert!(journal.pending_confirmations().unwrap().is_empty());
}

#[test]
fn a_failure_keeps_its_code_and_retryability() {
    let dir = TempDir::new("failure");
    let journal = Journal::open(dir.file()).unwrap();
    let id = journal.begin_attempt(&attempt("dev-1", None)).unwrap();
    let error = CommissionError::NetworkJoinFailed {
        kind: NetworkFailureKind::WifiAuthFailed,
    };
    let steps = vec![StepRecord {
        step: "joining_network".into(),
        started_ms: 10,
        finished_ms: 90,
        attempts: 1,
    }];
    journal
        .finish_attempt(id, &AttemptOutcome::failed(&error, steps, 95))
        .unwrap();
    let record = journal.attempt(id).unwrap().unwrap();
    assert_eq!(record.outcome.as_deref(), Some("failed"));
    assert_eq!(record.error_code.as_deref(), Some("network_join_failed"));
    assert_eq!(record.retryable, Some(false));
    assert!(record.error_message.unwrap().contains("passphrase"));
    assert_eq!(record.link, None);
}

#[test]
fn resume_skips_done_devices_and_rechecks_interrupted_ones() {
    let dir = TempDir::new("resume");
    let batch_id;
    let interrupted;
    {
        let journal = Journal::open(dir.file()).unwrap();
        batch_id = journal
            .create_batch(&new_batch(&["dev-0", "dev-1", "dev-2", "dev-3"]))
            .unwrap();
        let item = |position| {
            Some(BatchItemRef {
                batch_id: batch_id.clone(),
                position,
            })
        };
        let done = journal.begin_attempt(&attempt("dev-0", item(0))).unwrap();
        journal
            .finish_attempt(done, &AttemptOutcome::confirmed(&report("dev-0")))
            .unwrap();
        interrupted = journal.begin_attempt(&attempt("dev-1", item(1))).unwrap();
        journal
            .record_assignment(interrupted, &assignment())
            .unwrap();
        let fresh = journal.begin_attempt(&attempt("dev-2", item(2))).unwrap();
        let _ = fresh;
        // The process dies here: no finish, no close, the connection is leaked (as kill -9 does).
        std::mem::forget(journal);
    }
    let journal = Journal::open(dir.file()).unwrap();
    let batch = journal.batch(&batch_id).unwrap().unwrap();
    assert_eq!(batch.counts.succeeded, 1);
    assert_eq!(batch.counts.in_flight, 2);
    assert_eq!(batch.counts.pending, 1);
    assert_eq!(batch.source, "/site/payloads.txt");
    let plan = journal.resume_plan(&batch_id, false).unwrap();
    let actions: Vec<_> = plan.iter().map(|s| s.action.clone()).collect();
    assert_eq!(
        actions,
        [
            ResumeAction::Skip,
            ResumeAction::Recheck {
                assignment: Some(assignment())
            },
            ResumeAction::Recheck { assignment: None },
            ResumeAction::Commission,
        ]
    );
    let record = journal.attempt(interrupted).unwrap().unwrap();
    assert_eq!(record.outcome.as_deref(), Some("interrupted"));
    assert!(record.finished_at_ms.is_some());
}

#[test]
fn failed_items_are_retried_only_when_retryable_unless_asked() {
    let dir = TempDir::new("retry");
    let journal = Journal::open(dir.file()).unwrap();
    let batch_id = journal.create_batch(&new_batch(&["a", "b"])).unwrap();
    let errors = [
        CommissionError::DeviceNotFound {
            discriminator: 0x123,
        },
        CommissionError::WrongPop { attempt: 1, max: 5 },
    ];
    for (position, error) in errors.iter().enumerate() {
        let item = BatchItemRef {
            batch_id: batch_id.clone(),
            position: u32::try_from(position).unwrap(),
        };
        let id = journal
            .begin_attempt(&attempt(["a", "b"][position], Some(item)))
            .unwrap();
        journal
            .finish_attempt(id, &AttemptOutcome::failed(error, Vec::new(), 1))
            .unwrap();
    }
    let plan = journal.resume_plan(&batch_id, false).unwrap();
    assert_eq!(plan[0].action, ResumeAction::Commission);
    assert_eq!(plan[1].action, ResumeAction::Skip);
    assert_eq!(plan[1].item.error_code.as_deref(), Some("wrong_pop"));
    let plan = journal.resume_plan(&batch_id, true).unwrap();
    assert_eq!(plan[1].action, ResumeAction::Commission);
}

#[test]
fn only_the_latest_attempt_sets_an_items_status() {
    let dir = TempDir::new("latest");
    let journal = Journal::open(dir.file()).unwrap();
    let batch_id = journal.create_batch(&new_batch(&["a"])).unwrap();
    let item = || {
        Some(BatchItemRef {
            batch_id: batch_id.clone(),
            position: 0,
        })
    };
    let stale = journal.begin_attempt(&attempt("a", item())).unwrap();
    let latest = journal.begin_attempt(&attempt("a", item())).unwrap();
    journal
        .finish_attempt(latest, &AttemptOutcome::confirmed(&report("a")))
        .unwrap();
    journal
        .finish_attempt(
            stale,
            &AttemptOutcome::failed(&CommissionError::Cancelled, Vec::new(), 1),
        )
        .unwrap();
    let items = journal.batch_items(&batch_id).unwrap();
    assert_eq!(items[0].status, ItemStatus::Succeeded);
    assert_eq!(items[0].attempts, 2);
    assert_eq!(journal.release_batch(&batch_id).unwrap().succeeded, 1);
    assert!(journal.batches(true, 10).unwrap().is_empty(), "closed");
    assert_eq!(journal.batches(false, 10).unwrap().len(), 1);
}

#[test]
fn unknown_batch_items_and_attempts_are_typed_errors() {
    let dir = TempDir::new("unknown");
    let journal = Journal::open(dir.file()).unwrap();
    let missing = BatchItemRef {
        batch_id: "nope".into(),
        position: 0,
    };
    let error = journal
        .begin_attempt(&attempt("a", Some(missing)))
        .unwrap_err();
    assert_eq!(error.code(), "unknown_batch");
    let error = journal
        .finish_attempt(AttemptId(42), &AttemptOutcome::confirmed(&report("a")))
        .unwrap_err();
    assert_eq!(error.code(), "unknown_attempt");
    assert_eq!(
        journal.resume_plan("nope", false).unwrap_err().code(),
        "unknown_batch"
    );
    assert!(journal.batch("nope").unwrap().is_none());
}

#[test]
fn a_live_runner_keeps_its_batch() {
    let dir = TempDir::new("claim");
    let (clock, now) = clock();
    let journal = Journal::open_with_clock(dir.file(), clock).unwrap();
    let batch_id = journal.create_batch(&new_batch(&["a"])).unwrap();
    journal
        .claim_batch(&batch_id, 100, &|_| true, 30_000)
        .unwrap();
    let busy = journal
        .claim_batch(&batch_id, 200, &|_| true, 30_000)
        .unwrap_err();
    assert!(matches!(busy, JournalError::BatchBusy { pid: 100, .. }));
    // A dead runner (kill -9) frees the batch at once.
    journal
        .claim_batch(&batch_id, 200, &|_| false, 30_000)
        .unwrap();
    // So does a silent one.
    now.fetch_add(31_000, Ordering::SeqCst);
    journal
        .claim_batch(&batch_id, 300, &|_| true, 30_000)
        .unwrap();
}

#[test]
fn queued_confirmations_are_synced_later() {
    let dir = TempDir::new("queue");
    let journal = Journal::open(dir.file()).unwrap();
    let batch_id = journal.create_batch(&new_batch(&["a", "b"])).unwrap();
    let item = |position| {
        Some(BatchItemRef {
            batch_id: batch_id.clone(),
            position,
        })
    };
    let without_assignment = journal.begin_attempt(&attempt("x", None)).unwrap();
    let refused = journal
        .finish_attempt(without_assignment, &AttemptOutcome::queued(Vec::new(), 5))
        .unwrap_err();
    assert_eq!(refused.code(), "journal_error");

    let mut ids = Vec::new();
    for (position, device) in ["a", "b"].into_iter().enumerate() {
        let id = journal
            .begin_attempt(&attempt(device, item(u32::try_from(position).unwrap())))
            .unwrap();
        journal.record_assignment(id, &assignment()).unwrap();
        journal
            .finish_attempt(id, &AttemptOutcome::queued(Vec::new(), 50))
            .unwrap();
        ids.push(id);
    }
    let pending = journal.pending_confirmations().unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].registration_id, "a");
    assert_eq!(pending[0].assignment, assignment());
    let items = journal.batch_items(&batch_id).unwrap();
    assert_eq!(items[0].status, ItemStatus::Succeeded);
    assert_eq!(items[0].confirmation.as_deref(), Some("queued"));

    journal.note_sync_failure(ids[0], "still offline").unwrap();
    let pending = journal.pending_confirmations().unwrap();
    assert_eq!(pending[0].tries, 1);
    assert_eq!(pending[0].last_error.as_deref(), Some("still offline"));

    let lagging = RegistrationView {
        status: "assigning".into(),
        assigned_hub: None,
        device_id: None,
        substatus: None,
        error_code: None,
    };
    assert_eq!(pending[0].judge(&lagging), ServiceVerdict::Lagging);
    let assigned = RegistrationView {
        status: "assigned".into(),
        assigned_hub: Some("hub-1".into()),
        device_id: Some("a".into()),
        ..lagging.clone()
    };
    assert_eq!(pending[0].judge(&assigned), ServiceVerdict::Agrees);
    journal.confirm_pending(ids[0], &assigned).unwrap();
    let record = journal.attempt(ids[0]).unwrap().unwrap();
    assert_eq!(record.confirmation.as_deref(), Some("confirmed"));
    assert_eq!(record.assigned_hub.as_deref(), Some("hub-1"));

    let failed = RegistrationView {
        status: "failed".into(),
        ..lagging
    };
    let verdict = pending[1].judge(&failed);
    assert!(matches!(verdict, ServiceVerdict::Disagrees { .. }));
    let mismatch = CommissionError::ConfirmationMismatch {
        device: "assigned -/-".into(),
        service: "failed -/-".into(),
    };
    journal
        .reject_pending(ids[1], &ErrorRecord::from(&mismatch))
        .unwrap();
    assert!(journal.pending_confirmations().unwrap().is_empty());
    let items = journal.batch_items(&batch_id).unwrap();
    assert_eq!(items[0].confirmation.as_deref(), Some("confirmed"));
    assert_eq!(items[1].status, ItemStatus::Failed);
    assert_eq!(
        items[1].error_code.as_deref(),
        Some("confirmation_mismatch")
    );
    assert_eq!(
        journal
            .confirm_pending(ids[1], &assigned)
            .unwrap_err()
            .code(),
        "unknown_attempt",
        "a settled confirmation cannot be settled again"
    );
}

#[tokio::test]
async fn assignments_round_trip_through_the_record() {
    let signer = fieldlink_protocol::ticket::TicketSigner::new(
        "k1",
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    );
    let source = LocalAssignmentSigner::new(
        signer,
        DpsTarget {
            id_scope: "0ne00AB".into(),
            global_endpoint: "127.0.0.1:1".into(),
            tenant: "t".into(),
            dps_instance: "dps-2".into(),
        },
    );
    use crate::assignment::AssignmentSource;
    let assignment = source.assignment("dev-9".into()).await.unwrap();
    let record = AssignmentRecord::of(&assignment);
    assert_eq!(record.dps_instance, "dps-2");
    assert_eq!(record.to_assignment(), Some(assignment));
}

#[tokio::test]
async fn latest_assignment_is_the_newest_usable_one_of_that_device() {
    use crate::assignment::AssignmentSource;
    let dir = TempDir::new("latest-assignment");
    let journal = Journal::open(dir.file()).unwrap();
    let signed = |dps_instance: &str| {
        LocalAssignmentSigner::new(
            fieldlink_protocol::ticket::TicketSigner::new(
                "k1",
                ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
            ),
            DpsTarget {
                id_scope: "0ne00AB".into(),
                global_endpoint: "127.0.0.1:1".into(),
                tenant: "t".into(),
                dps_instance: dps_instance.into(),
            },
        )
    };
    assert_eq!(journal.latest_assignment("dev-9").unwrap(), None);
    let older = signed("dps-1").assignment("dev-9".into()).await.unwrap();
    let newer = signed("dps-2").assignment("dev-9".into()).await.unwrap();
    let other = signed("dps-3").assignment("dev-8".into()).await.unwrap();
    for (device, assignment) in [("dev-9", &older), ("dev-9", &newer), ("dev-8", &other)] {
        let id = journal.begin_attempt(&attempt(device, None)).unwrap();
        journal
            .record_assignment(id, &AssignmentRecord::of(assignment))
            .unwrap();
    }
    // Newer attempts without a usable assignment are passed over.
    journal.begin_attempt(&attempt("dev-9", None)).unwrap();
    let unreadable = journal.begin_attempt(&attempt("dev-9", None)).unwrap();
    journal
        .record_assignment(unreadable, &assignment())
        .unwrap();
    assert_eq!(journal.latest_assignment("dev-9").unwrap(), Some(newer));
    assert_eq!(journal.latest_assignment("dev-8").unwrap(), Some(other));
    assert_eq!(journal.latest_assignment("dev-7").unwrap(), None);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let dir = TempDir::new("concurrent");
    let journal = Arc::new(Journal::open(dir.file()).unwrap());
    let ids: Vec<String> = (0..40).map(|i| format!("dev-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let batch_id = journal.create_batch(&new_batch(&refs)).unwrap();
    std::thread::scope(|scope| {
        for worker in 0..4u32 {
            let journal = Arc::clone(&journal);
            let batch_id = batch_id.clone();
            scope.spawn(move || {
                for position in (worker..40).step_by(4) {
                    let device = format!("dev-{position}");
                    let item = BatchItemRef {
                        batch_id: batch_id.clone(),
                        position,
                    };
                    let id = journal
                        .begin_attempt(&attempt(&device, Some(item)))
                        .unwrap();
                    journal
                        .finish_attempt(id, &AttemptOutcome::confirmed(&report(&device)))
                        .unwrap();
                }
            });
        }
    });
    // A second connection (another process) sees every commit.
    let reader = Journal::open(dir.file()).unwrap();
    assert_eq!(
        reader.batch(&batch_id).unwrap().unwrap().counts.succeeded,
        40
    );
    let query = AttemptQuery {
        batch_id: Some(batch_id),
        ..AttemptQuery::default()
    };
    assert_eq!(reader.attempts(&query).unwrap().len(), 40);
    let limited = AttemptQuery {
        limit: Some(3),
        registration_id: Some("dev-7".into()),
        ..AttemptQuery::default()
    };
    assert_eq!(reader.attempts(&limited).unwrap().len(), 1);
}
