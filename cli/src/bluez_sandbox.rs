//! `sandbox up --ble bluez`: the sandbox's virtual devices served by real device agents over
//! BlueZ, each its own `fieldlink sandbox agent` process (so one can be killed and restarted),
//! optionally on a private bench: a `dbus-daemon` standing in for the system bus and BlueZoo (an
//! emulated BlueZ) with one adapter per device plus installer adapters.
//!
//! The manifest's [`BluezFleet`] tells other processes how to reach the devices: the bus address
//! (their `DBUS_SYSTEM_BUS_ADDRESS`), the installer adapter, and each device's adapter, address
//! and files. See `docs/cli.md` ("sandbox up --ble bluez").

mod agents;
mod bench;
mod tether;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use self::{
    agents::{AgentChild, agent_argv, spawn_agent, write_agent_files},
    bench::{BluezBench, bench_addresses, peripheral_id},
    tether::exit_when_stdin_closes,
};
use crate::exit::{CliError, Exit};

/// The most devices a bench holds (one BlueZoo adapter and one agent process each).
pub const MAX_BENCH_DEVICES: usize = 16;
/// The environment variable libdbus (btleplug, bluer) reads for the system bus.
pub const BUS_ENV: &str = "DBUS_SYSTEM_BUS_ADDRESS";
/// How long an agent process may take to advertise.
const AGENT_READY: Duration = Duration::from_secs(30);
/// How long BlueZoo may take to power its adapters.
const BENCH_READY: Duration = Duration::from_secs(20);

const INSTALL_HINT: &str = "install the BLE bench: `apt-get install dbus-daemon systemd` and \
     `pip install bluezoo==1.0.2` (or run tests/ble-bench/install.sh), or use real adapters with \
     `--adapter hciN`";

/// The BlueZ side of a sandbox, as recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BluezFleet {
    /// The D-Bus address of the system bus the adapters are on (`unix:path=…`): installers
    /// export it as `DBUS_SYSTEM_BUS_ADDRESS`. `null`: the machine's own system bus.
    pub bus_address: Option<String>,
    /// Whether the sandbox runs its own bench (private dbus-daemon + BlueZoo).
    pub bench: bool,
    /// The adapter installers scan and connect with (`fieldlink --adapter hci0 …`).
    pub installer_adapter: String,
    /// Further installer adapters (bench only). BlueZoo 1.0.2 cannot connect a central to a
    /// device again after a disconnect (it re-exports the same GATT object paths) and keeps a
    /// dead agent's GATT objects under every central that was connected to it, so each
    /// installer adapter commissions each device once per agent run: use these for the next
    /// connections to a device.
    pub spare_installer_adapters: Vec<String>,
    /// The devices, in the manifest's device order.
    pub devices: Vec<BluezDevice>,
}

/// One device agent on its adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BluezDevice {
    /// DPS registration ID (the key for `fieldlink sandbox agent --device`).
    pub registration_id: String,
    /// The advertised 12-bit discriminator.
    pub discriminator: u16,
    /// The adapter its agent serves on.
    pub adapter: String,
    /// The adapter's address (what centrals see), once known.
    pub address: Option<String>,
    /// Its btleplug peripheral id as seen from the installer adapter (`hci0/dev_…`), once known.
    pub peripheral: Option<String>,
    /// Its identity file (registration ID, PoP, discriminator, DPS group key). Secret.
    pub identity: PathBuf,
    /// The ticket keys it trusts.
    pub trust_anchors: PathBuf,
    /// Its persistent state (kept across agent restarts).
    pub state_dir: PathBuf,
    /// Its fail-safe window.
    pub fail_safe_secs: u64,
    /// The agent process `sandbox up` started (`null` before it started).
    pub pid: Option<u32>,
    /// Its log file.
    pub log: PathBuf,
}

/// Where the devices' adapters come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BluezPlan {
    /// Device adapters on the existing system bus (`DBUS_SYSTEM_BUS_ADDRESS` or the machine's),
    /// one per device; empty = run a private bench.
    pub adapters: Vec<String>,
    /// The installer adapter on the existing bus (`hci0` when not given).
    pub installer_adapter: Option<String>,
    /// The devices' fail-safe window.
    pub fail_safe_secs: u64,
}

/// The BlueZ fleet of a running sandbox: its bench (if any) and the agent processes it started.
pub struct RunningBluezFleet {
    /// What the manifest records.
    pub fleet: BluezFleet,
    agents: Vec<AgentChild>,
    // Dropped last: the agents go before their bus.
    bench: Option<BluezBench>,
}

impl RunningBluezFleet {
    /// Starts the bench (unless `plan` names adapters) and writes each device's files under
    /// `dir/devices/<registration id>/`. The in-process agents of `devices` are shut down: the
    /// agent processes replace them (same identity and trust anchors).
    pub async fn prepare(
        devices: &[crate::stack::StackDevice],
        dir: &Path,
        plan: &BluezPlan,
    ) -> Result<Self, CliError> {
        use fieldlink_device_agent::store::StateStore as _;
        let (bench, installer_adapter, spare, device_adapters, addresses) =
            if plan.adapters.is_empty() {
                if devices.len() > MAX_BENCH_DEVICES {
                    return Err(CliError::new(
                        Exit::Usage,
                        "usage",
                        format!(
                            "the BlueZ bench holds at most {MAX_BENCH_DEVICES} devices (one \
                             agent process and adapter each)"
                        ),
                    ));
                }
                let addresses = bench_addresses(devices.len());
                let bench = BluezBench::start(&dir.join("bench"), &addresses).await?;
                let adapters = bench.adapters.clone();
                let spare = adapters[devices.len() + 1..].to_vec();
                let device_adapters = adapters[1..=devices.len()].to_vec();
                let device_addresses = addresses[1..=devices.len()]
                    .iter()
                    .cloned()
                    .map(Some)
                    .collect();
                (
                    Some(bench),
                    adapters[0].clone(),
                    spare,
                    device_adapters,
                    device_addresses,
                )
            } else {
                if plan.adapters.len() != devices.len() {
                    return Err(CliError::new(
                        Exit::Usage,
                        "usage",
                        format!(
                            "{} devices need {} `--adapter`s (one each), got {}",
                            devices.len(),
                            devices.len(),
                            plan.adapters.len()
                        ),
                    ));
                }
                (
                    None,
                    plan.installer_adapter
                        .clone()
                        .unwrap_or_else(|| "hci0".into()),
                    Vec::new(),
                    plan.adapters.clone(),
                    vec![None; devices.len()],
                )
            };
        let bus_address = match &bench {
            Some(bench) => Some(bench.address.clone()),
            None => std::env::var(BUS_ENV).ok(),
        };
        let mut entries = Vec::with_capacity(devices.len());
        for ((device, adapter), address) in devices.iter().zip(device_adapters).zip(addresses) {
            device.agent.shutdown().await;
            let state = device
                .store
                .load()
                .map_err(|error| CliError::internal(error.to_string()))?
                .ok_or_else(|| CliError::internal("a virtual device saved no factory state"))?;
            let files = dir.join("devices").join(&device.payload.registration_id);
            let (identity, trust_anchors) =
                write_agent_files(&files, &state.identity, &state.trust_anchors)?;
            let state_dir = files.join("state");
            let _ = std::fs::remove_dir_all(&state_dir);
            entries.push(BluezDevice {
                registration_id: device.payload.registration_id.clone(),
                discriminator: device.payload.discriminator,
                peripheral: address
                    .as_deref()
                    .map(|address| peripheral_id(&installer_adapter, address)),
                address,
                adapter,
                identity,
                trust_anchors,
                state_dir,
                fail_safe_secs: plan.fail_safe_secs,
                pid: None,
                log: files.join("agent.log"),
            });
        }
        Ok(Self {
            fleet: BluezFleet {
                bus_address,
                bench: bench.is_some(),
                installer_adapter,
                spare_installer_adapters: spare,
                devices: entries,
            },
            agents: Vec::new(),
            bench,
        })
    }

    /// Starts one agent process per device (`fieldlink sandbox agent`, which reads `manifest`)
    /// and records their pids and addresses.
    pub async fn start_agents(&mut self, manifest: &Path) -> Result<(), CliError> {
        let bus = self.fleet.bus_address.clone();
        for index in 0..self.fleet.devices.len() {
            let agent = spawn_agent(manifest, &self.fleet.devices[index], bus.as_deref()).await?;
            let device = &mut self.fleet.devices[index];
            device.pid = Some(agent.pid());
            if !agent.address.is_empty() {
                device.peripheral =
                    Some(peripheral_id(&self.fleet.installer_adapter, &agent.address));
                device.address = Some(agent.address.clone());
            }
            self.agents.push(agent);
        }
        Ok(())
    }

    /// How many of the agents `sandbox up` started still run.
    pub fn running_agents(&mut self) -> usize {
        self.agents
            .iter_mut()
            .map(AgentChild::running)
            .filter(|running| *running)
            .count()
    }

    /// Stops the agents it started, then the bench.
    pub fn stop(mut self) {
        self.agents.clear();
        drop(self.bench.take());
    }
}

/// `sandbox up --ble bluez` after the stack is up and its manifest built: prepares the fleet,
/// records it in the manifest (the agents read their files from it), starts one agent process
/// per device, then records their pids, addresses and peripheral ids. The manifest's device
/// `peripheral` becomes the btleplug id seen from the installer adapter.
pub async fn start_in_sandbox(
    devices: &[crate::stack::StackDevice],
    dir: &Path,
    plan: &BluezPlan,
    manifest: &mut crate::manifest::Manifest,
    path: &Path,
) -> Result<RunningBluezFleet, CliError> {
    let mut fleet = RunningBluezFleet::prepare(devices, dir, plan).await?;
    manifest.bluez = Some(fleet.fleet.clone());
    manifest.save(path)?;
    fleet.start_agents(path).await?;
    for (device, agent) in manifest.devices.iter_mut().zip(&fleet.fleet.devices) {
        if let Some(peripheral) = &agent.peripheral {
            device.peripheral.clone_from(peripheral);
        }
    }
    manifest.bluez = Some(fleet.fleet.clone());
    manifest.save(path)?;
    Ok(fleet)
}

/// What a person needs to use the fleet from another terminal.
pub fn usage_hint(fleet: &BluezFleet, manifest: &Path) -> String {
    let bus = fleet
        .bus_address
        .as_deref()
        .map_or_else(String::new, |bus| format!("export {BUS_ENV}='{bus}'\n  "));
    format!(
        "BlueZ fleet: {} device agents{} (installer adapter {})\n  {bus}fieldlink scan --adapter {}\n  \
         fieldlink profile add sandbox --from-sandbox {} && fieldlink --profile sandbox login\n  \
         fieldlink --profile sandbox commission <payload> --adapter {}{}\n  restart a killed agent: \
         fieldlink sandbox agent --manifest {} --device <registration id>",
        fleet.devices.len(),
        if fleet.bench {
            " on a private BlueZoo bench"
        } else {
            ""
        },
        fleet.installer_adapter,
        fleet.installer_adapter,
        manifest.display(),
        fleet.installer_adapter,
        if fleet.spare_installer_adapters.is_empty() {
            String::new()
        } else {
            format!(
                "\n  BlueZoo connects an adapter to a device once per agent run: connect again \
                 from {}",
                fleet.spare_installer_adapters.join(" or ")
            )
        },
        manifest.display(),
    )
}

/// Checks the `--adapter` list against the device count before anything starts.
pub fn check_plan(devices: usize, adapters: &[String]) -> Result<(), CliError> {
    if adapters.is_empty() {
        if devices > MAX_BENCH_DEVICES {
            return Err(CliError::new(
                Exit::Usage,
                "usage",
                format!(
                    "the BlueZ bench holds at most {MAX_BENCH_DEVICES} devices (one agent \
                     process and adapter each)"
                ),
            ));
        }
        return BluezBench::check_tools();
    }
    if adapters.len() != devices {
        return Err(CliError::new(
            Exit::Usage,
            "usage",
            format!(
                "{devices} devices need {devices} `--adapter`s (one each), got {}",
                adapters.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_addresses_are_distinct_with_an_installer_and_a_spare() {
        let addresses = bench_addresses(3);
        assert_eq!(addresses.len(), 6);
        let mut unique = addresses.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 6);
        assert_eq!(addresses[0], "00:FA:CE:00:00:00");
        assert_eq!(bench_addresses(300)[257], "00:FA:CE:00:01:01");
    }

    #[test]
    fn the_agent_command_line_names_the_files_and_adapter() {
        let device = BluezDevice {
            registration_id: "sandbox-device-0001".into(),
            discriminator: 0xa42,
            adapter: "hci1".into(),
            address: None,
            peripheral: None,
            identity: "/s/d/identity.json".into(),
            trust_anchors: "/s/d/trust-anchors.json".into(),
            state_dir: "/s/d/state".into(),
            fail_safe_secs: 60,
            pid: None,
            log: "/s/d/agent.log".into(),
        };
        let argv = agent_argv(&device, "hci3", Path::new("/s/ca.pem"));
        let text = argv.join(" ");
        assert!(
            text.starts_with("run --identity /s/d/identity.json"),
            "{text}"
        );
        assert!(text.contains("--state-dir /s/d/state"), "{text}");
        assert!(text.contains("--dps-ca /s/ca.pem"), "{text}");
        assert!(text.contains("--ble bluez --adapter hci3"), "{text}");
        assert_eq!(
            peripheral_id("hci0", "00:FA:CE:00:00:01"),
            "hci0/dev_00_FA_CE_00_00_01"
        );
    }
}
