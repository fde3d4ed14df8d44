//! One in-memory connection: two delivery pipes (one per direction) applying the link model.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{
    Direction, Fault, FaultAction, FaultPoint, LinkModel, LinkStats, MessageBoundary,
    PeripheralLink,
};
use crate::transport::{BleConnection, DisconnectReason, LinkEvent, TransportError};

const QUEUE: usize = 64;

type Ack = oneshot::Sender<Result<(), TransportError>>;

/// Per-direction fault bookkeeping.
#[derive(Default)]
struct Counter {
    frames: u32,
    messages: u32,
    dropping_message: bool,
}

enum Verdict {
    Deliver,
    Drop,
    Disconnect,
}

struct Shared {
    model: LinkModel,
    boundary: MessageBoundary,
    closed: CancellationToken,
    stats: Arc<Mutex<LinkStats>>,
    inner: Mutex<Inner>,
}

struct Inner {
    faults: Vec<Fault>,
    up: Counter,
    down: Counter,
    last_direction: Option<Direction>,
    reason: Option<DisconnectReason>,
}

impl Shared {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self, reason: DisconnectReason) {
        let mut inner = self.inner();
        if inner.reason.is_none() {
            inner.reason = Some(reason);
        }
        drop(inner);
        self.closed.cancel();
    }

    fn reason(&self) -> DisconnectReason {
        self.inner().reason.unwrap_or(DisconnectReason::LinkLoss)
    }

    /// Applies faults and counts one frame that the link is about to transmit.
    fn transmit(&self, direction: Direction, frame: &[u8]) -> Verdict {
        let starts_message = (self.boundary)(frame);
        let mut inner = self.inner();
        let Inner {
            faults,
            up,
            down,
            last_direction,
            ..
        } = &mut *inner;
        let counter = match direction {
            Direction::ToPeripheral => up,
            Direction::ToCentral => down,
        };
        let frame_index = counter.frames;
        let message_index = counter.messages;
        counter.frames += 1;
        if starts_message {
            counter.messages += 1;
            counter.dropping_message = false;
        }
        let hit = faults.iter().position(|fault| {
            fault.direction == direction
                && match fault.at {
                    FaultPoint::Frame(n) => n == frame_index,
                    FaultPoint::Message(n) => starts_message && n == message_index,
                }
        });
        let action = hit.map(|i| faults.remove(i));
        if let Some(Fault {
            action: FaultAction::Disconnect,
            ..
        }) = action
        {
            return Verdict::Disconnect;
        }
        if let Some(Fault {
            at: FaultPoint::Message(_),
            ..
        }) = action
        {
            counter.dropping_message = true;
        }
        let dropped = action.is_some() || counter.dropping_message;
        let starts_round_trip = direction == Direction::ToPeripheral
            && starts_message
            && *last_direction != Some(Direction::ToPeripheral);
        *last_direction = Some(direction);
        drop(inner);
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        stats.record(
            direction,
            frame.len(),
            starts_message,
            starts_round_trip,
            self.model.connection_interval,
        );
        if dropped {
            stats.dropped_frames += 1;
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    }

    /// Waits one connection interval; `false` if the link closed meanwhile.
    async fn one_interval(&self) -> bool {
        tokio::select! {
            biased;
            () = self.closed.cancelled() => false,
            () = tokio::time::sleep(self.model.connection_interval) => true,
        }
    }
}

/// The central's end of an in-memory connection.
pub(super) struct InMemoryConnection {
    shared: Arc<Shared>,
    uplink: mpsc::Sender<(Vec<u8>, Ack)>,
    events: tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
}

/// Opens a connection: spawns the two pipes and returns both ends.
pub(super) fn open(
    model: LinkModel,
    faults: Vec<Fault>,
    boundary: MessageBoundary,
    stats: Arc<Mutex<LinkStats>>,
) -> (InMemoryConnection, PeripheralLink) {
    stats
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .connections += 1;
    let shared = Arc::new(Shared {
        model,
        boundary,
        closed: CancellationToken::new(),
        stats,
        inner: Mutex::new(Inner {
            faults,
            up: Counter::default(),
            down: Counter::default(),
            last_direction: None,
            reason: None,
        }),
    });
    let (uplink_tx, uplink_rx) = mpsc::channel(QUEUE);
    let (to_device_tx, to_device_rx) = mpsc::channel(QUEUE);
    let (from_device_tx, from_device_rx) = mpsc::channel(QUEUE);
    let (events_tx, events_rx) = mpsc::channel(QUEUE);
    tokio::spawn(uplink(Arc::clone(&shared), uplink_rx, to_device_tx));
    tokio::spawn(downlink(Arc::clone(&shared), from_device_rx, events_tx));
    let connection = InMemoryConnection {
        shared,
        uplink: uplink_tx,
        events: tokio::sync::Mutex::new(events_rx),
    };
    let peripheral = PeripheralLink {
        mtu: model.mtu,
        from_central: to_device_rx,
        to_central: from_device_tx,
    };
    (connection, peripheral)
}

async fn uplink(
    shared: Arc<Shared>,
    mut from_central: mpsc::Receiver<(Vec<u8>, Ack)>,
    to_device: mpsc::Sender<Vec<u8>>,
) {
    loop {
        let item = tokio::select! {
            biased;
            () = shared.closed.cancelled() => break,
            item = from_central.recv() => item,
        };
        let Some((frame, ack)) = item else {
            shared.close(DisconnectReason::Local);
            break;
        };
        if !shared.one_interval().await {
            let _ = ack.send(Err(TransportError::Disconnected));
            break;
        }
        match shared.transmit(Direction::ToPeripheral, &frame) {
            Verdict::Deliver => {
                if to_device.send(frame).await.is_err() {
                    shared.close(DisconnectReason::Remote);
                    let _ = ack.send(Err(TransportError::Disconnected));
                    break;
                }
                let _ = ack.send(Ok(()));
            }
            Verdict::Drop => {
                let _ = ack.send(Ok(()));
            }
            Verdict::Disconnect => {
                shared.close(DisconnectReason::LinkLoss);
                let _ = ack.send(Err(TransportError::Disconnected));
                break;
            }
        }
    }
}

async fn downlink(
    shared: Arc<Shared>,
    mut from_device: mpsc::Receiver<Vec<u8>>,
    to_central: mpsc::Sender<Vec<u8>>,
) {
    let limit = usize::from(shared.model.mtu.saturating_sub(3));
    loop {
        let item = tokio::select! {
            biased;
            () = shared.closed.cancelled() => break,
            item = from_device.recv() => item,
        };
        let Some(frame) = item else {
            shared.close(DisconnectReason::Remote);
            break;
        };
        if frame.len() > limit {
            tracing::warn!(
                len = frame.len(),
                limit,
                "device notified an oversized frame; dropped"
            );
            continue;
        }
        if !shared.one_interval().await {
            break;
        }
        match shared.transmit(Direction::ToCentral, &frame) {
            Verdict::Deliver => {
                if to_central.send(frame).await.is_err() {
                    shared.close(DisconnectReason::Local);
                    break;
                }
            }
            Verdict::Drop => {}
            Verdict::Disconnect => {
                shared.close(DisconnectReason::LinkLoss);
                break;
            }
        }
    }
}

#[async_trait]
impl BleConnection for InMemoryConnection {
    fn mtu(&self) -> u16 {
        self.shared.model.mtu
    }

    async fn write(&self, frame: Vec<u8>) -> Result<(), TransportError> {
        let limit = usize::from(self.shared.model.mtu.saturating_sub(3));
        if frame.len() > limit {
            return Err(TransportError::FrameTooLarge {
                len: frame.len(),
                limit,
            });
        }
        if self.shared.closed.is_cancelled() {
            return Err(TransportError::Disconnected);
        }
        let (ack_tx, ack_rx) = oneshot::channel();
        if self.uplink.send((frame, ack_tx)).await.is_err() {
            return Err(TransportError::Disconnected);
        }
        ack_rx.await.unwrap_or(Err(TransportError::Disconnected))
    }

    async fn next_event(&self) -> LinkEvent {
        let mut events = self.events.lock().await;
        tokio::select! {
            biased;
            Some(frame) = events.recv() => LinkEvent::Notification(frame),
            () = self.shared.closed.cancelled() => {
                LinkEvent::Disconnected { reason: self.shared.reason() }
            }
        }
    }

    async fn disconnect(&self) {
        self.shared.close(DisconnectReason::Local);
    }
}

impl Drop for InMemoryConnection {
    fn drop(&mut self) {
        self.shared.close(DisconnectReason::Local);
    }
}
