//! `FieldlinkClient`: one installer profile (provisioning API + issuer) and everything an app
//! does with it: commission, cancel, registration status, history.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use fieldlink_core::{
    CommissionError,
    assignment::{AssignmentSource, RegistrationStatusSource},
    journal::{AttemptId, AttemptOutcome, AttemptQuery, Installer, Journal, NewAttempt},
    workflow::{Commissioner, CommissioningConfig},
};
use fieldlink_protocol::{message::NetworkConfig, secret::Secret as WireSecret};
use tokio_util::sync::CancellationToken;

use crate::{
    ble_link::{BleLink, ForeignTransport},
    convert::millis,
    error::FieldlinkError,
    history::{self, HistoryEntry, RecordingAssignments},
    label,
    progress::{ForeignProgress, ProgressListener},
    report::{CommissioningReport, RegistrationStatus},
    runtime,
};

/// An installer profile: which organisation's services to use.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProfileConfig {
    /// A short name for the profile (`"acme"`), recorded in the history.
    pub name: String,
    /// The provisioning API base URL (`https://provisioning.example.com`).
    pub api_url: String,
    /// The OIDC issuer URL.
    pub issuer_url: String,
    /// The OIDC client id registered for the app.
    pub client_id: String,
    /// Extra CA certificates (PEM) to trust for the API and the issuer (private PKI, sandbox).
    pub ca_pem: Option<String>,
}

/// Network settings pushed to the device with its ticket.
#[derive(Clone, PartialEq, Eq, uniffi::Enum)]
pub enum NetworkSettings {
    /// Join a Wi-Fi network.
    Wifi {
        /// SSID.
        ssid: String,
        /// Passphrase (empty for an open network). Never logged.
        passphrase: String,
        /// The network does not broadcast its SSID.
        hidden: bool,
        /// Join only this access point (6 bytes).
        bssid: Option<Vec<u8>>,
    },
    /// Use the cellular modem with this APN.
    Cellular {
        /// Access point name.
        apn: String,
    },
    /// Keep the device's current network (Ethernet, or already online).
    KeepCurrent,
}

impl std::fmt::Debug for NetworkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Wifi { ssid, hidden, .. } => f
                .debug_struct("Wifi")
                .field("ssid", ssid)
                .field("passphrase", &"<redacted>")
                .field("hidden", hidden)
                .finish_non_exhaustive(),
            Self::Cellular { apn } => f.debug_struct("Cellular").field("apn", apn).finish(),
            Self::KeepCurrent => f.write_str("KeepCurrent"),
        }
    }
}

impl TryFrom<NetworkSettings> for NetworkConfig {
    type Error = FieldlinkError;

    fn try_from(settings: NetworkSettings) -> Result<Self, FieldlinkError> {
        Ok(match settings {
            NetworkSettings::Wifi {
                ssid,
                passphrase,
                hidden,
                bssid,
            } => NetworkConfig::Wifi {
                ssid,
                passphrase: WireSecret::new(passphrase),
                hidden,
                bssid: bssid
                    .map(|bytes| {
                        <[u8; 6]>::try_from(bytes.as_slice()).map_err(|_| {
                            FieldlinkError::invalid_argument(format!(
                                "a BSSID has 6 bytes, not {}",
                                bytes.len()
                            ))
                        })
                    })
                    .transpose()?,
            },
            NetworkSettings::Cellular { apn } => NetworkConfig::Cellular { apn },
            NetworkSettings::KeepCurrent => NetworkConfig::KeepCurrent,
        })
    }
}

/// Cancels one commissioning. Create one per commissioning, pass it to `commission`, call
/// `cancel` from any thread. Cancelling the calling coroutine/task has the same effect.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelHandle {
    token: CancellationToken,
}

#[uniffi::export]
impl CancelHandle {
    /// A fresh handle.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Cancels: the commissioning fails with `Cancelled` once the device was told to roll back
    /// (when it already accepted a ticket) and the link is closed. Idempotent.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// What a client is wired to (the provisioning API, or the sandbox in tests).
pub(crate) struct ClientServices {
    pub(crate) assignments: Arc<dyn AssignmentSource>,
    pub(crate) status: Arc<dyn RegistrationStatusSource>,
    pub(crate) config: CommissioningConfig,
    pub(crate) profile: String,
    pub(crate) journal: Option<Arc<Journal>>,
}

/// One installer profile, signed in or not. Thread-safe; one client can run several
/// commissionings at once (each with its own `BleLink` connection and cancel handle).
#[derive(uniffi::Object)]
pub struct FieldlinkClient {
    services: ClientServices,
    identity: Mutex<String>,
}

impl std::fmt::Debug for FieldlinkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldlinkClient")
            .field("profile", &self.services.profile)
            .finish_non_exhaustive()
    }
}

/// Opens the journal at `path` (`None`: no history).
pub(crate) fn open_journal(path: Option<String>) -> Result<Option<Arc<Journal>>, FieldlinkError> {
    path.map(|path| {
        Journal::open(path)
            .map(Arc::new)
            .map_err(FieldlinkError::from)
    })
    .transpose()
}

impl FieldlinkClient {
    pub(crate) fn with_services(services: ClientServices) -> Arc<Self> {
        Arc::new(Self {
            services,
            identity: Mutex::new("local:app".to_owned()),
        })
    }

    fn installer(&self) -> Installer {
        Installer {
            identity: self
                .identity
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            profile: self.services.profile.clone(),
        }
    }
}

/// Cancels the commissioning when the caller's future is dropped (a cancelled coroutine or
/// task), so the core still tells the device to roll back.
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl FieldlinkClient {
    /// The profile name.
    pub fn profile_name(&self) -> String {
        self.services.profile.clone()
    }

    /// Commissions the device whose onboarding `code` (QR label text or manual code) was
    /// scanned, over the app's `link`, reporting progress to `listener`. `network` is pushed
    /// with the ticket (`None`: the device keeps its network). Fails with the core's stable
    /// codes (`WrongPop`, `LinkLost`, `Cancelled`, ...). Recorded in the history when the
    /// client has a journal.
    pub async fn commission(
        &self,
        code: String,
        network: Option<NetworkSettings>,
        link: Arc<dyn BleLink>,
        listener: Box<dyn ProgressListener>,
        cancel: Arc<CancelHandle>,
    ) -> Result<CommissioningReport, FieldlinkError> {
        let network = network.map(NetworkConfig::try_from).transpose()?;
        let request = label::commission_request(&code, network)?;
        let journal = self.services.journal.clone();
        let attempt = match &journal {
            Some(journal) => Some(journal.begin_attempt(&NewAttempt {
                registration_id: request.registration_id.clone().unwrap_or_default(),
                installer: self.installer(),
                batch_item: None,
                transport: "app".to_owned(),
            })?),
            None => None,
        };
        let assignments: Arc<dyn AssignmentSource> = match (&journal, attempt) {
            (Some(journal), Some(attempt)) => Arc::new(RecordingAssignments::new(
                Arc::clone(&self.services.assignments),
                Arc::clone(journal),
                attempt,
            )),
            _ => Arc::clone(&self.services.assignments),
        };
        let commissioner = Commissioner::new(
            Arc::new(ForeignTransport::new(link)),
            assignments,
            Arc::clone(&self.services.status),
        )
        .with_config(self.services.config);
        let token = cancel.token.child_token();
        let _cancel_on_drop = CancelOnDrop(token.clone());
        let started = Instant::now();
        let result = runtime::run_to_completion(async move {
            commissioner
                .commission(request, &ForeignProgress(listener), token)
                .await
        })
        .await;
        if let (Some(journal), Some(attempt)) = (journal, attempt) {
            finish(&journal, attempt, &result, millis(started.elapsed()))?;
        }
        result.map(Into::into).map_err(Into::into)
    }

    /// What the provisioning service reports for `registration_id`, asked about the
    /// assignment the latest journaled attempt for that device obtained.
    pub async fn registration_status(
        &self,
        registration_id: String,
    ) -> Result<RegistrationStatus, FieldlinkError> {
        let journal = self.services.journal.clone().ok_or_else(|| {
            FieldlinkError::invalid_argument("registration status needs a client with a journal")
        })?;
        let assignment = history::latest_assignment(&journal, &registration_id)?;
        let status = Arc::clone(&self.services.status);
        runtime::run(async move {
            status
                .registration_status(registration_id, assignment)
                .await
        })
        .await
        .map(Into::into)
        .map_err(|error| FieldlinkError::from(&error))
    }

    /// The journaled attempts, newest first: all of them, or those of one device; at most
    /// `limit`. Empty for a client without a journal.
    pub fn history(
        &self,
        registration_id: Option<String>,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, FieldlinkError> {
        let Some(journal) = &self.services.journal else {
            return Ok(Vec::new());
        };
        let records = journal.attempts(&AttemptQuery {
            registration_id,
            batch_id: None,
            limit: Some(limit),
        })?;
        Ok(records.into_iter().map(Into::into).collect())
    }
}

/// Journals how an attempt ended.
fn finish(
    journal: &Journal,
    attempt: AttemptId,
    result: &Result<fieldlink_core::workflow::CommissioningReport, CommissionError>,
    total_ms: u64,
) -> Result<(), FieldlinkError> {
    let outcome = match result {
        Ok(report) => {
            journal.set_registration_id(attempt, &report.registration_id)?;
            AttemptOutcome::confirmed(report)
        }
        Err(error) => AttemptOutcome::failed(error, Vec::new(), total_ms),
    };
    journal.finish_attempt(attempt, &outcome)?;
    Ok(())
}
