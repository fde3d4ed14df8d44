//! The sandbox side of the fleet socket.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use fieldlink_core::{
    assignment::{Assignment, RegistrationView, ServiceError},
    transport::{BleConnection, LinkEvent, PeripheralId, ScanFilter},
};
use fieldlink_dps_emulator::EmulatorControl;
use fieldlink_protocol::{gatt::SERVICE_UUID, ticket::SignedTicket};
use futures::{SinkExt, StreamExt};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::{
    codec::{Framed, LinesCodec},
    sync::CancellationToken,
};

use super::wire::{
    DeviceHolding, Downlink, Hello, MAX_LINE, Reply, Request, Uplink, WireDevice, WireError,
    WireView, reason_name,
};
use crate::{sources::Backend, stack::StackDevice};

/// The longest a client may take to send its first line.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);
/// The longest scan or connect a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);

type Lines = Framed<tokio::net::TcpStream, LinesCodec>;

/// What the server serves.
pub struct FleetState {
    /// The manifest's token.
    pub token: String,
    /// Radio, ticket signer and status source.
    pub backend: Backend,
    /// The devices (for `devices`).
    pub devices: Vec<StackDevice>,
    /// The emulator (for status lookups without a ticket).
    pub control: EmulatorControl,
    /// The `status_offline` fault.
    pub status_offline: AtomicBool,
}

/// Serves connections until `stop` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<FleetState>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let state = Arc::clone(&state);
                let stop = stop.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = handle(lines, state) => {}
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "fleet socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn send<T: serde::Serialize>(lines: &mut Lines, message: &T) -> bool {
    match serde_json::to_string(message) {
        Ok(text) => lines.send(text).await.is_ok(),
        Err(_) => false,
    }
}

async fn handle(mut lines: Lines, state: Arc<FleetState>) {
    let first = tokio::time::timeout(HELLO_DEADLINE, lines.next()).await;
    let Ok(Some(Ok(line))) = first else {
        return;
    };
    let hello: Hello = match serde_json::from_str(&line) {
        Ok(hello) => hello,
        Err(error) => {
            let reply = Reply::Error(WireError::new("invalid", error.to_string()));
            send(&mut lines, &reply).await;
            return;
        }
    };
    if hello.token != state.token {
        let reply = Reply::Error(WireError::new("unauthorized", "wrong sandbox token"));
        send(&mut lines, &reply).await;
        return;
    }
    let reply = match hello.request {
        Request::Connect {
            peripheral,
            timeout_ms,
        } => return link(lines, &state, peripheral, timeout_ms).await,
        Request::Scan {
            discriminator,
            timeout_ms,
        } => {
            let filter = ScanFilter {
                service_uuid: SERVICE_UUID,
                discriminator,
            };
            let timeout = Duration::from_millis(timeout_ms).min(MAX_WAIT);
            match state.backend.transport.scan(filter, timeout).await {
                Ok(devices) => Reply::Scanned {
                    devices: devices.iter().map(WireDevice::from).collect(),
                },
                Err(error) => Reply::Error(WireError::transport(&error)),
            }
        }
        Request::Assignment { registration_id } => {
            match state.backend.assignments.assignment(registration_id).await {
                Ok(assignment) => Reply::Assignment {
                    ticket: assignment.ticket.to_base64url(),
                },
                Err(error) => Reply::Error(WireError::service(&error)),
            }
        }
        Request::Status {
            registration_id,
            ticket,
        } => match status(&state, registration_id, ticket).await {
            Ok(view) => Reply::Status { view },
            Err(error) => Reply::Error(WireError::service(&error)),
        },
        Request::Devices => Reply::Devices {
            devices: holdings(&state.devices),
        },
        Request::Fault { status_offline } => {
            state.status_offline.store(status_offline, Ordering::SeqCst);
            tracing::info!(status_offline, "sandbox fault switched");
            Reply::Done
        }
    };
    send(&mut lines, &reply).await;
}

async fn status(
    state: &FleetState,
    registration_id: String,
    ticket: Option<String>,
) -> Result<WireView, ServiceError> {
    if state.status_offline.load(Ordering::SeqCst) {
        return Err(ServiceError::Unavailable {
            detail: "the sandbox's status service is offline (fault)".into(),
        });
    }
    match ticket {
        Some(ticket) => {
            let ticket =
                SignedTicket::from_base64url(&ticket).map_err(|error| ServiceError::Invalid {
                    detail: format!("unreadable ticket: {error}"),
                })?;
            let assignment = Assignment::from_ticket(ticket)?;
            let instance = assignment.dps_instance.clone();
            let view = state
                .backend
                .status
                .registration_status(registration_id, assignment)
                .await?;
            Ok(WireView::of(&view, Some(instance)))
        }
        None => Ok(match state.control.find_registration(&registration_id) {
            Some((instance, record)) => {
                let view = RegistrationView {
                    status: record.status.as_str().to_owned(),
                    assigned_hub: record.assigned_hub,
                    device_id: record.device_id,
                    substatus: record
                        .substatus
                        .and_then(|s| serde_json::to_value(s).ok())
                        .and_then(|v| v.as_str().map(str::to_owned)),
                    error_code: record.error_code.and_then(|c| u32::try_from(c).ok()),
                };
                WireView::of(&view, Some(instance))
            }
            None => WireView {
                status: "unassigned".into(),
                assigned_hub: None,
                device_id: None,
                substatus: None,
                error_code: None,
                dps_instance: None,
            },
        }),
    }
}

fn holdings(devices: &[StackDevice]) -> Vec<DeviceHolding> {
    devices
        .iter()
        .map(|device| {
            let snapshot = device.store.snapshot();
            DeviceHolding {
                registration_id: device.payload.registration_id.clone(),
                peripheral: device.peripheral.0.clone(),
                state: device
                    .agent
                    .state()
                    .map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned()),
                tickets_accepted: snapshot.as_ref().map_or(0, |s| s.seen_nonces.len()),
                assigned_hub: snapshot.and_then(|s| s.assignment).map(|a| a.assigned_hub),
            }
        })
        .collect()
}

/// Runs one BLE link over the TCP connection until either side ends it.
async fn link(mut lines: Lines, state: &FleetState, peripheral: String, timeout_ms: u64) {
    let timeout = Duration::from_millis(timeout_ms).min(MAX_WAIT);
    let connection = match state
        .backend
        .transport
        .connect(PeripheralId(peripheral), timeout)
        .await
    {
        Ok(connection) => connection,
        Err(error) => {
            send(&mut lines, &Reply::Error(WireError::transport(&error))).await;
            return;
        }
    };
    if !send(
        &mut lines,
        &Reply::Connected {
            mtu: connection.mtu(),
        },
    )
    .await
    {
        connection.disconnect().await;
        return;
    }
    // Link events are pumped by their own task so a pending write never delays them.
    let (events_tx, mut events) = mpsc::channel::<LinkEvent>(64);
    let pump = {
        let connection: Arc<dyn BleConnection> = Arc::clone(&connection);
        tokio::spawn(async move {
            loop {
                let event = connection.next_event().await;
                let down = matches!(event, LinkEvent::Disconnected { .. });
                if events_tx.send(event).await.is_err() || down {
                    return;
                }
            }
        })
    };
    loop {
        tokio::select! {
            line = lines.next() => {
                let uplink = match line {
                    Some(Ok(line)) => serde_json::from_str::<Uplink>(&line).ok(),
                    _ => None,
                };
                match uplink {
                    Some(Uplink::Write { frame }) => {
                        let reply = match hex::decode(&frame) {
                            Ok(bytes) => match connection.write(bytes).await {
                                Ok(()) => Downlink::Ack,
                                Err(error) => Downlink::Nack { error: WireError::transport(&error) },
                            },
                            Err(_) => Downlink::Nack { error: WireError::new("invalid", "frame is not hex") },
                        };
                        if !send(&mut lines, &reply).await {
                            break;
                        }
                    }
                    // An explicit disconnect, a closed socket (the installer died) or garbage.
                    Some(Uplink::Disconnect) | None => break,
                }
            }
            event = events.recv() => match event {
                Some(LinkEvent::Notification(frame)) => {
                    if !send(&mut lines, &Downlink::Notify { frame: hex::encode(frame) }).await {
                        break;
                    }
                }
                Some(LinkEvent::Disconnected { reason }) => {
                    let down = Downlink::Disconnected { reason: reason_name(reason).to_owned() };
                    send(&mut lines, &down).await;
                    break;
                }
                None => break,
            },
        }
    }
    connection.disconnect().await;
    pump.abort();
}
