//! Test-only exports (cargo feature `testing`; never ship it): an in-process sandbox
//! (`fieldlink_tests::world`: virtual device agents behind the core's in-memory radio, the DPS
//! emulator on loopback HTTPS, a ticket signer the devices trust, a status source over the
//! emulator) and a [`VirtualRadio`] that plays the phone's BLE stack, so a Python or Kotlin
//! `BleLink` can sit between the core and a virtual device exactly where `BluetoothGatt` or
//! CoreBluetooth sits in an app.

#[cfg(target_os = "linux")]
mod bluez;
mod identity;

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use fieldlink_core::{
    journal::Journal,
    transport::{
        BleConnection, BleTransport, LinkEvent, PeripheralId, ScanFilter,
        memory::{Direction, Fault, FaultAction, FaultPoint, InMemoryRadio, LinkModel},
    },
    workflow::{CommissionRequest, IgnoreProgress},
};
use fieldlink_dps_emulator::config::Knobs;
use fieldlink_protocol::{
    gatt,
    payload::{OnboardingPayload, PopSecret},
};
use fieldlink_tests::world::{DPS_INSTANCE, World, WorldConfig};
use tokio_util::sync::CancellationToken;

use crate::{
    ble_link::{ScannedDevice, ServiceDataEntry},
    client::{ClientServices, FieldlinkClient},
    error::{BleLinkError, FieldlinkError},
    report::CommissioningReport,
    runtime,
};

/// How to build a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SandboxConfig {
    /// Number of virtual devices.
    pub devices: u32,
    /// The ATT MTU every connection negotiates (23..=517).
    pub mtu: u16,
    /// Modelled BLE connection interval (one frame per interval and direction), ms.
    pub connection_interval_ms: u64,
    /// Seed for the labels.
    pub seed: u64,
}

/// One virtual device and its label.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VirtualDevice {
    /// Position in the sandbox.
    pub index: u32,
    /// DPS registration ID.
    pub registration_id: String,
    /// The QR label text.
    pub label: String,
    /// The manual code.
    pub manual_code: String,
    /// The 12-bit discriminator.
    pub discriminator: u16,
    /// Its handle on the virtual radio.
    pub peripheral_id: String,
}

/// Which way a fault acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FaultDirection {
    /// Phone → device (writes).
    ToDevice,
    /// Device → phone (notifications).
    ToPhone,
}

/// The sandbox: virtual devices, DPS emulator, signer and status source in this process.
#[derive(uniffi::Object)]
pub struct Sandbox {
    world: Mutex<Option<World>>,
    radio: InMemoryRadio,
    /// Tasks serving devices over BlueZ (aborted at shutdown).
    served: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

/// Opens the journal at `path` (`None`: no history).
fn open_journal(path: Option<String>) -> Result<Option<Arc<Journal>>, FieldlinkError> {
    path.map(|path| {
        Journal::open(path)
            .map(Arc::new)
            .map_err(FieldlinkError::from)
    })
    .transpose()
}

fn stopped() -> FieldlinkError {
    FieldlinkError::invalid_argument("the sandbox was shut down")
}

/// Starts a sandbox.
#[uniffi::export(async_runtime = "tokio")]
pub async fn start_sandbox(config: SandboxConfig) -> Result<Arc<Sandbox>, FieldlinkError> {
    if !(23..=517).contains(&config.mtu) {
        return Err(FieldlinkError::invalid_argument("the MTU must be 23..=517"));
    }
    let world_config = WorldConfig {
        devices: usize::try_from(config.devices).unwrap_or(usize::MAX),
        link: LinkModel {
            mtu: config.mtu,
            connection_interval: Duration::from_millis(config.connection_interval_ms),
            ..LinkModel::default()
        },
        seed: config.seed,
        ..WorldConfig::default()
    };
    let world = runtime::run(World::start(world_config)).await;
    let radio = world.radio.clone();
    Ok(Arc::new(Sandbox {
        world: Mutex::new(Some(world)),
        radio,
        served: Mutex::new(Vec::new()),
    }))
}

impl Sandbox {
    fn with_world<T>(&self, f: impl FnOnce(&World) -> T) -> Result<T, FieldlinkError> {
        let world = self.world.lock().unwrap_or_else(PoisonError::into_inner);
        world.as_ref().map(f).ok_or_else(stopped)
    }

    fn peripheral(&self, index: u32) -> Result<PeripheralId, FieldlinkError> {
        self.with_world(|world| {
            world
                .devices
                .get(index as usize)
                .map(|device| device.peripheral.clone())
        })?
        .ok_or_else(|| FieldlinkError::invalid_argument(format!("no device {index}")))
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Sandbox {
    /// The virtual devices and their labels.
    pub fn devices(&self) -> Result<Vec<VirtualDevice>, FieldlinkError> {
        self.with_world(|world| {
            world
                .devices
                .iter()
                .enumerate()
                .map(|(index, device)| VirtualDevice {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    registration_id: device.payload.registration_id.clone(),
                    label: device.payload.encode(),
                    manual_code: device.payload.manual_code().encode(),
                    discriminator: device.payload.discriminator,
                    peripheral_id: device.peripheral.0.clone(),
                })
                .collect()
        })
    }

    /// Device `index`'s label with a wrong proof-of-possession (for `WrongPop` tests).
    pub fn wrong_pop_label(&self, index: u32) -> Result<String, FieldlinkError> {
        self.with_world(|world| {
            world.devices.get(index as usize).map(|device| {
                let mut wrong = device.payload.pop.expose_bytes().to_owned();
                wrong[0] ^= 0x5a;
                OnboardingPayload {
                    pop: PopSecret::from_bytes(wrong),
                    ..device.payload.clone()
                }
                .encode()
            })
        })?
        .ok_or_else(|| FieldlinkError::invalid_argument(format!("no device {index}")))
    }

    /// The advertised state of device `index` (`commissionable`, `registered`, ...).
    pub fn device_state(&self, index: u32) -> Result<String, FieldlinkError> {
        self.with_world(|world| {
            world
                .devices
                .get(index as usize)
                .and_then(|device| device.agent.state())
                .map_or("unknown", |state| state.as_str())
                .to_owned()
        })
    }

    /// A client wired to the sandbox's signer and status source, with the world's short
    /// deadlines; `journal_path` enables history and registration status.
    pub fn client(
        &self,
        journal_path: Option<String>,
    ) -> Result<Arc<FieldlinkClient>, FieldlinkError> {
        self.client_with_scan_deadline(journal_path, 0)
    }

    /// [`client`](Self::client) with another scanning deadline (`0` = the world's): a real
    /// BLE stack (the bench) reports advertisers only once per scan interval.
    pub fn client_with_scan_deadline(
        &self,
        journal_path: Option<String>,
        scan_deadline_ms: u64,
    ) -> Result<Arc<FieldlinkClient>, FieldlinkError> {
        let journal = open_journal(journal_path)?;
        self.with_world(|world| {
            let mut config = world.commissioning_config();
            if scan_deadline_ms > 0 {
                config.deadlines.scanning = Duration::from_millis(scan_deadline_ms);
            }
            FieldlinkClient::with_services(ClientServices {
                assignments: Arc::new(world.signer()),
                status: world.status.clone(),
                config,
                profile: "sandbox".to_owned(),
                journal,
                auth: None,
                api: None,
            })
        })
    }

    /// The phone's BLE stack in front of the virtual devices.
    pub fn radio(&self) -> Arc<VirtualRadio> {
        Arc::new(VirtualRadio {
            radio: self.radio.clone(),
        })
    }

    /// Drops the link to device `index` just before the `message`-th message (0-based) in
    /// `direction` on its next connection.
    pub fn drop_link_at(
        &self,
        index: u32,
        direction: FaultDirection,
        message: u32,
    ) -> Result<(), FieldlinkError> {
        let peripheral = self.peripheral(index)?;
        self.radio.arm_fault(
            &peripheral,
            Fault {
                direction: match direction {
                    FaultDirection::ToDevice => Direction::ToPeripheral,
                    FaultDirection::ToPhone => Direction::ToCentral,
                },
                at: FaultPoint::Message(message),
                action: FaultAction::Disconnect,
            },
        );
        Ok(())
    }

    /// Moves device `index` out of (or back into) range.
    pub fn set_in_range(&self, index: u32, in_range: bool) -> Result<(), FieldlinkError> {
        let peripheral = self.peripheral(index)?;
        self.radio.set_in_range(&peripheral, in_range);
        Ok(())
    }

    /// How long the DPS emulator keeps registrations `assigning` (0 = answer at once), so a
    /// test can act while a device is registering.
    pub fn set_dps_assignment_delay(&self, delay_ms: u64) -> Result<(), FieldlinkError> {
        self.with_world(|world| {
            world.emulator.control().set_knobs(
                DPS_INSTANCE,
                Knobs {
                    assignment_delay_ms: delay_ms,
                    retry_after_secs: 1,
                    ..Knobs::default()
                },
            )
        })?
        .map_err(|error| FieldlinkError::invalid_argument(error.to_string()))
    }

    /// Commissions device `index` in pure Rust (the core's own in-memory transport, no foreign
    /// `BleLink`): the baseline for the FFI overhead figure.
    pub async fn commission_in_rust(
        &self,
        index: u32,
    ) -> Result<CommissioningReport, FieldlinkError> {
        let (commissioner, request): (_, CommissionRequest) =
            self.with_world(|world| (world.commissioner(), world.request(index as usize, None)))?;
        runtime::run(async move {
            commissioner
                .commission(request, &IgnoreProgress, CancellationToken::new())
                .await
        })
        .await
        .map(Into::into)
        .map_err(Into::into)
    }

    /// Serves device `index` over BlueZ on `adapter` (the BLE bench's `hci1`; needs
    /// `DBUS_SYSTEM_BUS_ADDRESS` pointing at the bench's bus), advertising and GATT server, so a
    /// BLE library on another adapter commissions it through BlueZ's D-Bus API. Linux only.
    pub async fn serve_over_bluez(
        &self,
        index: u32,
        adapter: String,
    ) -> Result<(), FieldlinkError> {
        #[cfg(target_os = "linux")]
        {
            let agent = self
                .with_world(|world| {
                    world
                        .devices
                        .get(index as usize)
                        .map(|device| device.agent.clone())
                })?
                .ok_or_else(|| FieldlinkError::invalid_argument(format!("no device {index}")))?;
            let tasks = runtime::run(bluez::serve(agent, adapter)).await?;
            self.served
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(tasks);
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (index, adapter);
            Err(FieldlinkError::invalid_argument("BlueZ is Linux only"))
        }
    }

    /// Stops the devices and the emulator. Idempotent.
    pub async fn shutdown(&self) {
        for task in self
            .served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        let world = self
            .world
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(world) = world {
            runtime::run(world.shutdown()).await;
        }
    }
}

/// The phone's BLE stack in front of the sandbox's virtual devices: what a test's `BleLink`
/// implementation calls, as an app's calls `BluetoothGatt`.
#[derive(uniffi::Object)]
pub struct VirtualRadio {
    radio: InMemoryRadio,
}

impl std::fmt::Debug for VirtualRadio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualRadio").finish_non_exhaustive()
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl VirtualRadio {
    /// Scans for up to `timeout_ms` and reports the advertising devices as a phone would;
    /// returns early once a device with `discriminator` was seen.
    pub async fn scan(
        &self,
        discriminator: Option<u16>,
        timeout_ms: u64,
    ) -> Result<Vec<ScannedDevice>, BleLinkError> {
        let radio = self.radio.clone();
        let filter = ScanFilter {
            service_uuid: gatt::SERVICE_UUID,
            discriminator,
        };
        let found =
            runtime::run(
                async move { radio.scan(filter, Duration::from_millis(timeout_ms)).await },
            )
            .await?;
        Ok(found
            .into_iter()
            .map(|device| ScannedDevice {
                peripheral_id: device.id.0,
                local_name: device.local_name,
                rssi: device.rssi,
                service_uuids: device
                    .service_uuids
                    .into_iter()
                    .map(gatt::uuid_string)
                    .collect(),
                service_data: vec![ServiceDataEntry {
                    uuid: gatt::uuid_string(gatt::SERVICE_DATA_UUID),
                    data: device.service_data,
                }],
            })
            .collect())
    }

    /// Connects (service discovery, subscription and MTU negotiation included).
    pub async fn connect(
        &self,
        peripheral_id: String,
        timeout_ms: u64,
    ) -> Result<Arc<VirtualConnection>, BleLinkError> {
        let radio = self.radio.clone();
        let connection = runtime::run(async move {
            radio
                .connect(
                    PeripheralId(peripheral_id),
                    Duration::from_millis(timeout_ms),
                )
                .await
        })
        .await?;
        Ok(Arc::new(VirtualConnection { connection }))
    }
}

/// One connection to a virtual device.
#[derive(uniffi::Object)]
pub struct VirtualConnection {
    connection: Arc<dyn BleConnection>,
}

impl std::fmt::Debug for VirtualConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualConnection").finish_non_exhaustive()
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl VirtualConnection {
    /// The negotiated ATT MTU.
    pub fn mtu(&self) -> u16 {
        self.connection.mtu()
    }

    /// Writes one frame to the device's RX characteristic.
    pub async fn write(&self, frame: Vec<u8>) -> Result<(), BleLinkError> {
        let connection = Arc::clone(&self.connection);
        runtime::run(async move { connection.write(frame).await })
            .await
            .map_err(Into::into)
    }

    /// The next TX notification; `None` once the link is down.
    pub async fn next_notification(&self) -> Option<Vec<u8>> {
        let connection = Arc::clone(&self.connection);
        match runtime::run(async move { connection.next_event().await }).await {
            LinkEvent::Notification(frame) => Some(frame),
            LinkEvent::Disconnected { .. } => None,
        }
    }

    /// Closes the link.
    pub async fn disconnect(&self) {
        let connection = Arc::clone(&self.connection);
        runtime::run(async move { connection.disconnect().await }).await;
    }
}
