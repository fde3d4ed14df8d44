//! A scripted fake device for the workflow's unit tests (integration tests use the real device
//! agent in `fieldlink-tests`).

use std::sync::{Arc, Mutex};

use fieldlink_protocol::{
    framing::{Reassembler, Segmenter},
    gatt::{AdvertisedState, SERVICE_UUID, ServiceData},
    message::{
        DeviceInfo, DeviceState, DeviceStatus, DpsResult, DpsStatus, ErrorCode, Event,
        HandshakeRefused, JoinStage, NetworkCapabilities, NetworkProgress, NetworkResult,
        ProtocolError, RegistrationProgress, RegistrationStage, Request, Response, SecureMessage,
        WireMessage,
    },
    payload::PopSecret,
    session::{DeviceHandshake, PendingDeviceSession, SecureChannel},
};
use tokio::sync::{mpsc, watch};

use crate::transport::{
    PeripheralId,
    memory::{InMemoryRadio, PeripheralLink, RadioAdvertisement},
};

/// What the fake device does.
#[derive(Clone)]
pub(super) struct Script {
    pub pop: PopSecret,
    pub registration_id: String,
    pub discriminator: u16,
    pub refuse: Option<ErrorCode>,
    pub provision_error: Option<ErrorCode>,
    pub network_result: NetworkResult,
    pub dps: DpsResult,
    /// Answer hellos at all.
    pub silent: bool,
}

impl Script {
    pub fn new(pop: PopSecret) -> Self {
        Self {
            pop,
            registration_id: "dev-1".into(),
            discriminator: 0x5a5,
            refuse: None,
            provision_error: None,
            network_result: NetworkResult::Joined {
                address: Some("192.0.2.10".into()),
            },
            dps: DpsResult {
                status: DpsStatus::Assigned,
                assigned_hub: Some("hub-a.example".into()),
                device_id: Some("dev-1".into()),
                substatus: Some("initialAssignment".into()),
                error_code: None,
                error_message: None,
                failure: None,
            },
            silent: false,
        }
    }
}

/// The device's persistent state across connections.
#[derive(Default)]
pub(super) struct Memory {
    pub state: Option<DeviceState>,
    pub registered: Option<DpsResult>,
    pub connections: u32,
}

pub(super) fn register(
    radio: &InMemoryRadio,
    script: Script,
) -> (PeripheralId, Arc<Mutex<Memory>>) {
    let data = ServiceData {
        protocol_version: 1,
        discriminator: script.discriminator,
        state: AdvertisedState::Commissionable,
    };
    let (tx, rx) = watch::channel(RadioAdvertisement {
        local_name: "FL-TEST".into(),
        service_uuids: vec![SERVICE_UUID],
        service_data: data.encode().to_vec(),
    });
    std::mem::forget(tx);
    let memory = Arc::new(Mutex::new(Memory::default()));
    let shared = Arc::clone(&memory);
    let id = radio.register_peripheral(
        rx,
        |a: &RadioAdvertisement| a.clone(),
        move |link: PeripheralLink| {
            tokio::spawn(serve(link, script.clone(), Arc::clone(&shared)));
        },
    );
    (id, memory)
}

struct Conn {
    segmenter: Segmenter,
    to_central: mpsc::Sender<Vec<u8>>,
}

impl Conn {
    async fn send(&mut self, message: &WireMessage) {
        for frame in self.segmenter.segment(&message.encode()).unwrap() {
            if self.to_central.send(frame).await.is_err() {
                return;
            }
        }
    }

    async fn sealed(&mut self, channel: &mut SecureChannel, message: SecureMessage) {
        let sealed = channel.seal(&message).unwrap();
        self.send(&WireMessage::Sealed(sealed)).await;
    }
}

fn state_of(memory: &Mutex<Memory>) -> DeviceState {
    memory
        .lock()
        .unwrap()
        .state
        .unwrap_or(DeviceState::Commissionable)
}

async fn serve(link: PeripheralLink, script: Script, memory: Arc<Mutex<Memory>>) {
    let PeripheralLink {
        mtu,
        mut from_central,
        to_central,
    } = link;
    memory.lock().unwrap().connections += 1;
    let mut conn = Conn {
        segmenter: Segmenter::new(mtu),
        to_central,
    };
    let mut reassembler = Reassembler::new(8192, 30_000);
    let mut pending: Option<PendingDeviceSession> = None;
    let mut channel: Option<SecureChannel> = None;
    let mut joins = 0_u32;
    while let Some(frame) = from_central.recv().await {
        let Ok(Some(bytes)) = reassembler.push(&frame, 0) else {
            continue;
        };
        match WireMessage::decode(&bytes).unwrap() {
            WireMessage::ClientHello(hello) => {
                if script.silent {
                    continue;
                }
                if let Some(code) = script.refuse {
                    let refused = HandshakeRefused {
                        code,
                        retry_after_s: Some(30),
                        supported_version: None,
                    };
                    conn.send(&WireMessage::HandshakeRefused(refused)).await;
                    continue;
                }
                let info = DeviceInfo {
                    registration_id: script.registration_id.clone(),
                    product_code: 1,
                    firmware_version: "1.0".into(),
                    state: state_of(&memory),
                    assignment: None,
                    network: NetworkCapabilities {
                        wifi: true,
                        ethernet: false,
                        cellular: false,
                        already_online: false,
                    },
                    wifi_networks: None,
                };
                let (session, reply) =
                    DeviceHandshake::respond(&script.pop, &hello, &info, 4, &mut rand::rngs::OsRng)
                        .unwrap();
                pending = Some(session);
                conn.send(&WireMessage::DeviceHello(reply)).await;
            }
            WireMessage::ClientFinish(finish) => {
                let Some(session) = pending.take() else {
                    return;
                };
                let Ok((mut open, first)) = session.confirm(&finish) else {
                    return;
                };
                let SecureMessage::Request(request) = first else {
                    return;
                };
                handle(&mut conn, &mut open, request, &script, &memory, &mut joins).await;
                channel = Some(open);
            }
            WireMessage::Sealed(sealed) => {
                let Some(open) = channel.as_mut() else { return };
                let Ok(SecureMessage::Request(request)) = open.open(&sealed) else {
                    return;
                };
                handle(&mut conn, open, request, &script, &memory, &mut joins).await;
            }
            _ => return,
        }
    }
}

async fn join_and_register(
    conn: &mut Conn,
    channel: &mut SecureChannel,
    script: &Script,
    memory: &Mutex<Memory>,
    network: bool,
    joins: &mut u32,
) {
    if network {
        *joins += 1;
        for stage in [JoinStage::Associating, JoinStage::GotIp] {
            let event = Event::Network(NetworkProgress { stage });
            conn.sealed(channel, SecureMessage::Event(event)).await;
        }
        // Only the first join fails: a corrected retry succeeds.
        let result = if *joins == 1 {
            script.network_result.clone()
        } else {
            NetworkResult::Joined { address: None }
        };
        let failed = matches!(result, NetworkResult::Failed { .. });
        conn.sealed(channel, SecureMessage::Event(Event::NetworkResult(result)))
            .await;
        if failed {
            return;
        }
    }
    memory.lock().unwrap().state = Some(DeviceState::Registering);
    let progress = RegistrationProgress {
        stage: RegistrationStage::Registering,
        attempt: 1,
        retry_after_s: None,
    };
    conn.sealed(channel, SecureMessage::Event(Event::Registration(progress)))
        .await;
    let registered = if script.dps.status == DpsStatus::Assigned {
        DeviceState::Registered
    } else {
        DeviceState::Failed
    };
    {
        let mut memory = memory.lock().unwrap();
        memory.state = Some(registered);
        memory.registered = Some(script.dps.clone());
    }
    let result = Event::RegistrationResult(script.dps.clone());
    conn.sealed(channel, SecureMessage::Event(result)).await;
}

async fn handle(
    conn: &mut Conn,
    channel: &mut SecureChannel,
    request: Request,
    script: &Script,
    memory: &Mutex<Memory>,
    joins: &mut u32,
) {
    match request {
        Request::Provision { network, .. } => {
            if let Some(code) = script.provision_error {
                let error = Response::Error(ProtocolError::new(code));
                conn.sealed(channel, SecureMessage::Response(error)).await;
                return;
            }
            memory.lock().unwrap().state = Some(DeviceState::TicketStaged);
            let accepted = Response::ProvisionAccepted {
                state: DeviceState::TicketStaged,
            };
            conn.sealed(channel, SecureMessage::Response(accepted))
                .await;
            join_and_register(conn, channel, script, memory, network.is_some(), joins).await;
        }
        Request::ConfigureNetwork { .. } => {
            let accepted = Response::NetworkAccepted {
                state: DeviceState::TicketStaged,
            };
            conn.sealed(channel, SecureMessage::Response(accepted))
                .await;
            join_and_register(conn, channel, script, memory, true, joins).await;
        }
        Request::Cancel => {
            memory.lock().unwrap().state = Some(DeviceState::Commissionable);
            let cancelled = Response::Cancelled {
                state: DeviceState::Commissionable,
            };
            conn.sealed(channel, SecureMessage::Response(cancelled))
                .await;
        }
        Request::GetStatus => {
            let (state, registration) = {
                let memory = memory.lock().unwrap();
                (
                    memory.state.unwrap_or(DeviceState::Commissionable),
                    memory.registered.clone(),
                )
            };
            let status = DeviceStatus {
                state,
                assignment: None,
                registration,
                network: None,
                fail_safe_remaining_s: None,
            };
            conn.sealed(channel, SecureMessage::Response(Response::Status(status)))
                .await;
        }
        Request::ScanNetworks => {}
    }
}
