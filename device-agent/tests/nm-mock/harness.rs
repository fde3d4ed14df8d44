//! The NetworkManager mock bench: a private `dbus-daemon` and python-dbusmock's NetworkManager
//! template with fieldlink's simulated radio (`fieldlink_nm.py`) on it. Everything it starts is
//! killed on drop. Install the tools with `device-agent/tests/nm-mock/install.sh`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fieldlink_device_agent::network::networkmanager::NetworkManagerConfig;
use zbus::zvariant::{DynamicDeserialize, DynamicType, OwnedObjectPath, OwnedValue};

/// The device state `DISCONNECTED`.
pub const DISCONNECTED: i32 = 30;
/// NetworkManager's well-known name.
const NM: &str = "org.freedesktop.NetworkManager";
const INSTALL: &str = "device-agent/tests/nm-mock/install.sh \
     (apt-get install dbus-daemon; pip install python-dbusmock==0.38.1)";

fn python() -> String {
    std::env::var("FIELDLINK_NM_MOCK_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether the mock can run here. In CI (`CI` set) a missing tool fails the test; locally the
/// test is skipped with a loud message.
pub fn available(test: &str) -> bool {
    let mut missing = Vec::new();
    if !works("dbus-daemon", &["--version"]) {
        missing.push("dbus-daemon".to_owned());
    }
    if !works(&python(), &["-c", "import dbusmock"]) {
        missing.push(format!("python-dbusmock (for {})", python()));
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "NetworkManager mock: {} missing; run {INSTALL}",
        missing.join(" and ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("\n!!!!! SKIPPED {test}: {message} !!!!!\n");
    false
}

/// A private bus with the NetworkManager mock on it.
pub struct NmMock {
    /// The bus address (`unix:path=…`).
    pub address: String,
    connection: zbus::Connection,
    dbus: Child,
    mock: Child,
    dir: tempfile::TempDir,
}

impl Drop for NmMock {
    fn drop(&mut self) {
        for child in [&mut self.mock, &mut self.dbus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl NmMock {
    /// Starts the bus and the mock; waits until NetworkManager's name is owned.
    pub async fn start() -> NmMock {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("bus");
        let address = format!("unix:path={}", socket.display());
        let dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let template =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/nm-mock/fieldlink_nm.py");
        let log = std::fs::File::create(dir.path().join("mock.log")).expect("mock log");
        let mock = Command::new(python())
            .args(["-m", "dbusmock", "--system", "--template"])
            .arg(&template)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start python-dbusmock");
        let connection = zbus::connection::Builder::address(address.as_str())
            .expect("address")
            .build()
            .await
            .expect("connect to the private bus");
        let mut bench = NmMock {
            address,
            connection,
            dbus,
            mock,
            dir,
        };
        let dbus_proxy = zbus::fdo::DBusProxy::new(&bench.connection)
            .await
            .expect("bus proxy");
        for _ in 0..300 {
            let name = zbus::names::BusName::try_from(NM).expect("name");
            if dbus_proxy.name_has_owner(name).await.unwrap_or(false) {
                return bench;
            }
            if let Ok(Some(status)) = bench.mock.try_wait() {
                panic!("the mock exited ({status}):\n{}", bench.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the mock did not come up:\n{}", bench.log());
    }

    /// The mock's log (every D-Bus call it answered).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mock.log")).unwrap_or_default()
    }

    /// Configurator settings for this bus, with short timeouts.
    pub fn config(&self) -> NetworkManagerConfig {
        NetworkManagerConfig {
            bus_address: Some(self.address.clone()),
            call_timeout: Duration::from_secs(3),
            scan_wait: Duration::from_secs(1),
            activation_timeout: Duration::from_secs(10),
            connectivity_timeout: Duration::from_millis(800),
            connectivity_retry: Duration::from_millis(200),
            probe_timeout: Duration::from_secs(1),
            poll_interval: Duration::from_millis(200),
            ..NetworkManagerConfig::default()
        }
    }

    /// Calls `method` on `interface` at `path`.
    pub async fn call<B, R>(&self, path: &str, interface: &str, method: &str, body: &B) -> R
    where
        B: serde::Serialize + DynamicType,
        R: for<'d> DynamicDeserialize<'d>,
    {
        let reply = self
            .connection
            .call_method(Some(NM), path, Some(interface), method, body)
            .await
            .unwrap_or_else(|error| panic!("{method} failed: {error}\n{}", self.log()));
        reply.body().deserialize().expect("reply type")
    }

    /// Calls a method of the mock's control interface (`org.freedesktop.DBus.Mock`).
    pub async fn mock<B, R>(&self, method: &str, body: &B) -> R
    where
        B: serde::Serialize + DynamicType,
        R: for<'d> DynamicDeserialize<'d>,
    {
        self.call(
            "/org/freedesktop",
            "org.freedesktop.DBus.Mock",
            method,
            body,
        )
        .await
    }

    /// Reads a property.
    pub async fn property<T: TryFrom<OwnedValue>>(
        &self,
        path: &str,
        interface: &str,
        name: &str,
    ) -> T {
        let value: OwnedValue = self
            .call(
                path,
                "org.freedesktop.DBus.Properties",
                "Get",
                &(interface, name),
            )
            .await;
        T::try_from(value).unwrap_or_else(|_| panic!("{name} has another type"))
    }

    /// A Wi-Fi device `wlan0` (disconnected).
    pub async fn wifi_device(&self) -> String {
        self.mock("AddWiFiDevice", &("wlan0", "wlan0", DISCONNECTED))
            .await
    }

    /// A visible WPA2 access point.
    pub async fn access_point(&self, device: &str, name: &str, ssid: &str, strength: u8) -> String {
        self.access_point_with(device, name, ssid, 2437, strength, 0x188)
            .await
    }

    /// A visible access point with a frequency and security flags.
    pub async fn access_point_with(
        &self,
        device: &str,
        name: &str,
        ssid: &str,
        frequency: u32,
        strength: u8,
        security: u32,
    ) -> String {
        let mac = format!("02:00:00:00:00:{:02x}", name.len() + usize::from(strength));
        self.mock(
            "AddAccessPoint",
            &(
                device,
                name,
                ssid,
                mac.as_str(),
                2u32,
                frequency,
                54_000u32,
                strength,
                security,
            ),
        )
        .await
    }

    /// What the radio answers for `ssid`.
    pub async fn network(&self, ssid: &str, passphrase: &str, fault: &str) {
        self.mock::<_, ()>("SetNetwork", &(ssid, passphrase, fault))
            .await;
    }

    /// Every stored profile: (path, id).
    pub async fn profiles(&self) -> Vec<(String, String)> {
        let paths: Vec<OwnedObjectPath> = self
            .call(
                "/org/freedesktop/NetworkManager/Settings",
                "org.freedesktop.NetworkManager.Settings",
                "ListConnections",
                &(),
            )
            .await;
        let mut profiles = Vec::new();
        for path in paths {
            let settings: std::collections::HashMap<
                String,
                std::collections::HashMap<String, OwnedValue>,
            > = self
                .call(
                    path.as_str(),
                    "org.freedesktop.NetworkManager.Settings.Connection",
                    "GetSettings",
                    &(),
                )
                .await;
            let id = settings["connection"]["id"].try_clone().expect("clone");
            profiles.push((
                path.to_string(),
                String::try_from(id).expect("id is a string"),
            ));
        }
        profiles
    }

    /// The profile the device runs, and the device state.
    pub async fn running(&self, device: &str) -> (Option<String>, u32) {
        let iface = "org.freedesktop.NetworkManager.Device";
        let state: u32 = self.property(device, iface, "State").await;
        let active: OwnedObjectPath = self.property(device, iface, "ActiveConnection").await;
        if active.as_str() == "/" {
            return (None, state);
        }
        let profile: OwnedObjectPath = self
            .property(
                active.as_str(),
                "org.freedesktop.NetworkManager.Connection.Active",
                "Connection",
            )
            .await;
        (Some(profile.to_string()), state)
    }

    /// Waits until the device runs `profile` and is activated.
    pub async fn wait_running(&self, device: &str, profile: &str) {
        for _ in 0..100 {
            if self.running(device).await == (Some(profile.to_owned()), 100) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{device} never ran {profile}: {:?}",
            self.running(device).await
        );
    }
}
