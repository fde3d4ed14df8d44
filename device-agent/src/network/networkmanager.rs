//! The NetworkManager configurator for Linux gateways: [`NetworkConfigurator`] over
//! NetworkManager's D-Bus API (system bus; `DBUS_SYSTEM_BUS_ADDRESS` is honoured).
//!
//! - **Capabilities** come from NetworkManager's devices (Wi-Fi, Ethernet, modem) and its
//!   connectivity state (`FULL` = already online).
//! - **Scan**: `RequestScan`, a bounded wait for `LastScan` to move, then the access points:
//!   SSID, RSSI (from `Strength`), security (from the WPA/RSN flags), channel (from `Frequency`).
//! - **Join**: `AddAndActivateConnection` with a new profile `"fieldlink: <ssid>"` holding the
//!   credentials (never logged). Device state changes (signals, plus a poll in case a signal is
//!   lost) give the stages: `CONFIG` → associating, `IP_CONFIG` → authenticated, `IP_CHECK`/
//!   `ACTIVATED` → got IP; then `CheckConnectivity` → internet reachable; then the
//!   [`ReachabilityProbe`] → DPS reachable. State reasons become typed failures
//!   (`NO_SECRETS`/`SUPPLICANT_*` → `wifi_auth_failed`, `SSID_NOT_FOUND` → `network_not_found`,
//!   `IP_CONFIG_UNAVAILABLE`/DHCP → `dhcp_failed`, connectivity portal/limited → `no_internet`).
//!   Every wait ends at the join deadline or its own timeout.
//! - **Rollback**: a failed join deletes its new profile at once (the device leaves the
//!   candidate network); [`restore`](NetworkConfigurator::restore) then reactivates the previous
//!   profile — the one matching the proven config, or, when nothing was proven yet, the profile
//!   the device ran before the join — and deletes every other `fieldlink:` profile (stale
//!   candidates, e.g. after a crash). Profiles of the gateway's administrator are never deleted.

mod activation;
mod bus;
mod convert;
mod probe;
mod rollback;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::time::Instant;
use zbus::zvariant::OwnedObjectPath;

use self::activation::{ActivationTracker, Observation, Verdict};
use self::bus::{BusError, NmBus};
pub use self::probe::{ReachabilityProbe, TcpProbe};
use super::{
    Capabilities, JoinFailure, JoinStage, NetworkConfigurator, NetworkError, ScannedNetwork,
    WifiSecurity,
};
use crate::clock::SharedClock;
use crate::store::StoredNetwork;

/// `NMDeviceType` values.
const DEVICE_ETHERNET: u32 = 1;
const DEVICE_WIFI: u32 = 2;
const DEVICE_MODEM: u32 = 8;
/// `NMConnectivityState` values.
const CONNECTIVITY_UNKNOWN: u32 = 0;
const CONNECTIVITY_PORTAL: u32 = 2;
const CONNECTIVITY_FULL: u32 = 4;
/// `NMState::CONNECTED_GLOBAL`.
const STATE_CONNECTED_GLOBAL: u32 = 70;
/// No wait is longer than this, whatever the caller's deadline.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Settings of the NetworkManager configurator.
#[derive(Debug, Clone)]
pub struct NetworkManagerConfig {
    /// The D-Bus address of NetworkManager's bus; `None` = the system bus (honouring
    /// `DBUS_SYSTEM_BUS_ADDRESS`).
    pub bus_address: Option<String>,
    /// The Wi-Fi interface to use (`wlan0`); `None` = the first Wi-Fi device.
    pub wifi_interface: Option<String>,
    /// Deadline of one D-Bus call.
    pub call_timeout: Duration,
    /// How long a scan waits for fresh results after `RequestScan`.
    pub scan_wait: Duration,
    /// How long an activation may take (until `ACTIVATED` or a failure).
    pub activation_timeout: Duration,
    /// How long to wait for full connectivity after the activation.
    pub connectivity_timeout: Duration,
    /// Pause between connectivity checks while it is limited.
    pub connectivity_retry: Duration,
    /// Deadline of the DPS reachability probe.
    pub probe_timeout: Duration,
    /// Device state poll interval (backs up the state-change signals).
    pub poll_interval: Duration,
    /// Prefix of the profiles this configurator creates (and may delete).
    pub profile_prefix: String,
}

impl Default for NetworkManagerConfig {
    fn default() -> Self {
        Self {
            bus_address: None,
            wifi_interface: None,
            call_timeout: Duration::from_secs(5),
            scan_wait: Duration::from_secs(3),
            activation_timeout: Duration::from_secs(60),
            connectivity_timeout: Duration::from_secs(10),
            connectivity_retry: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            profile_prefix: "fieldlink".into(),
        }
    }
}

/// NetworkManager could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NetworkManager is not usable: {0}")]
pub struct NetworkManagerUnavailable(pub String);

/// What the configurator remembers between calls.
#[derive(Debug, Default)]
struct Remembered {
    /// The profile the Wi-Fi device ran before the last join (reactivated by a restore when no
    /// config was proven yet).
    displaced: Option<OwnedObjectPath>,
}

/// How a wait ended.
enum Waited {
    Activated,
    Failed,
    TimedOut,
}

/// What the connectivity check found.
enum InternetCheck {
    Full,
    /// Connectivity checking is off: the DPS probe decides.
    Unchecked,
    NoInternet,
    TimedOut,
}

/// [`NetworkConfigurator`] over NetworkManager. See the module docs.
pub struct NetworkManagerConfigurator {
    bus: NmBus,
    config: NetworkManagerConfig,
    probe: Arc<dyn ReachabilityProbe>,
    clock: SharedClock,
    wifi: Option<OwnedObjectPath>,
    ethernet: Option<OwnedObjectPath>,
    modem: Option<OwnedObjectPath>,
    capabilities: Mutex<Capabilities>,
    /// Serialises joins and restores (a restore may still run when a corrected join starts).
    remembered: tokio::sync::Mutex<Remembered>,
}

impl std::fmt::Debug for NetworkManagerConfigurator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkManagerConfigurator")
            .field("wifi", &self.wifi)
            .field("ethernet", &self.ethernet)
            .field("modem", &self.modem)
            .finish_non_exhaustive()
    }
}

impl NetworkManagerConfigurator {
    /// Connects to NetworkManager and reads its devices and connectivity.
    pub async fn connect(
        config: NetworkManagerConfig,
        probe: Arc<dyn ReachabilityProbe>,
        clock: SharedClock,
    ) -> Result<Self, NetworkManagerUnavailable> {
        let unavailable = |error: BusError| NetworkManagerUnavailable(error.to_string());
        let bus = NmBus::connect(config.bus_address.as_deref(), config.call_timeout)
            .await
            .map_err(unavailable)?;
        let devices = bus.devices().await.map_err(unavailable)?;
        let first = |kind: u32| {
            devices
                .iter()
                .find(|device| device.kind == kind)
                .map(|device| device.path.clone())
        };
        let wifi = match &config.wifi_interface {
            Some(name) => Some(
                devices
                    .iter()
                    .find(|device| device.kind == DEVICE_WIFI && &device.interface == name)
                    .map(|device| device.path.clone())
                    .ok_or_else(|| {
                        NetworkManagerUnavailable(format!("no Wi-Fi device named {name}"))
                    })?,
            ),
            None => first(DEVICE_WIFI),
        };
        let configurator = Self {
            ethernet: first(DEVICE_ETHERNET),
            modem: first(DEVICE_MODEM),
            wifi,
            bus,
            config,
            probe,
            clock,
            capabilities: Mutex::new(Capabilities::default()),
            remembered: tokio::sync::Mutex::new(Remembered::default()),
        };
        configurator.refresh_capabilities().await;
        tracing::info!(
            capabilities = ?configurator.capabilities(),
            "NetworkManager configurator ready"
        );
        Ok(configurator)
    }

    /// Re-reads connectivity; returns the capabilities.
    pub async fn refresh_capabilities(&self) -> Capabilities {
        let connectivity = self
            .bus
            .connectivity()
            .await
            .unwrap_or(CONNECTIVITY_UNKNOWN);
        let already_online = connectivity == CONNECTIVITY_FULL
            || (connectivity == CONNECTIVITY_UNKNOWN
                && self.bus.state().await.ok() == Some(STATE_CONNECTED_GLOBAL));
        let capabilities = Capabilities {
            wifi: self.wifi.is_some(),
            ethernet: self.ethernet.is_some(),
            cellular: self.modem.is_some(),
            already_online,
        };
        *self
            .capabilities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = capabilities;
        capabilities
    }

    fn instant(&self, deadline_ms: u64) -> Instant {
        let left = deadline_ms.saturating_sub(self.clock.now_ms());
        Instant::now() + Duration::from_millis(left).min(LONGEST_WAIT)
    }

    fn profile_id(&self, name: &str) -> String {
        format!("{}: {name}", self.config.profile_prefix)
    }

    fn owns(&self, id: &str) -> bool {
        id.starts_with(&format!("{}:", self.config.profile_prefix))
    }

    /// The visible access point for `ssid` (and `bssid` when pinned), strongest first.
    async fn access_point(
        &self,
        device: &str,
        ssid: &str,
        bssid: Option<[u8; 6]>,
    ) -> Option<(OwnedObjectPath, ScannedNetwork)> {
        let mut best: Option<(OwnedObjectPath, ScannedNetwork)> = None;
        for path in self.bus.access_points(device).await.unwrap_or_default() {
            let Ok(properties) = self.bus.access_point(&path).await else {
                continue;
            };
            let Some(network) = convert::scanned(&properties) else {
                continue;
            };
            if network.ssid != ssid || bssid.is_some_and(|pinned| network.bssid != Some(pinned)) {
                continue;
            }
            if best.as_ref().is_none_or(|(_, b)| network.rssi > b.rssi) {
                best = Some((path, network));
            }
        }
        best
    }

    /// The profile a device runs now, if any.
    async fn running_profile(&self, device: &str) -> Option<OwnedObjectPath> {
        let status = self.bus.device_status(device).await.ok()?;
        if status.active.as_str() == "/" {
            return None;
        }
        self.bus.active_profile(&status.active).await.ok()
    }

    /// Follows an activation until it is up, failed, or `until`.
    async fn follow(
        &self,
        device: &str,
        active: &str,
        mut device_signals: Option<BoxStream<'static, (u32, u32, u32)>>,
        until: Instant,
        progress: &mut (dyn FnMut(JoinStage) + Send),
    ) -> (ActivationTracker, Waited) {
        let mut active_signals = self.bus.active_state_changes(active).await.ok();
        let mut tracker = ActivationTracker::new();
        let mut poll = tokio::time::interval(self.config.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let observations = tokio::select! {
                () = tokio::time::sleep_until(until) => return (tracker, Waited::TimedOut),
                (state, _old, reason) = next_of(&mut device_signals) => {
                    vec![Observation::Device { state, reason, ours: None }]
                }
                (state, reason) = next_of(&mut active_signals) => {
                    vec![Observation::Active { state, reason: Some(reason) }]
                }
                _ = poll.tick() => {
                    match tokio::time::timeout_at(until, self.poll(device, active)).await {
                        Ok(observations) => observations,
                        Err(_) => return (tracker, Waited::TimedOut),
                    }
                }
            };
            for observation in observations {
                let (stages, verdict) = tracker.observe(observation);
                for stage in stages {
                    tracing::debug!(stage = stage.as_str(), "network join stage");
                    progress(stage);
                }
                match verdict {
                    Verdict::Pending => {}
                    Verdict::Activated => return (tracker, Waited::Activated),
                    Verdict::Failed => return (tracker, Waited::Failed),
                }
            }
        }
    }

    async fn poll(&self, device: &str, active: &str) -> Vec<Observation> {
        let mut observations = Vec::with_capacity(2);
        match self.bus.device_status(device).await {
            Ok(status) => observations.push(Observation::Device {
                state: status.state,
                reason: status.reason,
                ours: Some(status.active.as_str() == active),
            }),
            Err(error) => tracing::debug!(%error, "device state poll failed"),
        }
        match self.bus.active_state(active).await {
            Ok(state) => observations.push(Observation::Active {
                state,
                reason: None,
            }),
            Err(error) if error.is_unknown_object() => observations.push(Observation::ActiveGone),
            Err(error) => tracing::debug!(%error, "active connection poll failed"),
        }
        observations
    }

    /// Connectivity after the activation, bounded by `until` (the join deadline) and the
    /// connectivity timeout.
    async fn internet(&self, device: &str, until: Instant) -> InternetCheck {
        let own_limit = Instant::now() + self.config.connectivity_timeout;
        let give_up = until.min(own_limit);
        loop {
            let global = match self.bus.check_connectivity().await {
                Ok(value) => value,
                Err(error) => {
                    tracing::debug!(%error, "CheckConnectivity failed; reading Connectivity");
                    self.bus
                        .connectivity()
                        .await
                        .unwrap_or(CONNECTIVITY_UNKNOWN)
                }
            };
            // The device's own view, when NetworkManager has one (another interface may be
            // online while this one is behind a portal).
            let value = match self.bus.device_connectivity(device).await {
                Ok(own) if own != CONNECTIVITY_UNKNOWN => own,
                _ => global,
            };
            match value {
                CONNECTIVITY_FULL => return InternetCheck::Full,
                CONNECTIVITY_PORTAL => return InternetCheck::NoInternet,
                CONNECTIVITY_UNKNOWN => return InternetCheck::Unchecked,
                _ => {}
            }
            let next = Instant::now() + self.config.connectivity_retry;
            if next >= give_up {
                // Limited or none until the end: no internet, unless the join deadline (not
                // the connectivity timeout) cut the wait short.
                return if until < own_limit {
                    InternetCheck::TimedOut
                } else {
                    InternetCheck::NoInternet
                };
            }
            tokio::time::sleep_until(next).await;
        }
    }

    /// Activation, connectivity and DPS probe for a profile just added.
    #[allow(clippy::too_many_arguments)]
    async fn prove(
        &self,
        device: &str,
        active: &str,
        signals: Option<BoxStream<'static, (u32, u32, u32)>>,
        name: &str,
        dps_host: &str,
        until: Instant,
        progress: &mut (dyn FnMut(JoinStage) + Send),
    ) -> Result<(), JoinFailure> {
        let activation_until = until.min(Instant::now() + self.config.activation_timeout);
        let (tracker, waited) = self
            .follow(device, active, signals, activation_until, progress)
            .await;
        match waited {
            Waited::Activated => {}
            Waited::Failed => return Err(tracker.failure(name)),
            Waited::TimedOut => {
                return Err(JoinFailure::Timeout {
                    last_stage: tracker.last_stage(),
                });
            }
        }
        let checked = match self.internet(device, until).await {
            InternetCheck::Full => {
                progress(JoinStage::InternetReachable);
                true
            }
            InternetCheck::Unchecked => false,
            InternetCheck::NoInternet => {
                return Err(JoinFailure::NoInternet {
                    ssid: name.to_owned(),
                });
            }
            InternetCheck::TimedOut => {
                return Err(JoinFailure::Timeout {
                    last_stage: Some(JoinStage::GotIp),
                });
            }
        };
        let left = until.saturating_duration_since(Instant::now());
        match self
            .probe
            .reach(dps_host, left.min(self.config.probe_timeout))
            .await
        {
            Ok(()) => {
                if !checked {
                    progress(JoinStage::InternetReachable);
                }
                progress(JoinStage::DpsReachable);
                Ok(())
            }
            Err(_) if Instant::now() >= until => Err(JoinFailure::Timeout {
                last_stage: Some(if checked {
                    JoinStage::InternetReachable
                } else {
                    JoinStage::GotIp
                }),
            }),
            Err(error) => {
                tracing::info!(%error, "DPS endpoint unreachable");
                Err(JoinFailure::DpsUnreachable {
                    endpoint: dps_host.to_owned(),
                })
            }
        }
    }

    /// Deletes a profile, logging (not failing) on error.
    async fn delete(&self, profile: &str) {
        if let Err(error) = self.bus.delete(profile).await {
            tracing::warn!(%error, profile, "deleting a profile failed");
        }
    }
}

/// The next item of an optional stream; pending forever once it ends.
async fn next_of<T>(stream: &mut Option<BoxStream<'static, T>>) -> T {
    if let Some(inner) = stream.as_mut() {
        if let Some(item) = inner.next().await {
            return item;
        }
        *stream = None;
    }
    std::future::pending().await
}

/// What an `AddAndActivateConnection` refusal means for the installer.
fn refused(error: &BusError, name: &str) -> JoinFailure {
    let text = error.to_string();
    tracing::info!(error = %text, "NetworkManager refused the connection");
    let ssid = name.to_owned();
    if ["psk", "wep-key", "802-11-wireless-security", "Secret"]
        .iter()
        .any(|word| text.contains(word))
    {
        JoinFailure::WifiAuthFailed { ssid }
    } else {
        JoinFailure::NetworkNotFound { ssid }
    }
}

#[async_trait]
impl NetworkConfigurator for NetworkManagerConfigurator {
    fn capabilities(&self) -> Capabilities {
        *self
            .capabilities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn scan(&self) -> Result<Vec<ScannedNetwork>, NetworkError> {
        let Some(device) = &self.wifi else {
            return Ok(Vec::new());
        };
        let before = self.bus.last_scan(device).await;
        if let Err(error) = self.bus.request_scan(device).await {
            // NetworkManager refuses scans right after another one; the list is fresh then.
            tracing::debug!(%error, "RequestScan refused");
        } else if before.is_some() {
            let until = Instant::now() + self.config.scan_wait;
            while Instant::now() < until && self.bus.last_scan(device).await == before {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let paths = self
            .bus
            .access_points(device)
            .await
            .map_err(|error| NetworkError(error.to_string()))?;
        let mut found = Vec::with_capacity(paths.len());
        for path in paths {
            match self.bus.access_point(&path).await {
                Ok(properties) => found.extend(convert::scanned(&properties)),
                // Access points come and go during a scan.
                Err(error) => tracing::debug!(%error, "access point vanished"),
            }
        }
        Ok(convert::strongest_per_ssid(found))
    }

    async fn join(
        &self,
        config: &StoredNetwork,
        dps_host: &str,
        deadline_ms: u64,
        progress: &mut (dyn FnMut(JoinStage) + Send),
    ) -> Result<(), JoinFailure> {
        let until = self.instant(deadline_ms);
        let Ok(mut remembered) = tokio::time::timeout_at(until, self.remembered.lock()).await
        else {
            return Err(JoinFailure::Timeout { last_stage: None });
        };
        let mut created = None;
        let mut last_stage = None;
        let mut report = |stage| {
            last_stage = Some(stage);
            progress(stage);
        };
        let attempt = self.join_within(
            config,
            dps_host,
            until,
            &mut remembered.displaced,
            &mut created,
            &mut report,
        );
        let result = match tokio::time::timeout_at(until, attempt).await {
            Ok(result) => result,
            Err(_) => Err(JoinFailure::Timeout { last_stage }),
        };
        if let Err(failure) = &result {
            tracing::info!(code = failure.code(), "network join failed");
            // Leave the candidate network now; the caller restores the previous one.
            if let Some(profile) = created {
                self.delete(&profile).await;
            }
        }
        drop(remembered);
        self.refresh_capabilities().await;
        result
    }

    async fn restore(&self, previous: Option<&StoredNetwork>) -> Result<(), NetworkError> {
        self.restore_to(previous).await
    }
}

impl NetworkManagerConfigurator {
    /// The device, settings, access point (or `/`) and display name for `config`.
    async fn plan(
        &self,
        config: &StoredNetwork,
    ) -> Result<(OwnedObjectPath, convert::NewSettings, String, String), JoinFailure> {
        match config {
            StoredNetwork::Wifi {
                ssid,
                passphrase,
                hidden,
                bssid,
            } => {
                let Some(device) = self.wifi.clone() else {
                    return Err(JoinFailure::Unsupported { kind: "wifi" });
                };
                let bssid = bssid.as_deref().and_then(convert::parse_mac);
                let seen = self.access_point(&device, ssid, bssid).await;
                let security = seen.as_ref().map(|(_, network)| network.security);
                if security == Some(WifiSecurity::Enterprise) {
                    // 802.1X credentials cannot be configured over fieldlink.
                    return Err(JoinFailure::WifiAuthFailed { ssid: ssid.clone() });
                }
                let settings = convert::wifi_settings(
                    &self.profile_id(ssid),
                    ssid,
                    passphrase.expose(),
                    *hidden,
                    bssid,
                    security,
                );
                let specific = seen.map_or_else(|| "/".to_owned(), |(path, _)| path.to_string());
                Ok((device, settings, specific, ssid.clone()))
            }
            StoredNetwork::Cellular { apn } => {
                let Some(device) = self.modem.clone() else {
                    return Err(JoinFailure::Unsupported { kind: "cellular" });
                };
                let settings = convert::cellular_settings(&self.profile_id(apn), apn);
                Ok((device, settings, "/".to_owned(), apn.clone()))
            }
        }
    }

    /// The join itself; `created` receives the new profile as soon as it exists, so the caller
    /// can delete it even when this future is dropped at the deadline.
    async fn join_within(
        &self,
        config: &StoredNetwork,
        dps_host: &str,
        until: Instant,
        displaced: &mut Option<OwnedObjectPath>,
        created: &mut Option<OwnedObjectPath>,
        progress: &mut (dyn FnMut(JoinStage) + Send),
    ) -> Result<(), JoinFailure> {
        let (device, settings, specific, name) = self.plan(config).await?;
        if let Some(running) = self.running_profile(&device).await {
            *displaced = Some(running);
        }
        tracing::info!(network = %name, "joining a network through NetworkManager");
        // Subscribe before activating, so no state change is missed.
        let signals = self.bus.device_state_changes(&device).await.ok();
        let (profile, active) = self
            .bus
            .add_and_activate(&settings, &device, &specific)
            .await
            .map_err(|error| refused(&error, &name))?;
        *created = Some(profile);
        self.prove(&device, &active, signals, &name, dps_host, until, progress)
            .await?;
        tracing::info!(network = %name, "network joined");
        Ok(())
    }
}
