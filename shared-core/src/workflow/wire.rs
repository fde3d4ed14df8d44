//! The installer's end of the wire: framing, the PAKE session and message decoding, turning
//! notification frames into [`DeviceMessage`]s the state machine understands.

use std::time::Duration;

use fieldlink_protocol::{
    framing::{
        DEFAULT_REASSEMBLY_DEADLINE_MS, FrameError, MAX_MESSAGE_LEN, Reassembler, Segmenter,
    },
    message::{
        DeviceState, DpsResult, ErrorCode, Event, MessageError, NetworkConfig, NetworkResult,
        Request, Response, SecureMessage, WireMessage,
    },
    session::{ClientHandshake, SecureChannel, SessionError, SessionSecret},
    ticket::SignedTicket,
};
use rand::rngs::StdRng;

use super::report::DeviceRegistration;
use crate::error::NetworkFailureKind;

/// Internal failures of the wire layer; mapped to public errors in `crate::failure`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// Framing failed (duplicate, gap, oversize, deadline).
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// A message did not decode.
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// The session failed (bad confirmation, tamper, replay).
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// The device sent something out of turn.
    #[error("unexpected {0} from the device")]
    Unexpected(&'static str),
}

/// The state the device reported, reduced to what the workflow branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapshotState {
    Commissionable,
    TicketStaged,
    Registering,
    Registered,
    Failed,
    Other,
}

impl SnapshotState {
    fn from_device(state: DeviceState) -> Self {
        match state {
            DeviceState::Commissionable => Self::Commissionable,
            DeviceState::TicketStaged => Self::TicketStaged,
            DeviceState::Registering => Self::Registering,
            DeviceState::Registered => Self::Registered,
            DeviceState::Failed => Self::Failed,
            DeviceState::SessionOpen | DeviceState::Locked => Self::Other,
        }
    }

    /// Whether the device holds a staged or committed ticket.
    pub(crate) fn holds_ticket(self) -> bool {
        matches!(
            self,
            Self::TicketStaged | Self::Registering | Self::Registered
        )
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Commissionable => "commissionable",
            Self::TicketStaged => "ticket_staged",
            Self::Registering => "registering",
            Self::Registered => "registered",
            Self::Failed => "failed",
            Self::Other => "other",
        }
    }
}

/// What the device told us about itself (from `DeviceInfo` or `DeviceStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceSnapshot {
    pub(crate) registration_id: String,
    pub(crate) state: SnapshotState,
    pub(crate) last_result: Option<ReportedResult>,
    pub(crate) network_joined: bool,
    pub(crate) network_failure: Option<NetworkFailureKind>,
}

/// A decoded message from the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceMessage {
    /// Handshake verified (the device proved it knows the secret).
    Hello(DeviceSnapshot),
    /// Handshake refused.
    Refused {
        locked: bool,
        retry_after: Duration,
    },
    /// The PoP (or manual passcode) is wrong.
    WrongSecret {
        attempts_left: u8,
    },
    ProvisionAccepted,
    /// A corrected network is being joined.
    NetworkAccepted,
    /// The staged ticket was rolled back at the installer's request.
    Cancelled,
    Status(DeviceSnapshot),
    NetworkStage(String),
    NetworkJoined,
    NetworkFailed(NetworkFailureKind),
    RegistrationStage(String),
    RegistrationResult(ReportedResult),
    DeviceError(ErrorCode, Option<Duration>),
}

/// What the installer sends with its `ClientFinish`.
#[derive(Debug, Clone)]
pub(crate) enum OutgoingRequest {
    Provision {
        ticket: SignedTicket,
        network: Option<NetworkConfig>,
    },
    GetStatus,
    ConfigureNetwork {
        network: NetworkConfig,
    },
    Cancel,
}

impl OutgoingRequest {
    fn into_request(self) -> Request {
        match self {
            OutgoingRequest::Provision { ticket, network } => {
                Request::Provision { ticket, network }
            }
            OutgoingRequest::GetStatus => Request::GetStatus,
            OutgoingRequest::ConfigureNetwork { network } => Request::ConfigureNetwork { network },
            OutgoingRequest::Cancel => Request::Cancel,
        }
    }
}

enum Session {
    Handshaking(ClientHandshake),
    /// Keys agreed; the `ClientFinish` has not been sent yet.
    Agreed {
        channel: SecureChannel,
        confirm: fieldlink_protocol::session::ClientConfirm,
    },
    Open(SecureChannel),
    Closed,
}

/// One connection's wire state.
pub(crate) struct ClientWire {
    segmenter: Segmenter,
    reassembler: Reassembler,
    session: Session,
    registration_id: Option<String>,
}

impl std::fmt::Debug for ClientWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientWire").finish_non_exhaustive()
    }
}

pub(crate) fn network_failure(
    kind: fieldlink_protocol::message::JoinFailureKind,
) -> NetworkFailureKind {
    use fieldlink_protocol::message::JoinFailureKind as Kind;
    match kind {
        Kind::WifiAuthFailed => NetworkFailureKind::WifiAuthFailed,
        Kind::NetworkNotFound => NetworkFailureKind::NetworkNotFound,
        Kind::DhcpFailed => NetworkFailureKind::DhcpFailed,
        Kind::NoInternet => NetworkFailureKind::NoInternet,
        Kind::DpsUnreachable => NetworkFailureKind::DpsUnreachable,
        Kind::Unsupported => NetworkFailureKind::Unsupported,
    }
}

/// The device's DPS result: its report, and why it did not end in an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportedResult {
    /// What the device reported.
    pub(crate) report: DeviceRegistration,
    /// The typed reason (`DpsResult.failure`), `None` when assigned.
    pub(crate) failure: Option<ErrorCode>,
}

fn registration(result: DpsResult) -> ReportedResult {
    let failure = result
        .failure
        .or_else(|| legacy_failure(result.error_message.as_deref()));
    ReportedResult {
        report: DeviceRegistration {
            status: result.status.as_str().to_owned(),
            assigned_hub: result.assigned_hub,
            device_id: result.device_id,
            substatus: result.substatus,
            error_code: result.error_code,
            error_message: result.error_message,
        },
        failure,
    }
}

/// Devices that predate `DpsResult.failure` (key 6) put the code in front of the message
/// (`"dps_unreachable: connect failed"`). Read only when the typed field is absent, and only a
/// known code name before the first `": "`.
fn legacy_failure(message: Option<&str>) -> Option<ErrorCode> {
    let (name, _) = message?.split_once(": ")?;
    ErrorCode::from_name(name)
}

impl ClientWire {
    /// Starts the handshake: returns the frames of `ClientHello`.
    pub(crate) fn start(
        secret: &SessionSecret,
        mtu: u16,
        rng: &mut StdRng,
    ) -> Result<(Self, Vec<Vec<u8>>), WireError> {
        let (handshake, hello) = ClientHandshake::start(secret, rng);
        let mut wire = Self {
            segmenter: Segmenter::new(mtu),
            reassembler: Reassembler::new(MAX_MESSAGE_LEN, DEFAULT_REASSEMBLY_DEADLINE_MS),
            session: Session::Handshaking(handshake),
            registration_id: None,
        };
        let frames = wire
            .segmenter
            .segment(&WireMessage::ClientHello(hello).encode())?;
        Ok((wire, frames))
    }

    /// When a half-received message times out, if one is pending.
    pub(crate) fn deadline(&self) -> Option<u64> {
        self.reassembler.deadline()
    }

    /// Fails if a half-received message has timed out.
    pub(crate) fn check_deadline(&mut self, now_ms: u64) -> Result<(), WireError> {
        Ok(self.reassembler.check_deadline(now_ms)?)
    }

    /// Feeds one notification frame.
    pub(crate) fn push(
        &mut self,
        frame: &[u8],
        now_ms: u64,
    ) -> Result<Option<DeviceMessage>, WireError> {
        let Some(bytes) = self.reassembler.push(frame, now_ms)? else {
            return Ok(None);
        };
        let message = WireMessage::decode(&bytes)?;
        match (
            message,
            std::mem::replace(&mut self.session, Session::Closed),
        ) {
            (WireMessage::DeviceHello(hello), Session::Handshaking(handshake)) => {
                match handshake.finish(&hello) {
                    Ok((channel, info, confirm)) => {
                        self.session = Session::Agreed { channel, confirm };
                        self.registration_id = Some(info.registration_id.clone());
                        let snapshot = DeviceSnapshot {
                            registration_id: info.registration_id,
                            state: SnapshotState::from_device(info.state),
                            last_result: None,
                            network_joined: info.network.already_online,
                            network_failure: None,
                        };
                        Ok(Some(DeviceMessage::Hello(snapshot)))
                    }
                    Err(SessionError::WrongSecret { attempts_left }) => {
                        Ok(Some(DeviceMessage::WrongSecret { attempts_left }))
                    }
                    Err(error) => Err(error.into()),
                }
            }
            (WireMessage::HandshakeRefused(refused), _) => {
                let retry_after =
                    Duration::from_secs(u64::from(refused.retry_after_s.unwrap_or(0)));
                match refused.code {
                    ErrorCode::DeviceLocked => Ok(Some(DeviceMessage::Refused {
                        locked: true,
                        retry_after,
                    })),
                    ErrorCode::Busy => Ok(Some(DeviceMessage::Refused {
                        locked: false,
                        retry_after,
                    })),
                    code => Ok(Some(DeviceMessage::DeviceError(code, Some(retry_after)))),
                }
            }
            (WireMessage::Sealed(sealed), Session::Open(mut channel)) => {
                let opened = channel.open(&sealed);
                self.session = Session::Open(channel);
                Ok(Some(self.on_secure(opened?)))
            }
            (WireMessage::Sealed(_), _) => {
                Err(WireError::Unexpected("sealed record before the session"))
            }
            (WireMessage::DeviceHello(_), _) => Err(WireError::Unexpected("second DeviceHello")),
            (WireMessage::ClientHello(_) | WireMessage::ClientFinish(_), _) => {
                Err(WireError::Unexpected("client message"))
            }
        }
    }

    fn on_secure(&self, message: SecureMessage) -> DeviceMessage {
        match message {
            SecureMessage::Response(Response::ProvisionAccepted { .. }) => {
                DeviceMessage::ProvisionAccepted
            }
            SecureMessage::Response(Response::NetworkAccepted { .. }) => {
                DeviceMessage::NetworkAccepted
            }
            SecureMessage::Response(Response::Cancelled { .. }) => DeviceMessage::Cancelled,
            SecureMessage::Response(Response::Status(status)) => {
                let network = status.network.as_ref();
                DeviceMessage::Status(DeviceSnapshot {
                    registration_id: self.registration_id.clone().unwrap_or_default(),
                    state: SnapshotState::from_device(status.state),
                    last_result: status.registration.map(registration),
                    network_joined: matches!(network, Some(NetworkResult::Joined { .. })),
                    network_failure: match network {
                        Some(NetworkResult::Failed { kind, .. }) => Some(network_failure(*kind)),
                        _ => None,
                    },
                })
            }
            SecureMessage::Response(Response::Error(error)) => DeviceMessage::DeviceError(
                error.code,
                error
                    .retry_after_s
                    .map(|s| Duration::from_secs(u64::from(s))),
            ),
            SecureMessage::Response(_) => DeviceMessage::DeviceError(ErrorCode::InvalidState, None),
            SecureMessage::Event(Event::Network(progress)) => {
                DeviceMessage::NetworkStage(progress.stage.as_str().to_owned())
            }
            SecureMessage::Event(Event::NetworkResult(NetworkResult::Joined { .. })) => {
                DeviceMessage::NetworkJoined
            }
            SecureMessage::Event(Event::NetworkResult(NetworkResult::Failed { kind, .. })) => {
                DeviceMessage::NetworkFailed(network_failure(kind))
            }
            SecureMessage::Event(Event::Registration(progress)) => {
                DeviceMessage::RegistrationStage(progress.stage.as_str().to_owned())
            }
            SecureMessage::Event(Event::RegistrationResult(result)) => {
                DeviceMessage::RegistrationResult(registration(result))
            }
            SecureMessage::Request(_) => {
                DeviceMessage::DeviceError(ErrorCode::MalformedMessage, None)
            }
        }
    }

    /// Sends `ClientFinish` with `request` sealed inside: returns its frames.
    pub(crate) fn finish(&mut self, request: OutgoingRequest) -> Result<Vec<Vec<u8>>, WireError> {
        let Session::Agreed {
            mut channel,
            confirm,
        } = std::mem::replace(&mut self.session, Session::Closed)
        else {
            return Err(WireError::Unexpected("finish outside the handshake"));
        };
        let request = SecureMessage::Request(request.into_request());
        let finish = confirm.finish(&mut channel, &request)?;
        self.session = Session::Open(channel);
        Ok(self
            .segmenter
            .segment(&WireMessage::ClientFinish(finish).encode())?)
    }

    /// Sends a further request on the open session: returns its frames.
    pub(crate) fn send(&mut self, request: OutgoingRequest) -> Result<Vec<Vec<u8>>, WireError> {
        let Session::Open(channel) = &mut self.session else {
            return Err(WireError::Unexpected("request outside an open session"));
        };
        let sealed = channel.seal(&SecureMessage::Request(request.into_request()))?;
        Ok(self
            .segmenter
            .segment(&WireMessage::Sealed(sealed).encode())?)
    }
}
