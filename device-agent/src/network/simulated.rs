//! Simulated networks for the virtual fleet and the demo.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    Capabilities, JoinFailure, JoinStage, NetworkConfigurator, NetworkError, ScannedNetwork,
    WifiSecurity,
};
use crate::clock::SharedClock;
use crate::secret::SecretString;
use crate::store::StoredNetwork;

/// A fault a simulated network shows to every device that joins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkFault {
    /// Not in range: missing from scans, joins end in `network_not_found`.
    OutOfRange,
    /// Associates and authenticates, but DHCP never answers.
    NoDhcp,
    /// Gets an IP, but a captive portal blocks the internet.
    CaptivePortal,
    /// The internet works, but DPS is blocked.
    DpsUnreachable,
}

/// One simulated access point.
#[derive(Debug, Clone)]
pub struct SimulatedNetwork {
    /// SSID.
    pub ssid: String,
    /// The passphrase the access point accepts (empty for open).
    pub passphrase: SecretString,
    /// Signal strength, dBm.
    pub rssi: i8,
    /// Security.
    pub security: WifiSecurity,
    /// Channel.
    pub channel: u8,
    /// Hidden SSID: not in scans, joinable with `hidden: true`.
    pub hidden: bool,
    /// BSSID reported in scans.
    pub bssid: Option<[u8; 6]>,
    /// A fault, if any.
    pub fault: Option<NetworkFault>,
}

impl SimulatedNetwork {
    /// A healthy WPA2 network.
    pub fn wpa2(ssid: impl Into<String>, passphrase: &str) -> Self {
        Self {
            ssid: ssid.into(),
            passphrase: SecretString::new(passphrase),
            rssi: -55,
            security: WifiSecurity::Wpa2Personal,
            channel: 6,
            hidden: false,
            bssid: None,
            fault: None,
        }
    }

    /// The same network with a fault.
    pub fn with_fault(mut self, fault: NetworkFault) -> Self {
        self.fault = Some(fault);
        self
    }
}

#[derive(Debug, Default)]
struct DeviceSide {
    joined: Option<String>,
    joins: u32,
}

/// A [`NetworkConfigurator`] over simulated access points. The access points are shared by every
/// device made with [`SimulatedNetworks::for_another_device`], so a test can change a fault or a
/// passphrase for the whole site while devices use it; each device has its own joined state.
#[derive(Clone)]
pub struct SimulatedNetworks {
    access_points: Arc<Mutex<Vec<SimulatedNetwork>>>,
    device: Arc<Mutex<DeviceSide>>,
    capabilities: Capabilities,
    stage_delay: Duration,
    clock: SharedClock,
}

impl std::fmt::Debug for SimulatedNetworks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedNetworks")
            .field("capabilities", &self.capabilities)
            .field("stage_delay", &self.stage_delay)
            .finish_non_exhaustive()
    }
}

impl SimulatedNetworks {
    /// A Wi-Fi device among `networks`; each join stage takes `stage_delay` of `clock` time.
    pub fn new(networks: Vec<SimulatedNetwork>, stage_delay: Duration, clock: SharedClock) -> Self {
        Self {
            access_points: Arc::new(Mutex::new(networks)),
            device: Arc::new(Mutex::new(DeviceSide::default())),
            capabilities: Capabilities {
                wifi: true,
                ..Capabilities::default()
            },
            stage_delay,
            clock,
        }
    }

    /// A device that is already online over Ethernet (no Wi-Fi).
    pub fn wired(clock: SharedClock) -> Self {
        Self::new(Vec::new(), Duration::ZERO, clock).with_capabilities(Capabilities {
            ethernet: true,
            already_online: true,
            ..Capabilities::default()
        })
    }

    /// The same world with other capabilities (e.g. Ethernet, already online).
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Another device at the same site: shares the access points, has its own joined state.
    pub fn for_another_device(&self) -> Self {
        Self {
            device: Arc::new(Mutex::new(DeviceSide::default())),
            ..self.clone()
        }
    }

    fn access_points(&self) -> std::sync::MutexGuard<'_, Vec<SimulatedNetwork>> {
        self.access_points
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn device(&self) -> std::sync::MutexGuard<'_, DeviceSide> {
        self.device
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds (or replaces, by SSID) an access point.
    pub fn add_network(&self, network: SimulatedNetwork) {
        let mut access_points = self.access_points();
        access_points.retain(|n| n.ssid != network.ssid);
        access_points.push(network);
    }

    /// Sets or clears the fault of network `ssid`.
    pub fn set_fault(&self, ssid: &str, fault: Option<NetworkFault>) {
        if let Some(network) = self.access_points().iter_mut().find(|n| n.ssid == ssid) {
            network.fault = fault;
        }
    }

    /// The SSID the device is on, if any.
    pub fn joined(&self) -> Option<String> {
        self.device().joined.clone()
    }

    /// How many joins were attempted.
    pub fn join_attempts(&self) -> u32 {
        self.device().joins
    }

    async fn stage(
        &self,
        stage: JoinStage,
        deadline_ms: u64,
        last: &mut Option<JoinStage>,
        progress: &mut (dyn FnMut(JoinStage) + Send),
    ) -> Result<(), JoinFailure> {
        let wake = self
            .clock
            .now_ms()
            .saturating_add(crate::clock::duration_ms(self.stage_delay));
        if wake > deadline_ms {
            return Err(JoinFailure::Timeout { last_stage: *last });
        }
        self.clock.sleep_until(wake).await;
        *last = Some(stage);
        progress(stage);
        Ok(())
    }
}

#[async_trait]
impl NetworkConfigurator for SimulatedNetworks {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn scan(&self) -> Result<Vec<ScannedNetwork>, NetworkError> {
        if !self.capabilities.wifi {
            return Ok(Vec::new());
        }
        let mut found: Vec<ScannedNetwork> = self
            .access_points()
            .iter()
            .filter(|n| !n.hidden && n.fault != Some(NetworkFault::OutOfRange))
            .map(|n| ScannedNetwork {
                ssid: n.ssid.clone(),
                rssi: n.rssi,
                security: n.security,
                channel: n.channel,
                bssid: n.bssid,
            })
            .collect();
        found.sort_by(|a, b| b.rssi.cmp(&a.rssi).then_with(|| a.ssid.cmp(&b.ssid)));
        Ok(found)
    }

    async fn join(
        &self,
        config: &StoredNetwork,
        dps_host: &str,
        deadline_ms: u64,
        progress: &mut (dyn FnMut(JoinStage) + Send),
    ) -> Result<(), JoinFailure> {
        let (ssid, passphrase, hidden) = match config {
            StoredNetwork::Wifi {
                ssid,
                passphrase,
                hidden,
                ..
            } if self.capabilities.wifi => (ssid.clone(), passphrase.clone(), *hidden),
            StoredNetwork::Wifi { .. } => return Err(JoinFailure::Unsupported { kind: "wifi" }),
            StoredNetwork::Cellular { .. } => {
                return Err(JoinFailure::Unsupported { kind: "cellular" });
            }
        };
        {
            let mut device = self.device();
            device.joins += 1;
            device.joined = None;
        }
        let network = self
            .access_points()
            .iter()
            .find(|n| n.ssid == ssid)
            .cloned();
        let mut last = None;
        self.stage(JoinStage::Associating, deadline_ms, &mut last, progress)
            .await?;
        let network = match network {
            Some(n) if n.fault != Some(NetworkFault::OutOfRange) && (!n.hidden || hidden) => n,
            _ => return Err(JoinFailure::NetworkNotFound { ssid }),
        };
        let open = network.security == WifiSecurity::Open;
        if network.security == WifiSecurity::Enterprise
            || (!open && network.passphrase != passphrase)
        {
            return Err(JoinFailure::WifiAuthFailed { ssid });
        }
        self.stage(JoinStage::Authenticated, deadline_ms, &mut last, progress)
            .await?;
        if network.fault == Some(NetworkFault::NoDhcp) {
            return Err(JoinFailure::DhcpFailed { ssid });
        }
        self.stage(JoinStage::GotIp, deadline_ms, &mut last, progress)
            .await?;
        if network.fault == Some(NetworkFault::CaptivePortal) {
            return Err(JoinFailure::NoInternet { ssid });
        }
        self.stage(
            JoinStage::InternetReachable,
            deadline_ms,
            &mut last,
            progress,
        )
        .await?;
        if network.fault == Some(NetworkFault::DpsUnreachable) {
            return Err(JoinFailure::DpsUnreachable {
                endpoint: dps_host.to_owned(),
            });
        }
        self.stage(JoinStage::DpsReachable, deadline_ms, &mut last, progress)
            .await?;
        self.device().joined = Some(ssid);
        Ok(())
    }

    async fn restore(&self, previous: Option<&StoredNetwork>) -> Result<(), NetworkError> {
        let ssid = match previous {
            Some(StoredNetwork::Wifi { ssid, .. }) => Some(ssid.clone()),
            _ => None,
        };
        self.device().joined = ssid;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    fn networks() -> SimulatedNetworks {
        SimulatedNetworks::new(
            vec![
                SimulatedNetwork::wpa2("site-a", "correct horse"),
                SimulatedNetwork {
                    rssi: -40,
                    ..SimulatedNetwork::wpa2("site-b", "pw-b")
                },
                SimulatedNetwork::wpa2("far", "x").with_fault(NetworkFault::OutOfRange),
                SimulatedNetwork::wpa2("lab-nodhcp", "x").with_fault(NetworkFault::NoDhcp),
                SimulatedNetwork::wpa2("hotel", "x").with_fault(NetworkFault::CaptivePortal),
                SimulatedNetwork::wpa2("fw", "x").with_fault(NetworkFault::DpsUnreachable),
                SimulatedNetwork {
                    hidden: true,
                    ..SimulatedNetwork::wpa2("hidden", "h")
                },
            ],
            Duration::ZERO,
            Arc::new(ManualClock::new(0)),
        )
    }

    fn wifi(ssid: &str, pass: &str, hidden: bool) -> StoredNetwork {
        StoredNetwork::Wifi {
            ssid: ssid.into(),
            passphrase: SecretString::new(pass),
            hidden,
            bssid: None,
        }
    }

    async fn join(
        net: &SimulatedNetworks,
        config: &StoredNetwork,
    ) -> (Result<(), JoinFailure>, Vec<JoinStage>) {
        let mut stages = Vec::new();
        let result = net
            .join(config, "dps.example", u64::MAX, &mut |s| stages.push(s))
            .await;
        (result, stages)
    }

    #[tokio::test]
    async fn scan_lists_visible_networks_strongest_first() {
        let scan = networks().scan().await.unwrap();
        let ssids: Vec<_> = scan.iter().map(|n| n.ssid.as_str()).collect();
        assert_eq!(ssids[0], "site-b");
        assert!(!ssids.contains(&"far"));
        assert!(!ssids.contains(&"hidden"));
        assert_eq!(ssids.len(), 5);
    }

    #[tokio::test]
    async fn a_healthy_join_reports_every_stage() {
        let net = networks();
        let (result, stages) = join(&net, &wifi("site-a", "correct horse", false)).await;
        result.unwrap();
        assert_eq!(
            stages,
            [
                JoinStage::Associating,
                JoinStage::Authenticated,
                JoinStage::GotIp,
                JoinStage::InternetReachable,
                JoinStage::DpsReachable
            ]
        );
        assert_eq!(net.joined().as_deref(), Some("site-a"));
    }

    #[tokio::test]
    async fn each_fault_has_its_typed_failure() {
        let net = networks();
        let cases = [
            (wifi("site-a", "wrong", false), "wifi_auth_failed", 1),
            (wifi("nowhere", "x", false), "network_not_found", 1),
            (wifi("far", "x", false), "network_not_found", 1),
            (wifi("hidden", "h", false), "network_not_found", 1),
            (wifi("lab-nodhcp", "x", false), "dhcp_failed", 2),
            (wifi("hotel", "x", false), "no_internet", 3),
            (wifi("fw", "x", false), "dps_unreachable", 4),
            (
                StoredNetwork::Cellular { apn: "iot".into() },
                "network_unsupported",
                0,
            ),
        ];
        for (config, code, stages_reached) in cases {
            let (result, stages) = join(&net, &config).await;
            let failure = result.unwrap_err();
            assert_eq!(failure.code(), code, "{config:?}");
            assert_eq!(stages.len(), stages_reached, "{config:?}");
            assert!(net.joined().is_none());
        }
        let (result, _) = join(&net, &wifi("hidden", "h", true)).await;
        result.unwrap();
    }

    #[tokio::test]
    async fn restore_returns_to_the_previous_network() {
        let net = networks();
        join(&net, &wifi("site-a", "correct horse", false))
            .await
            .0
            .unwrap();
        let (result, _) = join(&net, &wifi("site-b", "nope", false)).await;
        assert!(result.is_err());
        net.restore(Some(&wifi("site-a", "correct horse", false)))
            .await
            .unwrap();
        assert_eq!(net.joined().as_deref(), Some("site-a"));
        net.set_fault("site-b", Some(NetworkFault::NoDhcp));
        assert_eq!(
            join(&net, &wifi("site-b", "pw-b", false))
                .await
                .0
                .unwrap_err()
                .code(),
            "dhcp_failed"
        );
    }

    #[tokio::test]
    async fn joins_respect_their_deadline() {
        let clock = ManualClock::new(0);
        let net = SimulatedNetworks::new(
            vec![SimulatedNetwork::wpa2("slow", "p")],
            Duration::from_secs(5),
            Arc::new(clock.clone()),
        );
        let config = wifi("slow", "p", false);
        let task = tokio::spawn(async move { net.join(&config, "dps", 12_000, &mut |_| {}).await });
        for _ in 0..4 {
            tokio::task::yield_now().await;
            clock.advance(Duration::from_secs(5));
        }
        assert_eq!(
            task.await.unwrap().unwrap_err(),
            JoinFailure::Timeout {
                last_stage: Some(JoinStage::Authenticated)
            }
        );
    }

    #[test]
    fn failures_read_as_instructions_without_secrets() {
        let text = JoinFailure::WifiAuthFailed {
            ssid: "site-a".into(),
        }
        .to_string();
        assert!(text.contains("check the passphrase"));
    }
}
