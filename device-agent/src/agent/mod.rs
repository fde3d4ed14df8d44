//! The async device agent: runs the [`DeviceMachine`] against a link, a config store, a network
//! configurator and DPS.
//!
//! One actor task owns the machine. Connections ([`DeviceAgent::serve`]) feed it frames; it
//! reassembles them, hands decoded messages to the machine, carries out the machine's outputs in
//! order (persisting before answering), segments replies to `mtu - 3` and runs network joins,
//! scans and DPS registrations as separate tasks whose progress comes back as inputs. Work goes
//! on when the link drops. A second connection takes over an idle one, and gets `busy` while a
//! session is open.

mod actor;
mod jobs;

use std::sync::Arc;
use std::time::Duration;

use fieldlink_protocol::message::{DeviceState, DeviceStatus};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::dps::{DpsClient, DpsClientConfig, DpsError};
use crate::link::{Advertisement, BlePeripheral, PeripheralConnection};
use crate::machine::{DeviceMachine, MachineConfig, MachineError};
use crate::network::NetworkConfigurator;
use crate::store::{PersistedState, StateStore, StoreError};

use actor::{Actor, LinkEvent};

/// Agent settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// State machine settings (lockout, fail-safe window, capabilities, firmware version).
    pub machine: MachineConfig,
    /// DPS client settings (extra CA, timeouts, backoff).
    pub dps: DpsClientConfig,
    /// Time allowed to receive all frames of one message.
    pub reassembly_deadline: Duration,
    /// Deadline for handing one notification to the link.
    pub send_timeout: Duration,
    /// Scan for Wi-Fi networks at start (fills the `DeviceInfo` scan cache).
    pub scan_at_start: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            machine: MachineConfig::default(),
            dps: DpsClientConfig::default(),
            reassembly_deadline: Duration::from_millis(
                fieldlink_protocol::framing::DEFAULT_REASSEMBLY_DEADLINE_MS,
            ),
            send_timeout: Duration::from_secs(10),
            scan_at_start: true,
        }
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored state belongs to another device.
    #[error("the config store belongs to {stored:?}, not {expected:?}")]
    ForeignStore {
        /// Registration ID in the store.
        stored: String,
        /// Registration ID of the factory data.
        expected: String,
    },
    /// The machine refused the state.
    #[error(transparent)]
    Machine(#[from] MachineError),
    /// The DPS client could not be built.
    #[error(transparent)]
    Dps(#[from] DpsError),
}

/// A running device agent. Cheap to clone; the actor stops when [`DeviceAgent::shutdown`] is
/// called or every clone is dropped.
#[derive(Clone)]
pub struct DeviceAgent {
    registration_id: String,
    links: mpsc::Sender<LinkEvent>,
    advertisement: watch::Receiver<Advertisement>,
    next_connection: Arc<std::sync::atomic::AtomicU64>,
    task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for DeviceAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAgent")
            .field("registration_id", &self.registration_id)
            .field("advertisement", &*self.advertisement.borrow())
            .finish_non_exhaustive()
    }
}

impl DeviceAgent {
    /// Starts an agent. `factory` carries the identity and trust anchors; the rest of the state
    /// comes from `store` if it has one (a restart), else the factory state is saved first.
    /// The machine's network capabilities are taken from `network`. Must be called inside a
    /// tokio runtime.
    pub fn start(
        store: Arc<dyn StateStore>,
        factory: PersistedState,
        network: Arc<dyn NetworkConfigurator>,
        clock: SharedClock,
        mut config: AgentConfig,
    ) -> Result<Self, AgentError> {
        // The configurator knows the device's interfaces.
        config.machine.capabilities = network.capabilities();
        let state = match store.load()? {
            Some(mut stored) => {
                if stored.identity.registration_id != factory.identity.registration_id {
                    return Err(AgentError::ForeignStore {
                        stored: stored.identity.registration_id,
                        expected: factory.identity.registration_id,
                    });
                }
                stored.identity = factory.identity;
                stored.trust_anchors = factory.trust_anchors;
                stored
            }
            None => {
                store.save(&factory)?;
                factory
            }
        };
        let registration_id = state.identity.registration_id.clone();
        let discriminator = state.identity.discriminator;
        let dps = DpsClient::new(config.dps.clone(), clock.clone())?;
        let now = clock.now_ms();
        let (machine, boot_outputs, warnings) =
            DeviceMachine::boot(state, config.machine.clone(), now)?;
        // A rollback found at boot is durable before the agent does anything else.
        let mut later = Vec::with_capacity(boot_outputs.len());
        for output in boot_outputs {
            match output {
                crate::machine::Output::Persist(state) => store.save(&state)?,
                other => later.push(other),
            }
        }
        for warning in warnings {
            tracing::warn!(%registration_id, "{warning}");
        }
        let initial = Advertisement::new(discriminator, machine.device_state(now));
        let (advertisement_tx, advertisement) = watch::channel(initial);
        let (links, link_rx) = mpsc::channel(64);
        let actor = Actor::new(
            machine,
            store,
            network,
            dps,
            clock,
            config,
            advertisement_tx,
            link_rx,
        );
        let task = tokio::spawn(actor.run(later));
        Ok(Self {
            registration_id,
            links,
            advertisement,
            next_connection: Arc::new(std::sync::atomic::AtomicU64::new(1)),
            task: Arc::new(std::sync::Mutex::new(Some(task))),
        })
    }

    /// The registration ID.
    pub fn registration_id(&self) -> &str {
        &self.registration_id
    }

    /// What the device advertises now.
    pub fn advertisement(&self) -> Advertisement {
        self.advertisement.borrow().clone()
    }

    /// The advertisement, watched for changes.
    pub fn watch_advertisement(&self) -> watch::Receiver<Advertisement> {
        self.advertisement.clone()
    }

    /// The advertised state now.
    pub fn state(&self) -> Option<DeviceState> {
        self.advertisement.borrow().state()
    }

    /// Waits until the advertised state satisfies `done`, or `timeout` (tokio time) passes.
    pub async fn wait_for_state(
        &self,
        timeout: Duration,
        done: impl Fn(DeviceState) -> bool,
    ) -> Option<DeviceState> {
        let mut watch = self.advertisement.clone();
        let wait = watch.wait_for(|adv| adv.state().is_some_and(&done));
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(adv)) => adv.state(),
            _ => None,
        }
    }

    /// Serves one connection (spawned; returns at once). While another connection is up, a new
    /// one takes over with its `ClientHello` if the old one has no open session (a central that
    /// reconnected before the old link timed out), and is refused `busy` otherwise. Must be
    /// called inside a tokio runtime.
    pub fn serve(&self, connection: PeripheralConnection) -> JoinHandle<()> {
        let id = self
            .next_connection
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let links = self.links.clone();
        tokio::spawn(actor::pump_connection(id, connection, links))
    }

    /// The status a `GetStatus` would report (`None` if the agent stopped).
    pub async fn status(&self) -> Option<DeviceStatus> {
        let (reply, answer) = oneshot::channel();
        self.links.send(LinkEvent::Status(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Advertises through `peripheral` and serves every connection it accepts, until it shuts
    /// down.
    pub async fn run_peripheral(&self, peripheral: Arc<dyn BlePeripheral>) {
        let mut watch = self.advertisement.clone();
        let advertiser = {
            let peripheral = Arc::clone(&peripheral);
            tokio::spawn(async move {
                loop {
                    let current = watch.borrow_and_update().clone();
                    if let Err(error) = peripheral.advertise(&current).await {
                        tracing::warn!(%error, "advertising failed");
                    }
                    if watch.changed().await.is_err() {
                        return;
                    }
                }
            })
        };
        loop {
            match peripheral.accept().await {
                Ok(Some(connection)) => {
                    self.serve(connection);
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        advertiser.abort();
    }

    /// Stops the actor and waits for it: running work is cancelled, the link drops, the
    /// persisted state stays as it is (like a power cut).
    pub async fn shutdown(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}
