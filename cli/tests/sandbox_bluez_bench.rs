//! `sandbox devices` against a real `sandbox up --ble bluez` (private dbus-daemon + BlueZoo):
//! the agent's persisted state and its process, alive, then killed (dead), then restarted by
//! hand with `sandbox agent` (alive again under its new pid).
//!
//! When `dbus-daemon` or `bluezoo` is missing the test fails in CI (`CI` set) and is skipped
//! loudly elsewhere.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// A child stopped when the test ends (SIGTERM, then SIGKILL).
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn devices(env: &common::Env, manifest: &PathBuf) -> Value {
    let output = env
        .command()
        .args(["--json", "sandbox", "devices", "--manifest"])
        .arg(manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    common::result(&output.stdout)["devices"][0].clone()
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bluez_devices_report_persisted_state_and_the_agent_process_across_a_kill_and_restart() {
    let missing: Vec<_> = ["dbus-daemon", "bluezoo", "busctl"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "BLE bench: {missing:?} missing"
        );
        eprintln!("\n!!!!! SKIPPED: BLE bench tools {missing:?} missing !!!!!\n");
        return;
    }
    let env = common::Env::new();
    let manifest = env.path().join("sandbox").join("manifest.json");
    let log = std::fs::File::create(env.path().join("sandbox-up.log")).unwrap();
    let _sandbox = Stopped(
        env.std_command()
            .args([
                "sandbox",
                "up",
                "--ble",
                "bluez",
                "--no-labels",
                "-k",
                "1",
                "-n",
                "1",
            ])
            .arg("--manifest")
            .arg(&manifest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let mut recorded = Value::Null;
    wait_for("the BlueZ sandbox did not record its agent", || {
        recorded = std::fs::read_to_string(&manifest)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map(|json| json["bluez"]["devices"][0].clone())
            .unwrap_or(Value::Null);
        recorded["pid"].is_u64()
    });
    let pid = recorded["pid"].as_u64().unwrap();

    let device = devices(&env, &manifest);
    assert_eq!(device["registration_id"], recorded["registration_id"]);
    assert_eq!(device["pid"], pid);
    assert_eq!(device["alive"], true, "{device}");
    // The agent saved its factory state when it started.
    assert_eq!(device["state"], "commissionable", "{device}");
    assert_eq!(device["tickets_accepted"], 0);

    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("a killed agent is reported dead", || {
        devices(&env, &manifest)["alive"] == false
    });

    // Restarted by hand, named by its discriminator: found under its new pid.
    let discriminator = format!("0x{:X}", recorded["discriminator"].as_u64().unwrap());
    let agent = Stopped(
        env.std_command()
            .args(["sandbox", "agent", "--manifest"])
            .arg(&manifest)
            .args(["--device", &discriminator])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let restarted = u64::from(agent.0.id());
    wait_for("the restarted agent is found under its new pid", || {
        let device = devices(&env, &manifest);
        device["alive"] == true && device["pid"] == restarted
    });
}
