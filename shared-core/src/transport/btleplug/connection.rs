//! One open link: connect, discover, subscribe once, and a pump that turns notifications and
//! disconnects into [`LinkEvent`]s.

use std::{
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use ::btleplug::{
    api::{
        Central as _, CentralEvent, CharPropFlags, Characteristic, Peripheral as _,
        ValueNotification, WriteType,
    },
    platform::{Adapter, Peripheral},
};
use async_trait::async_trait;
use fieldlink_protocol::gatt::{RX_CHAR_UUID, SERVICE_UUID, TX_CHAR_UUID};
use futures::{Stream, StreamExt as _};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    BtleplugConfig, bounded,
    liveness::{self, LastAlive, LivenessProbe},
    unavailable::{adapter_error, link_error},
};
use crate::transport::{BleConnection, DisconnectReason, LinkEvent, PeripheralId, TransportError};

type Notifications = Pin<Box<dyn Stream<Item = ValueNotification> + Send>>;
type AdapterEvents = Pin<Box<dyn Stream<Item = CentralEvent> + Send>>;

/// The smallest and largest ATT MTU; btleplug reports 23 until services are discovered.
const MTU_RANGE: (u16, u16) = (23, 517);

/// Whether the link is down, and the one place that says so (exactly one `Disconnected` event is
/// queued, after every notification received before it).
struct LinkState {
    closed: Mutex<Option<DisconnectReason>>,
    events: mpsc::UnboundedSender<LinkEvent>,
}

impl LinkState {
    fn reason(&self) -> Option<DisconnectReason> {
        *self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the link down; returns `false` if it already was.
    fn close(&self, reason: DisconnectReason) -> bool {
        let mut closed = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if closed.is_some() {
            return false;
        }
        *closed = Some(reason);
        // The receiver lives in the connection; if it is gone nobody is listening anyway.
        let _ = self.events.send(LinkEvent::Disconnected { reason });
        true
    }
}

/// An open btleplug link to one fieldlink peripheral.
pub struct BtleplugConnection {
    peripheral: Peripheral,
    id: PeripheralId,
    rx: Characteristic,
    tx: Characteristic,
    write_type: WriteType,
    mtu: u16,
    call_timeout: Duration,
    state: Arc<LinkState>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<LinkEvent>>,
    /// Set once the OS-level disconnect has been requested.
    released: AtomicBool,
    stop: CancellationToken,
}

impl std::fmt::Debug for BtleplugConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtleplugConnection")
            .field("id", &self.id)
            .field("mtu", &self.mtu)
            .field("write_type", &self.write_type)
            .field("closed", &self.state.reason())
            .finish_non_exhaustive()
    }
}

impl BtleplugConnection {
    /// The peripheral this link goes to.
    pub fn peripheral_id(&self) -> &PeripheralId {
        &self.id
    }

    /// Whether frames go out as write-without-response (ATT command).
    pub fn writes_without_response(&self) -> bool {
        self.write_type == WriteType::WithoutResponse
    }
}

/// Finds the peripheral the platform calls `id`.
async fn find(
    adapter: &Adapter,
    id: &PeripheralId,
    deadline: Instant,
    call: Duration,
) -> Result<Peripheral, TransportError> {
    let peripherals = bounded(deadline, call, adapter.peripherals())
        .await?
        .map_err(|error| adapter_error(error, "listing peripherals"))?;
    peripherals
        .into_iter()
        .find(|p| p.id().to_string() == id.0)
        .ok_or_else(|| TransportError::NotFound(id.clone()))
}

/// Requests an OS-level disconnect without waiting for it (used when setup fails half-way).
fn release(peripheral: &Peripheral, call: Duration) {
    let peripheral = peripheral.clone();
    tokio::spawn(async move {
        if let Ok(Err(error)) = tokio::time::timeout(call, peripheral.disconnect()).await {
            tracing::debug!(%error, "releasing a half-open link failed");
        }
    });
}

/// Connects to `id` and prepares the fieldlink service, all before `deadline`.
pub(super) async fn open(
    adapter: &Adapter,
    config: &BtleplugConfig,
    id: PeripheralId,
    deadline: Instant,
) -> Result<BtleplugConnection, TransportError> {
    let call = config.call_timeout;
    let peripheral = find(adapter, &id, deadline, call).await?;
    // Taken before connecting so a disconnect during setup is not missed; one per connection.
    let adapter_events = bounded(deadline, call, adapter.events())
        .await?
        .map_err(|error| adapter_error(error, "watching the adapter"))?;
    let connected = matches!(
        bounded(deadline, call, peripheral.is_connected()).await?,
        Ok(true)
    );
    if !connected {
        match tokio::time::timeout_at(deadline, peripheral.connect()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                release(&peripheral, call);
                return Err(adapter_error(error, "connecting"));
            }
            Err(_) => {
                release(&peripheral, call);
                return Err(TransportError::Timeout);
            }
        }
    }
    match prepare(&peripheral, deadline, call).await {
        Ok((rx, tx, notifications)) => Ok(start(
            peripheral,
            id,
            rx,
            tx,
            notifications,
            adapter_events,
            config,
        )),
        Err(error) => {
            release(&peripheral, call);
            Err(error)
        }
    }
}

/// Discovers services, finds RX and TX, creates the connection's one notification stream and
/// subscribes to TX.
async fn prepare(
    peripheral: &Peripheral,
    deadline: Instant,
    call: Duration,
) -> Result<(Characteristic, Characteristic, Notifications), TransportError> {
    tokio::time::timeout_at(deadline, peripheral.discover_services())
        .await
        .map_err(|_| TransportError::Timeout)?
        .map_err(|error| link_error(error, "discovering services"))?;
    let (rx, tx) = fieldlink_characteristics(&peripheral.characteristics())?;
    let notifications = bounded(deadline, call, peripheral.notifications())
        .await?
        .map_err(|error| link_error(error, "opening the notification stream"))?;
    bounded(deadline, call, peripheral.subscribe(&tx))
        .await?
        .map_err(|error| link_error(error, "subscribing to TX"))?;
    Ok((rx, tx, notifications))
}

/// RX and TX of the fieldlink service, checked for the properties the protocol needs.
fn fieldlink_characteristics(
    characteristics: &std::collections::BTreeSet<Characteristic>,
) -> Result<(Characteristic, Characteristic), TransportError> {
    let find = |uuid: u128| {
        characteristics
            .iter()
            .find(|c| c.service_uuid.as_u128() == SERVICE_UUID && c.uuid.as_u128() == uuid)
            .cloned()
    };
    let (Some(rx), Some(tx)) = (find(RX_CHAR_UUID), find(TX_CHAR_UUID)) else {
        return Err(TransportError::Platform(
            "the peripheral has no fieldlink GATT service (RX/TX characteristic missing)".into(),
        ));
    };
    if !rx
        .properties
        .intersects(CharPropFlags::WRITE | CharPropFlags::WRITE_WITHOUT_RESPONSE)
    {
        return Err(TransportError::Platform(
            "the RX characteristic is not writable".into(),
        ));
    }
    if !tx
        .properties
        .intersects(CharPropFlags::NOTIFY | CharPropFlags::INDICATE)
    {
        return Err(TransportError::Platform(
            "the TX characteristic does not notify".into(),
        ));
    }
    Ok((rx, tx))
}

/// Write-without-response where RX allows it, otherwise write-with-response.
fn write_type_for(rx: &Characteristic) -> WriteType {
    if rx
        .properties
        .contains(CharPropFlags::WRITE_WITHOUT_RESPONSE)
    {
        WriteType::WithoutResponse
    } else {
        WriteType::WithResponse
    }
}

fn start(
    peripheral: Peripheral,
    id: PeripheralId,
    rx: Characteristic,
    tx: Characteristic,
    notifications: Notifications,
    adapter_events: AdapterEvents,
    config: &BtleplugConfig,
) -> BtleplugConnection {
    // Discovery is done, so btleplug now knows the negotiated MTU.
    let mtu = peripheral.mtu().clamp(MTU_RANGE.0, MTU_RANGE.1);
    let (sender, receiver) = mpsc::unbounded_channel();
    let state = Arc::new(LinkState {
        closed: Mutex::new(None),
        events: sender,
    });
    let stop = CancellationToken::new();
    tokio::spawn(pump(Pump {
        peripheral: peripheral.clone(),
        tx_uuid: tx.uuid,
        probe_read: liveness::readable(&tx, &config.liveness),
        notifications,
        adapter_events,
        state: Arc::clone(&state),
        stop: stop.clone(),
        liveness: config.liveness,
        call: config.call_timeout,
    }));
    tracing::debug!(%id, mtu, "BLE link open");
    BtleplugConnection {
        write_type: write_type_for(&rx),
        peripheral,
        id,
        rx,
        tx,
        mtu,
        call_timeout: config.call_timeout,
        state,
        events: tokio::sync::Mutex::new(receiver),
        released: AtomicBool::new(false),
        stop,
    }
}

struct Pump {
    peripheral: Peripheral,
    tx_uuid: uuid::Uuid,
    /// The characteristic the liveness probe reads (TX, when readable).
    probe_read: Option<Characteristic>,
    notifications: Notifications,
    adapter_events: AdapterEvents,
    state: Arc<LinkState>,
    stop: CancellationToken,
    liveness: LivenessProbe,
    call: Duration,
}

/// Forwards TX notifications until the link goes down, then queues the one `Disconnected`.
async fn pump(mut pump: Pump) {
    let own_id = pump.peripheral.id();
    let last_alive = LastAlive::now();
    let probe = liveness::watch(
        &pump.peripheral,
        pump.probe_read.as_ref(),
        pump.liveness,
        pump.call,
        &last_alive,
    );
    let mut probe = std::pin::pin!(probe);
    let mut events_open = true;
    let reason = loop {
        tokio::select! {
            biased;
            () = pump.stop.cancelled() => return,
            notification = pump.notifications.next() => match notification {
                Some(n) if n.uuid == pump.tx_uuid => {
                    last_alive.touch();
                    let _ = pump.state.events.send(LinkEvent::Notification(n.value));
                }
                Some(_) => {}
                // The D-Bus connection itself is gone.
                None => break DisconnectReason::LinkLoss,
            },
            event = pump.adapter_events.next(), if events_open => match event {
                Some(CentralEvent::DeviceDisconnected(id)) if id == own_id => {
                    break DisconnectReason::Remote;
                }
                Some(_) => {}
                None => events_open = false,
            },
            reason = &mut probe => break reason,
        }
    };
    if pump.state.close(reason) {
        tracing::debug!(?reason, "BLE link down");
    }
}

impl BtleplugConnection {
    /// Requests the OS-level unsubscribe and disconnect once, best effort, each bounded.
    async fn release_link(&self) {
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        self.stop.cancel();
        let call = self.call_timeout;
        if let Ok(Err(error)) =
            tokio::time::timeout(call, self.peripheral.unsubscribe(&self.tx)).await
        {
            tracing::debug!(%error, "unsubscribing from TX failed");
        }
        if let Ok(Err(error)) = tokio::time::timeout(call, self.peripheral.disconnect()).await {
            tracing::debug!(%error, "disconnecting failed");
        }
    }
}

#[async_trait]
impl BleConnection for BtleplugConnection {
    fn mtu(&self) -> u16 {
        self.mtu
    }

    async fn write(&self, frame: Vec<u8>) -> Result<(), TransportError> {
        if self.state.reason().is_some() {
            return Err(TransportError::Disconnected);
        }
        let limit = usize::from(self.mtu) - 3;
        if frame.len() > limit {
            return Err(TransportError::FrameTooLarge {
                len: frame.len(),
                limit,
            });
        }
        let written = tokio::time::timeout(
            self.call_timeout,
            self.peripheral.write(&self.rx, &frame, self.write_type),
        )
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                let error = link_error(error, "writing to RX");
                if error == TransportError::Disconnected
                    && self.state.close(DisconnectReason::LinkLoss)
                {
                    self.release_link().await;
                }
                Err(error)
            }
            Err(_) => Err(TransportError::Timeout),
        }
    }

    async fn next_event(&self) -> LinkEvent {
        let mut events = self.events.lock().await;
        if let Ok(event) = events.try_recv() {
            return event;
        }
        if let Some(reason) = self.state.reason() {
            return LinkEvent::Disconnected { reason };
        }
        match events.recv().await {
            Some(event) => event,
            None => LinkEvent::Disconnected {
                reason: self.state.reason().unwrap_or(DisconnectReason::LinkLoss),
            },
        }
    }

    async fn disconnect(&self) {
        self.state.close(DisconnectReason::Local);
        self.release_link().await;
    }
}

impl Drop for BtleplugConnection {
    fn drop(&mut self) {
        self.stop.cancel();
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        // Dropped without `disconnect`: release the OS link from the runtime, if there is one.
        if tokio::runtime::Handle::try_current().is_ok() {
            release(&self.peripheral, self.call_timeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use uuid::Uuid;

    use super::*;

    fn characteristic(uuid: u128, properties: CharPropFlags) -> Characteristic {
        Characteristic {
            uuid: Uuid::from_u128(uuid),
            service_uuid: Uuid::from_u128(SERVICE_UUID),
            properties,
            descriptors: BTreeSet::new(),
        }
    }

    #[test]
    fn write_without_response_is_preferred_when_allowed() {
        let both = characteristic(
            RX_CHAR_UUID,
            CharPropFlags::WRITE | CharPropFlags::WRITE_WITHOUT_RESPONSE,
        );
        assert_eq!(write_type_for(&both), WriteType::WithoutResponse);
        let only_request = characteristic(RX_CHAR_UUID, CharPropFlags::WRITE);
        assert_eq!(write_type_for(&only_request), WriteType::WithResponse);
    }

    #[test]
    fn the_fieldlink_characteristics_are_found_and_checked() {
        let rx = characteristic(RX_CHAR_UUID, CharPropFlags::WRITE);
        let tx = characteristic(TX_CHAR_UUID, CharPropFlags::NOTIFY);
        let set: BTreeSet<_> = [rx.clone(), tx.clone()].into();
        assert_eq!(
            fieldlink_characteristics(&set),
            Ok((rx.clone(), tx.clone()))
        );

        let only_rx: BTreeSet<_> = [rx.clone()].into();
        assert!(matches!(
            fieldlink_characteristics(&only_rx),
            Err(TransportError::Platform(_))
        ));

        let silent_tx = characteristic(TX_CHAR_UUID, CharPropFlags::READ);
        let set: BTreeSet<_> = [rx, silent_tx].into();
        assert!(matches!(
            fieldlink_characteristics(&set),
            Err(TransportError::Platform(_))
        ));

        let read_only_rx = characteristic(RX_CHAR_UUID, CharPropFlags::READ);
        let set: BTreeSet<_> = [read_only_rx, tx].into();
        assert!(matches!(
            fieldlink_characteristics(&set),
            Err(TransportError::Platform(_))
        ));
    }

    #[tokio::test]
    async fn the_link_state_queues_exactly_one_disconnect() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let state = LinkState {
            closed: Mutex::new(None),
            events: sender,
        };
        assert!(state.close(DisconnectReason::Remote));
        assert!(!state.close(DisconnectReason::Local));
        assert_eq!(state.reason(), Some(DisconnectReason::Remote));
        assert_eq!(
            receiver.recv().await,
            Some(LinkEvent::Disconnected {
                reason: DisconnectReason::Remote
            })
        );
        assert!(receiver.try_recv().is_err());
    }
}
