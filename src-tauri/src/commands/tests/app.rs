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

/// A `fieldlink sandbox up` manifest (schema 2: HTTPS API, real issuer, one CA).
#[cfg(feature = "sandbox")]
fn sandbox_manifest(schema: u32, ca_cert: &std::path::Path) -> serde_json::Value {
    json!({
        "schema": schema, "pid": 4242, "started_at": "2026-11-26T12:00:00Z",
        "fleet": {"address": "127.0.0.1:9", "token": "fleet-token"},
        "api": {"url": "https://127.0.0.1:8443", "issuer": "https://127.0.0.1:8444"},
        "issuer": {"url": "https://127.0.0.1:8444", "audience": "fieldlink-api",
                   "clients": [
                       {"client_id": "fieldlink-cli", "grant": "device_code", "redirect_uris": []},
                       {"client_id": "fieldlink-desktop", "grant": "authorization_code",
                        "redirect_uris": ["http://127.0.0.1/callback"]}],
                   "auto_approve": false},
        "dps": {"global_endpoint": "https://127.0.0.1:8445", "instances": []},
        "ca_cert": ca_cert,
        "users": [{"username": "installer", "password": "secret", "tenant": "sandbox",
                   "role": "installer"}],
        "devices": []
    })
}

#[cfg(feature = "sandbox")]
#[test]
fn a_sandbox_manifest_becomes_a_profile_that_signs_in_to_its_issuer() {
    let test = TestApp::new();
    let path = test.dir().join("manifest.json");
    let ca = test.dir().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(&path, sandbox_manifest(2, &ca).to_string()).unwrap();
    let settings = test
        .invoke(
            "open_sandbox_manifest",
            json!({"path": path.display().to_string()}),
        )
        .unwrap();
    assert_eq!(settings["active_profile"], "sandbox");
    let profile = &settings["profiles"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(profile["site"], "sandbox");
    assert_eq!(profile["api_url"], "https://127.0.0.1:8443");
    assert_eq!(profile["issuer"], "https://127.0.0.1:8444");
    assert_eq!(profile["client_id"], "fieldlink-desktop");
    assert_eq!(profile["ca_file"], ca.display().to_string());
    assert_eq!(profile["sandbox_manifest"], path.display().to_string());
    // The profile maps onto the core's sign-in profile as is: HTTPS only, the sandbox's CA.
    let profile: crate::dto::settings::Profile = serde_json::from_value(profile.clone()).unwrap();
    let core = crate::auth::core_profile(&profile).unwrap().unwrap();
    assert_eq!(core.client_id, "fieldlink-desktop");
    assert!(!core.allow_insecure_loopback);
    assert_eq!(core.ca_file.as_deref(), Some(ca.as_path()));

    assert_eq!(settings["ble_adapter"], serde_json::Value::Null);

    // `sandbox up --ble bluez`: the adapter becomes the sandbox's installer adapter.
    let mut bluez = sandbox_manifest(2, &ca);
    bluez["bluez"] = json!({"bus_address": "unix:path=/tmp/bench/system_bus_socket",
                            "bench": true, "installer_adapter": "hci0",
                            "spare_installer_adapters": ["hci3"], "devices": []});
    std::fs::write(&path, bluez.to_string()).unwrap();
    let settings = test
        .invoke(
            "open_sandbox_manifest",
            json!({"path": path.display().to_string()}),
        )
        .unwrap();
    assert_eq!(settings["ble_adapter"], "hci0");
    let sandboxes = settings["profiles"].as_array().unwrap().iter();
    assert_eq!(sandboxes.filter(|p| p["name"] == "sandbox").count(), 1);

    // A manifest from an older fieldlink (stand-in issuer) is refused with a way forward.
    std::fs::write(&path, sandbox_manifest(1, &ca).to_string()).unwrap();
    let error = test
        .invoke(
            "open_sandbox_manifest",
            json!({"path": path.display().to_string()}),
        )
        .unwrap_err();
    assert_error_shape(&error, "config_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("restart the sandbox"),
        "{error}"
    );
}
