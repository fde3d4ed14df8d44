//! Queued confirmations carry the device's full report (status, hub, device ID) and the sync
//! compares all of it with the service's view; a contradiction fails the attempt with the
//! stable `confirmation_mismatch` code, a message naming what differs, and both sides.

use super::*;

fn device(hub: &str, id: &str) -> DeviceRegistration {
    DeviceRegistration {
        status: "assigned".into(),
        assigned_hub: Some(hub.into()),
        device_id: Some(id.into()),
        substatus: Some("initialAssignment".into()),
        error_code: None,
        error_message: None,
    }
}

fn view(status: &str, hub: Option<&str>, id: Option<&str>) -> RegistrationView {
    RegistrationView {
        status: status.into(),
        assigned_hub: hub.map(Into::into),
        device_id: id.map(Into::into),
        substatus: None,
        error_code: None,
    }
}

/// A journal with one queued confirmation of `registration_id` whose device reported `report`.
fn queued(dir: &TempDir, registration_id: &str, report: Option<&DeviceRegistration>) -> Journal {
    let journal = Journal::open(dir.file()).unwrap();
    let id = journal
        .begin_attempt(&attempt(registration_id, None))
        .unwrap();
    journal.record_assignment(id, &assignment()).unwrap();
    let mut outcome = AttemptOutcome::queued(Vec::new(), 50);
    if let Some(report) = report {
        outcome = outcome.with_device_report(report);
    }
    journal.finish_attempt(id, &outcome).unwrap();
    journal
}

#[test]
fn the_device_report_is_journaled_with_the_queued_confirmation() {
    let dir = TempDir::new("report");
    let journal = queued(&dir, "a", Some(&device("hub-a.example", "a")));
    let pending = journal.pending_confirmations().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].device_status, "assigned");
    assert_eq!(pending[0].device_hub.as_deref(), Some("hub-a.example"));
    assert_eq!(pending[0].device_id.as_deref(), Some("a"));
    let record = journal
        .attempt(AttemptId(pending[0].attempt_id))
        .unwrap()
        .unwrap();
    assert_eq!(record.confirmation.as_deref(), Some("queued"));
    assert_eq!(record.assigned_hub.as_deref(), Some("hub-a.example"));
}

#[test]
fn the_sync_compares_hub_and_device_id_not_only_the_status() {
    let dir = TempDir::new("judge");
    let journal = queued(&dir, "a", Some(&device("hub-a.example", "a")));
    let pending = &journal.pending_confirmations().unwrap()[0];

    let agrees = view("assigned", Some("hub-a.example"), Some("a"));
    assert_eq!(pending.judge(&agrees), ServiceVerdict::Agrees);
    let lagging = view("assigning", None, None);
    assert_eq!(pending.judge(&lagging), ServiceVerdict::Lagging);

    // Same status, another hub: a status-only comparison would have confirmed it.
    let ServiceVerdict::Disagrees(other_hub) =
        pending.judge(&view("assigned", Some("hub-b.example"), Some("a")))
    else {
        panic!("another hub must disagree");
    };
    assert_eq!(other_hub.fields, ["assigned_hub"]);
    assert_eq!(other_hub.device.dps_instance, "dps-1");
    assert_eq!(other_hub.device.id_scope, "0ne0001");
    let message = other_hub.message();
    assert!(
        message.contains("assigned_hub: device hub-a.example, service hub-b.example"),
        "{message}"
    );
    assert!(message.contains("dps-1 / 0ne0001"), "{message}");

    // Another device ID; and a service that names no hub at all.
    let ServiceVerdict::Disagrees(other_id) =
        pending.judge(&view("assigned", Some("hub-a.example"), Some("b")))
    else {
        panic!("another device ID must disagree");
    };
    assert_eq!(other_id.fields, ["device_id"]);
    let ServiceVerdict::Disagrees(no_hub) = pending.judge(&view("assigned", None, Some("a")))
    else {
        panic!("a missing hub must disagree");
    };
    assert_eq!(no_hub.fields, ["assigned_hub"]);
    let ServiceVerdict::Disagrees(everything) =
        pending.judge(&view("failed", Some("hub-c"), Some("c")))
    else {
        panic!("failed must disagree");
    };
    assert_eq!(everything.fields, ["status", "assigned_hub", "device_id"]);
}

#[test]
fn without_a_journaled_report_only_what_is_known_is_compared() {
    // Confirmations queued by an older build carry the status only.
    let dir = TempDir::new("legacy");
    let journal = queued(&dir, "a", None);
    let pending = &journal.pending_confirmations().unwrap()[0];
    assert_eq!(pending.device_hub, None);
    assert_eq!(
        pending.judge(&view("assigned", Some("hub-b.example"), Some("a"))),
        ServiceVerdict::Agrees
    );
    assert!(matches!(
        pending.judge(&view("disabled", None, None)),
        ServiceVerdict::Disagrees(d) if d.fields == ["status"]
    ));
}

#[test]
fn a_contradiction_is_stored_as_a_confirmation_mismatch_failure() {
    let dir = TempDir::new("reject");
    let journal = queued(&dir, "a", Some(&device("hub-a.example", "a")));
    let pending = journal.pending_confirmations().unwrap().remove(0);
    let ServiceVerdict::Disagrees(disagreement) =
        pending.judge(&view("assigned", Some("hub-b.example"), Some("a")))
    else {
        panic!("must disagree");
    };
    let record = disagreement.error_record();
    assert_eq!(record.code, "confirmation_mismatch");
    assert!(!record.retryable);
    assert_eq!(
        record.details["fields"],
        serde_json::json!(["assigned_hub"])
    );
    assert_eq!(record.details["device"]["assigned_hub"], "hub-a.example");
    assert_eq!(record.details["service"]["assigned_hub"], "hub-b.example");
    assert_eq!(record.details["at"], "sync");

    let attempt_id = AttemptId(pending.attempt_id);
    journal.reject_pending(attempt_id, &record).unwrap();
    assert!(journal.pending_confirmations().unwrap().is_empty());
    let stored = journal.attempt(attempt_id).unwrap().unwrap();
    assert_eq!(stored.outcome.as_deref(), Some("failed"));
    assert_eq!(stored.confirmation, None, "no longer a success");
    assert_eq!(stored.error_code.as_deref(), Some("confirmation_mismatch"));
    assert_eq!(
        stored.error_message.as_deref(),
        Some(record.message.as_str())
    );
    assert_eq!(stored.retryable, Some(false));
    // The device's own report stays on the attempt (the service's hub is not written over it).
    assert_eq!(stored.assigned_hub.as_deref(), Some("hub-a.example"));
}

#[test]
fn an_answer_about_another_scope_is_a_mismatch_on_id_scope_first() {
    let dir = TempDir::new("scope");
    let journal = queued(&dir, "a", Some(&device("hub-a.example", "a")));
    let pending = journal.pending_confirmations().unwrap().remove(0);
    let reported = DpsScope {
        id_scope: "0ne00OTHER".into(),
        dps_instance: "dps-9".into(),
    };
    // The view itself agrees with the device: only the scope differs.
    let agreeing = view("assigned", Some("hub-a.example"), Some("a"));
    let only_scope = pending.judge_scope(&reported, &agreeing);
    assert_eq!(only_scope.fields, ["id_scope"]);
    let record = only_scope.error_record();
    assert_eq!(record.code, "confirmation_mismatch");
    assert!(!record.retryable);
    let expected = format!(
        "id_scope: device {} ({}), service 0ne00OTHER (dps-9)",
        pending.assignment.id_scope, pending.assignment.dps_instance
    );
    assert!(record.message.contains(&expected), "{}", record.message);
    assert_eq!(record.details["service_scope"]["id_scope"], "0ne00OTHER");
    // Other differences are named after it.
    let moved = pending.judge_scope(
        &reported,
        &view("assigned", Some("hub-b.example"), Some("a")),
    );
    assert_eq!(moved.fields, ["id_scope", "assigned_hub"]);
    // A plain disagreement carries no service scope.
    let ServiceVerdict::Disagrees(plain) =
        pending.judge(&view("assigned", Some("hub-b.example"), Some("a")))
    else {
        panic!("disagrees")
    };
    assert!(plain.service_scope.is_none());
    assert!(plain.error_record().details["service_scope"].is_null());
}
