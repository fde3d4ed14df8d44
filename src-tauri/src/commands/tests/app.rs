//! Settings, labels and errors over the mock IPC.

use serde_json::json;

use super::{TestApp, assert_error_shape};
use crate::dto::settings::Settings;

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
