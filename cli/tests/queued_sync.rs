//! A confirmation queued while the sandbox's status service is offline journals the device's
//! full report (hub and device ID, not only its status), and `history --sync` compares all of
//! it with the service: agreement confirms; a contradiction (here: the journaled hub edited to
//! another one through Python's `sqlite3`, standing in for a device that reported another hub)
//! fails the attempt with `confirmation_mismatch` naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;

fn run_json(env: &common::Env, args: &[&str]) -> (i32, Value) {
    let output = env.command().arg("--json").args(args).output().unwrap();
    let code = output.status.code().unwrap();
    (code, common::result(&output.stdout))
}

fn fault(env: &common::Env, manifest: &str, on: bool) {
    let switch = if on { "on" } else { "off" };
    let (code, result) = run_json(
        env,
        &[
            "sandbox",
            "fault",
            "status-offline",
            switch,
            "--manifest",
            manifest,
        ],
    );
    assert_eq!(code, 0, "{result}");
}

fn queued_attempts(env: &common::Env) -> Vec<Value> {
    let (_, history) = run_json(env, &["history"]);
    history["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["confirmation"] == "queued")
        .cloned()
        .collect()
}

#[test]
fn queued_confirmations_are_synced_against_the_devices_full_report() {
    let env = common::Env::new();
    let mut sandbox = common::Sandbox::start(&env, 2);
    let manifest = sandbox.manifest.to_str().unwrap().to_owned();
    let payloads = sandbox.payloads();

    fault(&env, &manifest, true);
    for payload in &payloads {
        let (code, result) = run_json(&env, &["commission", payload, "--sandbox", &manifest]);
        assert_eq!(code, 0, "{result}");
        let device = &result["device"];
        assert_eq!(device["confirmation"], "queued");
        // The device's own report, in the result and the journal.
        assert!(device["assigned_hub"].is_string(), "{device}");
        assert_eq!(device["device_id"], device["registration_id"]);
    }
    let queued = queued_attempts(&env);
    assert_eq!(queued.len(), 2);
    for attempt in &queued {
        assert!(attempt["assigned_hub"].is_string(), "{attempt}");
        assert!(attempt["device_id"].is_string(), "{attempt}");
    }
    fault(&env, &manifest, false);

    // One journaled report now names another hub than the service knows.
    let edited = &queued[1];
    let edited_id = edited["id"].as_i64().unwrap();
    // Python's standard sqlite3 module (python3 is needed by the test suite anyway).
    let edit = format!(
        "import sqlite3, sys\n\
         db = sqlite3.connect(sys.argv[1])\n\
         db.execute(\"UPDATE attempts SET assigned_hub = 'hub-elsewhere.example' \
         WHERE id = {edited_id}\")\n\
         db.commit()\n"
    );
    let python = std::process::Command::new("python3")
        .args(["-c", &edit])
        .arg(env.journal())
        .status();
    let contradicted = match python {
        Ok(status) => {
            assert!(status.success(), "python3 could not edit the journal");
            true
        }
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "this test needs python3 in CI: {error}"
            );
            eprintln!("*** python3 not installed: the contradiction half is skipped ***");
            false
        }
    };

    let (code, history) = run_json(&env, &["history", "--sync", "--sandbox", &manifest]);
    assert_eq!(code, 0, "{history}");
    let sync = &history["sync"];
    assert_eq!(history["queued_confirmations"], 0, "{history}");
    let attempts = history["attempts"].as_array().unwrap();
    let by_id = |id: i64| attempts.iter().find(|a| a["id"] == id).unwrap();
    assert_eq!(
        by_id(queued[0]["id"].as_i64().unwrap())["confirmation"],
        "confirmed"
    );
    if contradicted {
        assert_eq!(
            (sync["confirmed"].as_u64(), sync["rejected"].as_u64()),
            (Some(1), Some(1))
        );
        let rejection = &sync["rejections"][0];
        assert_eq!(rejection["attempt_id"], edited_id);
        assert_eq!(rejection["code"], "confirmation_mismatch");
        assert_eq!(rejection["fields"], serde_json::json!(["assigned_hub"]));
        let message = rejection["message"].as_str().unwrap();
        assert!(
            message.contains("assigned_hub: device hub-elsewhere.example, service "),
            "{message}"
        );
        let failed = by_id(edited_id);
        assert_eq!(failed["outcome"], "failed", "{failed}");
        assert_eq!(failed["error_code"], "confirmation_mismatch", "{failed}");
    } else {
        assert_eq!(sync["confirmed"], 2);
    }
    assert!(sandbox.stop());
}
