//! `FieldlinkClient`: one installer profile (provisioning API + issuer) and everything an app
//! does with it: commission, cancel, registration status, history.

use std::{path::PathBuf, sync::Arc, time::Instant};

use fieldlink_core::{
    CommissionError,
    api_client::{AccessTokenSource, ApiClientConfig, ProvisioningApiClient},
    assignment::{AssignmentSource, RegistrationStatusSource},
    auth::{AuthClient, Profile},
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
    secrets::{ForeignSecretStore, SecretStore},
    sign_in::{DeviceCodePrompt, PendingSignIn, SignInListener, SignOutReport, SignedIn},
};

/// An installer profile: which organisation's services to use.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProfileConfig {
    /// A short name for the profile (`"acme"`): 1-64 letters, digits, `-`, `_`, `.`. Names
    /// the stored tokens and is recorded in the history.
    pub name: String,
    /// The provisioning API base URL (`https://provisioning.example.com`).
    pub api_url: String,
    /// The OIDC issuer URL (exactly its `iss`).
    pub issuer_url: String,
    /// The OIDC public client id registered for the app.
    pub client_id: String,
    /// Scopes to request; empty = `openid profile offline_access`. Entra ID also needs the
    /// API's scope (`api://fieldlink-api/Commission`).
    pub scopes: Vec<String>,
    /// Extra CA certificates (PEM) to trust for the API and the issuer (private PKI, sandbox).
    pub ca_pem: Option<String>,
    /// Allow plain `http://` to loopback hosts only (local sandboxes, tests).
    pub allow_insecure_loopback: bool,
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
    /// Sign-in (`None` in the sandbox, which needs none).
    pub(crate) auth: Option<Arc<AuthClient>>,
    /// The provisioning API (`None` in the sandbox).
    pub(crate) api: Option<Arc<ProvisioningApiClient>>,
}

/// One installer profile, signed in or not. Thread-safe; one client can run several
/// commissionings at once (each with its own `BleLink` connection and cancel handle).
#[derive(uniffi::Object)]
pub struct FieldlinkClient {
    services: ClientServices,
}

impl std::fmt::Debug for FieldlinkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldlinkClient")
            .field("profile", &self.services.profile)
            .finish_non_exhaustive()
    }
}

/// Writes `pem` to `dir/ca-<profile>.pem` (the core's sign-in profile takes a CA file).
fn write_ca_file(
    dir: &std::path::Path,
    profile: &str,
    pem: &str,
) -> Result<PathBuf, FieldlinkError> {
    let path = dir.join(format!("ca-{profile}.pem"));
    let staging = dir.join(format!(".ca-{profile}.pem.new"));
    std::fs::write(&staging, pem)
        .and_then(|()| std::fs::rename(&staging, &path))
        .map_err(|error| {
            FieldlinkError::invalid_argument(format!(
                "cannot write the CA file in data_dir: {error}"
            ))
        })?;
    Ok(path)
}

impl FieldlinkClient {
    pub(crate) fn with_services(services: ClientServices) -> Arc<Self> {
        Arc::new(Self { services })
    }

    fn auth(&self) -> Result<Arc<AuthClient>, FieldlinkError> {
        self.services.auth.clone().ok_or_else(|| {
            FieldlinkError::invalid_argument("this client has no identity provider (sandbox)")
        })
    }

    /// Who runs a commissioning: the signed-in subject, or `local:app` before sign-in.
    async fn installer(&self) -> Installer {
        let identity = match &self.services.auth {
            Some(auth) => {
                let auth = Arc::clone(auth);
                runtime::run(async move { auth.session().await })
                    .await
                    .ok()
                    .flatten()
                    .map(|session| session.identity.subject)
            }
            None => None,
        };
        Installer {
            identity: identity.unwrap_or_else(|| "local:app".to_owned()),
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
    /// A client for `profile`. `data_dir` is the app's private storage (Android `filesDir`, iOS
    /// Application Support): the history database (`journal.sqlite`) and the profile's CA file
    /// live there. Sign-in tokens go to `secrets` (Keystore, Keychain), nowhere else. No
    /// network access until a sign-in or a commissioning.
    #[uniffi::constructor]
    pub fn new(
        profile: ProfileConfig,
        data_dir: String,
        secrets: Arc<dyn SecretStore>,
    ) -> Result<Arc<Self>, FieldlinkError> {
        let dir = PathBuf::from(data_dir);
        std::fs::create_dir_all(&dir).map_err(|error| {
            FieldlinkError::invalid_argument(format!("cannot create data_dir: {error}"))
        })?;
        let mut core_profile = Profile::new(
            profile.name.clone(),
            profile.api_url.clone(),
            profile.issuer_url.clone(),
            profile.client_id.clone(),
        );
        if !profile.scopes.is_empty() {
            core_profile.scopes = profile.scopes.clone();
        }
        core_profile.allow_insecure_loopback = profile.allow_insecure_loopback;
        core_profile.validate()?;
        if let Some(pem) = &profile.ca_pem {
            core_profile.ca_file = Some(write_ca_file(&dir, &profile.name, pem)?);
        }
        let auth = AuthClient::new(core_profile, Arc::new(ForeignSecretStore(secrets)))?;
        let mut api_config = ApiClientConfig::new(profile.api_url.clone());
        api_config.extra_ca_pem = profile.ca_pem.clone();
        api_config.allow_insecure_loopback = profile.allow_insecure_loopback;
        let tokens: Arc<dyn AccessTokenSource> = auth.clone();
        let api = Arc::new(ProvisioningApiClient::new(api_config, tokens)?);
        let journal = Journal::open(dir.join("journal.sqlite"))?;
        Ok(Self::with_services(ClientServices {
            assignments: api.clone(),
            status: api.clone(),
            config: CommissioningConfig::default(),
            profile: profile.name,
            journal: Some(Arc::new(journal)),
            auth: Some(auth),
            api: Some(api),
        }))
    }

    /// Signs in with the device-code flow (RFC 8628): `listener` receives the code to show,
    /// then this polls the issuer until the user approves on any device. Cancel by cancelling
    /// the calling coroutine/task.
    pub async fn sign_in_with_device_code(
        &self,
        listener: Box<dyn SignInListener>,
    ) -> Result<SignedIn, FieldlinkError> {
        let auth = self.auth()?;
        let session = runtime::run(async move {
            let started = auth.start_device_sign_in().await?;
            listener.on_device_code(DeviceCodePrompt::from(started.prompt()));
            auth.finish_device_sign_in(started).await
        })
        .await?;
        Ok(session.into())
    }

    /// Starts a browser sign-in (authorization code + PKCE) whose redirect is `redirect_uri`,
    /// the app's registered custom scheme (`com.example.fieldlink:/oauth/callback`). Open
    /// `authorize_url()` of the result, then call `complete_sign_in` with the URL the browser
    /// is redirected to.
    pub async fn begin_sign_in(
        &self,
        redirect_uri: String,
    ) -> Result<Arc<PendingSignIn>, FieldlinkError> {
        let auth = self.auth()?;
        let pending =
            runtime::run(async move { auth.begin_authorization(&redirect_uri).await }).await?;
        Ok(Arc::new(PendingSignIn::new(pending)))
    }

    /// Completes a browser sign-in with the redirect URL the app received (checks state,
    /// issuer and PKCE, stores the tokens in the `SecretStore`).
    pub async fn complete_sign_in(
        &self,
        pending: Arc<PendingSignIn>,
        redirect_url: String,
    ) -> Result<SignedIn, FieldlinkError> {
        let auth = self.auth()?;
        let pending = pending.take().ok_or_else(|| {
            FieldlinkError::invalid_argument("this sign-in was already completed")
        })?;
        let session =
            runtime::run(async move { auth.complete_authorization(pending, &redirect_url).await })
                .await?;
        Ok(session.into())
    }

    /// The stored sign-in, if any (no network access).
    pub async fn session(&self) -> Result<Option<SignedIn>, FieldlinkError> {
        let auth = self.auth()?;
        let session = runtime::run(async move { auth.session().await }).await?;
        Ok(session.map(Into::into))
    }

    /// Signs out: revokes the refresh token where the issuer supports it, and always forgets
    /// the tokens locally.
    pub async fn sign_out(&self) -> Result<SignOutReport, FieldlinkError> {
        let auth = self.auth()?;
        let report = runtime::run(async move { auth.logout().await }).await?;
        Ok(report.into())
    }

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
                installer: self.installer().await,
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

    /// What the provisioning service reports for `registration_id` (DPS's registration state
    /// as the API sees it). A sandbox client asks about the assignment of the latest journaled
    /// attempt for that device.
    pub async fn registration_status(
        &self,
        registration_id: String,
    ) -> Result<RegistrationStatus, FieldlinkError> {
        if let Some(api) = self.services.api.clone() {
            return runtime::run(async move {
                api.registration(&registration_id)
                    .await
                    .map(|registration| registration.view.into())
                    .map_err(|error| FieldlinkError::from_api(&error, &registration_id))
            })
            .await;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wifi_settings_convert_and_never_print_the_passphrase() {
        let settings = NetworkSettings::Wifi {
            ssid: "site".into(),
            passphrase: "hunter2".into(),
            hidden: true,
            bssid: Some(vec![1, 2, 3, 4, 5, 6]),
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
        let NetworkConfig::Wifi {
            ssid,
            passphrase,
            hidden,
            bssid,
        } = NetworkConfig::try_from(settings).unwrap()
        else {
            panic!("not Wi-Fi");
        };
        assert_eq!(
            (ssid.as_str(), passphrase.expose(), hidden, bssid),
            ("site", "hunter2", true, Some([1, 2, 3, 4, 5, 6]))
        );
        let short = NetworkSettings::Wifi {
            ssid: "site".into(),
            passphrase: String::new(),
            hidden: false,
            bssid: Some(vec![1, 2]),
        };
        let error = NetworkConfig::try_from(short).unwrap_err();
        assert_eq!(error.code(), "invalid_argument");
        assert!(matches!(
            NetworkConfig::try_from(NetworkSettings::KeepCurrent),
            Ok(NetworkConfig::KeepCurrent)
        ));
    }

    #[test]
    fn cancel_handles_are_sticky_and_cancel_on_drop_fires() {
        let handle = CancelHandle::new();
        assert!(!handle.is_cancelled());
        let child = handle.token.child_token();
        drop(CancelOnDrop(child.clone()));
        assert!(child.is_cancelled());
        assert!(
            !handle.is_cancelled(),
            "only the commissioning's child token"
        );
        handle.cancel();
        handle.cancel();
        assert!(handle.is_cancelled());
    }

    struct NoSecrets;

    impl SecretStore for NoSecrets {
        fn get(
            &self,
            _service: String,
            _account: String,
        ) -> Result<Option<Vec<u8>>, crate::error::SecretStoreError> {
            Ok(None)
        }

        fn set(
            &self,
            _service: String,
            _account: String,
            _value: Vec<u8>,
        ) -> Result<(), crate::error::SecretStoreError> {
            Ok(())
        }

        fn delete(
            &self,
            _service: String,
            _account: String,
        ) -> Result<bool, crate::error::SecretStoreError> {
            Ok(false)
        }

        fn describe(&self) -> String {
            "none".into()
        }
    }

    fn profile() -> ProfileConfig {
        ProfileConfig {
            name: "acme".into(),
            api_url: "https://api.acme.example".into(),
            issuer_url: "https://login.acme.example".into(),
            client_id: "fieldlink-mobile".into(),
            scopes: Vec::new(),
            ca_pem: None,
            allow_insecure_loopback: false,
        }
    }

    #[test]
    fn new_builds_offline_and_keeps_history_in_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let client = FieldlinkClient::new(
            profile(),
            dir.path().join("app").display().to_string(),
            Arc::new(NoSecrets),
        )
        .unwrap();
        assert_eq!(client.profile_name(), "acme");
        assert!(dir.path().join("app/journal.sqlite").exists());
        assert_eq!(client.history(None, 10).unwrap(), Vec::new());
    }

    #[test]
    fn new_refuses_bad_profiles_with_the_cores_codes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().display().to_string();
        let mut plain_http = profile();
        plain_http.issuer_url = "http://login.acme.example".into();
        let error =
            FieldlinkClient::new(plain_http, data.clone(), Arc::new(NoSecrets)).unwrap_err();
        assert_eq!(error.code(), "insecure_url");
        let mut bad_ca = profile();
        bad_ca.ca_pem = Some("not a certificate".into());
        let error = FieldlinkClient::new(bad_ca, data, Arc::new(NoSecrets)).unwrap_err();
        assert!(
            matches!(error.code(), "invalid_ca_certificate" | "invalid_profile"),
            "{error:?}"
        );
    }
}
