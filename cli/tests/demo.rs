//! `fieldlink demo`: the whole system in one process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use serde_json::Value;

#[test]
fn demo_50_devices_all_succeed_across_the_instances() {
    let env = common::Env::new();
    let output = env
        .command()
        .args(["--json", "demo", "--devices", "50"])
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = common::ndjson(&output.stdout);
    let result = common::result(&output.stdout);
    assert_eq!(result["command"], "demo");
    assert_eq!(result["ok"], true);
    // It signed in for real: the device-code flow against the stack's issuer, auto-approved.
    let signed_in = &result["signed_in"];
    assert_eq!(signed_in["subject"], "installer", "{signed_in}");
    assert_eq!(signed_in["tenant"], "sandbox");
    assert_eq!(signed_in["flow"], "device_code");
    assert_eq!(signed_in["auto_approved"], true);
    assert!(
        signed_in["issuer"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    assert_eq!(
        lines.iter().filter(|l| l["type"] == "signed_in").count(),
        1,
        "one sign-in event before the devices"
    );
    assert_eq!(result["counts"]["succeeded"], 50);
    assert_eq!(result["counts"]["failed"], 0);
    let devices = result["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 50);
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    for device in devices {
        assert_eq!(device["status"], "succeeded");
        assert_eq!(device["confirmation"], "confirmed");
        assert_eq!(
            device["round_trips"], 2,
            "connected to confirmed in 2 round trips"
        );
        assert!(device["bytes_sent"].as_u64().unwrap() > 0);
        assert!(device["bytes_received"].as_u64().unwrap() > 0);
        let instance = device["dps_instance"].as_str().unwrap().to_owned();
        let hub = device["assigned_hub"].as_str().unwrap();
        assert_eq!(
            hub,
            format!("hub-{}.azure-devices.net", &instance["dps-".len()..]),
            "each instance assigns to its own hub"
        );
        *per_instance.entry(instance).or_default() += 1;
    }
    assert_eq!(per_instance.len(), 3, "{per_instance:?}");
    assert!(
        per_instance.values().all(|n| (16..=17).contains(n)),
        "{per_instance:?}"
    );
    let instances = result["dps_instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3);
    let registrations: u64 = instances
        .iter()
        .map(|i| i["registrations"].as_u64().unwrap())
        .sum();
    assert_eq!(registrations, 50);
    // Progress events stream before the result, one `device` event per device.
    let device_events = lines.iter().filter(|l| l["type"] == "device").count();
    assert_eq!(device_events, 50);
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "progress" && l["kind"] == "connected")
    );
}

#[test]
fn demo_json_schema_snapshot() {
    let env = common::Env::new();
    let output = env
        .command()
        .args(["--json", "demo", "--devices", "2", "--dps-instances", "2"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines = common::ndjson(&output.stdout);
    let mut result = common::result(&output.stdout);
    common::redact(&mut result);
    insta::assert_json_snapshot!("demo_result", result);
    let progress = lines
        .iter()
        .find(|l| l["type"] == "progress" && l["kind"] == "connected")
        .unwrap();
    insta::assert_json_snapshot!("progress_event_shape", common::shape(progress));
    let device = lines.iter().find(|l| l["type"] == "device").unwrap();
    insta::assert_json_snapshot!("device_event_shape", common::shape(device));
}

#[test]
fn network_faults_show_typed_failures_and_the_corrected_retry() {
    let env = common::Env::new();
    let output = env
        .command()
        .args(["--json", "demo", "--devices", "4", "--network-faults"])
        .timeout(std::time::Duration::from_secs(180))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result = common::result(&output.stdout);
    let devices = result["devices"].as_array().unwrap();
    let failures: Vec<Value> = devices
        .iter()
        .map(|d| d["network"]["failures"].clone())
        .collect();
    assert_eq!(failures[0], serde_json::json!(["wifi_auth_failed"]));
    assert_eq!(failures[1], serde_json::json!(["network_not_found"]));
    assert_eq!(failures[2], serde_json::json!(["no_internet"]));
    assert_eq!(failures[3], serde_json::json!([]));
    for device in devices {
        assert_eq!(device["status"], "succeeded", "{device}");
        assert_eq!(device["network"]["configured"], true);
    }
    // The faulted devices paid one extra round trip for the correction; the others did not.
    assert_eq!(devices[0]["round_trips"], 3);
    assert_eq!(devices[3]["round_trips"], 2);
}

#[test]
fn demo_human_output_has_a_table_and_utilisation_with_the_local_signer_too() {
    let env = common::Env::new();
    let output = env
        .command()
        .args(["demo", "--devices", "3", "--local-signer"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("DEVICE"), "{text}");
    assert!(text.contains("no sign-in needed"), "{text}");
    assert!(text.contains("ROUND TRIPS"));
    assert!(text.contains("DPS utilisation:"));
    assert!(text.contains("3 of 3 devices commissioned"));
}
