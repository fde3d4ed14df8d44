//! `sandbox devices` and `sandbox fault` for a `sandbox up --ble bluez` sandbox, whose devices
//! are device agent processes: what each one persisted (read from its state directory with the
//! device agent's store, never written) and whether its process is alive.

use std::path::Path;

use fieldlink_device_agent::store::{FileStore, PersistedState, StateStore as _};
use serde::Serialize;

use crate::{
    bluez_sandbox::{BluezDevice, BluezFleet},
    exit::{CliError, Exit},
};

/// What one device agent of a BlueZ sandbox holds, from its persistent state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentHolding {
    /// Registration ID.
    pub registration_id: String,
    /// Its btleplug peripheral id from the installer adapter, once known (else its adapter).
    pub peripheral: String,
    /// The state its persisted document says: `commissionable`, `ticket_staged`, `registering`,
    /// `registered`, `locked`, `no_state` (the agent never saved) or `unreadable`.
    pub state: String,
    /// Tickets the device accepted so far (burnt nonces).
    pub tickets_accepted: usize,
    /// Committed hub, if registered.
    pub assigned_hub: Option<String>,
    /// The adapter its agent serves on.
    pub adapter: String,
    /// Its state directory.
    pub state_dir: std::path::PathBuf,
    /// The agent process: the live one found for this device (a restarted agent has a new
    /// pid), else the one `sandbox up` recorded.
    pub pid: Option<u32>,
    /// Whether that process is alive (`null` where this cannot be told: not Linux).
    pub alive: Option<bool>,
    /// Why the state could not be read (`unreadable`), if so.
    pub state_error: Option<String>,
}

/// The state a persisted document describes, at `now_ms` (Unix ms).
fn persisted_state(state: &PersistedState, now_ms: u64) -> &'static str {
    if state.assignment.is_some() {
        "registered"
    } else if let Some(staged) = &state.staged {
        if staged.operation_id.is_some() {
            "registering"
        } else {
            "ticket_staged"
        }
    } else if state
        .pop_attempts
        .locked_until_ms
        .is_some_and(|until| until > now_ms)
    {
        "locked"
    } else {
        "commissionable"
    }
}

/// Reads a state directory without creating or changing anything in it.
fn read_state(dir: &Path) -> Result<Option<PersistedState>, String> {
    if !dir.join("state.json").is_file() {
        return Ok(None);
    }
    FileStore::open(dir)
        .and_then(|store| store.load())
        .map_err(|error| error.to_string())
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Each device agent's holdings.
pub fn holdings(fleet: &BluezFleet, manifest: &Path) -> Vec<AgentHolding> {
    let now = now_ms();
    fleet
        .devices
        .iter()
        .map(|device| {
            let (state, tickets_accepted, assigned_hub, state_error) =
                match read_state(&device.state_dir) {
                    Ok(Some(persisted)) => (
                        persisted_state(&persisted, now).to_owned(),
                        persisted.seen_nonces.len(),
                        persisted.assignment.map(|a| a.assigned_hub),
                        None,
                    ),
                    Ok(None) => ("no_state".to_owned(), 0, None, None),
                    Err(error) => ("unreadable".to_owned(), 0, None, Some(error)),
                };
            let (pid, alive) = agent_process(device, manifest);
            AgentHolding {
                registration_id: device.registration_id.clone(),
                peripheral: device
                    .peripheral
                    .clone()
                    .unwrap_or_else(|| device.adapter.clone()),
                state,
                tickets_accepted,
                assigned_hub,
                adapter: device.adapter.clone(),
                state_dir: device.state_dir.clone(),
                pid,
                alive,
                state_error,
            }
        })
        .collect()
}

/// The typed refusal of `sandbox fault` on a BlueZ sandbox.
pub fn no_faults(manifest: &Path) -> CliError {
    CliError::new(
        Exit::Config,
        "fault_unsupported",
        format!(
            "{} is a `sandbox up --ble bluez` sandbox: it has no switchable faults (status-offline \
             acts on the in-memory fleet's status bridge only). Faults it does have: kill a device \
             agent (its pid in `fieldlink sandbox devices`) and restart it with `fieldlink \
             sandbox agent --device ID`",
            manifest.display()
        ),
    )
    .with_details(serde_json::json!({"faults": ["agent_kill_restart"]}))
}

/// Whether `argv` is `… sandbox agent … --device D …` for `device` (by registration ID or hex
/// discriminator), with `--manifest` (when given) naming `manifest`.
fn is_agent_of(argv: &[String], device: &BluezDevice, manifest: &Path) -> bool {
    let Some(start) = argv
        .windows(2)
        .position(|pair| pair[0] == "sandbox" && pair[1] == "agent")
    else {
        return false;
    };
    let rest = &argv[start + 2..];
    let value = |flag: &str| {
        rest.iter().enumerate().find_map(|(index, arg)| {
            if arg == flag {
                rest.get(index + 1).cloned()
            } else {
                arg.strip_prefix(&format!("{flag}=")).map(str::to_owned)
            }
        })
    };
    let names_device = value("--device").is_some_and(|named| {
        named == device.registration_id
            || named
                .strip_prefix("0x")
                .or_else(|| named.strip_prefix("0X"))
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())
                == Some(device.discriminator)
    });
    let same_manifest = value("--manifest").is_none_or(|named| {
        let canonical = |path: &Path| std::fs::canonicalize(path).ok();
        canonical(Path::new(&named)) == canonical(manifest)
    });
    names_device && same_manifest
}

/// The device's agent process and whether it is alive.
#[cfg(target_os = "linux")]
fn agent_process(device: &BluezDevice, manifest: &Path) -> (Option<u32>, Option<bool>) {
    let live = |pid: u32| {
        let proc = Path::new("/proc").join(pid.to_string());
        // `State:` Z (zombie) or X (dead) is not alive.
        let running = std::fs::read_to_string(proc.join("stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| state != 'Z' && state != 'X')
        });
        running
            && std::fs::read(proc.join("cmdline")).is_ok_and(|bytes| {
                let argv: Vec<String> = bytes
                    .split(|byte| *byte == 0)
                    .filter(|arg| !arg.is_empty())
                    .map(|arg| String::from_utf8_lossy(arg).into_owned())
                    .collect();
                is_agent_of(&argv, device, manifest)
            })
    };
    if let Some(pid) = device.pid.filter(|pid| live(*pid)) {
        return (Some(pid), Some(true));
    }
    let restarted = std::fs::read_dir("/proc").ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| live(*pid))
    });
    match restarted {
        Some(pid) => (Some(pid), Some(true)),
        None => (device.pid, Some(false)),
    }
}

/// The device's agent process (its liveness cannot be told here).
#[cfg(not(target_os = "linux"))]
fn agent_process(device: &BluezDevice, _manifest: &Path) -> (Option<u32>, Option<bool>) {
    (device.pid, None)
}

#[cfg(test)]
mod tests {
    use fieldlink_device_agent::{
        secret::{SecretBytes, SecretString},
        store::{CommittedAssignment, DeviceIdentity, DpsCredential, StagedCommissioning},
    };

    use super::*;

    fn state() -> PersistedState {
        PersistedState::new(
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
        )
    }

    fn device(dir: &Path, pid: Option<u32>) -> BluezDevice {
        BluezDevice {
            registration_id: "sandbox-device-0001".into(),
            discriminator: 0xa42,
            adapter: "hci1".into(),
            address: None,
            peripheral: None,
            identity: dir.join("identity.json"),
            trust_anchors: dir.join("trust-anchors.json"),
            state_dir: dir.join("state"),
            fail_safe_secs: 60,
            pid,
            log: dir.join("agent.log"),
        }
    }

    fn fleet(devices: Vec<BluezDevice>) -> BluezFleet {
        BluezFleet {
            bus_address: None,
            bench: true,
            installer_adapter: "hci0".into(),
            spare_installer_adapters: Vec::new(),
            devices,
        }
    }

    #[test]
    fn the_state_comes_from_the_agents_state_directory_read_only() {
        let root = tempfile::tempdir().unwrap();
        let manifest = root.path().join("manifest.json");
        let one = device(root.path(), None);

        // Never saved: no state, and the directory is not created by reading.
        let read = holdings(&fleet(vec![one.clone()]), &manifest);
        assert_eq!(read[0].state, "no_state");
        assert!(!one.state_dir.exists());

        let store = FileStore::open(&one.state_dir).unwrap();
        let mut saved = state();
        store.save(&saved).unwrap();
        assert_eq!(
            holdings(&fleet(vec![one.clone()]), &manifest)[0].state,
            "commissionable"
        );

        saved.pop_attempts.locked_until_ms = Some(now_ms() + 60_000);
        store.save(&saved).unwrap();
        assert_eq!(
            holdings(&fleet(vec![one.clone()]), &manifest)[0].state,
            "locked"
        );

        saved.pop_attempts.locked_until_ms = None;
        saved.staged = Some(StagedCommissioning {
            ticket: "t".into(),
            nonce: "00".into(),
            id_scope: "0ne0000001".into(),
            global_endpoint: "localhost:1".into(),
            tenant: "sandbox".into(),
            dps_instance: "dps-1".into(),
            expires_at: 0,
            network: None,
            staged_at_ms: 0,
            fail_safe_deadline_ms: 0,
            operation_id: Some("op".into()),
        });
        store.save(&saved).unwrap();
        assert_eq!(
            holdings(&fleet(vec![one.clone()]), &manifest)[0].state,
            "registering"
        );

        saved.staged = None;
        saved.burn_nonce(&[1; 16], i64::MAX, 0);
        saved.assignment = Some(CommittedAssignment {
            id_scope: "0ne0000001".into(),
            global_endpoint: "localhost:1".into(),
            assigned_hub: "hub-1.azure-devices.net".into(),
            device_id: "sandbox-device-0001".into(),
            substatus: None,
            committed_at_ms: 1,
            ticket_nonce: "01".into(),
        });
        store.save(&saved).unwrap();
        let before = std::fs::read(store.state_path()).unwrap();
        let read = holdings(&fleet(vec![one.clone()]), &manifest);
        assert_eq!(read[0].state, "registered");
        assert_eq!(read[0].tickets_accepted, 1);
        assert_eq!(
            read[0].assigned_hub.as_deref(),
            Some("hub-1.azure-devices.net")
        );
        assert_eq!(read[0].peripheral, "hci1");
        assert_eq!(std::fs::read(store.state_path()).unwrap(), before);

        // A damaged file is reported, not fatal.
        std::fs::write(
            store.state_path(),
            b"fieldlink-device-state v1 sha256=00\n{}",
        )
        .unwrap();
        let read = holdings(&fleet(vec![one]), &manifest);
        assert_eq!(read[0].state, "unreadable");
        assert!(read[0].state_error.as_deref().unwrap().contains("checksum"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_dead_or_foreign_pid_is_not_the_agent() {
        let root = tempfile::tempdir().unwrap();
        let manifest = root.path().join("manifest.json");
        // This test process is alive but is not a `sandbox agent` for the device. A registration
        // ID of its own, so that no other test's (or sandbox's) agent process matches it.
        let mut own = device(root.path(), Some(std::process::id()));
        own.registration_id = format!("foreign-pid-test-{}", std::process::id());
        let read = holdings(&fleet(vec![own]), &manifest);
        assert_eq!(read[0].alive, Some(false));
        assert_eq!(read[0].pid, Some(std::process::id()));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_live_agent_is_found_even_under_a_new_pid() {
        let root = tempfile::tempdir().unwrap();
        let manifest = root.path().join("manifest.json");
        // A process whose command line is a restarted agent's (`; true` keeps `sh` from
        // replacing itself with `sleep`).
        // A registration ID of its own, so that no other test's (or sandbox's) agent matches.
        let registration_id = format!("restarted-agent-test-{}", std::process::id());
        let with_pid = |pid: Option<u32>| {
            let mut one = device(root.path(), pid);
            one.registration_id.clone_from(&registration_id);
            one
        };
        let mut agent = std::process::Command::new("sh")
            .args([
                "-c",
                "sleep 30; true",
                "fieldlink",
                "sandbox",
                "agent",
                "--device",
            ])
            .arg(&registration_id)
            .spawn()
            .unwrap();
        let dead_pid = Some(u32::MAX - 1);
        // Other tests start and reap processes at the same time; look again for up to 5 s.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let found = loop {
            let read = holdings(&fleet(vec![with_pid(dead_pid)]), &manifest);
            let found = (read[0].pid, read[0].alive);
            if found.1 == Some(true) || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let _ = agent.kill();
        let _ = agent.wait();
        assert_eq!(found, (Some(agent.id()), Some(true)));
        let read = holdings(&fleet(vec![with_pid(Some(agent.id()))]), &manifest);
        assert_eq!(
            (read[0].pid, read[0].alive),
            (Some(agent.id()), Some(false))
        );
    }

    #[test]
    fn an_agent_command_line_names_its_device_and_manifest() {
        let root = tempfile::tempdir().unwrap();
        let manifest = root.path().join("manifest.json");
        std::fs::write(&manifest, b"{}").unwrap();
        let one = device(root.path(), None);
        let argv = |args: &[&str]| args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
        let manifest_text = manifest.display().to_string();
        assert!(is_agent_of(
            &argv(&[
                "fieldlink",
                "sandbox",
                "agent",
                "--manifest",
                &manifest_text,
                "--device",
                "sandbox-device-0001",
                "--tether"
            ]),
            &one,
            &manifest
        ));
        assert!(is_agent_of(
            &argv(&["fieldlink", "sandbox", "agent", "--device=0xA42"]),
            &one,
            &manifest
        ));
        assert!(!is_agent_of(
            &argv(&["fieldlink", "sandbox", "agent", "--device", "0xA43"]),
            &one,
            &manifest
        ));
        assert!(!is_agent_of(
            &argv(&[
                "fieldlink",
                "sandbox",
                "agent",
                "--manifest",
                "/elsewhere.json",
                "--device",
                "sandbox-device-0001"
            ]),
            &one,
            &manifest
        ));
        assert!(!is_agent_of(
            &argv(&[
                "fieldlink",
                "sandbox",
                "up",
                "--device",
                "sandbox-device-0001"
            ]),
            &one,
            &manifest
        ));
    }
}
