//! The BLE bench harness: a private `dbus-daemon` standing in for the system bus, BlueZoo (an
//! emulated BlueZ, PyPI `bluezoo` 1.0.2) with linked adapters, and peripheral processes on them.
//! Everything it starts is killed when the [`Bench`] (or [`PeripheralProcess`]) is dropped.
//!
//! libdbus reads `DBUS_SYSTEM_BUS_ADDRESS` once per process, so every bench of this test binary
//! uses the same socket path, and benches run one at a time (a process-wide lock).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, LazyLock, Once},
    time::Duration,
};

use fieldlink_core::transport::btleplug::list_adapters;
use std::io::BufRead as _;

use tokio::sync::{Mutex, OwnedMutexGuard};

/// The installer's adapter.
pub const INSTALLER_ADAPTER: &str = "hci0";
/// Adapter addresses, in `hciN` order.
pub const ADDRESSES: [&str; 3] = [
    "00:11:22:33:44:55",
    "00:AA:BB:CC:DD:EE",
    "00:AA:BB:CC:DD:FF",
];

const INSTALL_HINT: &str = "install the BLE bench tools: `apt-get install dbus-daemon systemd` \
     and `pip install bluezoo==1.0.2` (or run tests/ble-bench/install.sh)";

static LOCK: LazyLock<Arc<Mutex<()>>> = LazyLock::new(|| Arc::new(Mutex::new(())));
static BUS_ENV: Once = Once::new();

fn bench_dir() -> PathBuf {
    std::env::temp_dir().join(format!("fieldlink-ble-bench-{}", std::process::id()))
}

fn socket_path() -> PathBuf {
    bench_dir().join("system_bus_socket")
}

/// Points this process's system bus at the bench socket (once, before any D-Bus use).
fn export_bus_address() {
    BUS_ENV.call_once(|| {
        let address = format!("unix:path={}", socket_path().display());
        // SAFETY: called once, under the bench lock, before any thread of this test binary
        // opens a D-Bus connection (the only reader of this variable); no other test in this
        // binary touches the environment.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", address);
        }
    });
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Whether the bench can run here. In CI (`CI` set) a missing tool fails the test; locally the
/// test is skipped with a loud message.
pub fn available(test: &str) -> bool {
    let missing: Vec<_> = ["dbus-daemon", "bluezoo"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "BLE bench: {} missing; {INSTALL_HINT}",
        missing.join(" and ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("\n!!!!! SKIPPED {test}: {message} !!!!!\n");
    false
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A running bench. Holds the process-wide bench lock.
pub struct Bench {
    dir: PathBuf,
    dbus: Child,
    bluezoo: Option<Child>,
    _lock: OwnedMutexGuard<()>,
}

impl Bench {
    /// dbus-daemon + BlueZoo with `adapters` linked adapters (2 or 3), all powered; waits until
    /// btleplug sees them.
    pub async fn start(adapters: usize) -> Bench {
        let mut bench = Self::bus_only().await;
        let mut command = Command::new("bluezoo");
        command.args(["--auto-enable", "--scan-interval", "1"]);
        for address in ADDRESSES.iter().take(adapters) {
            command.args(["-a", address]);
        }
        let log = std::fs::File::create(bench.dir.join("bluezoo.log")).expect("bluezoo log");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start bluezoo");
        bench.bluezoo = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(found) = list_adapters(Duration::from_secs(1)).await
                && found.len() == adapters
                && found.iter().all(|a| a.powered)
            {
                return bench;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "BlueZoo did not come up: {}",
                bench.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Only the private bus, without BlueZ on it.
    pub async fn bus_only() -> Bench {
        let lock = Arc::clone(&LOCK).lock_owned().await;
        export_bus_address();
        let dir = bench_dir();
        std::fs::create_dir_all(&dir).expect("bench dir");
        let socket = socket_path();
        let _ = std::fs::remove_file(&socket);
        let dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let bench = Bench {
            dir,
            dbus,
            bluezoo: None,
            _lock: lock,
        };
        for _ in 0..100 {
            if socket.exists() {
                return bench;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("dbus-daemon did not create {}", socket.display());
    }

    /// The bench's directory (logs, bus socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// BlueZoo's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bluezoo.log")).unwrap_or_default()
    }

    /// Starts `fieldlink-ble-peripheral` in echo mode on `adapter` and waits until it advertises.
    pub async fn echo_peripheral(&self, adapter: &str, discriminator: u16) -> PeripheralProcess {
        PeripheralProcess::spawn(
            &self.dir,
            &[
                "--adapter",
                adapter,
                "--discriminator",
                &format!("{discriminator:#05x}"),
                "--echo",
            ],
        )
        .await
    }

    /// Sets an adapter's `Powered` property over D-Bus (as `bluetoothctl power off` would).
    pub async fn set_powered(&self, adapter: &str, powered: bool) {
        let path = format!("/org/bluez/{adapter}");
        tokio::task::spawn_blocking(move || {
            use dbus::blocking::{Connection, stdintf::org_freedesktop_dbus::Properties as _};
            let connection = Connection::new_system().expect("bench bus");
            let proxy = connection.with_proxy("org.bluez", path, Duration::from_secs(2));
            proxy
                .set("org.bluez.Adapter1", "Powered", powered)
                .expect("set Powered");
        })
        .await
        .expect("set_powered task");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(bluezoo) = self.bluezoo.as_mut() {
            kill(bluezoo);
        }
        kill(&mut self.dbus);
        let _ = std::fs::remove_file(socket_path());
    }
}

/// A peripheral process on the bench; killed on drop.
pub struct PeripheralProcess {
    child: Child,
    /// The address centrals see.
    pub address: String,
}

impl PeripheralProcess {
    async fn spawn(dir: &Path, args: &[&str]) -> PeripheralProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("peripheral.log"))
            .expect("peripheral log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldlink-ble-peripheral"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start fieldlink-ble-peripheral");
        let stdout = child.stdout.take().expect("piped stdout");
        // The reader thread ends at the first line or when the child dies (EOF).
        let first_line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        });
        let mut process = PeripheralProcess {
            child,
            address: String::new(),
        };
        match tokio::time::timeout(Duration::from_secs(15), first_line).await {
            Ok(Ok(Ok(line))) if line.starts_with("ready ") => {
                process.address = line["ready ".len()..].trim().to_owned();
                process
            }
            other => {
                kill(&mut process.child);
                let log = std::fs::read_to_string(dir.join("peripheral.log")).unwrap_or_default();
                panic!("peripheral did not get ready ({other:?}):\n{log}");
            }
        }
    }

    /// SIGKILL, as a crash or power cut would.
    pub fn kill(mut self) {
        kill(&mut self.child);
    }
}

impl Drop for PeripheralProcess {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// The btleplug peripheral id BlueZ gives the device with `address` as seen from `adapter`.
pub fn peripheral_id(adapter: &str, address: &str) -> String {
    format!("{adapter}/dev_{}", address.replace(':', "_"))
}
