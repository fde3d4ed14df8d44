//! The device agent processes of a BlueZ sandbox: their files, command line and processes.

use std::{
    io::BufRead as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
};

use fieldlink_device_agent::store::{DeviceIdentity, TrustAnchorRecord};
use serde::Serialize;

use super::{AGENT_READY, BUS_ENV, BluezDevice, tether::Tethered};
use crate::exit::{CliError, Exit};

/// Writes a device's identity and trust anchors into `dir` (owner-only).
pub fn write_agent_files(
    dir: &Path,
    identity: &DeviceIdentity,
    anchors: &[TrustAnchorRecord],
) -> Result<(PathBuf, PathBuf), CliError> {
    let identity_path = dir.join("identity.json");
    let anchors_path = dir.join("trust-anchors.json");
    crate::manifest::write_private(&identity_path, to_json(identity)?.as_bytes())?;
    crate::manifest::write_private(&anchors_path, to_json(&anchors)?.as_bytes())?;
    Ok((identity_path, anchors_path))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).map_err(|error| CliError::internal(error.to_string()))
}

/// The `device-agent run` command line of `device`, with the sandbox's CA for DPS.
pub fn agent_argv(device: &BluezDevice, adapter: &str, dps_ca: &Path) -> Vec<String> {
    [
        "run",
        "--identity",
        &device.identity.display().to_string(),
        "--trust-anchors",
        &device.trust_anchors.display().to_string(),
        "--state-dir",
        &device.state_dir.display().to_string(),
        "--dps-ca",
        &dps_ca.display().to_string(),
        "--fail-safe-secs",
        &device.fail_safe_secs.to_string(),
        "--ble",
        "bluez",
        "--adapter",
        adapter,
        "--network",
        "online",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// An agent process `sandbox up` started (tethered: it exits if `sandbox up` dies); killed on
/// drop.
pub struct AgentChild {
    process: Tethered,
    /// The adapter address it advertises from.
    pub address: String,
}

impl AgentChild {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.process.running()
    }
}

impl Drop for AgentChild {
    fn drop(&mut self) {
        self.process.kill();
    }
}

/// Starts `fieldlink sandbox agent --manifest M --device ID` and waits until it advertises
/// (its `ble:` line). Its stderr goes to `device.log`; `--tether` makes it exit when this
/// process lets go of its stdin or dies.
pub async fn spawn_agent(
    manifest: &Path,
    device: &BluezDevice,
    bus_address: Option<&str>,
) -> Result<AgentChild, CliError> {
    let exe = std::env::current_exe().map_err(|error| {
        CliError::internal(format!("cannot find the fieldlink binary: {error}"))
    })?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&device.log)
        .map_err(|error| {
            CliError::config(format!("cannot open {}: {error}", device.log.display()))
        })?;
    let mut command = Command::new(exe);
    command
        .args(["sandbox", "agent", "--manifest"])
        .arg(manifest)
        .args(["--device", &device.registration_id, "--tether"])
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(bus) = bus_address {
        command.env(BUS_ENV, bus);
    }
    let mut process = Tethered::spawn(command).map_err(|error| {
        CliError::internal(format!("cannot start the device agent process: {error}"))
    })?;
    let (ready_tx, ready_rx) = mpsc::channel();
    if let Some(stdout) = process.take_stdout() {
        // Drains every line (the agent never blocks on a full pipe); hands over the `ble:` one.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ble:") {
                    let _ = ready_tx.send(line);
                }
            }
        });
    }
    let ready = tokio::task::spawn_blocking(move || ready_rx.recv_timeout(AGENT_READY))
        .await
        .map_err(|error| CliError::internal(error.to_string()))?;
    let mut agent = AgentChild {
        process,
        address: String::new(),
    };
    match ready {
        Ok(line) => {
            agent.address = line
                .rsplit_once('(')
                .and_then(|(_, rest)| rest.strip_suffix(')'))
                .unwrap_or_default()
                .to_owned();
            Ok(agent)
        }
        Err(_) => Err(CliError::new(
            Exit::TransportUnavailable,
            "device_agent_failed",
            format!(
                "the device agent {} did not advertise on {}; see {}",
                device.registration_id,
                device.adapter,
                device.log.display()
            ),
        )),
    }
}
