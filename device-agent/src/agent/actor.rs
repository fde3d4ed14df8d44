//! The actor that owns the state machine.

use std::collections::HashMap;
use std::sync::Arc;

use fieldlink_protocol::framing::{FrameError, MAX_MESSAGE_LEN, Reassembler, Segmenter};
use fieldlink_protocol::message::{DeviceStatus, ErrorCode, HandshakeRefused, WireMessage};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use super::AgentConfig;
use super::jobs;
use crate::clock::{SharedClock, duration_ms};
use crate::dps::DpsClient;
use crate::link::{Advertisement, PeripheralConnection};
use crate::machine::{DeviceMachine, Input, JobId, Output};
use crate::network::NetworkConfigurator;
use crate::store::StateStore;

/// How long the scan at start may take.
const SCAN_AT_START_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Events from connections and handles.
#[derive(Debug)]
pub(super) enum LinkEvent {
    Connected {
        id: u64,
        mtu: u16,
        to_central: mpsc::Sender<Vec<u8>>,
        close: oneshot::Sender<()>,
    },
    Frame {
        id: u64,
        bytes: Vec<u8>,
    },
    Disconnected {
        id: u64,
    },
    Status(oneshot::Sender<DeviceStatus>),
}

/// Pushes a frame into a connection's reassembler; a completed message becomes an input.
fn reassemble(link: &mut ActiveLink, frame: &[u8], now_ms: u64) -> Option<Input> {
    match link.reassembler.push(frame, now_ms) {
        Ok(None) | Err(FrameError::Duplicate { .. }) => None,
        Ok(Some(message)) => Some(match WireMessage::decode(&message) {
            Ok(message) => Input::Message(message),
            Err(error) => Input::Undecodable(error.to_string()),
        }),
        Err(error) => Some(Input::Undecodable(format!("framing: {}", error.code()))),
    }
}

/// Reads one connection's frames into the actor until either side closes it.
pub(super) async fn pump_connection(
    id: u64,
    connection: PeripheralConnection,
    links: mpsc::Sender<LinkEvent>,
) {
    let PeripheralConnection {
        mtu,
        mut from_central,
        to_central,
    } = connection;
    let (close, mut closed) = oneshot::channel();
    if links
        .send(LinkEvent::Connected {
            id,
            mtu,
            to_central,
            close,
        })
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            frame = from_central.recv() => match frame {
                Some(bytes) => {
                    if links.send(LinkEvent::Frame { id, bytes }).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            _ = &mut closed => break,
        }
    }
    let _ = links.send(LinkEvent::Disconnected { id }).await;
}

struct ActiveLink {
    id: u64,
    to_central: mpsc::Sender<Vec<u8>>,
    segmenter: Segmenter,
    reassembler: Reassembler,
    close: Option<oneshot::Sender<()>>,
}

pub(super) struct Actor {
    machine: DeviceMachine,
    store: Arc<dyn StateStore>,
    network: Arc<dyn NetworkConfigurator>,
    dps: DpsClient,
    clock: SharedClock,
    config: AgentConfig,
    advertisement: watch::Sender<Advertisement>,
    links: mpsc::Receiver<LinkEvent>,
    job_tx: mpsc::UnboundedSender<Input>,
    job_rx: mpsc::UnboundedReceiver<Input>,
    jobs: HashMap<JobId, AbortHandle>,
    /// The connection the machine talks to.
    link: Option<ActiveLink>,
    /// Other connections, waiting to take over.
    others: HashMap<u64, ActiveLink>,
}

impl Drop for Actor {
    /// Stopping (or aborting) the actor stops its work, like a power cut: jobs are aborted and
    /// dropping the link's sender ends the connection.
    fn drop(&mut self) {
        for (_, job) in self.jobs.drain() {
            job.abort();
        }
    }
}

impl Actor {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        machine: DeviceMachine,
        store: Arc<dyn StateStore>,
        network: Arc<dyn NetworkConfigurator>,
        dps: DpsClient,
        clock: SharedClock,
        config: AgentConfig,
        advertisement: watch::Sender<Advertisement>,
        links: mpsc::Receiver<LinkEvent>,
    ) -> Self {
        let (job_tx, job_rx) = mpsc::unbounded_channel();
        Self {
            machine,
            store,
            network,
            dps,
            clock,
            config,
            advertisement,
            links,
            job_tx,
            job_rx,
            jobs: HashMap::new(),
            link: None,
            others: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self, boot_outputs: Vec<Output>) {
        if self.config.scan_at_start && self.network.capabilities().wifi {
            // Scanned before the first connection is served, so `DeviceInfo` carries the list.
            match tokio::time::timeout(SCAN_AT_START_DEADLINE, self.network.scan()).await {
                Ok(Ok(networks)) => self.machine.set_scan_cache(networks),
                Ok(Err(error)) => tracing::warn!(%error, "Wi-Fi scan at start failed"),
                Err(_) => tracing::warn!("Wi-Fi scan at start timed out"),
            }
        }
        self.carry_out(boot_outputs, None).await;
        loop {
            let now = self.clock.now_ms();
            let wake = [
                self.machine.next_wakeup(now),
                self.link.as_ref().and_then(|l| l.reassembler.deadline()),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = match wake {
                Some(at) => self.clock.sleep_until(at),
                None => Box::pin(std::future::pending()),
            };
            tokio::select! {
                event = self.links.recv() => match event {
                    None => break,
                    Some(event) => self.on_link_event(event).await,
                },
                Some(input) = self.job_rx.recv() => {
                    self.step(input).await;
                }
                () = sleep => {
                    self.check_reassembly_deadline();
                    self.step(Input::Tick).await;
                }
            }
        }
        self.close_link();
    }

    async fn on_link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Connected {
                id,
                mtu,
                to_central,
                close,
            } => {
                let link = ActiveLink {
                    id,
                    to_central,
                    segmenter: Segmenter::new(mtu),
                    reassembler: Reassembler::new(
                        MAX_MESSAGE_LEN,
                        duration_ms(self.config.reassembly_deadline),
                    ),
                    close: Some(close),
                };
                if self.link.is_none() {
                    self.link = Some(link);
                } else {
                    // Another central while one is connected: it takes over with its first
                    // ClientHello, unless a session is open (then it is told `busy`).
                    self.others.insert(id, link);
                }
            }
            LinkEvent::Frame { id, bytes } => {
                let now = self.clock.now_ms();
                if self.link.as_ref().is_some_and(|link| link.id == id) {
                    let Some(link) = self.link.as_mut() else {
                        return;
                    };
                    let Some(input) = reassemble(link, &bytes, now) else {
                        return;
                    };
                    self.step(input).await;
                } else if let Some(link) = self.others.get_mut(&id) {
                    let Some(Input::Message(WireMessage::ClientHello(hello))) =
                        reassemble(link, &bytes, now)
                    else {
                        return;
                    };
                    // A current link whose central end is gone is dead even if its pump has not
                    // reported the disconnect yet.
                    let current_alive = self
                        .link
                        .as_ref()
                        .is_some_and(|link| !link.to_central.is_closed());
                    if self.machine.has_open_session() && current_alive {
                        tracing::info!("a second installer was refused: a session is open");
                        let busy = WireMessage::HandshakeRefused(HandshakeRefused {
                            code: ErrorCode::Busy,
                            retry_after_s: None,
                            supported_version: None,
                        });
                        self.send_to_other(id, &busy).await;
                        return;
                    }
                    tracing::info!("a new connection takes over from an idle one");
                    self.close_link();
                    self.step(Input::Disconnected).await;
                    self.link = self.others.remove(&id);
                    self.step(Input::Message(WireMessage::ClientHello(hello)))
                        .await;
                }
            }
            LinkEvent::Disconnected { id } => {
                if self.link.as_ref().is_some_and(|link| link.id == id) {
                    self.link = None;
                    self.step(Input::Disconnected).await;
                } else {
                    self.others.remove(&id);
                }
            }
            LinkEvent::Status(reply) => {
                let now = self.clock.now_ms();
                let outputs = self.machine.refresh_advertisement(now);
                self.carry_out(outputs, None).await;
                let _ = reply.send(self.machine.status(now));
            }
        }
    }

    fn check_reassembly_deadline(&mut self) {
        let now = self.clock.now_ms();
        if let Some(link) = self.link.as_mut()
            && link.reassembler.check_deadline(now).is_err()
        {
            tracing::debug!("a partial message timed out");
        }
    }

    /// Feeds one input to the machine and carries out its outputs.
    async fn step(&mut self, input: Input) {
        if let Input::NetworkDone { job, .. }
        | Input::DpsDone { job, .. }
        | Input::ScanDone { job, .. } = &input
        {
            self.jobs.remove(job);
        }
        let target = self.link.as_ref().map(|link| link.id);
        let outputs = self.machine.handle(input, self.clock.now_ms());
        self.carry_out(outputs, target).await;
    }

    /// Carries out outputs in order. Messages go to the connection that was current when the
    /// input arrived (`target`), never to a newer one.
    async fn carry_out(&mut self, outputs: Vec<Output>, target: Option<u64>) {
        for output in outputs {
            match output {
                Output::Persist(state) => {
                    if let Err(error) = self.store.save(&state) {
                        tracing::error!(%error, "persisting failed; dropping the link and reloading");
                        self.close_link();
                        self.reload().await;
                        return;
                    }
                }
                Output::Send {
                    message,
                    not_before_ms,
                } => {
                    if not_before_ms > self.clock.now_ms() {
                        self.clock.sleep_until(not_before_ms).await;
                    }
                    self.send(&message, target).await;
                }
                Output::CloseLink => {
                    if self.link.as_ref().map(|link| link.id) == target {
                        self.close_link();
                        let outputs = self
                            .machine
                            .handle(Input::Disconnected, self.clock.now_ms());
                        Box::pin(self.carry_out(outputs, None)).await;
                    }
                }
                Output::Start(job) => {
                    let (id, handle) = jobs::spawn(
                        job,
                        &self.machine,
                        Arc::clone(&self.network),
                        self.dps.clone(),
                        self.job_tx.clone(),
                    );
                    self.jobs.insert(id, handle);
                }
                Output::Cancel(id) => {
                    if let Some(handle) = self.jobs.remove(&id) {
                        handle.abort();
                    }
                }
                Output::RestoreNetwork(network) => {
                    let configurator = Arc::clone(&self.network);
                    tokio::spawn(async move {
                        if let Err(error) = configurator.restore(network.as_ref()).await {
                            tracing::warn!(%error, "restoring the previous network failed");
                        }
                    });
                }
                Output::Advertise(_) => self.publish_advertisement(),
            }
        }
    }

    async fn send(&mut self, message: &WireMessage, target: Option<u64>) {
        let timeout = self.config.send_timeout;
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if Some(link.id) != target {
            return;
        }
        let frames = match link.segmenter.segment(&message.encode()) {
            Ok(frames) => frames,
            Err(error) => {
                tracing::error!(%error, kind = message.kind(), "cannot segment a message");
                return;
            }
        };
        for frame in frames {
            if link.to_central.send_timeout(frame, timeout).await.is_err() {
                tracing::info!("the link is gone while sending");
                self.close_link();
                let outputs = self
                    .machine
                    .handle(Input::Disconnected, self.clock.now_ms());
                Box::pin(self.carry_out(outputs, None)).await;
                return;
            }
        }
    }

    /// Sends a message to a connection that is not the current one (a `busy` refusal).
    async fn send_to_other(&mut self, id: u64, message: &WireMessage) {
        let timeout = self.config.send_timeout;
        let Some(link) = self.others.get_mut(&id) else {
            return;
        };
        let Ok(frames) = link.segmenter.segment(&message.encode()) else {
            return;
        };
        for frame in frames {
            if link.to_central.send_timeout(frame, timeout).await.is_err() {
                self.others.remove(&id);
                return;
            }
        }
    }

    /// Publishes the machine's advertised state, the single source of truth. An `Advertise`
    /// output names the state at the end of the input that produced it, but a nested input
    /// carried out meanwhile (the link found dead while sending the answer to `Cancel`) may have
    /// advanced it; publishing the machine's latest state keeps the advertisement equal to
    /// `status()`.
    fn publish_advertisement(&mut self) {
        let Some(state) = self.machine.advertised_state() else {
            return;
        };
        let discriminator = self.machine.persisted().identity.discriminator;
        let advertisement = Advertisement::new(discriminator, state);
        self.advertisement.send_if_modified(|current| {
            if *current == advertisement {
                return false;
            }
            tracing::info!(state = state.as_str(), "advertised state");
            *current = advertisement;
            true
        });
    }

    fn close_link(&mut self) {
        if let Some(mut link) = self.link.take()
            && let Some(close) = link.close.take()
        {
            let _ = close.send(());
        }
    }

    /// Rebuilds the machine from the store after a failed save.
    async fn reload(&mut self) {
        for (_, job) in self.jobs.drain() {
            job.abort();
        }
        let state = match self.store.load() {
            Ok(Some(state)) => state,
            Ok(None) => self.machine.persisted().clone(),
            Err(error) => {
                tracing::error!(%error, "reloading the store failed; keeping the in-memory state");
                self.machine.persisted().clone()
            }
        };
        match DeviceMachine::boot(state, self.config.machine.clone(), self.clock.now_ms()) {
            Ok((machine, outputs, _)) => {
                self.machine = machine;
                Box::pin(self.carry_out(outputs, None)).await;
            }
            Err(error) => tracing::error!(%error, "cannot rebuild the state machine"),
        }
    }
}
