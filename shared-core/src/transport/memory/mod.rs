//! An in-memory BLE radio with a link model, for tests, the demo and the bench.
//!
//! Peripherals register an advertisement source and a [`PeripheralAcceptor`]; each
//! [`connect`](BleTransport::connect) hands the acceptor a [`PeripheralLink`] (the MTU plus the
//! two plain tokio channel ends of the Link contract) and gives the central a
//! [`BleConnection`]. Between the two ends the radio applies the [`LinkModel`]:
//!
//! - every frame is checked against `mtu - 3`;
//! - every frame is delayed by one connection interval, frames in one direction are serialised
//!   (one ATT PDU per connection event: a conservative model), using `tokio::time` so tests may
//!   run with paused time;
//! - one-shot [`Fault`]s drop or disconnect at a chosen frame or message of the next connection;
//! - [`LinkStats`] count client-initiated round trips, frames and bytes each way, and the
//!   modelled air time (frames × connection interval).

mod link;
mod stats;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

pub use self::stats::LinkStats;
use super::{
    BleConnection, BleTransport, DiscoveredDevice, PeripheralId, ScanFilter, TransportError,
};

/// The radio's physical model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkModel {
    /// The ATT MTU every connection negotiates (23..=517).
    pub mtu: u16,
    /// BLE connection interval: each frame is delivered one interval after the previous frame in
    /// the same direction.
    pub connection_interval: Duration,
    /// How long a scan takes to see an advertising peripheral.
    pub scan_latency: Duration,
    /// The RSSI reported for every peripheral.
    pub rssi: i16,
}

impl Default for LinkModel {
    fn default() -> Self {
        Self {
            mtu: 247,
            connection_interval: Duration::from_millis(30),
            scan_latency: Duration::from_millis(100),
            rssi: -60,
        }
    }
}

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Installer → device (ATT write to RX).
    ToPeripheral,
    /// Device → installer (notification on TX).
    ToCentral,
}

/// Where a fault fires, counted per direction from 0 on the connection it is armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// The n-th frame.
    Frame(u32),
    /// The first frame of the n-th message (message starts are recognised by the radio's
    /// [`MessageBoundary`]).
    Message(u32),
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Silently drop the frame (for [`FaultPoint::Message`]: every frame of that message).
    Drop,
    /// Drop the link before the frame is delivered.
    Disconnect,
}

/// A one-shot fault on the next connection to a peripheral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Which way.
    pub direction: Direction,
    /// Where.
    pub at: FaultPoint,
    /// What.
    pub action: FaultAction,
}

/// Decides whether a frame starts a message (used to count messages for
/// [`FaultPoint::Message`]). The default treats every frame whose first byte has bit 0 set as a
/// message start (the `BEGIN` flag of `fieldlink_protocol::framing`).
pub type MessageBoundary = fn(&[u8]) -> bool;

/// What the device side of one connection gets: the Link contract's channel ends. Dropping
/// either end disconnects.
#[derive(Debug)]
pub struct PeripheralLink {
    /// The negotiated ATT MTU.
    pub mtu: u16,
    /// Frames written by the central, in order.
    pub from_central: mpsc::Receiver<Vec<u8>>,
    /// Frames to notify to the central.
    pub to_central: mpsc::Sender<Vec<u8>>,
}

/// Receives each new connection to a registered peripheral.
pub trait PeripheralAcceptor: Send + Sync {
    /// Called once per connection; must not block (spawn the session).
    fn accept(&self, link: PeripheralLink);
}

impl<F: Fn(PeripheralLink) + Send + Sync> PeripheralAcceptor for F {
    fn accept(&self, link: PeripheralLink) {
        self(link)
    }
}

/// What a peripheral advertises, as the radio sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadioAdvertisement {
    /// Local name.
    pub local_name: String,
    /// 128-bit service UUIDs.
    pub service_uuids: Vec<u128>,
    /// Service data under the first service UUID.
    pub service_data: Vec<u8>,
}

type AdvertisementSource = Box<dyn Fn() -> RadioAdvertisement + Send + Sync>;

struct Peripheral {
    advertisement: AdvertisementSource,
    acceptor: Arc<dyn PeripheralAcceptor>,
    faults: Vec<Fault>,
    in_range: bool,
}

struct RadioState {
    model: LinkModel,
    peripherals: BTreeMap<PeripheralId, Peripheral>,
    next_address: u64,
}

/// The in-memory radio: a [`BleTransport`] for any number of registered peripherals.
#[derive(Clone)]
pub struct InMemoryRadio {
    state: Arc<Mutex<RadioState>>,
    stats: Arc<Mutex<LinkStats>>,
    boundary: MessageBoundary,
}

impl std::fmt::Debug for InMemoryRadio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryRadio")
            .field("model", &self.model())
            .finish_non_exhaustive()
    }
}

fn framing_begin_flag(frame: &[u8]) -> bool {
    frame.first().is_some_and(|flags| flags & 0x01 != 0)
}

impl InMemoryRadio {
    /// A radio with the given link model.
    pub fn new(model: LinkModel) -> Self {
        Self {
            state: Arc::new(Mutex::new(RadioState {
                model,
                peripherals: BTreeMap::new(),
                next_address: 1,
            })),
            stats: Arc::new(Mutex::new(LinkStats::default())),
            boundary: framing_begin_flag,
        }
    }

    /// Replaces how message starts are recognised.
    pub fn with_message_boundary(mut self, boundary: MessageBoundary) -> Self {
        self.boundary = boundary;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RadioState> {
        // A panic while holding this lock can only come from a bug in this module; the state
        // stays consistent because every critical section is a plain field update.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current link model.
    pub fn model(&self) -> LinkModel {
        self.lock().model
    }

    /// Changes the link model for later connections and scans.
    pub fn set_model(&self, model: LinkModel) {
        self.lock().model = model;
    }

    /// Registers a peripheral: `advertisement` is watched and mapped to what the radio
    /// advertises; `acceptor` gets every connection. Returns its id.
    pub fn register_peripheral<A, M>(
        &self,
        advertisement: watch::Receiver<A>,
        map: M,
        acceptor: impl PeripheralAcceptor + 'static,
    ) -> PeripheralId
    where
        A: Send + Sync + 'static,
        M: Fn(&A) -> RadioAdvertisement + Send + Sync + 'static,
    {
        let mut state = self.lock();
        let address = state.next_address;
        state.next_address += 1;
        let id = PeripheralId(format!("mem:{address:012x}"));
        let peripheral = Peripheral {
            advertisement: Box::new(move || map(&advertisement.borrow())),
            acceptor: Arc::new(acceptor),
            faults: Vec::new(),
            in_range: true,
        };
        state.peripherals.insert(id.clone(), peripheral);
        id
    }

    /// Arms a one-shot fault for the next connection to `id`. Returns `false` for an unknown id.
    pub fn arm_fault(&self, id: &PeripheralId, fault: Fault) -> bool {
        match self.lock().peripherals.get_mut(id) {
            Some(peripheral) => {
                peripheral.faults.push(fault);
                true
            }
            None => false,
        }
    }

    /// Moves a peripheral out of (or back into) range: out of range it neither shows in scans
    /// nor accepts connections.
    pub fn set_in_range(&self, id: &PeripheralId, in_range: bool) {
        if let Some(peripheral) = self.lock().peripherals.get_mut(id) {
            peripheral.in_range = in_range;
        }
    }

    /// Totals over every connection since the radio was created or last reset.
    pub fn stats(&self) -> LinkStats {
        self.stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Zeroes [`stats`](Self::stats).
    pub fn reset_stats(&self) {
        *self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = LinkStats::default();
    }

    fn discovered(&self) -> Vec<DiscoveredDevice> {
        let state = self.lock();
        state
            .peripherals
            .iter()
            .filter(|(_, p)| p.in_range)
            .map(|(id, p)| {
                let adv = (p.advertisement)();
                DiscoveredDevice {
                    id: id.clone(),
                    local_name: Some(adv.local_name),
                    rssi: Some(state.model.rssi),
                    service_uuids: adv.service_uuids,
                    service_data: adv.service_data,
                }
            })
            .collect()
    }
}

#[async_trait]
impl BleTransport for InMemoryRadio {
    async fn scan(
        &self,
        filter: ScanFilter,
        timeout: Duration,
    ) -> Result<Vec<DiscoveredDevice>, TransportError> {
        let latency = self.model().scan_latency;
        let deadline = tokio::time::Instant::now() + timeout;
        if latency > timeout {
            tokio::time::sleep(timeout).await;
            return Ok(Vec::new());
        }
        tokio::time::sleep(latency).await;
        loop {
            let found: Vec<_> = self
                .discovered()
                .into_iter()
                .filter(|d| filter.matches(d))
                .collect();
            let done = filter.discriminator.is_some() && !found.is_empty();
            let now = tokio::time::Instant::now();
            if done || now >= deadline {
                return Ok(found);
            }
            tokio::time::sleep(latency.max(Duration::from_millis(10)).min(deadline - now)).await;
        }
    }

    async fn connect(
        &self,
        id: PeripheralId,
        timeout: Duration,
    ) -> Result<Arc<dyn BleConnection>, TransportError> {
        let (model, acceptor, faults) = {
            let mut state = self.lock();
            let model = state.model;
            match state.peripherals.get_mut(&id) {
                Some(p) if p.in_range => (
                    model,
                    Arc::clone(&p.acceptor),
                    std::mem::take(&mut p.faults),
                ),
                _ => return Err(TransportError::NotFound(id)),
            }
        };
        if model.connection_interval > timeout {
            tokio::time::sleep(timeout).await;
            return Err(TransportError::Timeout);
        }
        // Connection setup and MTU exchange take one connection event in this model.
        tokio::time::sleep(model.connection_interval).await;
        let (connection, peripheral_link) =
            link::open(model, faults, self.boundary, Arc::clone(&self.stats));
        acceptor.accept(peripheral_link);
        Ok(Arc::new(connection))
    }
}

#[cfg(test)]
mod tests;
