//! The BLE transport the workflow runs over.
//!
//! Two small object-safe async traits: [`BleTransport`] (scan, connect) and [`BleConnection`]
//! (MTU, write one frame, next link event, disconnect). Arguments and results are owned plain
//! data, and every method takes `&self`, so the same traits can be implemented by btleplug, by
//! the [`memory::InMemoryRadio`] and by Kotlin/Swift through uniffi foreign traits
//! (`Arc<dyn BleTransport>`). Notifications and disconnects arrive through one pull method,
//! [`BleConnection::next_event`], which maps onto a btleplug notification stream as well as onto
//! a Kotlin `Channel`.

#[cfg(feature = "btleplug")]
pub mod btleplug;
pub mod memory;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use fieldlink_protocol::gatt::{AdvertisedState, ServiceData};

/// The platform's handle for a peripheral (a BD address, a CoreBluetooth UUID, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeripheralId(pub String);

impl std::fmt::Display for PeripheralId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to look for while scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanFilter {
    /// Only peripherals advertising this 128-bit service UUID.
    pub service_uuid: u128,
    /// Only peripherals whose service data carries this 12-bit discriminator. When set, a
    /// transport may return as soon as one match is seen.
    pub discriminator: Option<u16>,
}

/// One advertising peripheral seen during a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredDevice {
    /// Handle to pass to [`BleTransport::connect`].
    pub id: PeripheralId,
    /// The advertised local name, if any.
    pub local_name: Option<String>,
    /// Signal strength in dBm, if the platform reports it.
    pub rssi: Option<i16>,
    /// Advertised 128-bit service UUIDs.
    pub service_uuids: Vec<u128>,
    /// The raw service data advertised under `fieldlink_protocol::gatt::SERVICE_DATA_UUID`
    /// (4 bytes, [`ServiceData`]); decoded by [`advertisement`](Self::advertisement).
    pub service_data: Vec<u8>,
}

/// Why a link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The installer called [`BleConnection::disconnect`].
    Local,
    /// The peripheral closed the link.
    Remote,
    /// Supervision timeout, out of range, or an injected fault.
    LinkLoss,
}

/// Something the peripheral did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// One notification on the TX characteristic = one frame.
    Notification(Vec<u8>),
    /// The link is down; every later call fails.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}

/// Failures of the transport layer (internal tier; the workflow maps them to
/// [`crate::CommissionError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Bluetooth is off, absent or not permitted.
    #[error("bluetooth unavailable: {0}")]
    Unavailable(String),
    /// The peripheral is not known to the adapter (any more).
    #[error("peripheral {0} not found")]
    NotFound(PeripheralId),
    /// The operation did not finish in time.
    #[error("timed out")]
    Timeout,
    /// The link is down.
    #[error("disconnected")]
    Disconnected,
    /// The frame is larger than `mtu - 3`.
    #[error("frame of {len} bytes exceeds the ATT payload limit {limit}")]
    FrameTooLarge {
        /// Frame length.
        len: usize,
        /// `mtu - 3`.
        limit: usize,
    },
    /// Anything else the platform reported.
    #[error("platform error: {0}")]
    Platform(String),
}

impl TransportError {
    /// The public error a commissioning fails with when this transport failure happens during
    /// `step`: the same mapping the workflow applies, for shells that use a transport outside a
    /// commissioning (a stand-alone scan).
    pub fn to_commission_error(&self, step: crate::error::Step) -> crate::CommissionError {
        crate::failure::transport(self, step)
    }
}

/// A BLE central able to scan and connect.
#[async_trait]
pub trait BleTransport: Send + Sync {
    /// Scans for up to `timeout`, returning the peripherals that match `filter`. An empty list
    /// is not an error.
    async fn scan(
        &self,
        filter: ScanFilter,
        timeout: Duration,
    ) -> Result<Vec<DiscoveredDevice>, TransportError>;

    /// Connects, discovers the fieldlink service, subscribes to TX and negotiates the MTU, all
    /// within `timeout`.
    async fn connect(
        &self,
        id: PeripheralId,
        timeout: Duration,
    ) -> Result<Arc<dyn BleConnection>, TransportError>;
}

/// An open link to one peripheral's fieldlink service.
#[async_trait]
pub trait BleConnection: Send + Sync {
    /// The negotiated ATT MTU; a frame may carry at most `mtu - 3` bytes.
    fn mtu(&self) -> u16;

    /// Writes one frame to the RX characteristic; returns once the peripheral has it.
    async fn write(&self, frame: Vec<u8>) -> Result<(), TransportError>;

    /// The next notification or the disconnect. After `Disconnected` it keeps returning
    /// `Disconnected`.
    async fn next_event(&self) -> LinkEvent;

    /// Closes the link; idempotent.
    async fn disconnect(&self);
}

impl ScanFilter {
    /// Whether `device` passes this filter.
    pub fn matches(&self, device: &DiscoveredDevice) -> bool {
        if !device.service_uuids.contains(&self.service_uuid) {
            return false;
        }
        match self.discriminator {
            None => true,
            Some(wanted) => device.discriminator() == Some(wanted),
        }
    }
}

impl DiscoveredDevice {
    /// The decoded service data (protocol version, discriminator, advertised state).
    pub fn advertisement(&self) -> Option<ServiceData> {
        ServiceData::decode(&self.service_data).ok()
    }

    /// The advertised discriminator, if the service data decodes.
    pub fn discriminator(&self) -> Option<u16> {
        self.advertisement().map(|adv| adv.discriminator)
    }

    /// The advertised state, if the service data decodes.
    pub fn state(&self) -> Option<AdvertisedState> {
        self.advertisement().map(|adv| adv.state)
    }
}
