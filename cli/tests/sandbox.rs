//! `commission` from a separate process against `sandbox up`, through the manifest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;

fn run_json(env: &common::Env, args: &[&str]) -> (i32, Value) {
    let output = env.command().arg("--json").args(args).output().unwrap();
    let code = output.status.code().unwrap();
    (code, common::result(&output.stdout))
}

#[test]
fn commission_scan_status_and_offline_confirmation_through_the_manifest() {
    let env = common::Env::new();
    let mut sandbox = common::Sandbox::start(&env, 4);
    let manifest = sandbox.manifest.to_str().unwrap().to_owned();
    let devices = sandbox.manifest_json()["devices"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(devices.len(), 4);
    assert!(std::path::Path::new(sandbox.manifest_json()["ca_cert"].as_str().unwrap()).exists());
    let api = sandbox.manifest_json()["api"].clone();
    assert!(
        api["url"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{api}"
    );
    assert_eq!(api["issuer"], sandbox.manifest_json()["issuer"]["url"]);

    // Scan sees every virtual device, commissionable.
    let (code, scan) = run_json(&env, &["scan", "--timeout", "0.5", "--sandbox", &manifest]);
    assert_eq!(code, 0);
    assert_eq!(scan["devices"].as_array().unwrap().len(), 4);

    // A QR payload.
    let payload = devices[0]["payload"].as_str().unwrap();
    let (code, result) = run_json(&env, &["commission", payload, "--sandbox", &manifest]);
    assert_eq!(code, 0, "{result}");
    let device = &result["device"];
    assert_eq!(device["status"], "succeeded");
    assert_eq!(device["confirmation"], "confirmed");
    assert_eq!(device["round_trips"], 2);
    assert_eq!(device["registration_id"], devices[0]["registration_id"]);

    // A manual code (the registration ID is learnt from the device).
    let code_text = devices[1]["manual_code"].as_str().unwrap();
    let (code, result) = run_json(
        &env,
        &[
            "commission",
            "--manual-code",
            code_text,
            "--sandbox",
            &manifest,
        ],
    );
    assert_eq!(code, 0, "{result}");
    assert_eq!(
        result["device"]["registration_id"],
        devices[1]["registration_id"]
    );

    // The service's view.
    let id = devices[0]["registration_id"].as_str().unwrap();
    let (code, status) = run_json(&env, &["status", id, "--sandbox", &manifest]);
    assert_eq!(code, 0);
    assert_eq!(status["service"]["status"], "assigned");
    assert_eq!(status["last_attempt"]["outcome"], "succeeded");

    // Offline: the device confirms over BLE, the status service is away: queued, then synced.
    let (code, _) = run_json(
        &env,
        &[
            "sandbox",
            "fault",
            "status-offline",
            "on",
            "--manifest",
            &manifest,
        ],
    );
    assert_eq!(code, 0);
    let payload = devices[2]["payload"].as_str().unwrap();
    let (code, result) = run_json(&env, &["commission", payload, "--sandbox", &manifest]);
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["device"]["status"], "succeeded");
    assert_eq!(result["device"]["confirmation"], "queued");
    let (_, history) = run_json(&env, &["history"]);
    assert_eq!(history["queued_confirmations"], 1);
    let (code, _) = run_json(
        &env,
        &[
            "sandbox",
            "fault",
            "status-offline",
            "off",
            "--manifest",
            &manifest,
        ],
    );
    assert_eq!(code, 0);
    let (code, history) = run_json(&env, &["history", "--sync", "--sandbox", &manifest]);
    assert_eq!(code, 0);
    assert_eq!(history["sync"]["confirmed"], 1);
    assert_eq!(history["queued_confirmations"], 0);
    let attempts = history["attempts"].as_array().unwrap();
    assert!(
        attempts.iter().all(|a| a["confirmation"] == "confirmed"),
        "{attempts:?}"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a["installer"].as_str().unwrap().starts_with("local:"))
    );

    // The fleet holds exactly one ticket per commissioned device.
    let (_, holdings) = run_json(&env, &["sandbox", "devices", "--manifest", &manifest]);
    let tickets: Vec<u64> = holdings["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["tickets_accepted"].as_u64().unwrap())
        .collect();
    assert_eq!(tickets, [1, 1, 1, 0]);

    // CSV export has a header and one row per attempt.
    let csv = env
        .command()
        .args(["history", "--export", "csv"])
        .output()
        .unwrap();
    let text = String::from_utf8(csv.stdout).unwrap();
    assert!(text.starts_with("id,started_at,"));
    assert_eq!(text.lines().count(), 4);

    assert!(sandbox.stop(), "the sandbox stops cleanly on SIGTERM");
    assert!(!sandbox.manifest.exists(), "and removes its manifest");
}
