//! The private BLE bench: a `dbus-daemon` standing in for the system bus and BlueZoo (an
//! emulated BlueZ) with linked adapters. Each tool runs tethered to `sandbox up` (see
//! [`Tethered`]), so it stops with the sandbox even when the sandbox is killed.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use super::{BENCH_READY, BUS_ENV, INSTALL_HINT};
use crate::exit::{CliError, Exit};

use super::tether::Tethered;

fn bench_error(message: impl Into<String>) -> CliError {
    CliError::new(
        Exit::TransportUnavailable,
        "bluez_bench_unavailable",
        message,
    )
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Installer adapters a bench has besides `hci0` (see [`BluezFleet::spare_installer_adapters`]).
pub const SPARE_INSTALLER_ADAPTERS: usize = 2;

/// The bench's adapter addresses: installer, devices…, spare installers.
pub fn bench_addresses(devices: usize) -> Vec<String> {
    (0..devices + 1 + SPARE_INSTALLER_ADAPTERS)
        .map(|index| format!("00:FA:CE:00:{:02X}:{:02X}", index >> 8, index & 0xff))
        .collect()
}

/// The btleplug id BlueZ gives the device with `address` as seen from `adapter`.
pub fn peripheral_id(adapter: &str, address: &str) -> String {
    format!("{adapter}/dev_{}", address.replace(':', "_"))
}

/// A private system bus with BlueZoo on it; both stopped on drop (BlueZoo first).
pub struct BluezBench {
    /// `unix:path=…` of the private bus.
    pub address: String,
    /// The adapters, `hci0`…, in order.
    pub adapters: Vec<String>,
    bluezoo: Option<Tethered>,
    dbus: Tethered,
}

impl Drop for BluezBench {
    fn drop(&mut self) {
        // BlueZoo before its bus.
        if let Some(bluezoo) = self.bluezoo.as_mut() {
            bluezoo.stop();
        }
        self.dbus.stop();
    }
}

fn adapter_powered(bus: &str, adapter: &str) -> bool {
    Command::new("busctl")
        .arg(format!("--address={bus}"))
        .args(["get-property", "org.bluez"])
        .arg(format!("/org/bluez/{adapter}"))
        .args(["org.bluez.Adapter1", "Powered"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("true")
        })
}

impl BluezBench {
    /// Whether the bench tools are installed.
    pub fn check_tools() -> Result<(), CliError> {
        let missing: Vec<_> = ["dbus-daemon", "bluezoo", "busctl"]
            .into_iter()
            .filter(|tool| !on_path(tool))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(bench_error(format!(
                "{} not found; {INSTALL_HINT}",
                missing.join(", ")
            )))
        }
    }

    /// Starts dbus-daemon on `dir/system_bus_socket` and BlueZoo with one adapter per address,
    /// and waits until every adapter is powered.
    pub async fn start(dir: &Path, addresses: &[String]) -> Result<Self, CliError> {
        Self::check_tools()?;
        std::fs::create_dir_all(dir)
            .map_err(|error| bench_error(format!("cannot create {}: {error}", dir.display())))?;
        let socket = dir.join("system_bus_socket");
        let _ = std::fs::remove_file(&socket);
        let address = format!("unix:path={}", socket.display());
        let log = |name: &str| {
            std::fs::File::create(dir.join(name))
                .map_err(|error| bench_error(format!("cannot create a bench log: {error}")))
        };
        let dbus_log = log("dbus.log")?;
        let dbus = Tethered::shell(
            "dbus-daemon",
            &[
                "--session".into(),
                "--nofork".into(),
                "--nopidfile".into(),
                format!("--address={address}"),
            ],
            |command| {
                command.stdout(Stdio::null()).stderr(dbus_log);
            },
        )
        .map_err(|error| bench_error(format!("cannot start dbus-daemon: {error}")))?;
        let mut bench = BluezBench {
            address: address.clone(),
            adapters: (0..addresses.len()).map(|i| format!("hci{i}")).collect(),
            dbus,
            bluezoo: None,
        };
        let started = tokio::time::Instant::now();
        while !socket.exists() {
            if started.elapsed() > Duration::from_secs(5) {
                return Err(bench_error("dbus-daemon did not create its socket"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let bluezoo_log = log("bluezoo.log")?;
        let mut bluezoo_args: Vec<String> = ["--auto-enable", "--scan-interval", "1"]
            .map(str::to_owned)
            .to_vec();
        for adapter in addresses {
            bluezoo_args.extend(["-a".to_owned(), adapter.clone()]);
        }
        let bluezoo_out = bluezoo_log
            .try_clone()
            .map_err(|error| bench_error(error.to_string()))?;
        let bluezoo = Tethered::shell("bluezoo", &bluezoo_args, |command| {
            command
                .env(BUS_ENV, &address)
                .stdout(bluezoo_out)
                .stderr(bluezoo_log);
        })
        .map_err(|error| bench_error(format!("cannot start bluezoo: {error}")))?;
        bench.bluezoo = Some(bluezoo);
        let last = bench
            .adapters
            .last()
            .cloned()
            .unwrap_or_else(|| "hci0".into());
        loop {
            let bus = address.clone();
            let adapters = bench.adapters.clone();
            let up = tokio::task::spawn_blocking(move || {
                adapter_powered(&bus, "hci0") && adapters.iter().all(|a| adapter_powered(&bus, a))
            })
            .await
            .unwrap_or(false);
            if up {
                return Ok(bench);
            }
            if bench.bluezoo.as_mut().is_some_and(|tool| !tool.running()) {
                return Err(bench_error(format!(
                    "bluezoo exited; see {}",
                    dir.join("bluezoo.log").display()
                )));
            }
            if started.elapsed() > BENCH_READY {
                return Err(bench_error(format!(
                    "BlueZoo did not power {last} in time; see {}",
                    dir.join("bluezoo.log").display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
