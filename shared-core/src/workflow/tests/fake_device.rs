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
                let Ok((mut channel, first)) = session.confirm(&finish) else {
                    return;
                };
                match first {
                    SecureMessage::Request(Request::Provision { network, .. }) => {
                        if let Some(code) = script.provision_error {
                            let error = ProtocolError::new(code);
                            conn.sealed(
                                &mut channel,
                                SecureMessage::Response(Response::Error(error)),
                            )
                            .await;
                            continue;
                        }
                        memory.lock().unwrap().state = Some(DeviceState::TicketStaged);
                        let accepted = Response::ProvisionAccepted {
                            state: DeviceState::TicketStaged,
                        };
                        conn.sealed(&mut channel, SecureMessage::Response(accepted))
                            .await;
                        if network.is_some() {
                            for stage in [JoinStage::Associating, JoinStage::GotIp] {
                                let event = Event::Network(NetworkProgress { stage });
                                conn.sealed(&mut channel, SecureMessage::Event(event)).await;
                            }
                            let result = Event::NetworkResult(script.network_result.clone());
                            conn.sealed(&mut channel, SecureMessage::Event(result))
                                .await;
                            if matches!(script.network_result, NetworkResult::Failed { .. }) {
                                memory.lock().unwrap().state = Some(DeviceState::Commissionable);
                                continue;
                            }
                        }
                        memory.lock().unwrap().state = Some(DeviceState::Registering);
                        let progress = RegistrationProgress {
                            stage: RegistrationStage::Registering,
                            attempt: 1,
                            retry_after_s: None,
                        };
                        conn.sealed(
                            &mut channel,
                            SecureMessage::Event(Event::Registration(progress)),
                        )
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
                        conn.sealed(&mut channel, SecureMessage::Event(result))
                            .await;
                    }
                    SecureMessage::Request(Request::GetStatus) => {
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
                        conn.sealed(
                            &mut channel,
                            SecureMessage::Response(Response::Status(status)),
                        )
                        .await;
                    }
                    _ => return,
                }
            }
            _ => return,
        }
    }
}
