//! The `BleLink` foreign trait (the app's BLE stack: Android `BluetoothGatt`, iOS
//! CoreBluetooth, Python bleak) and its adapter onto the core's
//! [`BleTransport`]/[`BleConnection`].
//!
//! The app does four things: scan, connect (discover the fieldlink service, subscribe to TX,
//! negotiate the MTU), write one frame to RX, disconnect. Notifications and link loss are pushed
//! by the app into the [`NotificationSink`] it gets with `connect`, from whatever thread its
//! platform calls back on; the core pulls them from there.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use fieldlink_core::transport::{
    BleConnection, BleTransport, DisconnectReason, DiscoveredDevice, LinkEvent, PeripheralId,
    ScanFilter, TransportError,
};
use fieldlink_protocol::gatt;
use tokio::sync::Notify;

use crate::{convert::millis, error::BleLinkError, uuid};

/// What to scan for.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ScanRequest {
    /// The fieldlink service UUID (a platform scan filter may use it).
    pub service_uuid: String,
    /// The 12-bit discriminator of the scanned label, when known: the app may stop scanning as
    /// soon as it sees it (the core filters again either way).
    pub discriminator: Option<u16>,
    /// Scan for at most this long.
    pub timeout_ms: u64,
}

/// One service-data entry of an advertisement.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ServiceDataEntry {
    /// The entry's UUID, as the platform gives it (16-bit `"464C"` or 128-bit forms).
    pub uuid: String,
    /// The raw bytes.
    pub data: Vec<u8>,
}

/// One advertising peripheral, as the platform reported it. Pass the platform's data through
/// unchanged; the core decodes it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ScannedDevice {
    /// The app's handle for the peripheral (Android MAC address, iOS `identifier.uuidString`),
    /// passed back to `connect`, `write` and `disconnect`.
    pub peripheral_id: String,
    /// The advertised local name.
    pub local_name: Option<String>,
    /// Signal strength in dBm.
    pub rssi: Option<i16>,
    /// Advertised service UUIDs.
    pub service_uuids: Vec<String>,
    /// Advertised service data (fieldlink's is under [`GattProfile::service_data_uuid`]).
    pub service_data: Vec<ServiceDataEntry>,
}

/// What `connect` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct LinkInfo {
    /// The negotiated ATT MTU (23..=517); every frame the core writes is at most `mtu - 3`
    /// bytes. Android: the value from `onMtuChanged` after `requestMtu(517)`; iOS:
    /// `maximumWriteValueLength(for: .withoutResponse) + 3`.
    pub mtu: u16,
}

/// Why a link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DisconnectCause {
    /// The app disconnected.
    Local,
    /// The peripheral closed the link.
    Remote,
    /// Supervision timeout, out of range, Bluetooth turned off.
    LinkLoss,
}

impl From<DisconnectCause> for DisconnectReason {
    fn from(cause: DisconnectCause) -> Self {
        match cause {
            DisconnectCause::Local => DisconnectReason::Local,
            DisconnectCause::Remote => DisconnectReason::Remote,
            DisconnectCause::LinkLoss => DisconnectReason::LinkLoss,
        }
    }
}

/// fieldlink's GATT profile, so apps need no protocol constants of their own.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct GattProfile {
    /// The primary service to scan for and discover.
    pub service_uuid: String,
    /// RX: the app writes frames here (write with or without response).
    pub rx_char_uuid: String,
    /// TX: the device notifies frames here (subscribe via its CCCD).
    pub tx_char_uuid: String,
    /// The UUID the advertisement's service data is keyed by (16-bit `0x464C`).
    pub service_data_uuid: String,
}

/// fieldlink's GATT profile.
#[uniffi::export]
pub fn gatt_profile() -> GattProfile {
    GattProfile {
        service_uuid: gatt::SERVICE_UUID_STR.to_owned(),
        rx_char_uuid: gatt::RX_CHAR_UUID_STR.to_owned(),
        tx_char_uuid: gatt::TX_CHAR_UUID_STR.to_owned(),
        service_data_uuid: gatt::uuid_string(gatt::SERVICE_DATA_UUID),
    }
}

/// The app's BLE stack. Every method may be called from any thread; all may be in flight for
/// different peripherals at once. Implement it over `BluetoothGatt` (Android), CoreBluetooth
/// (iOS) or any BLE library.
#[uniffi::export(with_foreign)]
#[async_trait]
pub trait BleLink: Send + Sync {
    /// Scans for up to `request.timeout_ms` and returns what was seen (an empty list is not an
    /// error). Fails with `Unavailable` when Bluetooth is off or not permitted.
    async fn scan(&self, request: ScanRequest) -> Result<Vec<ScannedDevice>, BleLinkError>;

    /// Connects to `peripheral_id`, discovers the fieldlink service, subscribes to TX and
    /// negotiates the MTU, within `timeout_ms`. From then on, push every TX notification into
    /// `notifications.deliver` (one notification = one frame, in order) and a link loss into
    /// `notifications.disconnected`.
    async fn connect(
        &self,
        peripheral_id: String,
        timeout_ms: u64,
        notifications: Arc<NotificationSink>,
    ) -> Result<LinkInfo, BleLinkError>;

    /// Writes one frame (at most `mtu - 3` bytes) to RX; returns once the platform accepted it
    /// (write-with-response: acknowledged; without response: queued).
    async fn write(&self, peripheral_id: String, frame: Vec<u8>) -> Result<(), BleLinkError>;

    /// Closes the link; must be idempotent.
    async fn disconnect(&self, peripheral_id: String);
}

#[derive(Default)]
struct Inbox {
    frames: VecDeque<Vec<u8>>,
    closed: Option<DisconnectReason>,
}

/// Where the app pushes what its BLE stack reports for one connection. Thread-safe, never
/// blocks; calls after the link went down are ignored.
#[derive(uniffi::Object)]
pub struct NotificationSink {
    inbox: Mutex<Inbox>,
    ready: Notify,
}

impl std::fmt::Debug for NotificationSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationSink").finish_non_exhaustive()
    }
}

#[uniffi::export]
impl NotificationSink {
    /// One TX notification (one frame).
    pub fn deliver(&self, frame: Vec<u8>) {
        {
            let mut inbox = self.lock();
            if inbox.closed.is_some() {
                return;
            }
            inbox.frames.push_back(frame);
        }
        self.ready.notify_one();
    }

    /// The link went down.
    pub fn disconnected(&self, cause: DisconnectCause) {
        self.close(cause.into());
    }
}

impl NotificationSink {
    fn new() -> Self {
        Self {
            inbox: Mutex::new(Inbox::default()),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        // Every critical section is a plain queue operation: the state stays consistent.
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self, reason: DisconnectReason) {
        {
            let mut inbox = self.lock();
            if inbox.closed.is_none() {
                inbox.closed = Some(reason);
            }
        }
        self.ready.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// The next frame; after the link went down (and the frames before it were taken), the
    /// disconnect, again and again.
    async fn next(&self) -> LinkEvent {
        loop {
            {
                let mut inbox = self.lock();
                if let Some(frame) = inbox.frames.pop_front() {
                    return LinkEvent::Notification(frame);
                }
                if let Some(reason) = inbox.closed {
                    return LinkEvent::Disconnected { reason };
                }
            }
            // `notify_one` stores a permit when nobody waits, so nothing pushed between the
            // check above and this wait is missed (there is one consumer per connection).
            self.ready.notified().await;
        }
    }
}

/// The core's [`BleTransport`] over an app's [`BleLink`].
pub(crate) struct ForeignTransport {
    link: Arc<dyn BleLink>,
}

impl ForeignTransport {
    pub(crate) fn new(link: Arc<dyn BleLink>) -> Self {
        Self { link }
    }
}

fn discovered(device: ScannedDevice) -> DiscoveredDevice {
    let service_data = device
        .service_data
        .into_iter()
        .find(|entry| uuid::parse(&entry.uuid) == Some(gatt::SERVICE_DATA_UUID))
        .map(|entry| entry.data)
        .unwrap_or_default();
    DiscoveredDevice {
        id: PeripheralId(device.peripheral_id),
        local_name: device.local_name,
        rssi: device.rssi,
        service_uuids: device
            .service_uuids
            .iter()
            .filter_map(|text| uuid::parse(text))
            .collect(),
        service_data,
    }
}

#[async_trait]
impl BleTransport for ForeignTransport {
    async fn scan(
        &self,
        filter: ScanFilter,
        timeout: Duration,
    ) -> Result<Vec<DiscoveredDevice>, TransportError> {
        let request = ScanRequest {
            service_uuid: gatt::uuid_string(filter.service_uuid),
            discriminator: filter.discriminator,
            timeout_ms: millis(timeout),
        };
        let seen = self
            .link
            .scan(request)
            .await
            .map_err(|error| error.into_transport(""))?;
        Ok(seen
            .into_iter()
            .map(discovered)
            .filter(|device| filter.matches(device))
            .collect())
    }

    async fn connect(
        &self,
        id: PeripheralId,
        timeout: Duration,
    ) -> Result<Arc<dyn BleConnection>, TransportError> {
        let sink = Arc::new(NotificationSink::new());
        let info = self
            .link
            .connect(id.0.clone(), millis(timeout), Arc::clone(&sink))
            .await
            .map_err(|error| error.into_transport(&id.0))?;
        if !(23..=517).contains(&info.mtu) {
            self.link.disconnect(id.0.clone()).await;
            return Err(TransportError::Platform(format!(
                "the app reported ATT MTU {}, outside 23..=517",
                info.mtu
            )));
        }
        Ok(Arc::new(ForeignConnection {
            link: Arc::clone(&self.link),
            peripheral: id.0,
            mtu: info.mtu,
            sink,
        }))
    }
}

/// The core's [`BleConnection`] over one connection of an app's [`BleLink`].
struct ForeignConnection {
    link: Arc<dyn BleLink>,
    peripheral: String,
    mtu: u16,
    sink: Arc<NotificationSink>,
}

#[async_trait]
impl BleConnection for ForeignConnection {
    fn mtu(&self) -> u16 {
        self.mtu
    }

    async fn write(&self, frame: Vec<u8>) -> Result<(), TransportError> {
        if self.sink.is_closed() {
            return Err(TransportError::Disconnected);
        }
        let limit = usize::from(self.mtu) - 3;
        if frame.len() > limit {
            return Err(TransportError::FrameTooLarge {
                len: frame.len(),
                limit,
            });
        }
        self.link
            .write(self.peripheral.clone(), frame)
            .await
            .map_err(|error| error.into_transport(&self.peripheral))
    }

    async fn next_event(&self) -> LinkEvent {
        self.sink.next().await
    }

    async fn disconnect(&self) {
        if self.sink.is_closed() {
            return;
        }
        self.sink.close(DisconnectReason::Local);
        self.link.disconnect(self.peripheral.clone()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use fieldlink_protocol::gatt::{AdvertisedState, ServiceData};

    use super::*;

    /// A `BleLink` that echoes every write back as a notification.
    #[derive(Default)]
    struct EchoLink {
        sinks: Mutex<Vec<Arc<NotificationSink>>>,
        disconnects: AtomicU32,
        mtu: u16,
    }

    fn advert(discriminator: u16) -> ScannedDevice {
        let data = ServiceData {
            protocol_version: 1,
            discriminator,
            state: AdvertisedState::Commissionable,
        }
        .encode();
        ScannedDevice {
            peripheral_id: format!("dev-{discriminator}"),
            local_name: Some(gatt::local_name(discriminator)),
            rssi: Some(-50),
            service_uuids: vec![gatt::SERVICE_UUID_STR.to_uppercase()],
            service_data: vec![ServiceDataEntry {
                uuid: "464C".into(),
                data: data.to_vec(),
            }],
        }
    }

    #[async_trait]
    impl BleLink for EchoLink {
        async fn scan(&self, request: ScanRequest) -> Result<Vec<ScannedDevice>, BleLinkError> {
            assert_eq!(request.service_uuid, gatt::SERVICE_UUID_STR);
            Ok(vec![advert(0x123), advert(0x456)])
        }

        async fn connect(
            &self,
            peripheral_id: String,
            _timeout_ms: u64,
            notifications: Arc<NotificationSink>,
        ) -> Result<LinkInfo, BleLinkError> {
            if peripheral_id == "missing" {
                return Err(BleLinkError::NotFound {
                    detail: "gone".into(),
                });
            }
            self.sinks.lock().unwrap().push(notifications);
            Ok(LinkInfo { mtu: self.mtu })
        }

        async fn write(&self, _peripheral_id: String, frame: Vec<u8>) -> Result<(), BleLinkError> {
            let sink = self.sinks.lock().unwrap().last().cloned();
            sink.expect("connected").deliver(frame);
            Ok(())
        }

        async fn disconnect(&self, _peripheral_id: String) {
            self.disconnects.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn echo(mtu: u16) -> (Arc<EchoLink>, ForeignTransport) {
        let link = Arc::new(EchoLink {
            mtu,
            ..EchoLink::default()
        });
        (link.clone(), ForeignTransport::new(link))
    }

    #[tokio::test]
    async fn scan_decodes_platform_data_and_filters_by_discriminator() {
        let (_, transport) = echo(247);
        let filter = ScanFilter {
            service_uuid: gatt::SERVICE_UUID,
            discriminator: Some(0x456),
        };
        let found = transport
            .scan(filter, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, PeripheralId("dev-1110".into()));
        assert_eq!(found[0].discriminator(), Some(0x456));
        assert_eq!(found[0].rssi, Some(-50));
    }

    #[tokio::test]
    async fn writes_come_back_as_notifications_in_order_then_disconnect_sticks() {
        let (link, transport) = echo(23);
        let connection = transport
            .connect(PeripheralId("dev".into()), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(connection.mtu(), 23);
        for frame in [vec![1u8; 20], vec![2u8; 3]] {
            connection.write(frame).await.unwrap();
        }
        assert_eq!(
            connection.next_event().await,
            LinkEvent::Notification(vec![1; 20])
        );
        assert_eq!(
            connection.next_event().await,
            LinkEvent::Notification(vec![2; 3])
        );
        let too_large = connection.write(vec![0; 21]).await;
        assert_eq!(
            too_large,
            Err(TransportError::FrameTooLarge { len: 21, limit: 20 })
        );
        link.sinks.lock().unwrap()[0].disconnected(DisconnectCause::LinkLoss);
        link.sinks.lock().unwrap()[0].deliver(vec![9]);
        for _ in 0..2 {
            assert_eq!(
                connection.next_event().await,
                LinkEvent::Disconnected {
                    reason: DisconnectReason::LinkLoss
                }
            );
        }
        assert_eq!(
            connection.write(vec![1]).await,
            Err(TransportError::Disconnected)
        );
        connection.disconnect().await;
        assert_eq!(link.disconnects.load(Ordering::SeqCst), 0, "already down");
    }

    #[tokio::test]
    async fn local_disconnect_calls_the_app_once() {
        let (link, transport) = echo(247);
        let connection = transport
            .connect(PeripheralId("dev".into()), Duration::from_secs(1))
            .await
            .unwrap();
        connection.disconnect().await;
        connection.disconnect().await;
        assert_eq!(link.disconnects.load(Ordering::SeqCst), 1);
        assert_eq!(
            connection.next_event().await,
            LinkEvent::Disconnected {
                reason: DisconnectReason::Local
            }
        );
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_delivery_from_another_thread() {
        let (link, transport) = echo(247);
        let connection = transport
            .connect(PeripheralId("dev".into()), Duration::from_secs(1))
            .await
            .unwrap();
        let sink = link.sinks.lock().unwrap()[0].clone();
        let reader = tokio::spawn(async move { connection.next_event().await });
        std::thread::spawn(move || sink.deliver(vec![7, 7]))
            .join()
            .unwrap();
        assert_eq!(reader.await.unwrap(), LinkEvent::Notification(vec![7, 7]));
    }

    #[tokio::test]
    async fn connect_errors_and_bad_mtus_become_transport_errors() {
        let (_, transport) = echo(247);
        let missing = transport
            .connect(PeripheralId("missing".into()), Duration::from_secs(1))
            .await;
        assert!(matches!(missing, Err(TransportError::NotFound(id)) if id.0 == "missing"));
        let (link, transport) = echo(600);
        let bad = transport
            .connect(PeripheralId("dev".into()), Duration::from_secs(1))
            .await;
        assert!(matches!(bad, Err(TransportError::Platform(_))));
        assert_eq!(link.disconnects.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn gatt_profile_names_the_protocol_uuids() {
        let profile = gatt_profile();
        assert_eq!(uuid::parse(&profile.service_uuid), Some(gatt::SERVICE_UUID));
        assert_eq!(
            uuid::parse(&profile.service_data_uuid),
            Some(gatt::SERVICE_DATA_UUID)
        );
    }
}
