//! Command tests: the real commands, registered on `tauri::test::mock_builder()`, invoked over
//! the mock IPC (argument names, JSON shapes, the error shape) or called with their `State`
//! and a capturing `Channel` (progress streams), against the in-process world: real device
//! agents behind the core's in-memory radio and the DPS emulator over loopback HTTPS.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use fieldlink_protocol::payload::ManualCode;
use fieldlink_tests::world::{World, WorldConfig};
use serde_json::{Value, json};
use tauri::{
    App, Manager, WebviewWindow, WebviewWindowBuilder,
    ipc::{CallbackFn, Channel, InvokeBody, InvokeResponseBody},
    test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets},
    webview::InvokeRequest,
};

use crate::{
    commands::{batch, commission, devices, history, session},
    dto::{
        batch::{BatchEvent, BatchRequest},
        history::{ExportFormat, HistoryQuery},
        progress::{ProgressDetail, ProgressUpdate, StepName},
        settings::{Profile, Settings, SignInMethod, SiteKind},
    },
    site::Site,
    state::{DesktopState, StatePaths},
};

struct TestApp {
    app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::setup(mock_builder())
            .build(mock_context(noop_assets()))
            .unwrap();
        let paths = StatePaths::new(dir.path(), dir.path(), &dir.path().join("exports"));
        app.manage(DesktopState::open(paths).unwrap());
        let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap();
        Self {
            app,
            webview,
            _dir: dir,
        }
    }

    async fn with_world(devices: usize) -> (Self, Vec<String>) {
        let test = Self::new();
        let world = World::start(WorldConfig {
            devices,
            ..WorldConfig::default()
        })
        .await;
        let labels = world.devices.iter().map(|d| d.payload.encode()).collect();
        test.state()
            .install_site(Site::over_world("simulator", world))
            .await;
        (test, labels)
    }

    fn state(&self) -> tauri::State<'_, DesktopState> {
        self.app.state::<DesktopState>()
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Invokes `cmd` over the mock IPC: `Ok(json)` or `Err(error json)`.
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.webview,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|body| body.deserialize::<Value>().unwrap())
    }
}

/// A channel that collects what the command sends.
fn capture<T, C>() -> (Channel<C>, Arc<Mutex<Vec<T>>>)
where
    T: serde::de::DeserializeOwned + Send + 'static,
    C: tauri::ipc::IpcResponse,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let channel = Channel::new(move |body| {
        if let InvokeResponseBody::Json(text) = body {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(&text).unwrap());
        }
        Ok(())
    });
    (channel, seen)
}

fn assert_error_shape(error: &Value, code: &str) {
    assert_eq!(error["code"], code, "{error}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(error["retryable"].is_boolean());
    assert!(error["details"].is_object());
}

#[test]
fn app_info_and_settings_over_ipc() {
    let test = TestApp::new();
    let info = test.invoke("app_info", json!({})).unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["simulator_available"], cfg!(feature = "demo"));
    let invalid = json!({"settings": {
        "profiles": [{"name": "acme", "organisation": "Acme", "site": "bluetooth",
                      "api_url": "http://api.acme.example", "issuer": null, "client_id": null,
                      "ca_file": null, "sandbox_manifest": null}],
        "active_profile": "acme", "ble_adapter": null, "theme": "dark", "batch_concurrency": 4}});
    let error = test.invoke("save_settings", invalid.clone()).unwrap_err();
    assert_error_shape(&error, "invalid_setting");
    assert_eq!(error["details"]["field"], "profiles[0].api_url");
    let mut valid = invalid;
    valid["settings"]["profiles"][0]["api_url"] = json!("https://api.acme.example");
    let saved = test.invoke("save_settings", valid).unwrap();
    assert_eq!(saved["theme"], "dark");
    let stored: Settings =
        serde_json::from_slice(&std::fs::read(test.dir().join("settings.json")).unwrap()).unwrap();
    assert_eq!(stored.active_profile.as_deref(), Some("acme"));
    assert_eq!(
        test.invoke("get_settings", json!({})).unwrap()["theme"],
        "dark"
    );
}

#[test]
fn labels_parse_and_render_over_ipc() {
    let test = TestApp::new();
    let payload = fieldlink_protocol::payload::OnboardingPayload::new(
        "pump-7",
        fieldlink_protocol::payload::PopSecret::from_bytes([3; 11]),
        0x5a1,
        1,
    )
    .unwrap();
    let info = test
        .invoke("parse_label", json!({"code": payload.encode()}))
        .unwrap();
    assert_eq!(info["kind"], "qr_label");
    assert_eq!(info["registration_id"], "pump-7");
    assert_eq!(info["discriminator"], 0x5a1);
    assert!(!info.to_string().contains("pop"), "no secret in {info}");
    let manual = test
        .invoke(
            "parse_label",
            json!({"code": payload.manual_code().encode()}),
        )
        .unwrap();
    assert_eq!(manual["kind"], "manual_code");
    assert_eq!(manual["short_discriminator"], 5);
    let error = test
        .invoke("parse_label", json!({"code": "FL1/PUMP-7/AAAA"}))
        .unwrap_err();
    assert_error_shape(&error, "invalid_payload");
    let image = test
        .invoke(
            "render_label",
            json!({"code": payload.encode(), "minPx": 128}),
        )
        .unwrap();
    assert!(image["svg"].as_str().unwrap().contains("<svg"));
    assert_eq!(image["manual_code"], payload.manual_code().encode());
}

#[test]
fn nothing_to_commission_against_without_a_profile() {
    let test = TestApp::new();
    if cfg!(feature = "demo") {
        return; // the first start selects the simulator
    }
    let error = test
        .invoke("registration_status", json!({"registrationId": "pump-1"}))
        .unwrap_err();
    assert_error_shape(&error, "not_configured");
}

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

#[tokio::test]
async fn sign_in_is_local_on_the_simulator_and_explicit_elsewhere() {
    let test = TestApp::new();
    let profile = |name: &str, site: SiteKind, issuer: Option<&str>| Profile {
        name: name.into(),
        organisation: format!("{name} org"),
        site,
        api_url: None,
        issuer: issuer.map(Into::into),
        client_id: None,
        ca_file: None,
        sandbox_manifest: None,
    };
    test.state()
        .save_settings(Settings {
            profiles: vec![
                profile("sim", SiteKind::Simulator, None),
                profile(
                    "acme",
                    SiteKind::Bluetooth,
                    Some("https://login.acme.example"),
                ),
                profile("bare", SiteKind::Bluetooth, None),
            ],
            ..Settings::default()
        })
        .await
        .unwrap();
    let (channel, _) = capture::<Value, _>();
    let session = session::sign_in(
        test.state(),
        "sim".into(),
        SignInMethod::Browser,
        "s1".into(),
        channel,
    )
    .await
    .unwrap();
    assert_eq!(session.method, SignInMethod::Local);
    assert!(session.identity.starts_with("local:"));
    assert_eq!(
        test.state().settings().active_profile.as_deref(),
        Some("sim")
    );
    assert_eq!(
        test.invoke("get_session", json!({})).unwrap()["profile"],
        "sim"
    );
    for name in ["acme", "bare"] {
        let (channel, _) = capture::<Value, _>();
        let error = session::sign_in(
            test.state(),
            name.into(),
            SignInMethod::DeviceCode,
            "s2".into(),
            channel,
        )
        .await
        .unwrap_err();
        assert_eq!(error.code, "sign_in_unavailable");
    }
    test.invoke("sign_out", json!({})).unwrap();
    assert_eq!(test.invoke("get_session", json!({})).unwrap(), Value::Null);
}
