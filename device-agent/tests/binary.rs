//! The `device-agent` binary: `init` writes an identity, `run --once` starts from files, prints
//! the label and the state, and keeps its state in the atomic store.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_device-agent");

fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn init_then_run_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dps.key");
    std::fs::write(&key_file, "ZGV2aWNlLWtleS1mb3ItdGhlLWJpbmFyeS10ZXN0\n").unwrap();
    let identity = dir.path().join("identity.json");
    let (ok, out, err) = run(&[
        "init",
        "--registration-id",
        "gateway-0001",
        "--dps-key-file",
        key_file.to_str().unwrap(),
        "--out",
        identity.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("QR label:    FL1/GATEWAY-0001/"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&identity).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "identity is private");
    }
    // Written once: a second init refuses.
    let (ok, _, err) = run(&[
        "init",
        "--registration-id",
        "gateway-0001",
        "--dps-key-file",
        key_file.to_str().unwrap(),
        "--out",
        identity.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("exists"));

    let anchors = dir.path().join("anchors.json");
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
    std::fs::write(
        &anchors,
        serde_json::to_string(&vec![
            fieldlink_device_agent::store::TrustAnchorRecord::new("api-1", &key),
        ])
        .unwrap(),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let args = [
        "run",
        "--identity",
        identity.to_str().unwrap(),
        "--trust-anchors",
        anchors.to_str().unwrap(),
        "--state-dir",
        state_dir.to_str().unwrap(),
        "--once",
    ];
    let (ok, out, err) = run(&args);
    assert!(ok, "{err}");
    assert!(out.contains("registration ID: gateway-0001"), "{out}");
    assert!(out.contains("state:           commissionable"), "{out}");
    assert!(out.contains("BLE name:        FL-"), "{out}");
    assert!(
        !out.contains("ZGV2aWNl") && !err.contains("ZGV2aWNl"),
        "no key in the output"
    );
    assert!(state_dir.join("state.json").exists());
    // Runs again from the same store.
    let (ok, out, _) = run(&args);
    assert!(ok);
    assert!(out.contains("state:           commissionable"));

    // Broken inputs fail with a message, not a panic.
    std::fs::write(&anchors, "[]").unwrap();
    let (ok, _, err) = run(&args);
    assert!(!ok);
    assert!(err.contains("lists no key"), "{err}");
    let (ok, _, err) = run(&["run", "--identity", "/nonexistent"]);
    assert!(!ok);
    assert!(err.contains("--trust-anchors is required"), "{err}");
}
