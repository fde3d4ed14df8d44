//! `sandbox devices` and `sandbox fault` on a `sandbox up --ble bluez` manifest: the devices'
//! states come from their agents' state directories (written here with the device agent's
//! store), without a running bench.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fieldlink_device_agent::{
    secret::{SecretBytes, SecretString},
    store::{
        CommittedAssignment, DeviceIdentity, DpsCredential, FileStore, PersistedState, StateStore,
    },
};
use serde_json::{Value, json};

fn write_manifest(env: &common::Env) -> std::path::PathBuf {
    let root = env.path();
    let device = |index: u32, discriminator: u16| {
        let id = format!("sandbox-device-{index:04}");
        json!({
            "registration_id": id, "discriminator": discriminator, "adapter": format!("hci{index}"),
            "address": null, "peripheral": null,
            "identity": root.join(&id).join("identity.json"),
            "trust_anchors": root.join(&id).join("trust-anchors.json"),
            "state_dir": root.join(&id).join("state"),
            "fail_safe_secs": 60, "pid": null, "log": root.join(&id).join("agent.log"),
        })
    };
    let manifest = json!({
        "schema": 2, "pid": 1, "started_at": "2026-01-01T00:00:00Z",
        "fleet": {"address": "127.0.0.1:1", "token": "t"},
        "api": null, "issuer": null,
        "dps": {"global_endpoint": "https://localhost:1", "instances": []},
        "ca_cert": root.join("ca.pem"), "users": [], "devices": [],
        "bluez": {"bus_address": null, "bench": true, "installer_adapter": "hci0",
                  "spare_installer_adapters": [], "devices": [device(1, 0xa42), device(2, 0x123)]},
    });
    let path = root.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    // Device 1 registered; device 2 never saved anything.
    let store = FileStore::open(root.join("sandbox-device-0001").join("state")).unwrap();
    let mut state = PersistedState::new(
        DeviceIdentity {
            registration_id: "sandbox-device-0001".into(),
            pop: SecretBytes::new(vec![7; 11]),
            discriminator: 0xa42,
            product_code: 0x42,
            dps_credential: DpsCredential::GroupKey {
                group_key: SecretString::new("a2V5"),
            },
        },
        Vec::new(),
    );
    state.burn_nonce(&[3; 16], i64::MAX, 0);
    state.assignment = Some(CommittedAssignment {
        id_scope: "0ne00000A1".into(),
        global_endpoint: "localhost:1".into(),
        assigned_hub: "hub-2.azure-devices.net".into(),
        device_id: "sandbox-device-0001".into(),
        substatus: None,
        committed_at_ms: 1,
        ticket_nonce: "03".into(),
    });
    store.save(&state).unwrap();
    path
}

#[test]
fn devices_of_a_bluez_sandbox_come_from_the_agents_state_directories() {
    let env = common::Env::new();
    let manifest = write_manifest(&env);
    let output = env
        .command()
        .args(["--json", "sandbox", "devices", "--manifest"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let result = common::result(&output.stdout);
    assert_eq!(result["ble"], "bluez");
    let devices = result["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0]["state"], "registered");
    assert_eq!(devices[0]["tickets_accepted"], 1);
    assert_eq!(devices[0]["assigned_hub"], "hub-2.azure-devices.net");
    assert_eq!(devices[0]["alive"], Value::Bool(false));
    assert_eq!(devices[1]["state"], "no_state");
    assert_eq!(devices[1]["assigned_hub"], Value::Null);

    let text = env
        .command()
        .args(["sandbox", "devices", "--manifest"])
        .arg(&manifest)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("registered"), "{text}");
    assert!(text.contains("hub-2.azure-devices.net"), "{text}");
    assert!(text.contains("not started"), "{text}");
}

#[test]
fn a_fault_on_a_bluez_sandbox_is_a_typed_error_naming_what_exists() {
    let env = common::Env::new();
    let manifest = write_manifest(&env);
    let output = env
        .command()
        .args([
            "--json",
            "sandbox",
            "fault",
            "status-offline",
            "on",
            "--manifest",
        ])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(8));
    let result = common::result(&output.stdout);
    assert_eq!(result["error"]["code"], "fault_unsupported", "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("sandbox agent"), "{message}");
}
