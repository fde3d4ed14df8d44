//! The device side over real BlueZ: a GATT server and an LE advertisement through `bluer`.
//!
//! [`BluezPeripheral::start`] registers fieldlink's GATT application on a named adapter — RX
//! ([`RX_CHAR_UUID`], write and write-without-response) and TX ([`TX_CHAR_UUID`], notify, and
//! read: the current 4 bytes of service data, which the installer's liveness probe reads) — and
//! implements [`BlePeripheral`]: [`advertise`](BlePeripheral::advertise) (re-)registers an LE
//! advertisement with the service UUID, the 4 bytes of service data and the local name, and
//! [`accept`](BlePeripheral::accept) yields a [`PeripheralConnection`] for each central that
//! subscribes to TX, so [`DeviceAgent::run_peripheral`](crate::agent::DeviceAgent::run_peripheral)
//! runs the unchanged responder over it. Each `Vec<u8>` is one ATT write or one notification.
//!
//! A session ends (both channels close) when the central stops notifications, when a new
//! subscription replaces it, or when the agent drops its end. Every BlueZ call has a deadline;
//! nothing here panics.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use bluer::{
    Address, Uuid,
    adv::AdvertisementHandle,
    gatt::{
        CharacteristicWriter,
        local::{
            Application, ApplicationHandle, Characteristic, CharacteristicControl,
            CharacteristicControlEvent, CharacteristicNotify, CharacteristicNotifyMethod,
            CharacteristicRead, CharacteristicWrite, CharacteristicWriteMethod, ReqError, Service,
            characteristic_control,
        },
    },
};
use fieldlink_protocol::gatt::{RX_CHAR_UUID, SERVICE_DATA_UUID, SERVICE_UUID, TX_CHAR_UUID};
use futures::{FutureExt as _, StreamExt as _};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::link::{Advertisement, BlePeripheral, PeripheralConnection, PeripheralError};

/// Upper bound for one BlueZ call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames buffered per direction before a writer waits.
const CHANNEL_DEPTH: usize = 64;

/// Why the GATT server could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BluezError {
    /// No system D-Bus, or no `org.bluez` on it.
    #[error("BlueZ is not reachable over the system D-Bus: {0}")]
    NoBluez(String),
    /// The named adapter does not exist.
    #[error("no Bluetooth adapter {name} (present: {present})")]
    NoAdapter {
        /// The adapter asked for.
        name: String,
        /// The adapters BlueZ knows.
        present: String,
    },
    /// A BlueZ call failed or did not answer in time.
    #[error("BlueZ failed {what}: {detail}")]
    Bluez {
        /// The call.
        what: &'static str,
        /// What BlueZ said.
        detail: String,
    },
}

async fn call<T, E: std::fmt::Display>(
    what: &'static str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, BluezError> {
    match tokio::time::timeout(CALL_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(BluezError::Bluez {
            what,
            detail: error.to_string(),
        }),
        Err(_) => Err(BluezError::Bluez {
            what,
            detail: "no answer in time".into(),
        }),
    }
}

/// The bluer advertisement for `adv`: service UUID, service data under the 16-bit service-data
/// UUID, local name, discoverable.
pub fn le_advertisement(adv: &Advertisement) -> bluer::adv::Advertisement {
    bluer::adv::Advertisement {
        service_uuids: BTreeSet::from([Uuid::from_u128(SERVICE_UUID)]),
        service_data: BTreeMap::from([(
            Uuid::from_u128(SERVICE_DATA_UUID),
            adv.service_data.to_vec(),
        )]),
        discoverable: Some(true),
        local_name: Some(adv.local_name.clone()),
        ..bluer::adv::Advertisement::default()
    }
}

/// The session currently bound to RX writes.
struct Active {
    id: u64,
    central: Address,
    sender: mpsc::Sender<Vec<u8>>,
}

type ActiveSlot = Arc<Mutex<Option<Active>>>;

/// The service data last advertised; what a read of TX returns.
type ServiceDataSlot = Arc<Mutex<[u8; 4]>>;

fn lock(slot: &ActiveSlot) -> std::sync::MutexGuard<'_, Option<Active>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// RX writes go to the active session of the writing central; anything else is refused.
fn rx_write_method(active: ActiveSlot) -> CharacteristicWriteMethod {
    CharacteristicWriteMethod::Fun(Box::new(move |value, request| {
        let active = Arc::clone(&active);
        async move {
            let sender = match &*lock(&active) {
                Some(session) if session.central == request.device_address => {
                    session.sender.clone()
                }
                _ => return Err(ReqError::NotPermitted),
            };
            match tokio::time::timeout(CALL_TIMEOUT, sender.send(value)).await {
                Ok(Ok(())) => Ok(()),
                _ => Err(ReqError::Failed),
            }
        }
        .boxed()
    }))
}

/// Reads of TX answer the current service data: cheap, side-effect free, and only a live GATT
/// server can answer, which is what the installer's liveness probe needs.
fn tx_read(service_data: ServiceDataSlot) -> CharacteristicRead {
    CharacteristicRead {
        read: true,
        fun: Box::new(move |_request| {
            let value = service_data
                .lock()
                .map_or_else(|poisoned| *poisoned.into_inner(), |data| *data);
            async move { Ok(value.to_vec()) }.boxed()
        }),
        ..CharacteristicRead::default()
    }
}

fn application(
    active: ActiveSlot,
    service_data: ServiceDataSlot,
    control_handle: bluer::gatt::local::CharacteristicControlHandle,
) -> Application {
    Application {
        services: vec![Service {
            uuid: Uuid::from_u128(SERVICE_UUID),
            primary: true,
            characteristics: vec![
                Characteristic {
                    uuid: Uuid::from_u128(RX_CHAR_UUID),
                    write: Some(CharacteristicWrite {
                        write: true,
                        write_without_response: true,
                        method: rx_write_method(active),
                        ..CharacteristicWrite::default()
                    }),
                    ..Characteristic::default()
                },
                Characteristic {
                    uuid: Uuid::from_u128(TX_CHAR_UUID),
                    read: Some(tx_read(service_data)),
                    notify: Some(CharacteristicNotify {
                        notify: true,
                        method: CharacteristicNotifyMethod::Io,
                        ..CharacteristicNotify::default()
                    }),
                    control_handle,
                    ..Characteristic::default()
                },
            ],
            ..Service::default()
        }],
        ..Application::default()
    }
}

/// fieldlink's GATT server on one BlueZ adapter. Dropping it unregisters the application and the
/// advertisement.
pub struct BluezPeripheral {
    adapter_name: String,
    address: String,
    adapter: bluer::Adapter,
    advertisement: tokio::sync::Mutex<Option<AdvertisementHandle>>,
    service_data: ServiceDataSlot,
    connections: tokio::sync::Mutex<mpsc::Receiver<PeripheralConnection>>,
    sessions: JoinHandle<()>,
    _application: ApplicationHandle,
    _session: bluer::Session,
}

impl std::fmt::Debug for BluezPeripheral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BluezPeripheral")
            .field("adapter", &self.adapter_name)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl BluezPeripheral {
    /// Connects to BlueZ on the system bus, powers `adapter_name` on and registers the GATT
    /// application. Advertising starts with the first [`advertise`](BlePeripheral::advertise).
    pub async fn start(adapter_name: &str) -> Result<Self, BluezError> {
        let session = tokio::time::timeout(CALL_TIMEOUT, bluer::Session::new())
            .await
            .map_err(|_| BluezError::NoBluez("the system D-Bus did not answer".into()))?
            .map_err(|error| BluezError::NoBluez(error.to_string()))?;
        let names = call("listing adapters", session.adapter_names())
            .await
            .map_err(|error| BluezError::NoBluez(error.to_string()))?;
        if !names.iter().any(|name| name == adapter_name) {
            return Err(BluezError::NoAdapter {
                name: adapter_name.to_owned(),
                present: names.join(", "),
            });
        }
        let adapter = session
            .adapter(adapter_name)
            .map_err(|error| BluezError::Bluez {
                what: "opening the adapter",
                detail: error.to_string(),
            })?;
        call("powering the adapter on", adapter.set_powered(true)).await?;
        let address = call("reading the adapter address", adapter.address()).await?;

        let active: ActiveSlot = Arc::new(Mutex::new(None));
        let service_data: ServiceDataSlot = Arc::new(Mutex::new([0; 4]));
        let (control, control_handle) = characteristic_control();
        let app = call(
            "registering the GATT application",
            adapter.serve_gatt_application(application(
                Arc::clone(&active),
                Arc::clone(&service_data),
                control_handle,
            )),
        )
        .await?;
        let (connections_tx, connections) = mpsc::channel(4);
        let sessions = tokio::spawn(run_sessions(control, active, connections_tx));
        tracing::info!(adapter = adapter_name, %address, "fieldlink GATT server registered");
        Ok(Self {
            adapter_name: adapter_name.to_owned(),
            address: address.to_string(),
            adapter,
            advertisement: tokio::sync::Mutex::new(None),
            service_data,
            connections: tokio::sync::Mutex::new(connections),
            sessions,
            _application: app,
            _session: session,
        })
    }

    /// The adapter it runs on (`hci1`).
    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }

    /// The adapter's address, which centrals see as the peripheral's address.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for BluezPeripheral {
    fn drop(&mut self) {
        self.sessions.abort();
    }
}

#[async_trait]
impl BlePeripheral for BluezPeripheral {
    async fn advertise(&self, advertisement: &Advertisement) -> Result<(), PeripheralError> {
        *self
            .service_data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = advertisement.service_data;
        let mut current = self.advertisement.lock().await;
        // One registration per advertisement: drop (unregister) ours before the new one.
        drop(current.take());
        let handle = call(
            "registering the advertisement",
            self.adapter.advertise(le_advertisement(advertisement)),
        )
        .await
        .map_err(|error| PeripheralError(error.to_string()))?;
        *current = Some(handle);
        Ok(())
    }

    async fn accept(&self) -> Result<Option<PeripheralConnection>, PeripheralError> {
        Ok(self.connections.lock().await.recv().await)
    }
}

/// Turns each TX subscription into a session until BlueZ drops the application.
async fn run_sessions(
    control: CharacteristicControl,
    active: ActiveSlot,
    connections: mpsc::Sender<PeripheralConnection>,
) {
    let mut control = std::pin::pin!(control);
    let mut next_id = 0;
    while let Some(event) = control.next().await {
        let CharacteristicControlEvent::Notify(writer) = event else {
            continue;
        };
        next_id += 1;
        let (from_sender, from_central) = mpsc::channel(CHANNEL_DEPTH);
        let (to_central, frames) = mpsc::channel(CHANNEL_DEPTH);
        let central = writer.device_address();
        // Replacing the previous session drops its RX sender: that session sees a disconnect.
        *lock(&active) = Some(Active {
            id: next_id,
            central,
            sender: from_sender,
        });
        // bluer's notification socket carries at most `writer.mtu()` bytes per notification
        // (BlueZ's MTU less bluer's 5-byte margin), so frames must stay within that.
        let mtu = u16::try_from(writer.mtu() + 3)
            .unwrap_or(u16::MAX)
            .clamp(23, 517);
        tracing::debug!(%central, mtu, "central subscribed");
        let connection = PeripheralConnection {
            mtu,
            from_central,
            to_central,
        };
        if tokio::time::timeout(CALL_TIMEOUT, connections.send(connection))
            .await
            .map_or(true, |sent| sent.is_err())
        {
            tracing::warn!(%central, "the agent did not take the connection");
            continue;
        }
        tokio::spawn(notify(next_id, writer, frames, Arc::clone(&active)));
    }
    tracing::warn!("BlueZ dropped the GATT application");
}

/// Sends the session's frames as TX notifications until either side ends it.
async fn notify(
    id: u64,
    writer: CharacteristicWriter,
    mut frames: mpsc::Receiver<Vec<u8>>,
    active: ActiveSlot,
) {
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let Some(frame) = frame else { break };
                match tokio::time::timeout(CALL_TIMEOUT, writer.send(&frame)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "notification failed; ending the session");
                        break;
                    }
                    Err(_) => {
                        tracing::debug!("notification stalled; ending the session");
                        break;
                    }
                }
            }
            _ = writer.closed() => break,
        }
    }
    let mut slot = lock(&active);
    if slot.as_ref().is_some_and(|session| session.id == id) {
        *slot = None;
    }
}

#[cfg(test)]
mod tests {
    use fieldlink_protocol::gatt::AdvertisedState;

    use super::*;

    #[test]
    fn the_advertisement_carries_uuid_service_data_and_name() {
        let adv = le_advertisement(&Advertisement::new(0xa42, AdvertisedState::Commissionable));
        assert!(adv.service_uuids.contains(&Uuid::from_u128(SERVICE_UUID)));
        let data = adv
            .service_data
            .get(&Uuid::from_u128(SERVICE_DATA_UUID))
            .expect("service data");
        let decoded = fieldlink_protocol::gatt::ServiceData::decode(data).expect("decodes");
        assert_eq!(decoded.discriminator, 0xa42);
        assert_eq!(decoded.state, AdvertisedState::Commissionable);
        assert_eq!(adv.local_name.as_deref(), Some("FL-A42"));
        assert_eq!(adv.discoverable, Some(true));
    }
}
