//! The installer side of the fleet socket: a [`BleTransport`] and the bridge sources.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use fieldlink_core::{
    assignment::{
        Assignment, AssignmentSource, RegistrationStatusSource, RegistrationView, ServiceError,
    },
    transport::{
        BleConnection, BleTransport, DisconnectReason, DiscoveredDevice, LinkEvent, PeripheralId,
        ScanFilter, TransportError,
    },
};
use fieldlink_protocol::ticket::SignedTicket;
use futures::{SinkExt, StreamExt, stream::SplitSink};
use tokio::{
    net::TcpStream,
    sync::{mpsc, oneshot},
};
use tokio_util::codec::{Framed, LinesCodec};

use super::wire::{
    DeviceHolding, Downlink, Hello, MAX_LINE, Reply, Request, Uplink, WireError, WireView,
    reason_from,
};

type Lines = Framed<TcpStream, LinesCodec>;

/// Deadline of a request/answer exchange that is not a scan or a connect.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(30);

/// Why the fleet socket failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetError {
    /// The sandbox is not listening.
    Unreachable(String),
    /// It answered with an error.
    Remote(WireError),
    /// It answered something unexpected.
    Protocol(String),
}

impl std::fmt::Display for FleetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FleetError::Unreachable(detail) => write!(f, "sandbox unreachable: {detail}"),
            FleetError::Remote(error) => write!(f, "{}: {}", error.code, error.detail),
            FleetError::Protocol(detail) => {
                write!(f, "unexpected answer from the sandbox: {detail}")
            }
        }
    }
}

impl FleetError {
    fn transport(&self) -> TransportError {
        match self {
            FleetError::Unreachable(detail) => TransportError::Unavailable(format!(
                "the sandbox's virtual radio is unreachable ({detail}); is `fieldlink sandbox up` \
                 running?"
            )),
            FleetError::Remote(error) => error.to_transport(),
            FleetError::Protocol(detail) => TransportError::Platform(detail.clone()),
        }
    }

    fn service(&self) -> ServiceError {
        match self {
            FleetError::Remote(error) => error.to_service(),
            other => ServiceError::Unavailable {
                detail: other.to_string(),
            },
        }
    }
}

/// A client of one sandbox's fleet socket.
#[derive(Debug, Clone)]
pub struct FleetClient {
    address: SocketAddr,
    token: String,
}

impl FleetClient {
    /// A client for the socket at `address` with `token`.
    pub fn new(address: SocketAddr, token: String) -> Self {
        Self { address, token }
    }

    async fn open(
        &self,
        request: Request,
        deadline: Duration,
    ) -> Result<(Lines, Reply), FleetError> {
        let exchange = async {
            let stream = TcpStream::connect(self.address)
                .await
                .map_err(|error| FleetError::Unreachable(format!("{}: {error}", self.address)))?;
            let _ = stream.set_nodelay(true);
            let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
            let hello = Hello {
                token: self.token.clone(),
                request,
            };
            let text = serde_json::to_string(&hello)
                .map_err(|error| FleetError::Protocol(error.to_string()))?;
            lines
                .send(text)
                .await
                .map_err(|error| FleetError::Unreachable(error.to_string()))?;
            let line = match lines.next().await {
                Some(Ok(line)) => line,
                Some(Err(error)) => return Err(FleetError::Unreachable(error.to_string())),
                None => return Err(FleetError::Unreachable("connection closed".into())),
            };
            let reply: Reply = serde_json::from_str(&line)
                .map_err(|error| FleetError::Protocol(error.to_string()))?;
            match reply {
                Reply::Error(error) => Err(FleetError::Remote(error)),
                reply => Ok((lines, reply)),
            }
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| FleetError::Unreachable("no answer in time".into()))?
    }

    async fn ask(&self, request: Request) -> Result<Reply, FleetError> {
        self.open(request, EXCHANGE_DEADLINE)
            .await
            .map(|(_, reply)| reply)
    }

    /// What each virtual device holds.
    pub async fn devices(&self) -> Result<Vec<DeviceHolding>, FleetError> {
        match self.ask(Request::Devices).await? {
            Reply::Devices { devices } => Ok(devices),
            other => Err(FleetError::Protocol(format!("{other:?}"))),
        }
    }

    /// Switches the `status_offline` fault.
    pub async fn set_status_offline(&self, offline: bool) -> Result<(), FleetError> {
        match self
            .ask(Request::Fault {
                status_offline: offline,
            })
            .await?
        {
            Reply::Done => Ok(()),
            other => Err(FleetError::Protocol(format!("{other:?}"))),
        }
    }

    /// A device's registration state, searched over every DPS instance.
    pub async fn status_of(&self, registration_id: &str) -> Result<WireView, FleetError> {
        let request = Request::Status {
            registration_id: registration_id.to_owned(),
            ticket: None,
        };
        match self.ask(request).await? {
            Reply::Status { view } => Ok(view),
            other => Err(FleetError::Protocol(format!("{other:?}"))),
        }
    }
}

#[async_trait]
impl BleTransport for FleetClient {
    async fn scan(
        &self,
        filter: ScanFilter,
        timeout: Duration,
    ) -> Result<Vec<DiscoveredDevice>, TransportError> {
        // `timeout` is the workflow's listening window, which already ends before its scanning
        // deadline (`StepDeadlines::scan_window`), so the remote scan listens exactly that long.
        let request = Request::Scan {
            discriminator: filter.discriminator,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let deadline = timeout.saturating_add(EXCHANGE_DEADLINE);
        match self.open(request, deadline).await {
            Ok((_, Reply::Scanned { devices })) => Ok(devices
                .iter()
                .filter_map(|d| d.to_discovered())
                .filter(|d| filter.matches(d))
                .collect()),
            Ok((_, other)) => Err(TransportError::Platform(format!("{other:?}"))),
            Err(error) => Err(error.transport()),
        }
    }

    async fn connect(
        &self,
        id: PeripheralId,
        timeout: Duration,
    ) -> Result<Arc<dyn BleConnection>, TransportError> {
        let request = Request::Connect {
            peripheral: id.0.clone(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        match self
            .open(request, timeout.saturating_add(Duration::from_secs(1)))
            .await
        {
            Ok((lines, Reply::Connected { mtu })) => {
                Ok(Arc::new(FleetConnection::start(lines, mtu)))
            }
            Ok((_, other)) => Err(TransportError::Platform(format!("{other:?}"))),
            Err(error) => Err(error.transport()),
        }
    }
}

#[async_trait]
impl AssignmentSource for FleetClient {
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
        match self.ask(Request::Assignment { registration_id }).await {
            Ok(Reply::Assignment { ticket }) => {
                let ticket = SignedTicket::from_base64url(&ticket).map_err(|error| {
                    ServiceError::Invalid {
                        detail: format!("unreadable ticket: {error}"),
                    }
                })?;
                Assignment::from_ticket(ticket)
            }
            Ok(other) => Err(ServiceError::Invalid {
                detail: format!("{other:?}"),
            }),
            Err(error) => Err(error.service()),
        }
    }
}

#[async_trait]
impl RegistrationStatusSource for FleetClient {
    async fn registration_status(
        &self,
        registration_id: String,
        assignment: Assignment,
    ) -> Result<RegistrationView, ServiceError> {
        let request = Request::Status {
            registration_id,
            ticket: Some(assignment.ticket.to_base64url()),
        };
        match self.ask(request).await {
            Ok(Reply::Status { view }) => Ok(view.to_view()),
            Ok(other) => Err(ServiceError::Invalid {
                detail: format!("{other:?}"),
            }),
            Err(error) => Err(error.service()),
        }
    }
}

type Ack = oneshot::Sender<Result<(), TransportError>>;

/// One BLE link carried by a TCP connection.
struct FleetConnection {
    mtu: u16,
    sink: tokio::sync::Mutex<Option<SplitSink<Lines, String>>>,
    acks: Arc<Mutex<VecDeque<Ack>>>,
    events: tokio::sync::Mutex<mpsc::Receiver<LinkEvent>>,
    down: Mutex<Option<DisconnectReason>>,
    reader: tokio::task::JoinHandle<()>,
}

impl FleetConnection {
    fn start(lines: Lines, mtu: u16) -> Self {
        let (sink, mut stream) = lines.split();
        let acks: Arc<Mutex<VecDeque<Ack>>> = Arc::default();
        let (events_tx, events) = mpsc::channel(256);
        let pending = Arc::clone(&acks);
        let reader = tokio::spawn(async move {
            let reason = loop {
                let message = match stream.next().await {
                    Some(Ok(line)) => serde_json::from_str::<Downlink>(&line).ok(),
                    _ => None,
                };
                let pop = || {
                    pending
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .pop_front()
                };
                match message {
                    Some(Downlink::Ack) => {
                        if let Some(ack) = pop() {
                            let _ = ack.send(Ok(()));
                        }
                    }
                    Some(Downlink::Nack { error }) => {
                        if let Some(ack) = pop() {
                            let _ = ack.send(Err(error.to_transport()));
                        }
                    }
                    Some(Downlink::Notify { frame }) => match hex::decode(frame) {
                        Ok(frame) => {
                            if events_tx
                                .send(LinkEvent::Notification(frame))
                                .await
                                .is_err()
                            {
                                break DisconnectReason::Local;
                            }
                        }
                        Err(_) => break DisconnectReason::LinkLoss,
                    },
                    Some(Downlink::Disconnected { reason }) => break reason_from(&reason),
                    None => break DisconnectReason::LinkLoss,
                }
            };
            // Unacknowledged writes fail (their senders drop); the workflow sees the disconnect.
            pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            let _ = events_tx.send(LinkEvent::Disconnected { reason }).await;
        });
        Self {
            mtu,
            sink: tokio::sync::Mutex::new(Some(sink)),
            acks,
            events: tokio::sync::Mutex::new(events),
            down: Mutex::new(None),
            reader,
        }
    }

    fn down(&self) -> Option<DisconnectReason> {
        *self.down.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FleetConnection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[async_trait]
impl BleConnection for FleetConnection {
    fn mtu(&self) -> u16 {
        self.mtu
    }

    async fn write(&self, frame: Vec<u8>) -> Result<(), TransportError> {
        let limit = usize::from(self.mtu.saturating_sub(3));
        if frame.len() > limit {
            return Err(TransportError::FrameTooLarge {
                len: frame.len(),
                limit,
            });
        }
        if self.down().is_some() {
            return Err(TransportError::Disconnected);
        }
        let text = serde_json::to_string(&Uplink::Write {
            frame: hex::encode(frame),
        })
        .map_err(|error| TransportError::Platform(error.to_string()))?;
        let acked = {
            let mut sink = self.sink.lock().await;
            let Some(sink) = sink.as_mut() else {
                return Err(TransportError::Disconnected);
            };
            let (ack, acked) = oneshot::channel();
            self.acks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(ack);
            sink.send(text)
                .await
                .map_err(|_| TransportError::Disconnected)?;
            acked
        };
        acked.await.unwrap_or(Err(TransportError::Disconnected))
    }

    async fn next_event(&self) -> LinkEvent {
        if let Some(reason) = self.down() {
            return LinkEvent::Disconnected { reason };
        }
        let event = self.events.lock().await.recv().await;
        let event = event.unwrap_or(LinkEvent::Disconnected {
            reason: DisconnectReason::LinkLoss,
        });
        if let LinkEvent::Disconnected { reason } = event {
            let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
            *down = Some(down.unwrap_or(reason));
        }
        event
    }

    async fn disconnect(&self) {
        {
            let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
            if down.is_none() {
                *down = Some(DisconnectReason::Local);
            }
        }
        let sink = self.sink.lock().await.take();
        if let Some(mut sink) = sink {
            if let Ok(text) = serde_json::to_string(&Uplink::Disconnect) {
                let _ = sink.send(text).await;
            }
            let _ = sink.close().await;
        }
    }
}
