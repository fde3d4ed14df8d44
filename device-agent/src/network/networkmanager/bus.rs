//! NetworkManager's D-Bus API, as far as the configurator uses it. Every call has a deadline
//! (`call_timeout`); properties are read fresh (no proxy cache), because NetworkManager's state
//! moves under us.

use std::collections::HashMap;
use std::time::Duration;

use futures::stream::BoxStream;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{DynamicDeserialize, DynamicType, ObjectPath, OwnedObjectPath, OwnedValue};

use super::convert::NewSettings;

const SERVICE: &str = "org.freedesktop.NetworkManager";
const NM_PATH: &str = "/org/freedesktop/NetworkManager";
const SETTINGS_PATH: &str = "/org/freedesktop/NetworkManager/Settings";
const NM_IFACE: &str = "org.freedesktop.NetworkManager";
const DEVICE_IFACE: &str = "org.freedesktop.NetworkManager.Device";
const WIRELESS_IFACE: &str = "org.freedesktop.NetworkManager.Device.Wireless";
const AP_IFACE: &str = "org.freedesktop.NetworkManager.AccessPoint";
const SETTINGS_IFACE: &str = "org.freedesktop.NetworkManager.Settings";
const CONNECTION_IFACE: &str = "org.freedesktop.NetworkManager.Settings.Connection";
const ACTIVE_IFACE: &str = "org.freedesktop.NetworkManager.Connection.Active";
const PROPERTIES_IFACE: &str = "org.freedesktop.DBus.Properties";

/// Stored connection settings as NetworkManager returns them.
pub(super) type Settings = HashMap<String, HashMap<String, OwnedValue>>;

/// A D-Bus call that failed or did not answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum BusError {
    /// No answer within the call timeout.
    #[error("NetworkManager did not answer {what} within {timeout:?}")]
    Timeout {
        /// The call.
        what: &'static str,
        /// Its timeout.
        timeout: Duration,
    },
    /// The call failed.
    #[error("NetworkManager {what} failed: {source}")]
    Call {
        /// The call.
        what: &'static str,
        /// What D-Bus or NetworkManager said (never carries our request body).
        source: Box<zbus::Error>,
    },
}

impl BusError {
    /// The D-Bus error name, for a method error.
    pub(super) fn error_name(&self) -> Option<String> {
        match self {
            Self::Call { source, .. } => match source.as_ref() {
                zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
                _ => None,
            },
            Self::Timeout { .. } => None,
        }
    }

    /// Whether the object the call went to no longer exists.
    pub(super) fn is_unknown_object(&self) -> bool {
        self.error_name().is_some_and(|name| {
            name.ends_with("UnknownObject")
                || name.ends_with("UnknownMethod")
                || name.ends_with("UnknownInterface")
        })
    }
}

/// A network device NetworkManager manages.
#[derive(Debug, Clone)]
pub(super) struct Device {
    /// Object path.
    pub path: OwnedObjectPath,
    /// `NMDeviceType`: 1 Ethernet, 2 Wi-Fi, 8 modem.
    pub kind: u32,
    /// Interface name (`wlan0`).
    pub interface: String,
}

/// A device's state right now.
#[derive(Debug, Clone)]
pub(super) struct DeviceStatus {
    /// `NMDeviceState`.
    pub state: u32,
    /// `NMDeviceStateReason` of the last change.
    pub reason: u32,
    /// The active connection (`/` for none).
    pub active: OwnedObjectPath,
}

/// A connection to NetworkManager on one bus.
#[derive(Clone)]
pub(super) struct NmBus {
    connection: zbus::Connection,
    call_timeout: Duration,
}

impl NmBus {
    /// Connects to `address`, or to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` is honoured).
    pub(super) async fn connect(
        address: Option<&str>,
        call_timeout: Duration,
    ) -> Result<Self, BusError> {
        let connect = async {
            match address {
                Some(address) => zbus::connection::Builder::address(address)?.build().await,
                None => zbus::Connection::system().await,
            }
        };
        let connection = bounded("connecting to the system bus", call_timeout, connect).await?;
        Ok(Self {
            connection,
            call_timeout,
        })
    }

    async fn proxy(
        &self,
        path: &str,
        interface: &'static str,
    ) -> Result<zbus::Proxy<'static>, BusError> {
        let what = "proxy setup";
        let call = |source: zbus::Error| BusError::Call {
            what,
            source: Box::new(source),
        };
        let path = ObjectPath::try_from(path.to_owned()).map_err(|e| call(e.into()))?;
        zbus::proxy::Builder::new(&self.connection)
            .destination(SERVICE)
            .and_then(|b| b.path(path))
            .and_then(|b| b.interface(interface))
            .map_err(call)?
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(call)
    }

    async fn call<B, R>(
        &self,
        what: &'static str,
        path: &str,
        interface: &'static str,
        method: &'static str,
        body: &B,
    ) -> Result<R, BusError>
    where
        B: serde::Serialize + DynamicType,
        R: for<'d> DynamicDeserialize<'d>,
    {
        let proxy = self.proxy(path, interface).await?;
        bounded(what, self.call_timeout, proxy.call(method, body)).await
    }

    async fn property<T>(
        &self,
        what: &'static str,
        path: &str,
        interface: &'static str,
        name: &str,
    ) -> Result<T, BusError>
    where
        T: TryFrom<OwnedValue>,
        T::Error: Into<zbus::Error>,
    {
        let proxy = self.proxy(path, interface).await?;
        bounded(what, self.call_timeout, proxy.get_property(name)).await
    }

    /// Every device with its type and interface name.
    pub(super) async fn devices(&self) -> Result<Vec<Device>, BusError> {
        let paths: Vec<OwnedObjectPath> = self
            .call("GetDevices", NM_PATH, NM_IFACE, "GetDevices", &())
            .await?;
        let mut devices = Vec::with_capacity(paths.len());
        for path in paths {
            let kind = self
                .property("reading DeviceType", &path, DEVICE_IFACE, "DeviceType")
                .await?;
            let interface = self
                .property("reading Interface", &path, DEVICE_IFACE, "Interface")
                .await
                .unwrap_or_default();
            devices.push(Device {
                path,
                kind,
                interface,
            });
        }
        Ok(devices)
    }

    /// The `Connectivity` property (`NMConnectivityState`).
    pub(super) async fn connectivity(&self) -> Result<u32, BusError> {
        self.property("reading Connectivity", NM_PATH, NM_IFACE, "Connectivity")
            .await
    }

    /// The `State` property (`NMState`).
    pub(super) async fn state(&self) -> Result<u32, BusError> {
        self.property("reading State", NM_PATH, NM_IFACE, "State")
            .await
    }

    /// `CheckConnectivity()`: a fresh check, its `NMConnectivityState`.
    pub(super) async fn check_connectivity(&self) -> Result<u32, BusError> {
        self.call(
            "CheckConnectivity",
            NM_PATH,
            NM_IFACE,
            "CheckConnectivity",
            &(),
        )
        .await
    }

    /// A device's own connectivity (`Ip4Connectivity`, NetworkManager ≥ 1.16).
    pub(super) async fn device_connectivity(&self, device: &str) -> Result<u32, BusError> {
        self.property(
            "reading Ip4Connectivity",
            device,
            DEVICE_IFACE,
            "Ip4Connectivity",
        )
        .await
    }

    /// `RequestScan({})` on a Wi-Fi device.
    pub(super) async fn request_scan(&self, device: &str) -> Result<(), BusError> {
        let options: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
        self.call(
            "RequestScan",
            device,
            WIRELESS_IFACE,
            "RequestScan",
            &(options,),
        )
        .await
    }

    /// `LastScan` (ms, `CLOCK_BOOTTIME`), when NetworkManager has it (≥ 1.12).
    pub(super) async fn last_scan(&self, device: &str) -> Option<i64> {
        self.property("reading LastScan", device, WIRELESS_IFACE, "LastScan")
            .await
            .ok()
    }

    /// The access points a Wi-Fi device knows (including hidden ones).
    pub(super) async fn access_points(
        &self,
        device: &str,
    ) -> Result<Vec<OwnedObjectPath>, BusError> {
        match self
            .call(
                "GetAllAccessPoints",
                device,
                WIRELESS_IFACE,
                "GetAllAccessPoints",
                &(),
            )
            .await
        {
            Ok(paths) => Ok(paths),
            Err(error) if error.is_unknown_object() => {
                self.call(
                    "GetAccessPoints",
                    device,
                    WIRELESS_IFACE,
                    "GetAccessPoints",
                    &(),
                )
                .await
            }
            Err(error) => Err(error),
        }
    }

    /// All properties of an access point.
    pub(super) async fn access_point(
        &self,
        path: &str,
    ) -> Result<HashMap<String, OwnedValue>, BusError> {
        self.call(
            "reading an access point",
            path,
            PROPERTIES_IFACE,
            "GetAll",
            &(AP_IFACE,),
        )
        .await
    }

    /// A device's state, last reason and active connection.
    pub(super) async fn device_status(&self, device: &str) -> Result<DeviceStatus, BusError> {
        let state = self
            .property("reading State", device, DEVICE_IFACE, "State")
            .await?;
        let (_, reason): (u32, u32) = self
            .property("reading StateReason", device, DEVICE_IFACE, "StateReason")
            .await
            .unwrap_or((state, 0));
        let active = self
            .property(
                "reading ActiveConnection",
                device,
                DEVICE_IFACE,
                "ActiveConnection",
            )
            .await?;
        Ok(DeviceStatus {
            state,
            reason,
            active,
        })
    }

    /// The profile an active connection runs.
    pub(super) async fn active_profile(&self, active: &str) -> Result<OwnedObjectPath, BusError> {
        self.property("reading Connection", active, ACTIVE_IFACE, "Connection")
            .await
    }

    /// An active connection's state (`NMActiveConnectionState`).
    pub(super) async fn active_state(&self, active: &str) -> Result<u32, BusError> {
        self.property(
            "reading the active connection",
            active,
            ACTIVE_IFACE,
            "State",
        )
        .await
    }

    /// `AddAndActivateConnection`: the new profile and its active connection.
    pub(super) async fn add_and_activate(
        &self,
        settings: &NewSettings,
        device: &str,
        specific_object: &str,
    ) -> Result<(OwnedObjectPath, OwnedObjectPath), BusError> {
        let device = object_path(device)?;
        let specific = object_path(specific_object)?;
        self.call(
            "AddAndActivateConnection",
            NM_PATH,
            NM_IFACE,
            "AddAndActivateConnection",
            &(settings, device, specific),
        )
        .await
    }

    /// `ActivateConnection(profile, device, "/")`: the active connection.
    pub(super) async fn activate(
        &self,
        profile: &str,
        device: &str,
    ) -> Result<OwnedObjectPath, BusError> {
        let body = (
            object_path(profile)?,
            object_path(device)?,
            object_path("/")?,
        );
        self.call(
            "ActivateConnection",
            NM_PATH,
            NM_IFACE,
            "ActivateConnection",
            &body,
        )
        .await
    }

    /// Every stored profile.
    pub(super) async fn connections(&self) -> Result<Vec<OwnedObjectPath>, BusError> {
        self.call(
            "ListConnections",
            SETTINGS_PATH,
            SETTINGS_IFACE,
            "ListConnections",
            &(),
        )
        .await
    }

    /// A profile's settings, without secrets.
    pub(super) async fn settings(&self, profile: &str) -> Result<Settings, BusError> {
        self.call("GetSettings", profile, CONNECTION_IFACE, "GetSettings", &())
            .await
    }

    /// A profile's secrets of one setting (needs root or the `secrets` permission).
    pub(super) async fn secrets(&self, profile: &str, setting: &str) -> Result<Settings, BusError> {
        self.call(
            "GetSecrets",
            profile,
            CONNECTION_IFACE,
            "GetSecrets",
            &(setting,),
        )
        .await
    }

    /// Deletes a profile (NetworkManager deactivates it first).
    pub(super) async fn delete(&self, profile: &str) -> Result<(), BusError> {
        self.call("Delete", profile, CONNECTION_IFACE, "Delete", &())
            .await
    }

    /// The device's `StateChanged(new, old, reason)` signals, from now on.
    pub(super) async fn device_state_changes(
        &self,
        device: &str,
    ) -> Result<BoxStream<'static, (u32, u32, u32)>, BusError> {
        self.signals::<(u32, u32, u32)>(device, DEVICE_IFACE).await
    }

    /// The active connection's `StateChanged(state, reason)` signals, from now on.
    pub(super) async fn active_state_changes(
        &self,
        active: &str,
    ) -> Result<BoxStream<'static, (u32, u32)>, BusError> {
        self.signals::<(u32, u32)>(active, ACTIVE_IFACE).await
    }

    async fn signals<T>(
        &self,
        path: &str,
        interface: &'static str,
    ) -> Result<BoxStream<'static, T>, BusError>
    where
        T: for<'d> DynamicDeserialize<'d> + Send + 'static,
    {
        use futures::StreamExt as _;
        let proxy = self.proxy(path, interface).await?;
        let stream = bounded(
            "subscribing to StateChanged",
            self.call_timeout,
            proxy.receive_signal("StateChanged"),
        )
        .await?;
        Ok(stream
            .filter_map(|message| async move { message.body().deserialize::<T>().ok() })
            .boxed())
    }
}

fn object_path(path: &str) -> Result<ObjectPath<'static>, BusError> {
    ObjectPath::try_from(path.to_owned()).map_err(|error| BusError::Call {
        what: "building an object path",
        source: Box::new(error.into()),
    })
}

async fn bounded<T, E: Into<zbus::Error>>(
    what: &'static str,
    timeout: Duration,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(timeout, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(BusError::Call {
            what,
            source: Box::new(error.into()),
        }),
        Err(_) => Err(BusError::Timeout { what, timeout }),
    }
}
