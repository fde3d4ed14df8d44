//! The real-radio [`BleTransport`]: btleplug 0.13 (BlueZ over D-Bus on Linux, CoreBluetooth on
//! macOS/iOS, WinRT on Windows).
//!
//! Design (see `docs/ble.md`):
//! - **Adapter:** chosen by name (`hci1`, or its address) or the first *powered* one in name
//!   order; btleplug's adapter order is not stable. "No BlueZ", "no adapter", "Bluetooth off"
//!   and "permission denied" are distinct [`Unavailability`] codes carried by
//!   [`TransportError::Unavailable`].
//! - **Scan:** one discovery filtered on [`SERVICE_UUID`](fieldlink_protocol::gatt::SERVICE_UUID)
//!   at the OS level and again in code (BlueZ merges filters of all clients); the service data
//!   is decoded by [`DiscoveredDevice::advertisement`]; results are sorted by RSSI. One event
//!   stream per scan plus a periodic poll, so a stalled `events()` stream only slows a scan down.
//! - **Connect:** connect, discover services, *then* read the MTU (btleplug only knows it after
//!   discovery), pick write-without-response when RX allows it, create the one notification
//!   stream of the connection and subscribe to TX once. A pump task turns notifications, the
//!   adapter's `DeviceDisconnected` and the [`LivenessProbe`] (`is_connected` plus a read of the
//!   readable TX characteristic while the peripheral is silent) into [`LinkEvent`]s.
//! - **Deadlines:** every D-Bus call runs under [`BtleplugConfig::call_timeout`] (and the
//!   caller's deadline); nothing here waits unboundedly, nothing panics.
//!
//! Frames are already at most `mtu() - 3` bytes (the framing layer segments to that size);
//! [`BleConnection::write`] refuses larger ones with [`TransportError::FrameTooLarge`] instead
//! of splitting a frame across ATT writes, which would break "one write = one frame".

mod adapter;
mod connection;
mod liveness;
mod scan;
mod unavailable;

use std::{sync::Arc, time::Duration};

use ::btleplug::platform::Adapter;
use async_trait::async_trait;

pub use self::{
    adapter::{AdapterSummary, list_adapters},
    connection::BtleplugConnection,
    liveness::LivenessProbe,
    unavailable::Unavailability,
};
use super::{
    BleConnection, BleTransport, DiscoveredDevice, PeripheralId, ScanFilter, TransportError,
};

/// How the btleplug transport picks its adapter and bounds its waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtleplugConfig {
    /// The adapter to use: its name (`hci0` on Linux) or its address. `None` takes the first
    /// powered adapter in name order.
    pub adapter: Option<String>,
    /// Upper bound for any single platform call (a D-Bus round trip on Linux).
    pub call_timeout: Duration,
    /// How an open connection checks that the peripheral is still there, in case the platform's
    /// disconnect event is lost (btleplug #332: `events()` may stall; BlueZoo never sends it).
    pub liveness: LivenessProbe,
    /// How often a scan re-reads the platform's device list besides listening to events.
    pub scan_poll_interval: Duration,
}

impl Default for BtleplugConfig {
    fn default() -> Self {
        Self {
            adapter: None,
            call_timeout: Duration::from_secs(5),
            liveness: LivenessProbe::default(),
            scan_poll_interval: Duration::from_millis(250),
        }
    }
}

impl BtleplugConfig {
    /// The default configuration on the named adapter.
    pub fn on_adapter(name: impl Into<String>) -> Self {
        Self {
            adapter: Some(name.into()),
            ..Self::default()
        }
    }
}

/// A [`BleTransport`] over one btleplug adapter.
#[derive(Clone)]
pub struct BtleplugTransport {
    adapter: Adapter,
    adapter_name: String,
    config: Arc<BtleplugConfig>,
}

impl std::fmt::Debug for BtleplugTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtleplugTransport")
            .field("adapter", &self.adapter_name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BtleplugTransport {
    /// Opens the platform's Bluetooth stack and selects the adapter `config` names (or the first
    /// powered one). Fails with [`TransportError::Unavailable`] (see [`Unavailability`]) when
    /// there is no Bluetooth stack, no such adapter, or the adapter is off.
    pub async fn open(config: BtleplugConfig) -> Result<Self, TransportError> {
        let (adapter, adapter_name) =
            adapter::select(config.adapter.as_deref(), config.call_timeout).await?;
        tracing::debug!(adapter = %adapter_name, "btleplug transport opened");
        Ok(Self {
            adapter,
            adapter_name,
            config: Arc::new(config),
        })
    }

    /// The name of the selected adapter (`hci0`).
    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }
}

#[async_trait]
impl BleTransport for BtleplugTransport {
    async fn scan(
        &self,
        filter: ScanFilter,
        timeout: Duration,
    ) -> Result<Vec<DiscoveredDevice>, TransportError> {
        scan::run(
            &self.adapter,
            &self.adapter_name,
            &self.config,
            filter,
            timeout,
        )
        .await
    }

    async fn connect(
        &self,
        id: PeripheralId,
        timeout: Duration,
    ) -> Result<Arc<dyn BleConnection>, TransportError> {
        let connection = connection::open(
            &self.adapter,
            &self.config,
            id,
            tokio::time::Instant::now() + timeout,
        )
        .await?;
        Ok(Arc::new(connection))
    }
}

/// Runs `future` until `deadline` and at most `call_timeout`; a miss is
/// [`TransportError::Timeout`].
async fn bounded<T>(
    deadline: tokio::time::Instant,
    call_timeout: Duration,
    future: impl std::future::Future<Output = T>,
) -> Result<T, TransportError> {
    let call_deadline = (tokio::time::Instant::now() + call_timeout).min(deadline);
    tokio::time::timeout_at(call_deadline, future)
        .await
        .map_err(|_| TransportError::Timeout)
}
