//! The official Azure IoT Node.js provisioning SDK (`azure-iot-provisioning-device` +
//! `azure-iot-provisioning-device-http` + `azure-iot-security-symmetric-key`) registers
//! against the emulator over HTTPS, unchanged, with the emulator's CA trusted through
//! `NODE_EXTRA_CA_CERTS`.
//!
//! Needs Node.js and the SDK installed: `npm ci --prefix dps-emulator/sdk-test`.
#![allow(clippy::unwrap_used)] // helpers shared by the tests below

mod common;

use common::*;
use fieldlink_dps_emulator::{
    DpsEmulator, EmulatorConfig, RegistrationStatus, RunningEmulator, TlsOptions,
};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk-test")
}

/// Fails with instructions when Node.js or the SDK is missing.
fn require_sdk() {
    let modules = sdk_dir()
        .join("node_modules")
        .join("azure-iot-provisioning-device-http");
    assert!(
        modules.is_dir(),
        "the Azure IoT Node.js SDK is not installed in {}: run `npm ci --prefix dps-emulator/sdk-test` \
         from the repository root (Node.js 18+ and npm needed)",
        sdk_dir().display()
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        matches!(&node, Ok(out) if out.status.success()),
        "`node` is not on PATH; install Node.js 18+ and run `npm ci --prefix dps-emulator/sdk-test`"
    );
}

async fn start(tls: TlsOptions) -> Option<RunningEmulator> {
    let mut config = instance("dps-node-sdk");
    // Long enough that the SDK sees a 202 "assigning" poll before the final 200.
    config.knobs.assignment_delay_ms = 1_500;
    config.knobs.retry_after_secs = 1;
    let config = EmulatorConfig {
        http_bind: None,
        tls: Some(tls),
        instances: vec![config],
    };
    match DpsEmulator::start(config).await {
        Ok(emulator) => Some(emulator),
        Err(err) => {
            eprintln!("cannot start the emulator: {err}");
            None
        }
    }
}

/// Runs `register.js`; `trust_ca` decides whether Node gets the emulator's CA.
async fn run_node(
    emulator: &RunningEmulator,
    host: &str,
    port: u16,
    device: &str,
    trust_ca: bool,
) -> std::process::Output {
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), emulator.ca_pem().unwrap()).unwrap();
    let scope = emulator
        .control()
        .instance("dps-node-sdk")
        .unwrap()
        .id_scope;
    let mut command = tokio::process::Command::new("node");
    command
        .arg(sdk_dir().join("register.js"))
        .current_dir(sdk_dir())
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env("DPS_PROVISIONING_HOST", host)
        .env("DPS_PORT", port.to_string())
        .env("DPS_ID_SCOPE", &scope)
        .env("DPS_REGISTRATION_ID", device)
        .env("DPS_SYMMETRIC_KEY", group_device_key(device))
        .env("DPS_TIMEOUT_MS", "45000")
        .kill_on_drop(true);
    if trust_ca {
        command.env("NODE_EXTRA_CA_CERTS", ca.path());
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("node did not finish within 60 s")
        .expect("cannot run node")
}

/// Runs `register.js` with the CA trusted and returns the SDK's result.
async fn run_sdk(emulator: &RunningEmulator, host: &str, port: u16, device: &str) -> Value {
    let output = run_node(emulator, host, port, device, true).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK failed ({}): {stderr}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

fn assert_assigned(emulator: &RunningEmulator, device: &str, sdk_result: &Value) {
    let state = emulator
        .control()
        .registration_state("dps-node-sdk", device)
        .unwrap();
    assert_eq!(state.status, RegistrationStatus::Assigned);
    assert_eq!(sdk_result["status"], "assigned", "{sdk_result}");
    assert_eq!(sdk_result["registrationId"], device);
    assert_eq!(sdk_result["deviceId"], device);
    assert_eq!(
        sdk_result["assignedHub"].as_str(),
        state.assigned_hub.as_deref()
    );
    assert!([HUB_A, HUB_B].contains(&sdk_result["assignedHub"].as_str().unwrap()));
    // The SDK authenticated (401s would show here) and polled while assigning.
    let metrics = emulator.control().metrics_text();
    assert!(metrics.contains(
        "dps_emulator_http_requests_total{instance=\"dps-node-sdk\",operation=\"operation_status\",status=\"202\"}"
    ), "{metrics}");
    assert!(metrics.contains("dps_emulator_unauthorized_total{instance=\"dps-node-sdk\"} 0"));
}

#[tokio::test]
async fn node_sdk_registers_over_https_with_host_localhost() {
    require_sdk();
    let emulator = start(TlsOptions::default())
        .await
        .expect("emulator with TLS");
    let port = emulator.https().unwrap().addr.port();
    let device = "node-sdk-device-1";
    let result = run_sdk(&emulator, "localhost", port, device).await;
    assert_assigned(&emulator, device, &result);
    emulator.shutdown().await;
}

#[tokio::test]
async fn node_sdk_refuses_the_emulator_when_its_ca_is_not_trusted() {
    require_sdk();
    let emulator = start(TlsOptions::default())
        .await
        .expect("emulator with TLS");
    let port = emulator.https().unwrap().addr.port();
    let output = run_node(&emulator, "localhost", port, "node-sdk-untrusted", false).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(
        emulator
            .control()
            .registration_state("dps-node-sdk", "node-sdk-untrusted")
            .is_none()
    );
    emulator.shutdown().await;
}

/// The SDK exactly as a device runs it: port 443, no port mapping. Binding port 443 needs
/// privileges, so this variant runs where it can (root, or CAP_NET_BIND_SERVICE) on a loopback
/// address of its own and says so where it cannot.
#[tokio::test]
async fn node_sdk_registers_on_port_443_without_any_port_mapping() {
    require_sdk();
    let pid = std::process::id();
    let ip = Ipv4Addr::new(127, 77, ((pid >> 8) & 0xff) as u8, (pid & 0xff) as u8 | 1);
    let tls = TlsOptions {
        bind: SocketAddr::from((ip, 443)),
        names: vec![ip.to_string()],
        ..TlsOptions::default()
    };
    let Some(emulator) = start(tls).await else {
        eprintln!("SKIPPED: cannot listen on {ip}:443 here (needs root or CAP_NET_BIND_SERVICE)");
        return;
    };
    let device = "node-sdk-device-443";
    let result = run_sdk(&emulator, &ip.to_string(), 443, device).await;
    assert_assigned(&emulator, device, &result);
    emulator.shutdown().await;
}
