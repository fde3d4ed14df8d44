//! Commissioning, scans, batches and exports against the in-process world.

use std::sync::{Arc, Mutex};

use fieldlink_protocol::payload::ManualCode;
use serde_json::{Value, json};
use tauri::ipc::{Channel, InvokeResponseBody};

use super::{TestApp, assert_error_shape, capture};
use crate::{
    commands::{batch, commission, devices, history},
    dto::{
        batch::{BatchEvent, BatchRequest},
        history::{ExportFormat, HistoryQuery},
        progress::{ProgressDetail, ProgressUpdate, StepName},
    },
};

#[tokio::test]
async fn commission_streams_progress_and_journals_the_result() {
    let (test, labels) = TestApp::with_world(2).await;
    let (channel, seen) = capture::<ProgressUpdate, _>();
    let result = commission::commission(test.state(), labels[1].clone(), "op-1".into(), channel)
        .await
        .unwrap();
    assert!(result.agreed);
    assert_eq!(result.service.status, "assigned");
    assert_eq!(result.device.assigned_hub, result.service.assigned_hub);
    let assignment = result.assignment.clone().unwrap();
    assert_eq!(
        assignment.dps_instance,
        fieldlink_tests::world::DPS_INSTANCE
    );
    assert!(result.link.round_trips >= 2);

    let events = seen.lock().unwrap().clone();
    let started: Vec<StepName> = events
        .iter()
        .filter(|e| e.detail == ProgressDetail::Started)
        .map(|e| e.step)
        .collect();
    assert_eq!(started.first(), Some(&StepName::Scanning));
    assert_eq!(started.last(), Some(&StepName::Confirming));
    assert!(events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));

    let history = history::history(test.state(), HistoryQuery::default()).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, result.attempt_id);
    assert_eq!(history[0].outcome.as_deref(), Some("succeeded"));
    assert_eq!(
        history[0].dps_instance.as_deref(),
        Some(assignment.dps_instance.as_str())
    );

    let status = commission::registration_status(test.state(), result.registration_id.clone())
        .await
        .unwrap();
    assert_eq!(status.status, "assigned");
    assert_eq!(status.device_id, result.service.device_id);
}

#[tokio::test]
async fn a_device_without_a_ticket_here_has_no_status_to_ask_for() {
    let (test, _) = TestApp::with_world(1).await;
    let error = commission::registration_status(test.state(), "never-commissioned".into())
        .await
        .unwrap_err();
    assert_eq!(error.code, "no_assignment");
    assert_eq!(error.details["registration_id"], "never-commissioned");
}

#[tokio::test]
async fn wrong_pop_reaches_the_ui_with_the_core_code_and_is_journalled() {
    let (test, labels) = TestApp::with_world(1).await;
    let payload = fieldlink_protocol::payload::OnboardingPayload::parse(&labels[0]).unwrap();
    let right = payload.pop.manual_passcode();
    let wrong = ManualCode {
        discriminator4: payload.short_discriminator(),
        passcode: if right == 1 { 2 } else { right ^ 1 },
    };
    let (channel, _) = capture::<ProgressUpdate, _>();
    let error = commission::commission(test.state(), wrong.encode(), "op".into(), channel)
        .await
        .unwrap_err();
    assert_eq!(error.code, "wrong_pop");
    assert_eq!(error.details["attempt"], 1);
    assert!(error.message.contains("attempt 1 of"), "{}", error.message);
    assert!(!error.retryable);
    let history = history::history(test.state(), HistoryQuery::default()).unwrap();
    assert_eq!(history[0].error_code.as_deref(), Some("wrong_pop"));
    assert!(
        history[0].steps.iter().any(|s| s.step == "handshaking"),
        "failed attempts keep their step timings: {:?}",
        history[0].steps
    );
}

#[tokio::test]
async fn cancel_operation_stops_a_commissioning() {
    let (test, labels) = TestApp::with_world(1).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let channel: Channel<ProgressUpdate> = Channel::new(move |_| {
        let _ = tx.send(());
        Ok(())
    });
    let state = test.state();
    let running = commission::commission(state, labels[0].clone(), "op-c".into(), channel);
    let cancel = async {
        rx.recv().await;
        test.invoke("cancel_operation", json!({"operationId": "op-c"}))
            .unwrap();
    };
    let (result, ()) = tokio::join!(running, cancel);
    assert_eq!(result.unwrap_err().code, "cancelled");
    let error = test
        .invoke("cancel_operation", json!({"operationId": "op-c"}))
        .unwrap_err();
    assert_error_shape(&error, "unknown_operation");
}

#[tokio::test]
async fn scan_streams_nearby_devices_until_cancelled() {
    let (test, labels) = TestApp::with_world(3).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let sink = Arc::clone(&seen);
    let channel = Channel::new(move |body| {
        if let InvokeResponseBody::Json(text) = body {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(&text).unwrap());
        }
        let _ = tx.send(());
        Ok(())
    });
    let scanning = devices::scan(test.state(), "scan-1".into(), Some(200), channel);
    let stop = async {
        rx.recv().await;
        test.state().operations().cancel("scan-1").unwrap();
    };
    let (rounds, ()) = tokio::join!(scanning, stop);
    assert!(rounds.unwrap() >= 1);
    let update = seen.lock().unwrap()[0].clone();
    let devices = update["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    let discriminators: Vec<u64> = devices
        .iter()
        .map(|d| d["discriminator"].as_u64().unwrap())
        .collect();
    for label in &labels {
        let payload = fieldlink_protocol::payload::OnboardingPayload::parse(label).unwrap();
        assert!(discriminators.contains(&u64::from(payload.discriminator)));
    }
    assert!(devices.iter().all(|d| d["state"] == "commissionable"));
    assert!(devices.iter().all(|d| d["rssi"].is_i64()));
}

#[tokio::test]
async fn batches_run_in_parallel_journal_every_row_and_resume() {
    let (test, labels) = TestApp::with_world(3).await;
    let mut rows = labels.clone();
    rows.insert(1, "FL1/NOT-A-LABEL/AAAA".into());
    let (channel, seen) = capture::<BatchEvent, _>();
    let summary = batch::commission_batch(
        test.state(),
        BatchRequest {
            labels: rows.clone(),
            concurrency: 3,
            source_path: None,
        },
        "batch-1".into(),
        channel,
    )
    .await
    .unwrap();
    assert_eq!(summary.counts.succeeded, 3);
    assert_eq!(summary.counts.failed, 1);
    assert!(!summary.cancelled);
    let events = seen.lock().unwrap().clone();
    assert!(
        matches!(events[0], BatchEvent::Planned { ref registration_ids, .. }
        if registration_ids.len() == 4 && registration_ids[1].is_none())
    );
    assert!(events.iter().any(|e| matches!(e,
        BatchEvent::Failed { position: 1, error } if error.code == "invalid_payload")));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, BatchEvent::Succeeded { .. }))
            .count(),
        3
    );
    let open = history::batches(test.state(), true).unwrap();
    assert_eq!(open.len(), 1, "a failed row keeps the batch open");

    let changed = batch::resume_batch(
        test.state(),
        summary.batch_id.clone(),
        labels.clone(),
        false,
        2,
        "batch-2".into(),
        capture::<Value, _>().0,
    )
    .await
    .unwrap_err();
    assert_eq!(changed.code, "batch_source_changed");

    let (channel, seen) = capture::<BatchEvent, _>();
    let resumed = batch::resume_batch(
        test.state(),
        summary.batch_id.clone(),
        rows,
        false,
        2,
        "batch-3".into(),
        channel,
    )
    .await
    .unwrap();
    assert_eq!(
        resumed.counts.succeeded, 3,
        "done devices are not touched again"
    );
    let events = seen.lock().unwrap().clone();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, BatchEvent::Skipped { .. }))
            .count(),
        4,
        "successes and the non-retryable invalid label are skipped"
    );
    let items = history::batch_items(test.state(), summary.batch_id).unwrap();
    assert!(
        items
            .iter()
            .filter(|i| i.error_code.is_none())
            .all(|i| i.attempts == 1)
    );
}

#[tokio::test]
async fn history_exports_csv_and_json_files() {
    let (test, labels) = TestApp::with_world(1).await;
    let (channel, _) = capture::<ProgressUpdate, _>();
    commission::commission(test.state(), labels[0].clone(), "op".into(), channel)
        .await
        .unwrap();
    let csv =
        history::export_history(test.state(), ExportFormat::Csv, HistoryQuery::default()).unwrap();
    assert_eq!(csv.count, 1);
    assert!(
        csv.path
            .starts_with(test.dir().join("exports").to_str().unwrap())
    );
    let text = std::fs::read_to_string(&csv.path).unwrap();
    assert!(text.starts_with("id,started_at_ms,"));
    assert!(text.contains(",succeeded,confirmed,"));
    let json =
        history::export_history(test.state(), ExportFormat::Json, HistoryQuery::default()).unwrap();
    let value: Value = serde_json::from_str(&std::fs::read_to_string(json.path).unwrap()).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 1);
    assert!(!text.contains(&labels[0]), "no label (PoP) in exports");
}
