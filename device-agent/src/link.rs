//! The device's side of the BLE link: what it advertises, one connection's channel ends, and the
//! [`BlePeripheral`] trait a real GATT server (BlueZ via `bluer`) implements.
//!
//! Link contract: each `Vec<u8>` on the channels is one ATT write (central → device) or one
//! notification (device → central), i.e. one frame; a closed channel is a disconnect.

use async_trait::async_trait;
use fieldlink_protocol::PROTOCOL_VERSION;
use fieldlink_protocol::gatt::{AdvertisedState, ServiceData, local_name};
use tokio::sync::mpsc;

/// What the device advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// Local name, `FL-` + discriminator in hex.
    pub local_name: String,
    /// [`ServiceData::encode`]: protocol version, discriminator, state.
    pub service_data: [u8; 4],
}

impl Advertisement {
    /// The advertisement of a device with this discriminator in this state.
    pub fn new(discriminator: u16, state: AdvertisedState) -> Self {
        Self {
            local_name: local_name(discriminator),
            service_data: ServiceData {
                protocol_version: PROTOCOL_VERSION,
                discriminator,
                state,
            }
            .encode(),
        }
    }

    /// The advertised state, if the service data decodes.
    pub fn state(&self) -> Option<AdvertisedState> {
        ServiceData::decode(&self.service_data)
            .ok()
            .map(|data| data.state)
    }
}

/// One connection, as the device sees it.
#[derive(Debug)]
pub struct PeripheralConnection {
    /// The negotiated ATT MTU.
    pub mtu: u16,
    /// Frames written by the central.
    pub from_central: mpsc::Receiver<Vec<u8>>,
    /// Frames to notify to the central.
    pub to_central: mpsc::Sender<Vec<u8>>,
}

/// A BLE peripheral stack that can advertise and accept GATT connections.
#[derive(Debug, thiserror::Error)]
#[error("BLE peripheral error: {0}")]
pub struct PeripheralError(pub String);

/// A GATT server hosting the fieldlink service (the BlueZ one plugs in here).
#[async_trait]
pub trait BlePeripheral: Send + Sync {
    /// Starts or updates advertising.
    async fn advertise(&self, advertisement: &Advertisement) -> Result<(), PeripheralError>;
    /// Waits for the next central to connect; `None` when the peripheral is shut down.
    async fn accept(&self) -> Result<Option<PeripheralConnection>, PeripheralError>;
}
